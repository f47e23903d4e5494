"""Recovery with real processes: a stateful streaming driver killed with SIGKILL
and restarted from its checkpoint, a checkpoint from changed application code
or from a graph of another shape, a corrupted newest checkpoint, and an
executor killed under a stateful stream (before and after a state checkpoint).

The driver scenarios run ``tests/jobs/stateful_recovery_job.py`` (word counts
with updateStateByKey over new files in an inbox directory plus a reliable
receiver reading numbered lines of a source file, saving the full state every
batch) as a subprocess. Whatever happens to it, the state it finally saves
must equal the totals of everything fed: nothing lost, nothing counted twice.

The SIGKILL scenarios drive the job's batch clock from a file
(``RECOVERY_JOB_CLOCK``) and feed the same data before the same batch in every
run, so a killed and recovered run must save exactly the batch directories,
with exactly the contents, of a run that was never killed (``baseline``). The
scenarios and their fixtures are in ``tests/recovery_scenarios.py`` and
``tests/conftest.py``.
"""
from __future__ import annotations

import functools
import os
import queue
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from conftest import executor_processes
from recovery_scenarios import AFTER_STEPS, BATCH_MS, CHANGED_JOB, REPLAYED, STEPS, checkpoint_files
from sluicegate.driver import Receiver, StreamingContext
from sluicegate.driver.checkpoint import metadata
from streaming_harness import ManualBatches, batch_ms_of
from waiting import wait_until


# -- the driver killed, batch by batch against a run never killed --------------------------------

def referenced_state_dirs(checkpoint_dir: Path) -> set[Path]:
    """The state directories the newest metadata checkpoint points at."""
    restored = metadata.read_latest(checkpoint_dir, None)
    streams = restored.graph.all_streams() + restored.graph.inputs
    return {Path(p) for s in streams for p in s._checkpoint_paths()}


@pytest.mark.slow
def test_driver_killed_with_sigkill_recovers_exactly(clocked, baseline):
    """The driver is SIGKILLed in the middle of batch 6: its blocks are in the
    write-ahead log, the state was checkpointed but no metadata names it yet, the
    save is half written, and more blocks came after it. Restarted with getOrCreate,
    the run saves the batch directories of the run never killed, line for line."""
    scenario, kill = clocked, AFTER_STEPS[0]
    run = scenario.start()
    for k in range(1, kill):
        scenario.step(k, run)

    scenario.hold.touch()  # batch 6's save waits half done (its first partition is written)
    scenario.feed_before(kill, run)
    scenario.set_clock(kill * BATCH_MS)
    holding = Path(f"{scenario.hold}.holding")
    run.wait_for(lambda: holding.exists() and any(scenario.out.glob(".state-*.staging-*/part-00000")),
                 60, "batch 6 to be half saved")
    scenario.feed_after(kill, run)  # in the WAL, claimed by no batch yet
    wal_at_kill, data_at_kill = scenario.wal_files(), scenario.data_dirs()
    run.signal_and_wait(signal.SIGKILL)
    assert run.proc.returncode == -signal.SIGKILL
    scenario.hold.unlink()
    assert not scenario.batch_done(kill).exists()
    orphans = data_at_kill - referenced_state_dirs(scenario.checkpoint)
    assert orphans, "batch 6's state checkpoint should exist and be named by no metadata"
    scenario.feed_down(kill)

    again = scenario.start()
    again.wait_for(scenario.batch_done(kill).exists, 60, "the pending batch 6 to be re-run")
    output = again.output()
    assert "recovering streaming context" in output
    replayed = [int(n) for n in REPLAYED.findall(output)]
    assert replayed and replayed[0] > 0, "no block came back from the write-ahead log"
    assert not any(p.exists() for p in orphans), "unreferenced state data left behind"
    scenario.wait_stored(again)
    for k in range(kill + 1, STEPS + 1):
        scenario.step(k, again)

    scenario.check_saved(baseline)
    scenario.check_outputs()
    assert scenario.newest_state() == dict(scenario.fed)
    # Processed blocks leave the write-ahead log; old state data goes once superseded.
    again.wait_for(lambda: not wal_at_kill & scenario.wal_files(), 30,
                   "the replayed blocks to leave the write-ahead log")
    assert len(scenario.wal_files()) <= 20, sorted(p.name for p in scenario.wal_files())
    again.wait_for(lambda: not data_at_kill & scenario.data_dirs(), 30,
                   "the killed run's state checkpoints to be superseded and deleted")
    scenario.check_checkpoint_bounded()
    again.signal_and_wait(signal.SIGTERM)


