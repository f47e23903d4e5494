"""Window operations, batch by batch, and what they compute once over many batches.

Each test feeds a queueStream through ``streaming_harness`` (a manual clock
steps the batches) and compares every batch's output with values worked out
by hand or by a plain-Python model of PySpark's semantics (``stream_models``),
including the batches after the input ends (an exhausted queue yields an empty
RDD, so windows drain).

Window and slide durations are multiples of the batch; below, ``w`` and
``s`` count batches. With batch 1 s the window ending at batch ``k`` (1-based)
holds the batches ``(k - w, k]``, and a window stream produces output at
``k = s, 2s, ...``. Incremental windowing (with an inverse function) is used
from ``w >= 5 * s``.

Over many batches, on the executors:

* ``window`` persists its parent (Spark's WindowedDStream does), so an upstream
  ``map`` runs once per record however many windows the record falls into, and
  the parent's cached RDDs are released once they leave the window.
* ``reduceByWindow`` / ``reduceByKeyAndWindow`` without an inverse reduce each
  batch once; the window combines those cached partial results.
"""
from __future__ import annotations

import gc
import os
from collections import defaultdict
from operator import add, sub
from pathlib import Path

import pytest

from sluicegate.common.hashing import portable_hash
from sluicegate.driver import ManualClock, StreamingContext
from sluicegate.driver.cluster.loop_events import Inspect
from stream_models import count_values, model_reduce_by_key_and_window, model_windows, word_batches
from streaming_harness import Collector, ManualBatches, run_batches
from waiting import wait_until

pytestmark = pytest.mark.usefixtures("shared_context")


# -- window -----------------------------------------------------------------------------------

def test_window_count_as_pyspark(sc):
    # PySpark's test_window: 0.5 s batches, window of 3 batches, drained after the input ends.
    inputs = [list(range(n)) for n in range(1, 6)]
    got = run_batches(sc, inputs, lambda s: s.window(1.5, 0.5).count(), batch_s=0.5,
                      num_batches=7)
    assert got == [[1], [3], [6], [9], [12], [9], [5]]


def test_window_slide_one(sc):
    inputs = [[10 * i + j for j in range(i + 1)] for i in range(5)]
    got = run_batches(sc, inputs, lambda s: s.window(3), num_batches=8, sort=True)
    assert got == [sorted(r) for r in model_windows(inputs, 3, 1, 8)]
    assert got[-1] == []  # the window has slid past the input


def test_window_slide_two(sc):
    inputs = [[1], [2], [3], [4], [5]]
    got = run_batches(sc, inputs, lambda s: s.window(4, 2), num_batches=10, sort=True)
    # Output only every second batch: windows (0,2], (0,4], (2,6], (4,8], (6,10].
    assert got == [[1, 2], [1, 2, 3, 4], [3, 4, 5], [5], []]
    got = run_batches(sc, inputs, lambda s: s.window(3, 2), num_batches=8, sort=True)
    assert got == [[1, 2], [2, 3, 4], [4, 5], []]
    assert got == [sorted(r) for r in model_windows(inputs, 3, 2, 8)]


def test_window_of_a_window(sc):
    # A windowed stream slides by 2 batches: a window over it counts in those.
    inputs = [[i] for i in range(1, 9)]
    got = run_batches(sc, inputs, lambda s: s.window(2, 2).window(4, 2), num_batches=8, sort=True)
    assert got == [[1, 2], [1, 2, 3, 4], [3, 4, 5, 6], [5, 6, 7, 8]]


# -- reduceByWindow / countByWindow / countByValueAndWindow ---------------------------------------

def test_reduce_by_window_without_inverse(sc):
    inputs = [[1, 2], [3], [], [4, 5, 6], [7]]
    got = run_batches(sc, inputs, lambda s: s.reduceByWindow(add, None, 3, 1), num_batches=8)
    # An empty window reduces to nothing at all.
    assert got == [[3], [6], [6], [18], [22], [22], [7], []]


