"""Recovery scenarios with real processes: a job script from ``tests/jobs/`` run as
a subprocess over a scenario's directories (checkpoint, inbox, a source file for a
reliable receiver, outputs), what was fed to it, and the states it saved.

``ClockedScenario`` drives the job's batch clock from a file and feeds the same
data before the same batch in every run, so a killed and recovered run can be
compared, batch directory by batch directory, with a run never killed
(``run_baseline``). The fixtures ``scenario``, ``clocked`` and ``baseline`` in
``conftest.py`` hand these out.
"""
from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import psutil

from sluicegate.driver.checkpoint import metadata
from waiting import wait_until

JOBS = Path(__file__).resolve().parent / "jobs"
RECOVERY_JOB = JOBS / "stateful_recovery_job.py"
CHANGED_JOB = JOBS / "changed_setup_job.py"


# -- the job as a subprocess ------------------------------------------------------------------

class JobRun:
    """One run of a job script over the scenario's directories; output goes to a log file."""

    def __init__(self, script: Path, dirs: Scenario, name: str, env: dict | None = None):
        self.dirs = dirs
        self.log = dirs.root / f"{name}.log"
        self._log_file = open(self.log, "wb")  # noqa: SIM115 - open while the job runs
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(dirs.checkpoint), str(dirs.inbox), str(dirs.source),
             str(dirs.out)],
            cwd=dirs.root, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})})
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

    def start(self, script: Path = RECOVERY_JOB, env: dict | None = None) -> JobRun:
        run = JobRun(script, self, f"run{len(self.runs)}", env)
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


def checkpoint_files(directory: Path) -> list[Path]:
    return sorted((p for p in directory.glob("checkpoint-*") if p.name[11:].isdigit()),
                  key=lambda p: int(p.name[11:]))


# -- a clocked scenario: batch k always holds the same data -----------------------------------

BATCH_MS = 500            # the job's batch duration
STEPS = 13                # batches each clocked run goes through
AFTER_STEPS = (6, 8)      # after these batches more data comes (and, in one run, a kill)
STORED = re.compile(r"^STORED (\d+)$", re.M)
REPLAYED = re.compile(r"recovery: (\d+) blocks back from the write-ahead log")


class ClockedScenario(Scenario):
    """A scenario whose job takes its batch time from a file the test writes, so
    batch ``k`` (at ``k * 500`` ms) always holds the same data."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.clock = root / "clock"
        self.hold = root / "hold"
        self.stored = 0
        self.set_clock(0)

    def start(self, script: Path = RECOVERY_JOB, env: dict | None = None,
              wait: bool = True) -> JobRun:
        """Start the job; with ``wait``, return once its context started (files fed
        before that would count as old news)."""
        run = super().start(script, {"RECOVERY_JOB_CLOCK": str(self.clock),
                                     "RECOVERY_JOB_HOLD": str(self.hold), **(env or {})})
        if wait:
            run.wait_for(lambda: "STREAMING STARTED" in run.output(), 60, "the job to start")
        return run

    def set_clock(self, ms: int) -> None:
        tmp = self.root / ".clock.tmp"
        tmp.write_text(str(ms))
        os.replace(tmp, self.clock)

    def wait_stored(self, run: JobRun) -> None:
        """Until the receiver stored every line fed (its blocks are in the WAL)."""
        if self.stored == self.lines:
            return
        run.wait_for(lambda: self.lines in map(int, STORED.findall(run.output())), 60,
                     f"the receiver to store line {self.lines}", 0.02)
        self.stored = self.lines

    def feed_before(self, k: int, run: JobRun) -> None:
        # No file in the last two batches: a file is only counted two batches later.
        self.feed(files=k % 2 if k <= STEPS - 2 else 0, lines=(3 * k) % 11, tag=f"b{k}")
        self.wait_stored(run)

    def feed_after(self, k: int, run: JobRun) -> None:
        """Data that arrives once batch ``k`` was generated: lines for batch k + 1, a file
        for batch k + 2 (a file is taken at the second scan that sees it)."""
        self.feed(files=1, lines=14, tag=f"a{k}")
        self.wait_stored(run)

    def feed_down(self, k: int) -> None:
        """Data that arrives while the driver may be down (stored by whoever reads it)."""
        self.feed(files=1, lines=5, tag=f"d{k}")

    def batch_done(self, k: int) -> Path:
        return self.out / f"state-{k * BATCH_MS}" / "_SUCCESS"

    def step(self, k: int, run: JobRun) -> None:
        """Batch ``k``: feed it, let the clock reach it, wait until it is saved."""
        self.feed_before(k, run)
        self.set_clock(k * BATCH_MS)
        run.wait_for(self.batch_done(k).exists, 60, f"batch {k} to be saved", 0.02)
        if k in AFTER_STEPS:
            self.feed_after(k, run)
            self.feed_down(k)
            self.wait_stored(run)

    def saved(self) -> dict[str, dict[str, list[str]]]:
        """Every saved batch directory: its files and their lines (sorted)."""
        return {d.name: {f.name: sorted(f.read_text().splitlines()) for f in d.iterdir()}
                for d in sorted(self.out.iterdir())}

    def wal_files(self) -> set[Path]:
        return {p for p in (self.checkpoint / "receivedBlocks").rglob("*") if p.is_file()}

    def data_dirs(self) -> set[Path]:
        return set(self.checkpoint.glob("*/rdd-*"))

    def check_saved(self, baseline: dict) -> None:
        saved = self.saved()
        assert sorted(saved) == sorted(baseline), "not the batch directories of the run never killed"
        for name in baseline:
            assert saved[name] == baseline[name], f"{name} differs from the run never killed"

    def check_checkpoint_bounded(self) -> None:
        files = checkpoint_files(self.checkpoint)
        assert 0 < len(files) <= metadata.KEEP_FILES
        assert len(self.data_dirs()) <= 3, sorted(self.data_dirs())
        assert len([p for p in self.checkpoint.iterdir() if len(p.name) == 32]) <= 2


def expected_batch_dirs() -> list[str]:
    return sorted(f"state-{k * BATCH_MS}" for k in range(1, STEPS + 1))


def run_baseline(root: Path) -> dict[str, dict[str, list[str]]]:
    """The clocked scenario run without a fault: each batch directory and its lines."""
    scenario = ClockedScenario(root)
    try:
        run = scenario.start()
        for k in range(1, STEPS + 1):
            scenario.step(k, run)
        saved = scenario.saved()
        assert sorted(saved) == expected_batch_dirs()
        assert all("_SUCCESS" in files for files in saved.values())
        assert scenario.newest_state() == dict(scenario.fed)
        scenario.check_outputs()
        run.signal_and_wait(signal.SIGKILL)
        return saved
    finally:
        scenario.close()
