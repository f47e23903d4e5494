"""Recovery with real processes: a stateful streaming driver killed with SIGKILL
and restarted from its checkpoint, a checkpoint from changed application code,
a corrupted newest checkpoint, and an executor killed under a stateful stream.

The driver scenarios run ``tests/jobs/stateful_recovery_job.py`` (word counts
with updateStateByKey over new files in an inbox directory plus a reliable
receiver reading numbered lines of a source file, saving the full state every
batch) as a subprocess. Whatever happens to it, the state it finally saves
must equal the totals of everything fed: nothing lost, nothing counted twice.
"""
from __future__ import annotations

import ast
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
from waiting import wait_until
from conftest import executor_processes
from sluicegate.driver import Receiver
from sluicegate.driver.checkpoint import metadata
from streaming_harness import ManualBatches, batch_ms_of

JOBS = Path(__file__).parent / "jobs"
RECOVERY_JOB = JOBS / "stateful_recovery_job.py"
CHANGED_JOB = JOBS / "changed_setup_job.py"


# -- the job as a subprocess ------------------------------------------------------------------

class JobRun:
    """One run of a job script over the scenario's directories; output goes to a log file."""

    def __init__(self, script: Path, dirs: Scenario, name: str):
        self.dirs = dirs
        self.log = dirs.root / f"{name}.log"
        self._log_file = open(self.log, "wb")  # noqa: SIM115 - open while the job runs
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(dirs.checkpoint), str(dirs.inbox), str(dirs.source),
             str(dirs.out)],
            cwd=dirs.root, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT)
        self.executors: list[psutil.Process] = []
        self.work_dirs: set[Path] = set()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, predicate, timeout_s: float, what: str, interval_s: float = 0.05):
        """``wait_until`` that fails at once if the job exits, with its output either way."""
        def check():
            if self.proc.poll() is not None:
                raise AssertionError(f"the job exited ({self.proc.returncode}) while waiting for "
                                     f"{what}:\n{self.output()[-4000:]}")
            return predicate()

        try:
            return wait_until(check, timeout_s, what, interval_s)
        except AssertionError as exc:
            if "the job exited" in str(exc):
                raise
            raise AssertionError(f"{exc}\njob output:\n{self.output()[-4000:]}") from None

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def remember_executors(self) -> list[psutil.Process]:
        """Note the run's executor processes and their work directories (while alive)."""
        for child in self.descendants():
            try:
                command = child.cmdline()
            except psutil.NoSuchProcess:
                continue
            if "sluicegate.worker" in " ".join(command) and child not in self.executors:
                self.executors.append(child)
                if "--work-dir" in command:
                    self.work_dirs.add(Path(command[command.index("--work-dir") + 1]))
        return self.executors

    def signal_and_wait(self, signum: int) -> None:
        """Send ``signum`` to the driver; wait until it and its executors are gone."""
        self.remember_executors()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)
        self.proc.wait(30)
        _, alive = psutil.wait_procs(self.executors, timeout=30)
        assert alive == [], f"executors outlived their driver: {[p.pid for p in alive]}"
        self.close()

    def close(self) -> None:
        """Kill whatever is left of this run and remove its executors' directories
        (a killed driver cannot remove its application directory itself)."""
        if self.proc.poll() is None:
            self.remember_executors()
            self.proc.kill()
            self.proc.wait(30)
        for proc in self.executors:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(self.executors, timeout=10)
        for work_dir in self.work_dirs:
            shutil.rmtree(work_dir.parent, ignore_errors=True)
        self._log_file.close()


