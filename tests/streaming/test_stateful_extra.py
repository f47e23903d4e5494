"""Windows and state checkpoints over many batches: what is computed once, what is
released, and what stays on disk.

* ``window`` persists its parent (Spark's WindowedDStream does), so an upstream
  ``map`` runs once per record however many windows the record falls into, and
  the parent's cached RDDs are released once they leave the window.
* ``reduceByWindow`` / ``reduceByKeyAndWindow`` without an inverse reduce each
  batch once; the window combines those cached partial results.
* State checkpoints: the checkpoint directory stays bounded over many batches
  and across a restart with ``getOrCreate`` (data directories the restored
  metadata does not reference are deleted).

Batches are stepped by a manual clock (``streaming_harness``), so every count
below is exact whatever the machine's load.
"""
from __future__ import annotations

import gc
import os
import re
from pathlib import Path

import pytest
from sluicegate.driver import ManualClock, StreamingContext
from sluicegate.driver.checkpoint import metadata
from streaming_harness import Collector, ManualBatches, run_batches
from waiting import wait_until


@pytest.fixture(autouse=True)
def shared_context(sc):
    """These tests use the suite's local[3] context; checkpoint dirs are theirs only."""
    before = sc.getCheckpointDir()
    yield
    sc._checkpoint_dir = before


# -- what the cluster caches --------------------------------------------------------------------

def driver_cached_blocks(sc, since: int = 0) -> set[str]:
    """The cached RDD partitions the driver knows executors hold (read on its loop),
    of RDDs with ids from ``since`` on (earlier tests' RDDs may still be cached)."""
    runtime = sc._runtime
    held = runtime.endpoint.call(lambda: list(runtime.dag.block_locations._holders))
    return {b for b in held if b.startswith("rdd_") and int(b.split("_")[1]) >= since}


def next_rdd_id(sc) -> int:
    return sc.emptyRDD().id() + 1


def _executor_cached_blocks(_index, _records):
    """Runs on an executor: the cached RDD partitions in its block store."""
    from sluicegate.worker.block_store.store import BlockStore

    stores = [o for o in gc.get_objects() if isinstance(o, BlockStore)]
    yield os.getpid(), sorted(b for s in stores for b in s.block_ids() if b.startswith("rdd_"))


def executor_cached_blocks(sc, since: int = 0) -> dict[int, list[str]]:
    """Cached partitions (of RDDs from id ``since`` on) held by the executors that ran
    a probe task (pid -> ids)."""
    probe = sc.parallelize(range(12), 12).mapPartitionsWithIndex(_executor_cached_blocks)
    found: dict[int, list[str]] = {}
    for pid, blocks in probe.collect():
        found[pid] = [b for b in blocks if int(b.split("_")[1]) >= since]
    return found


def rdd_ids(blocks) -> set[int]:
    return {int(b.split("_")[1]) for b in blocks}


# -- window persists its parent -----------------------------------------------------------------

def test_window_computes_its_parent_once_and_releases_it(sc):
    """s.map(f).window(4, 1) over 16 batches: f runs once per record although each
    record is in four windows, and the cached parent RDDs stay bounded."""
    calls = sc.accumulator(0)

    def tagged(x):
        calls.add(1)
        return ("v", x)

    window_batches = 4
    inputs = [[10 * i + j for j in range(3)] for i in range(12)]
    cached_after: list[set[str]] = []
    since = next_rdd_id(sc)

    def op(stream):
        windowed = stream.map(tagged).window(window_batches, 1)
        windowed.foreachRDD(lambda rdd: cached_after.append(driver_cached_blocks(sc, since)))
        return windowed

    got = run_batches(sc, inputs, op, num_batches=16, sort=True)

    expected = []
    for k in range(1, 17):
        expected.append(sorted(("v", x) for j in range(max(0, k - window_batches), min(k, 12))
                               for x in inputs[j]))
    assert got == expected
    fed = sum(len(b) for b in inputs)
    # Each record is in 4 windows: without the cached parent f would run 4 times per record.
    assert calls.value == fed
    # The map stream remembers window + 1 batches; a queueStream batch has 3 partitions.
    bound = (window_batches + 2) * sc.defaultParallelism
    assert max(len(c) for c in cached_after) <= bound, [len(c) for c in cached_after]
    early, late = rdd_ids(cached_after[5]), rdd_ids(cached_after[-1])
    assert early and late and not early & late, "RDDs that left the window are still cached"
    # The executors themselves dropped them too (DropBlocks is asynchronous: poll).
    wait_until(lambda: all(len(b) <= bound and not rdd_ids(b) & early
                           for b in executor_cached_blocks(sc, since).values()), 30,
               "executors to drop the cached partitions that left the window", 0.2)