def test_reduce_by_window_with_inverse_small_window(sc, checkpointed):
    # Window < 5 slides: reduced from scratch like the no-inverse case (no zero left over).
    inputs = [[1, 2], [3], [], [4, 5, 6], [7]]
    got = run_batches(sc, inputs, lambda s: s.reduceByWindow(add, sub, 3, 1), num_batches=8,
                      configure=checkpointed)
    assert got == [[3], [6], [6], [18], [22], [22], [7], []]


def test_reduce_by_window_with_inverse_incremental(sc, checkpointed):
    inputs = [[1, 2], [3], [], [4, 5, 6], [7], [8]]
    expected = [sum(sum(inputs[j]) for j in range(max(0, k - 5), min(k, 6))) for k in range(1, 13)]
    with_inverse = run_batches(sc, inputs, lambda s: s.reduceByWindow(add, sub, 5, 1),
                               num_batches=12, configure=checkpointed)
    # Incrementally, the window's one key stays when it empties: its value becomes 0.
    assert with_inverse == [[v] for v in expected]
    assert with_inverse[-1] == [0]
    without = run_batches(sc, inputs, lambda s: s.reduceByWindow(add, None, 5, 1), num_batches=12)
    # From scratch, a window of only empty batches (from 11 s) reduces to nothing.
    assert without == [[v] for v in expected[:10]] + [[], []]


def test_count_by_window_as_pyspark(sc, checkpointed):
    inputs = [list(range(n)) for n in range(1, 6)]
    got = run_batches(sc, inputs, lambda s: s.countByWindow(1.5, 0.5), batch_s=0.5,
                      num_batches=8, configure=checkpointed)
    assert got == [[1], [3], [6], [9], [12], [9], [5], []]


def test_count_by_window_large_as_pyspark(sc, checkpointed):
    # PySpark's test_count_by_window_large (window of 5 batches: incremental), then drained.
    inputs = [list(range(n)) for n in range(1, 7)]
    got = run_batches(sc, inputs, lambda s: s.countByWindow(2.5, 0.5), batch_s=0.5,
                      num_batches=12, configure=checkpointed)
    assert got == [[1], [3], [6], [10], [15], [20], [18], [15], [11], [6], [0], [0]]


def test_count_by_value_and_window_as_pyspark(sc, checkpointed):
    inputs = [list(range(n)) for n in range(1, 7)]
    got = run_batches(sc, inputs, lambda s: s.countByValueAndWindow(2.5, 0.5), batch_s=0.5,
                      num_batches=12, sort=True, configure=checkpointed)
    assert got == [[(0, 1)],
                   [(0, 2), (1, 1)],
                   [(0, 3), (1, 2), (2, 1)],
                   [(0, 4), (1, 3), (2, 2), (3, 1)],
                   [(0, 5), (1, 4), (2, 3), (3, 2), (4, 1)],
                   [(0, 5), (1, 5), (2, 4), (3, 3), (4, 2), (5, 1)],
                   [(0, 4), (1, 4), (2, 4), (3, 3), (4, 2), (5, 1)],
                   [(0, 3), (1, 3), (2, 3), (3, 3), (4, 2), (5, 1)],
                   [(0, 2), (1, 2), (2, 2), (3, 2), (4, 2), (5, 1)],
                   [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 1)],
                   [], []]  # zero counts are filtered out


def test_count_by_value_and_window_slide_two_with_partitions(sc, checkpointed):
    inputs = [["a", "b"], ["a"], ["c"], [], ["a", "a"], ["b"], ["d"]]
    got = run_batches(sc, inputs, lambda s: s.countByValueAndWindow(10, 2, numPartitions=2)
                      .glom(), num_batches=22, configure=checkpointed)
    assert all(len(parts) == 2 for parts in got)
    counted = [sorted(r for part in parts for r in part) for parts in got]
    expected = [sorted(count_values(records).items())
                for records in model_windows(inputs, 10, 2, 22)]
    assert counted == expected
    assert counted[-1] == []


# -- groupByKeyAndWindow -----------------------------------------------------------------------