class Scenario:
    """The directories of one recovery scenario, what was fed, and the saved states."""

    def __init__(self, root: Path):
        self.root = root
        self.checkpoint = root / "checkpoint"
        self.inbox = root / "inbox"
        self.source = root / "source.txt"
        self.out = root / "out"
        self.inbox.mkdir()
        self.out.mkdir()
        self.source.write_text("")
        self.fed: Counter = Counter()
        self.files = 0
        self.lines = 0
        self.runs: list[JobRun] = []

    def start(self, script: Path = RECOVERY_JOB) -> JobRun:
        run = JobRun(script, self, f"run{len(self.runs)}")
        self.runs.append(run)
        return run

    def feed_file(self, words: list[str]) -> None:
        """A new inbox file, written under a hidden name and renamed into place."""
        self.files += 1
        tmp = self.inbox / f".file-{self.files}.tmp"
        tmp.write_text("\n".join(" ".join(words[i:i + 4]) for i in range(0, len(words), 4)) + "\n")
        os.rename(tmp, self.inbox / f"file-{self.files}.txt")
        self.fed.update(words)

    def feed_lines(self, words: list[str]) -> None:
        """Complete lines appended to the source the receiver reads (one word a line)."""
        with open(self.source, "a") as f:
            f.write("".join(f"{w}\n" for w in words))
            f.flush()
        self.lines += len(words)
        self.fed.update(words)

    def feed(self, files: int, lines: int, tag: str) -> None:
        for i in range(files):
            self.feed_file([f"{tag}{j % 5}" for j in range(i, i + 12)] + ["shared"])
        self.feed_lines([f"line{j % 7}" for j in range(self.lines, self.lines + lines)] + [tag])

    def state_dirs(self) -> list[Path]:
        return sorted((p for p in self.out.iterdir() if p.name.startswith("state-")),
                      key=lambda p: int(p.name.split("-")[1]))

    @staticmethod
    def read_state(directory: Path) -> dict:
        pairs = [ast.literal_eval(line) for part in sorted(directory.glob("part-*"))
                 for line in part.read_text().splitlines() if line]
        state = dict(pairs)
        assert len(state) == len(pairs), f"a key appears twice in {directory.name}"
        return state

    def newest_state(self) -> dict | None:
        done = [d for d in self.state_dirs() if (d / "_SUCCESS").exists()]
        return self.read_state(done[-1]) if done else None

    def wait_for_totals(self, timeout_s: float, run: JobRun) -> dict:
        try:
            run.wait_for(lambda: self.newest_state() == dict(self.fed), timeout_s,
                         "the saved state to equal the totals fed", 0.2)
        except AssertionError as exc:
            if "the job exited" in str(exc):
                raise
            newest = self.newest_state() or {}
            diff = {k: (newest.get(k), self.fed.get(k)) for k in set(newest) | set(self.fed)
                    if newest.get(k) != self.fed.get(k)}
            raise AssertionError(f"saved state != fed totals; (saved, fed) by key: {diff}\n"
                                 f"job output:\n{run.output()[-3000:]}") from None
        return dict(self.fed)

    def check_outputs(self) -> None:
        """Every batch directory complete, no staging debris, states only ever grow."""
        names = sorted(p.name for p in self.out.iterdir())
        assert [n for n in names if n.startswith(".")] == [], f"staging left behind: {names}"
        previous: dict = {}
        for directory in self.state_dirs():
            assert (directory / "_SUCCESS").exists(), f"{directory.name} is incomplete"
            state = self.read_state(directory)
            assert all(state[k] <= self.fed[k] for k in state), \
                f"{directory.name} counted more than was fed: {state}"
            assert all(state.get(k, 0) >= v for k, v in previous.items()), \
                f"{directory.name} has less than the batch before it"
            previous = state

    def close(self) -> None:
        for run in self.runs:
            run.close()


@pytest.fixture
def scenario(tmp_path):
    found = Scenario(tmp_path)
    yield found
    found.close()


def checkpoint_files(directory: Path) -> list[Path]:
    return sorted((p for p in directory.glob("checkpoint-*") if p.name[11:].isdigit()),
                  key=lambda p: int(p.name[11:]))


# -- the driver killed -------------------------------------------------------------------------

@pytest.mark.slow
def test_driver_killed_with_sigkill_recovers_exactly(scenario):
    run = scenario.start()
    run.wait_for(lambda: scenario.newest_state() is not None, 60, "the job's first batch")

    scenario.feed(files=3, lines=30, tag="a")
    scenario.wait_for_totals(60, run)

    # Data in flight when the driver dies, killed in the middle of saving a batch.
    scenario.feed(files=2, lines=25, tag="b")
    run.wait_for(lambda: any(".staging-" in p.name for p in scenario.out.iterdir()), 30,
                 "the job to be saving a batch", 0.002)
    run.signal_and_wait(signal.SIGKILL)
    assert run.proc.returncode == -signal.SIGKILL

    # More arrives while it is down.
    scenario.feed(files=2, lines=20, tag="c")

    again = scenario.start()
    scenario.feed(files=2, lines=15, tag="d")
    scenario.wait_for_totals(90, again)
    assert "recovering streaming context" in again.output()
    scenario.check_outputs()

    again.signal_and_wait(signal.SIGTERM)
    assert again.proc.returncode is not None