@pytest.mark.slow
def test_get_active_or_create_recovers_between_batches(clocked, baseline):
    """Killed just after batch 8 was saved, with blocks in the WAL that no batch
    claimed; restarted with getActiveOrCreate: the same batches as the run never
    killed, and getActiveOrCreate then returns the running context."""
    scenario, kill = clocked, AFTER_STEPS[1]
    run = scenario.start()
    for k in range(1, kill):
        scenario.step(k, run)
    scenario.feed_before(kill, run)
    scenario.set_clock(kill * BATCH_MS)
    run.wait_for(scenario.batch_done(kill).exists, 60, "batch 8 to be saved", 0.02)
    scenario.feed_after(kill, run)
    run.signal_and_wait(signal.SIGKILL)
    scenario.feed_down(kill)

    again = scenario.start(env={"RECOVERY_JOB_ENTRY": "getActiveOrCreate"})
    output = again.output()
    assert "recovering streaming context" in output
    assert "ACTIVE IS THE SAME: True" in output
    replayed = [int(n) for n in REPLAYED.findall(output)]
    assert replayed and replayed[0] > 0
    scenario.wait_stored(again)
    for k in range(kill + 1, STEPS + 1):
        scenario.step(k, again)
    scenario.check_saved(baseline)
    scenario.check_outputs()
    scenario.check_checkpoint_bounded()
    again.signal_and_wait(signal.SIGTERM)


@pytest.mark.slow
def test_a_graph_of_another_shape_is_refused_its_checkpoint(clocked):
    """Same code, another graph: updateStateByKey now gets numPartitions=3 (from the
    environment, so the code fingerprint cannot tell). A plain restart recovers the
    checkpointed graph without calling setup (PySpark's way); an upgrade (asked for by
    the setting spark.sluicegate.streaming.upgrade) builds the new graph and is
    refused, with what changed and what to do; the checkpoint is left as it was."""
    scenario = clocked
    run = scenario.start()
    for k in (1, 2):
        scenario.step(k, run)
    run.signal_and_wait(signal.SIGKILL)
    before = {p: p.read_bytes() for p in scenario.checkpoint.rglob("*") if p.is_file()}

    changed = scenario.start(env={"RECOVERY_JOB_PARTITIONS": "3",
                                  "SLUICEGATE_CONF_spark_sluicegate_streaming_upgrade": "true"},
                             wait=False)
    assert changed.proc.wait(60) != 0
    output = changed.output()
    assert "CheckpointError" in output
    assert "was written by a different DStream graph than the one the setup function builds" \
        in output
    assert "stream #5 was updateStateByKey(numPartitions=default, initialRDD=False) sliding " \
        "every 0.5s fed by #0 textFileStream, #2 receiverStream and is now " \
        "updateStateByKey(numPartitions=3, initialRDD=False)" in output
    assert f"Delete the checkpoint directory {scenario.checkpoint}" in output
    assert "recovering streaming context" not in output
    changed.signal_and_wait(signal.SIGKILL)  # its executors are gone too
    after = {p: p.read_bytes() for p in scenario.checkpoint.rglob("*") if p.is_file()}
    assert after == before


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

def test_fingerprint_follows_the_setup_code_and_its_helpers_only():
    """A setup that is not a plain function (here a partial) has no code fingerprint:
    only the graph's shape can tell a change, which the next test relies on."""
    assert metadata.fingerprint(functools.partial(make_setup("x + 1"))) == ""


def shaped_setup(sc, checkpoint_dir: Path, inbox: Path, window_s: int, clock):
    """A setup function (a partial, so without a code fingerprint) whose graph's window
    comes from its arguments."""
    ssc = StreamingContext(sc, 1.0, clock=clock)
    ssc.checkpoint(str(checkpoint_dir))
    ssc.textFileStream(str(inbox)).map(len).window(window_s, 1).foreachRDD(lambda rdd: None)
    return ssc


def test_get_or_create_refuses_a_graph_of_another_shape_without_a_fingerprint(sc, tmp_path):
    from sluicegate.driver import ManualClock

    from streaming_harness import BatchWaiter

    checkpoint, inbox = tmp_path / "checkpoint", tmp_path / "inbox"
    inbox.mkdir()
    clock = ManualClock(0)
    before = sc.getCheckpointDir()
    try:
        ssc = StreamingContext.getOrCreate(
            str(checkpoint), functools.partial(shaped_setup, sc, checkpoint, inbox, 2, clock))
        waiter = BatchWaiter()
        ssc.addStreamingListener(waiter)
        ssc.start()
        for second in (1, 2):
            clock.set_ms(second * 1000)
            assert waiter.wait_for(second * 1000, 60)
        ssc.stop(stopSparkContext=False)
        files = {p: p.read_bytes() for p in checkpoint.glob("checkpoint-*")}

        with pytest.raises(metadata.CheckpointError) as refused:  # an upgrade compares graphs
            StreamingContext.getOrCreate(
                str(checkpoint), functools.partial(shaped_setup, sc, checkpoint, inbox, 3, clock),
                upgrade=True)
        message = str(refused.value)
        assert "was written by a different DStream graph" in message
        assert "stream #2 was window(window_ms=2000, slide_ms=1000) sliding every 1s fed by " \
               "#0 textFileStream and is now window(window_ms=3000, slide_ms=1000)" in message
        assert f"Delete the checkpoint directory {checkpoint} to start afresh" in message
        assert not sc._stopped, "refusing must not stop a SparkContext it did not start"
        assert StreamingContext.getActive() is None
        assert {p: p.read_bytes() for p in checkpoint.glob("checkpoint-*")} == files

        same = StreamingContext.getOrCreate(
            str(checkpoint), functools.partial(shaped_setup, sc, checkpoint, inbox, 2, clock))
        assert same._recovered is not None and same._recovered.time_ms == 2000
        assert same._clock is clock  # the checkpointed context's clock (setup is not called)
        same.stop(stopSparkContext=False)
    finally:
        sc._checkpoint_dir = before