def test_group_by_key_and_window_as_pyspark(sc, checkpointed):
    inputs = [[("a", i)] for i in range(5)]
    got = run_batches(sc, inputs, lambda s: s.groupByKeyAndWindow(1.5, 0.5).mapValues(sorted),
                      batch_s=0.5, num_batches=8, configure=checkpointed)
    assert got == [[("a", [0])], [("a", [0, 1])], [("a", [0, 1, 2])], [("a", [1, 2, 3])],
                   [("a", [2, 3, 4])], [("a", [3, 4])], [("a", [4])], []]


def test_group_by_key_and_window_incremental(sc, checkpointed):
    inputs = [[("a", i)] + ([("b", 10 * i)] if i % 2 == 0 else []) for i in range(7)]

    def op(s):
        grouped = s.groupByKeyAndWindow(5, 1, numPartitions=2)
        return grouped.mapValues(lambda values: (type(values).__name__, sorted(values)))

    got = run_batches(sc, inputs, op, num_batches=13, sort=True, configure=checkpointed)
    expected = []
    for records in model_windows(inputs, 5, 1, 13):
        groups = defaultdict(list)
        for k, v in records:
            groups[k].append(v)
        expected.append(groups)
    for k, (batch, groups) in enumerate(zip(got, expected), start=1):
        keys_seen = {key for b in inputs[:k] for key, _ in b}
        # Incrementally kept, as in PySpark: a key whose values all left stays, empty.
        assert batch == [(key, ("ResultIterable", sorted(groups.get(key, []))))
                         for key in sorted(keys_seen)], f"batch {k}"
    assert got[-1] == [("a", ("ResultIterable", [])), ("b", ("ResultIterable", []))]


# -- reduceByKeyAndWindow -------------------------------------------------------------------------

@pytest.mark.parametrize("batch_s,window_s,slide_s,num_batches", [
    (1.0, 5, 1, 14),    # window of 5 slides of 1 batch
    (0.5, 5.0, 1.0, 22),  # window of 5 slides of 2 batches
])
def test_reduce_by_key_and_window_incremental_equals_from_scratch(sc, checkpointed, batch_s,
                                                                   window_s, slide_s, num_batches):
    inputs = word_batches(seed=11, batches=9)
    w, s = int(window_s / batch_s), int(slide_s / batch_s)
    inverse_calls = sc.accumulator(0)

    def counted_sub(a, b):
        inverse_calls.add(1)
        return a - b

    plain = run_batches(sc, inputs, lambda st: st.reduceByKeyAndWindow(add, None, window_s, slide_s),
                        batch_s=batch_s, num_batches=num_batches, sort=True)
    incremental = run_batches(
        sc, inputs, lambda st: st.reduceByKeyAndWindow(add, counted_sub, window_s, slide_s,
                                                       filterFunc=lambda kv: kv[1] != 0),
        batch_s=batch_s, num_batches=num_batches, sort=True, configure=checkpointed)
    expected = model_reduce_by_key_and_window(inputs, w, s, num_batches)
    assert len(expected) == num_batches // s
    assert plain == expected
    assert incremental == expected
    assert expected[-1] == [] and any(expected)
    assert inverse_calls.value > 0, "the inverse function was never used: not incremental"


def test_reduce_by_key_and_window_inverse_keeps_zero_keys(sc, checkpointed):
    # Without a filter the incremental window keeps keys whose values all left, at 0 (PySpark).
    inputs = word_batches(seed=5, batches=8)
    got = run_batches(sc, inputs, lambda st: st.reduceByKeyAndWindow(add, sub, 5, 1),
                      num_batches=14, sort=True, configure=checkpointed)
    assert got == model_reduce_by_key_and_window(inputs, 5, 1, 14, keep_zero_keys=True)
    assert got[-1] and all(v == 0 for _, v in got[-1])


def test_reduce_by_key_and_window_filter_func_drops_expired_keys(sc, checkpointed):
    inputs = [[("a", 1), ("b", 2)], [("a", 3)], [], [("c", 1)], [], [], [("a", 1)]]
    got = run_batches(sc, inputs, lambda st: st.reduceByKeyAndWindow(
        add, sub, 5, 1, filterFunc=lambda kv: kv[1] > 0), num_batches=13, sort=True,
        configure=checkpointed)
    assert got == [[("a", 1), ("b", 2)], [("a", 4), ("b", 2)], [("a", 4), ("b", 2)],
                   [("a", 4), ("b", 2), ("c", 1)], [("a", 4), ("b", 2), ("c", 1)],
                   [("a", 3), ("c", 1)], [("a", 1), ("c", 1)], [("a", 1), ("c", 1)],
                   [("a", 1)], [("a", 1)], [("a", 1)], [], []]