def test_window_over_a_file_stream_reads_each_file_once(sc, tmp_path):
    """A file stream under a window: each new file is read by one batch's job only,
    later windows use the cached partitions (a marker per read line proves it)."""
    inbox, marks = tmp_path / "inbox", tmp_path / "marks"
    inbox.mkdir()
    marks.mkdir()
    marks_dir = str(marks)

    def mark(line):
        Path(marks_dir, f"{line}-{os.getpid()}-{os.urandom(4).hex()}").touch()
        return line

    with ManualBatches(sc, 1.0, timeout_s=60) as run:
        stream = run.ssc.textFileStream(str(inbox)).map(mark).window(3, 1)
        collector = Collector(stream)
        run.start()
        for i in range(6):
            (inbox / f".f{i}").write_text(f"line{i}a\nline{i}b\n")
            os.rename(inbox / f".f{i}", inbox / f"f{i}.txt")
            run.step()
        run.step(4)
        run.ssc.awaitTerminationOrTimeout(0)
    windows = collector.in_order(sort=True)
    # A file is taken by the second scan after it appeared, then stays for 3 windows.
    assert sum(len(w) for w in windows) == 12 * 3
    lines = sorted(p.name.split("-")[0] for p in marks.iterdir())
    assert lines == sorted(f"line{i}{s}" for i in range(6) for s in "ab")


# -- windowed reductions without an inverse --------------------------------------------------------

class CountingMerge:
    """A reduce function over ``(batches, total)`` values that counts its calls:
    merges of two values of the same single batch (the batch's partial reduction)
    and merges across batches (the window combining partial results)."""

    def __init__(self, within, across):
        self.within, self.across = within, across

    def __call__(self, a, b):
        if a[0] == b[0] and len(a[0]) == 1:
            self.within.add(1)
        else:
            self.across.add(1)
        return (a[0] | b[0], a[1] + b[1])


def expected_merges(inputs: list[list], w: int, num_batches: int, keyed: bool):
    """Merges of ``m`` values into one take ``m - 1`` calls in any combining order, so:
    per batch and key, records - 1 within the batch (once, if partial results are
    reused); per window and key, batches holding the key - 1 across batches."""
    key = (lambda r: r[0]) if keyed else (lambda r: None)
    within = sum(len(b) - len({key(r) for r in b}) for b in inputs)
    across = 0
    for k in range(1, num_batches + 1):
        batches = [inputs[j] for j in range(max(0, k - w), min(k, len(inputs)))]
        keys = {key(r) for b in batches for r in b}
        across += sum(sum(1 for b in batches if any(key(r) == kk for r in b)) - 1 for kk in keys)
    return within, across


@pytest.mark.parametrize("operation", ["reduceByWindow", "reduceByKeyAndWindow"])
def test_windowed_reduction_without_inverse_reduces_each_batch_once(sc, operation):
    within, across = sc.accumulator(0), sc.accumulator(0)
    merge = CountingMerge(within, across)
    w, num_batches = 4, 14
    keyed = operation == "reduceByKeyAndWindow"
    raw = [[("a", 1), ("b", 2), ("a", 3), ("c", 1)], [("b", 5)], [], [("a", 1), ("a", 1)],
           [("c", 2), ("b", 1), ("c", 3)], [("a", 4)], [("b", 1), ("b", 1), ("b", 1)],
           [("c", 9)], [], [("a", 2), ("c", 2)]]
    inputs = [[(k, (frozenset([i]), v)) for k, v in batch] for i, batch in enumerate(raw)]
    cached_after: list[set[str]] = []
    since = next_rdd_id(sc)

    def op(stream):
        if keyed:
            result = stream.reduceByKeyAndWindow(merge, None, w, 1)
            result = result.mapValues(lambda v: v[1])
        else:
            result = stream.map(lambda kv: kv[1]).reduceByWindow(merge, None, w, 1)
            result = result.map(lambda v: v[1])
        result.foreachRDD(lambda rdd: cached_after.append(driver_cached_blocks(sc, since)))
        return result

    got = run_batches(sc, inputs, op, num_batches=num_batches, sort=True)

    expected = []
    for k in range(1, num_batches + 1):
        window = [r for j in range(max(0, k - w), min(k, len(raw))) for r in raw[j]]
        if keyed:
            sums: dict = {}
            for key, v in window:
                sums[key] = sums.get(key, 0) + v
            expected.append(sorted(sums.items()))
        else:
            expected.append([sum(v for _, v in window)] if window else [])
    assert got == expected
    want_within, want_across = expected_merges(inputs, w, num_batches, keyed)
    # Each batch's partial reduction ran exactly once, not once per window it is in.
    assert within.value == want_within
    assert across.value == want_across
    # The cached partial results are released once they leave the window.
    partitions = sc.defaultParallelism if keyed else 1
    bound = (w + 2) * partitions
    assert max(len(c) for c in cached_after) <= bound, [sorted(c) for c in cached_after]
    early, late = rdd_ids(cached_after[5]), rdd_ids(cached_after[-1])
    assert early and late and not early & late


# -- the checkpoint directory stays bounded ------------------------------------------------------

RESULTS: dict[str, dict[int, list]] = {}