@pytest.mark.slow
def test_corrupted_newest_checkpoint_falls_back_to_the_previous_one(scenario):
    run = scenario.start()
    run.wait_for(lambda: scenario.newest_state() is not None, 60, "the job's first batch")
    scenario.feed(files=2, lines=20, tag="a")
    scenario.wait_for_totals(60, run)
    scenario.feed(files=1, lines=10, tag="b")
    run.wait_for(lambda: scenario.newest_state() == dict(scenario.fed), 60, "batch b")
    run.signal_and_wait(signal.SIGKILL)

    files = checkpoint_files(scenario.checkpoint)
    assert len(files) >= 2
    newest, previous = files[-1], files[-2]
    data = newest.read_bytes()
    newest.write_bytes(data[:len(data) // 2])  # a torn write

    again = scenario.start()
    scenario.feed(files=1, lines=10, tag="c")
    scenario.wait_for_totals(90, again)
    output = again.output()
    assert f"skipping unreadable checkpoint {newest}" in output
    assert f"from the checkpoint of batch {previous.name[11:]} " in output
    scenario.check_outputs()
    again.signal_and_wait(signal.SIGTERM)


@pytest.mark.slow
def test_a_changed_application_is_refused_its_old_checkpoint(scenario):
    run = scenario.start()
    run.wait_for(lambda: scenario.newest_state() is not None and
                 checkpoint_files(scenario.checkpoint), 60, "a checkpoint")
    scenario.feed(files=1, lines=5, tag="a")
    scenario.wait_for_totals(60, run)
    run.signal_and_wait(signal.SIGKILL)
    before = {p.name: p.read_bytes() for p in scenario.checkpoint.iterdir() if p.is_file()}

    changed = scenario.start(CHANGED_JOB)
    assert changed.proc.wait(60) != 0
    output = changed.output()
    assert "CheckpointError" in output
    assert "was written by a different version of this application" in output
    assert "setup function (the DStream graph) changed" in output
    assert "recovering streaming context" not in output
    changed.close()
    # Refusing touched nothing: the old application can still recover from it.
    after = {p.name: p.read_bytes() for p in scenario.checkpoint.iterdir() if p.is_file()}
    assert after == before


# -- metadata checkpoint files, in-process ----------------------------------------------------

def fake_checkpoint(time_ms: int, fingerprint: str = "f1", version: str | None = None):
    from sluicegate.driver.context.spark_context import VERSION

    return metadata.StreamingCheckpoint(version or VERSION, fingerprint, "app", {}, 1000, 0,
                                        time_ms, [], {"graph": time_ms})


@pytest.mark.parametrize("damage", ["truncated", "flipped_byte", "not_a_checkpoint", "empty"])
def test_read_latest_skips_a_damaged_newest_file(tmp_path, damage):
    for t in (1000, 2000, 3000):
        metadata.write(tmp_path, fake_checkpoint(t))
    newest = tmp_path / "checkpoint-3000"
    data = bytearray(newest.read_bytes())
    if damage == "truncated":
        data = data[:-10]
    elif damage == "flipped_byte":
        data[-5] ^= 0xFF
    elif damage == "not_a_checkpoint":
        data = b"hello" + data[5:]
    else:
        data = b""
    newest.write_bytes(bytes(data))
    found = metadata.read_latest(tmp_path, "f1")
    assert (found.time_ms, found.graph) == (2000, {"graph": 2000})


def test_read_latest_with_nothing_readable_is_an_error(tmp_path):
    assert metadata.read_latest(tmp_path / "missing", "f1") is None
    assert metadata.read_latest(tmp_path, "f1") is None
    metadata.write(tmp_path, fake_checkpoint(1000))
    (tmp_path / "checkpoint-1000").write_bytes(b"garbage")
    with pytest.raises(metadata.CheckpointError, match="no readable checkpoint"):
        metadata.read_latest(tmp_path, "f1")


def test_read_latest_refuses_another_application_or_version(tmp_path):
    metadata.write(tmp_path, fake_checkpoint(1000, fingerprint="f1"))
    with pytest.raises(metadata.CheckpointError, match="different version of this application"):
        metadata.read_latest(tmp_path, "f2")
    other = tmp_path / "other"
    metadata.write(other, fake_checkpoint(1000, version="0.0.1"))
    with pytest.raises(metadata.CheckpointError, match="written by sluicegate 0.0.1"):
        metadata.read_latest(other, "f1")


def test_write_keeps_the_newest_files_only(tmp_path):
    for t in range(1000, 16000, 1000):
        metadata.write(tmp_path, fake_checkpoint(t))
    names = [p.name for p in checkpoint_files(tmp_path)]
    assert names == [f"checkpoint-{t}" for t in range(6000, 16000, 1000)]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def make_setup(helper_body: str, setup_body: str = "helper(1)"):
    namespace = {"__name__": "some_app"}
    exec(f"def helper(x):\n    return {helper_body}\n\n"  # noqa: S102 - two versions of an app
         f"def setup():\n    return {setup_body}\n", namespace)
    return namespace["setup"]


def test_fingerprint_follows_the_setup_code_and_its_helpers():
    same = metadata.fingerprint(make_setup("x + 1"))
    assert same == metadata.fingerprint(make_setup("x + 1"))
    assert same != metadata.fingerprint(make_setup("x + 2"))  # a helper it calls changed
    assert same != metadata.fingerprint(make_setup("x + 1", "helper(2)"))
    assert metadata.fingerprint(None) == ""

# -- an executor killed under a stateful stream ------------------------------------------------

FEEDS: dict[str, queue.Queue] = {}


class HandFedReceiver(Receiver):
    """Stores each list the test puts in its feed as one block, in order.

    The feed lives in a module-level registry, so the receiver pickles (the
    metadata checkpoint holds it) as just its feed's name."""

    def __init__(self, feed: str):
        super().__init__()
        self.feed = feed

    def onStart(self):
        threading.Thread(target=self._run, name=f"feed-{self.feed}", daemon=True).start()

    def _run(self):
        feed = FEEDS[self.feed]
        while not self.isStopped():
            try:
                chunk = feed.get(timeout=0.05)
            except queue.Empty:
                continue
            try:
                self.store(chunk)
            finally:
                feed.task_done()


class RecordInto:
    """foreachRDD target that pickles (for the metadata checkpoint): each batch's
    sorted records go to ``RESULTS[name][batch ms]``."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, time, rdd):
        RESULTS.setdefault(self.name, {})[batch_ms_of(time)] = sorted(rdd.collect())


RESULTS: dict[str, dict[int, list]] = {}


def sum_counts(new_values, last):
    return sum(new_values) + (last or 0)


@pytest.mark.slow
def test_executor_killed_mid_batch_keeps_the_state_exact(sc, tmp_path):
    """local[3], updateStateByKey over a receiver: one executor is SIGKILLed while it
    runs a task of batch 4, after it cached state partitions of batches 1-3. The state
    of every batch must still be exactly the running word counts."""
    wait_until(lambda: len(executor_processes()) == 3, 60, "three executors")
    markers = tmp_path / "markers"
    markers.mkdir()
    feed_name = f"feed-{tmp_path.name}"
    FEEDS[feed_name] = queue.Queue()

    def slow_pair(word):
        if word == "SLOW":
            (markers / f"{os.getpid()}-{time.monotonic_ns()}").touch()
            time.sleep(1.5)
        return (word, 1)

    rng = random.Random(17)
    batches = [[[f"w{rng.randint(0, 9)}" for _ in range(20)] for _ in range(3)] for _ in range(8)]
    batches[3][1][5] = "SLOW"  # batch 4's second block: its map task is the one to kill
    kill_batch = 4

    checkpoint_dir_before = sc.getCheckpointDir()
    run = ManualBatches(sc, 1.0, timeout_s=120)
    try:
        ssc = run.ssc
        ssc.checkpoint(str(tmp_path / "checkpoint"))
        counts = ssc.receiverStream(HandFedReceiver(feed_name)).map(slow_pair) \
            .updateStateByKey(sum_counts)
        counts.foreachRDD(RecordInto(feed_name))
        run.start()
        killed = None
        for number, blocks in enumerate(batches, start=1):
            for block in blocks:
                FEEDS[feed_name].put(block)
            FEEDS[feed_name].join()  # stored: the next batch claims them
            if number != kill_batch:
                run.step()
                continue
            due_ms = number * run.batch_ms
            run.clock.set_ms(due_ms)
            marker = wait_until(lambda: next(iter(markers.iterdir()), None), 60,
                                "the slow task of batch 4 to start", 0.01)
            killed = int(marker.name.split("-")[0])
            victim = next(p for p in executor_processes() if p.pid == killed)
            victim.kill()
            assert run.waiter.wait_for(due_ms, 120), "batch 4 did not complete after the kill"
            run.batches_run += 1
        ssc.awaitTerminationOrTimeout(0)  # no batch failed
    finally:
        run.stop()
        FEEDS.pop(feed_name, None)
        states = RESULTS.pop(feed_name, {})
        sc._checkpoint_dir = checkpoint_dir_before  # the shared context's, not this test's

    running: Counter = Counter()
    expected = []
    for blocks in batches:
        for block in blocks:
            running.update(block)
        expected.append(sorted(running.items()))
    assert [states[t] for t in sorted(states)] == expected
    assert killed is not None
    assert not psutil.pid_exists(killed) or psutil.Process(killed).status() == psutil.STATUS_ZOMBIE
    # The slow task ran again on another executor; the application got a new executor.
    assert len({int(m.name.split("-")[0]) for m in markers.iterdir()}) >= 2
    wait_until(lambda: len(executor_processes()) == 3, 60, "a replacement executor")