@pytest.mark.parametrize("inverse", [None, sub], ids=["without_inverse", "with_inverse"])
def test_reduce_by_key_and_window_num_partitions(sc, checkpointed, inverse):
    inputs = word_batches(seed=3, batches=6, keys="abcdefghij")
    got = run_batches(sc, inputs, lambda st: st.reduceByKeyAndWindow(
        add, inverse, 5, 1, numPartitions=4, filterFunc=lambda kv: kv[1] != 0).glom(),
        num_batches=8, configure=checkpointed)
    assert len(got) == 8
    for parts in got:
        assert len(parts) == 4
        for index, part in enumerate(parts):  # hash-partitioned as PySpark's reduceByKey
            assert all(portable_hash(k) % 4 == index for k, _ in part)
    records = [sorted(r for part in parts for r in part) for parts in got]
    assert records == model_reduce_by_key_and_window(inputs, 5, 1, 8)


def test_reduce_by_key_and_window_default_slide_is_the_parent_slide(sc):
    inputs = [[("k", 1)], [("k", 2)], [("k", 4)]]
    got = run_batches(sc, inputs, lambda st: st.reduceByKeyAndWindow(add, None, 2),
                      num_batches=4)
    assert got == [[("k", 1)], [("k", 3)], [("k", 6)], [("k", 4)]]


# -- invalid durations ----------------------------------------------------------------------------

def test_invalid_window_durations_raise_at_definition(sc):
    ssc = StreamingContext(sc, 1.0, clock=ManualClock(0))
    try:
        stream = ssc.queueStream([[1]])
        pairs = stream.map(lambda x: (x, 1))
        with pytest.raises(ValueError, match="windowDuration must be multiple"):
            stream.window(1.5)
        with pytest.raises(ValueError, match="slideDuration must be multiple"):
            stream.window(2, 1.5)
        with pytest.raises(ValueError, match="windowDuration must be multiple"):
            stream.reduceByWindow(add, sub, 2.5, 1)
        with pytest.raises(ValueError, match="windowDuration must be multiple"):
            stream.countByWindow(0.5, 1)
        with pytest.raises(ValueError, match="slideDuration must be multiple"):
            stream.countByValueAndWindow(4, 0.3)
        with pytest.raises(ValueError, match="slideDuration must be multiple"):
            pairs.groupByKeyAndWindow(4, 2.5)
        with pytest.raises(ValueError, match="windowDuration must be multiple"):
            pairs.reduceByKeyAndWindow(add, None, 3.5, 1)
        with pytest.raises(ValueError, match="slideDuration must be multiple"):
            pairs.reduceByKeyAndWindow(add, sub, 4, 1.5)
        # A windowed stream's slide is the unit for windows over it.
        with pytest.raises(ValueError, match="windowDuration must be multiple"):
            stream.window(4, 2).window(3, 2)
        with pytest.raises(ValueError, match="positive"):
            stream.window(0)
    finally:
        ssc.stop(stopSparkContext=False)


def test_windows_without_inverse_need_no_checkpoint(sc):
    got = run_batches(sc, [[("a", 1)], [("a", 2)]], lambda s: s.reduceByKeyAndWindow(
        add, None, 5, 1).map(lambda kv: kv[1]), num_batches=2)
    assert got == [[1], [3]]


# -- what the cluster caches --------------------------------------------------------------------

def driver_cached_blocks(sc, since: int = 0) -> set[str]:
    """The cached RDD partitions the driver knows executors hold (read on its loop),
    of RDDs with ids from ``since`` on (earlier tests' RDDs may still be cached)."""
    runtime = sc._runtime
    held = runtime.endpoint.call(Inspect(lambda: list(runtime.dag.block_locations._holders)))
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