def shape(streams: list[dict], batch_ms: int = 1000) -> dict:
    return {"batch_ms": batch_ms, "remember_ms": None, "streams": streams}


def entry(op: str, parents: list[int], **params) -> dict:
    return {"op": op, "params": params, "slide_ms": 1000, "checkpoint_ms": None,
            "parents": parents}


def test_shape_difference_says_what_changed():
    base = [entry("receiverStream", [], receiver="R"), entry("map", [0]), entry("pprint", [1])]
    assert metadata.shape_difference(shape(base), shape(base)) is None
    assert metadata.shape_difference(shape(base), shape(base, 2000)) == \
        "the batch duration was 1s and is now 2s"
    more = base + [entry("reduceByKey", [1], numPartitions=4)]
    assert metadata.shape_difference(shape(base), shape(more)) == (
        "the checkpoint has 3 streams and the new graph 4 (only in the new graph: "
        "#3 reduceByKey(numPartitions=4) sliding every 1s from #1 map)")
    swapped = [base[0], entry("filter", [0]), base[2]]
    assert metadata.shape_difference(shape(base), shape(swapped)) == (
        "stream #1 was map() sliding every 1s from #0 receiverStream and is now "
        "filter() sliding every 1s from #0 receiverStream")


def test_remove_unreferenced_data(tmp_path):
    app_old, app_now, app_gone = (tmp_path / (c * 32) for c in "abc")
    for path in (app_old / "rdd-1", app_old / "rdd-2", app_now / "rdd-3", app_gone / "rdd-4",
                 tmp_path / "receivedBlocks" / "0", tmp_path / "not-an-app" / "rdd-5"):
        path.mkdir(parents=True)
        (path / "part-00000").write_bytes(b"x")
    (app_old / "notes.txt").write_text("kept")
    removed = metadata.remove_unreferenced_data(tmp_path, {str(app_old / "rdd-1")}, str(app_now))
    assert sorted(p.name for p in removed) == ["c" * 32, "rdd-2", "rdd-4"]
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("part-00000"))
    assert left == [f"{'a' * 32}/rdd-1/part-00000", f"{'b' * 32}/rdd-3/part-00000",
                    "not-an-app/rdd-5/part-00000", "receivedBlocks/0/part-00000"]
    assert (app_old / "notes.txt").exists()


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
@pytest.mark.parametrize("kill_batch,checkpoint_s", [(4, None), (5, 2)],
                         ids=["before_state_checkpoint", "after_state_checkpoint"])
def test_executor_killed_mid_batch_keeps_the_state_exact(sc, tmp_path, kill_batch, checkpoint_s):
    """local[3], updateStateByKey over a receiver: one executor is SIGKILLed while it
    runs a task of batch ``kill_batch``, after it cached state partitions of the batches
    before. Either no state checkpoint exists yet (the default interval is 10 s: the
    lost partitions come back from cache lineage), or the state was checkpointed at
    2 s and 4 s (they come back from the checkpoint files of batch 4). The state of
    every batch must still be exactly the running word counts."""
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
    batches[kill_batch - 1][1][5] = "SLOW"  # that batch's second block: its task is killed

    checkpoint_dir_before = sc.getCheckpointDir()
    run = ManualBatches(sc, 1.0, timeout_s=120)
    try:
        ssc = run.ssc
        ssc.checkpoint(str(tmp_path / "checkpoint"))
        counts = ssc.receiverStream(HandFedReceiver(feed_name)).map(slow_pair) \
            .updateStateByKey(sum_counts)
        if checkpoint_s is not None:
            counts.checkpoint(checkpoint_s)
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
            state_checkpoints = list((tmp_path / "checkpoint").glob("*/rdd-*"))
            if checkpoint_s is None:
                assert state_checkpoints == []
            else:  # batches 2 and 4 were checkpointed: their lineage is cut there
                assert len(state_checkpoints) == 2, state_checkpoints
            due_ms = number * run.batch_ms
            run.clock.set_ms(due_ms)
            marker = wait_until(lambda: next(iter(markers.iterdir()), None), 60,
                                "the slow task to start", 0.01)
            killed = int(marker.name.split("-")[0])
            victim = next(p for p in executor_processes() if p.pid == killed)
            victim.kill()
            assert run.waiter.wait_for(due_ms, 120), "the batch did not complete after the kill"
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