class RecordInto:
    """foreachRDD target that pickles by reference (the metadata checkpoint holds it):
    each batch's sorted records go to ``RESULTS[name][batch ms]``."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, time, rdd):
        RESULTS.setdefault(self.name, {})[int(round(time.timestamp() * 1000))] = \
            sorted(rdd.collect())


def add_counts(new_values, last):
    return sum(new_values) + (last or 0)


def ticks(time, rdd):
    """Each batch's data, made from its time: (second % 3, 1) and (second % 5, 10)."""
    second = int(round(time.timestamp()))
    return rdd.context.parallelize([(second % 3, 1), (second % 5, 10)], 2).union(rdd)


def model_counts(last_second: int) -> list:
    counts: dict = {}
    for second in range(1, last_second + 1):
        for key, value in ((second % 3, 1), (second % 5, 10)):
            counts[key] = counts.get(key, 0) + value
    return sorted(counts.items())


class Stepper:
    """Starts a context from ``getOrCreate`` on a shared manual clock; steps batches."""

    def __init__(self, ssc: StreamingContext, clock: ManualClock):
        from streaming_harness import BatchWaiter

        self.ssc, self.clock = ssc, clock
        self.waiter = BatchWaiter()
        ssc.addStreamingListener(self.waiter)
        ssc.start()

    def step_to(self, second: int) -> None:
        self.clock.set_ms(second * 1000)
        assert self.waiter.wait_for(second * 1000, 60), f"batch {second}s did not complete"
        # Cleanup and the metadata checkpoint follow the completion event: let them finish.
        assert self.ssc._runner.wait_idle(30), "the batch's cleanup did not finish"


def test_checkpoint_directory_stays_bounded_over_many_batches_and_a_restart(sc, tmp_path):
    """updateStateByKey checkpointed every batch for 30 batches: at most the two newest
    state checkpoints (the newest metadata may be unreadable: the one before must still
    work) and ten metadata files. Restarted with getOrCreate, checkpoint data that the
    restored metadata does not name (left by a killed driver) is deleted, and the old
    application's state is deleted once superseded."""
    checkpoint, inbox = tmp_path / "checkpoint", tmp_path / "inbox"
    inbox.mkdir()
    name = f"bounded-{tmp_path.name}"
    clock = ManualClock(0)

    def setup():
        ssc = StreamingContext(sc, 1.0, clock=clock)
        ssc.checkpoint(str(checkpoint))
        counts = ssc.textFileStream(str(inbox)).map(lambda line: (line, 1)).transform(ticks) \
            .updateStateByKey(add_counts)
        counts.checkpoint(1)
        counts.foreachRDD(RecordInto(name))
        return ssc

    def state_dirs() -> set[Path]:
        return set(checkpoint.glob("*/rdd-*"))

    def app_dirs() -> set[Path]:
        return {p for p in checkpoint.iterdir() if re.fullmatch(r"[0-9a-f]{32}", p.name)}

    first = StreamingContext.getOrCreate(str(checkpoint), setup)
    assert first._recovered is None
    stepper = Stepper(first, clock)
    try:
        for second in range(1, 31):
            stepper.step_to(second)
            assert len(state_dirs()) <= 2, sorted(state_dirs())
            assert len(list(checkpoint.glob("checkpoint-*"))) <= metadata.KEEP_FILES
            newest = metadata.read_latest(checkpoint, None)
            named = {Path(p) for s in newest.graph.all_streams() for p in s._checkpoint_paths()}
            assert named == state_dirs(), "the newest metadata must name the state kept"
    finally:
        first.stop(stopSparkContext=False)
    assert RESULTS[name][30_000] == model_counts(30)
    assert len(app_dirs()) == 1
    old_app, old_state = next(iter(app_dirs())), state_dirs()

    # What a killed driver leaves: state written after its last metadata checkpoint, and
    # an earlier application's directory with nothing the metadata names.
    orphan = old_app / "rdd-99999"
    orphan.mkdir()
    (orphan / "part-00000").write_bytes(b"x")
    stray = checkpoint / ("0" * 32)
    (stray / "rdd-7").mkdir(parents=True)
    not_ours = checkpoint / "notes"
    not_ours.mkdir()

    again = StreamingContext.getOrCreate(str(checkpoint), setup)
    try:
        assert again._recovered is not None and again._recovered.time_ms == 30_000
        assert not orphan.exists() and not stray.exists()
        assert old_state <= state_dirs() and not_ours.exists()
        stepper = Stepper(again, clock)
        for second in range(31, 36):
            stepper.step_to(second)
            assert len(state_dirs()) <= 2, sorted(state_dirs())
        assert RESULTS[name][35_000] == model_counts(35)
        assert not old_state & state_dirs(), "the old application's state was not deleted"
        assert len(app_dirs()) <= 2
        assert len(list(checkpoint.glob("checkpoint-*"))) <= metadata.KEEP_FILES
    finally:
        again.stop(stopSparkContext=False)
        RESULTS.pop(name, None)
