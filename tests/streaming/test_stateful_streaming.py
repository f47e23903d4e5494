"""Window operations and state (updateStateByKey, mapWithState), batch by batch.

Each test feeds a queueStream through ``streaming_harness`` (a manual clock
steps the batches) and compares every batch's output with values worked out
by hand or by a plain-Python model of PySpark's semantics, including the
batches after the input ends (an exhausted queue yields an empty RDD, so
windows drain and state functions keep being called).

Window and slide durations are multiples of the batch; below, ``w`` and
``s`` count batches. With batch 1 s the window ending at batch ``k`` (1-based)
holds the batches ``(k - w, k]``, and a window stream produces output at
``k = s, 2s, ...``. Incremental windowing (with an inverse function) is used
from ``w >= 5 * s``.
"""
from __future__ import annotations

import datetime
import random
from collections import defaultdict
from operator import add, sub

import pytest
from sluicegate.common.hashing import portable_hash
from sluicegate.common.keyed_state import State
from sluicegate.driver import ManualClock, Partitioner, StateSpec, StreamingContext
from streaming_harness import run_batches


@pytest.fixture(autouse=True)
def shared_context(sc):
    """These expectations assume local[3]; the tests' checkpoint dirs are theirs only."""
    assert sc.defaultParallelism == 3
    before = sc.getCheckpointDir()
    yield
    sc._checkpoint_dir = before


@pytest.fixture
def checkpointed(tmp_path):
    """``configure=`` for run_batches: a checkpoint directory under tmp_path."""
    return lambda ssc: ssc.checkpoint(str(tmp_path / "checkpoint"))


def at(seconds: float) -> datetime.datetime:
    """A batch time as PySpark shows it (local time; the manual clock starts at 0)."""
    return datetime.datetime.fromtimestamp(seconds)


# -- plain-Python models ------------------------------------------------------------------------

def model_windows(inputs: list, w: int, s: int, num_batches: int) -> list[list]:
    """The records of each window: batches (k - w, k] for k = s, 2s, ... <= num_batches."""
    out = []
    for k in range(s, num_batches + 1, s):
        out.append([r for j in range(max(1, k - w + 1), k + 1) if j <= len(inputs)
                    for r in inputs[j - 1]])
    return out


def count_values(records) -> dict:
    counts: dict = {}
    for r in records:
        counts[r] = counts.get(r, 0) + 1
    return counts


def reduce_pairs(pairs, func=add) -> dict:
    result: dict = {}
    for k, v in pairs:
        result[k] = func(result[k], v) if k in result else v
    return result


def model_reduce_by_key_and_window(inputs, w, s, num_batches, keep_zero_keys=False) -> list[list]:
    """reduceByKeyAndWindow(add, ...) per window. ``keep_zero_keys``: the incremental
    path without a filter keeps every key seen since the first batch (at 0 once gone)."""
    out = []
    for i, records in enumerate(model_windows(inputs, w, s, num_batches)):
        sums = reduce_pairs(records)
        if keep_zero_keys:
            k = (i + 1) * s
            for batch in inputs[:k]:
                for key, _ in batch:
                    sums.setdefault(key, 0)
        out.append(sorted(sums.items()))
    return out


def model_update_state(inputs, num_batches, update, initial=()) -> list[list]:
    """updateStateByKey: ``update(new_values, last)`` for every key, every batch."""
    state = dict(initial)
    out = []
    for i in range(num_batches):
        new = defaultdict(list)
        for k, v in (inputs[i] if i < len(inputs) else []):
            new[k].append(v)
        updated = {}
        for k in set(state) | set(new):
            value = update(sorted(new.get(k, [])), state.get(k))
            if value is not None:
                updated[k] = value
        state = updated
        out.append(sorted(state.items()))
    return out


class ModelState:
    """Spark's State for the mapWithState model."""

    def __init__(self, entry, timing_out=False):
        self.exists_, self.value, self.timing_out = entry is not None, entry, timing_out
        self.updated = self.removed = False

    def exists(self):
        return self.exists_

    def get(self):
        return self.value

    def getOption(self):
        return self.value if self.exists_ else None

    def update(self, value):
        if self.timing_out:
            raise ValueError("Cannot update the state that is timing out")
        self.value, self.exists_, self.updated = value, True, True

    def remove(self):
        if self.timing_out:
            raise ValueError("Cannot remove the state that is timing out")
        self.removed, self.exists_, self.value = True, False, None

    def isTimingOut(self):
        return self.timing_out


def model_map_with_state(inputs, num_batches, fn, timeout_batches=None, initial=()):
    """Per batch: (sorted mapped records, sorted state snapshot). A key last seen at
    batch j times out at the first batch k with j < k - timeout (batch times in s)."""
    state = {k: (v, 1) for k, v in initial}  # key -> (state, batch last seen)
    out = []
    for k in range(1, num_batches + 1):
        mapped = []
        for key, value in (inputs[k - 1] if k <= len(inputs) else []):
            entry = state.get(key)
            st = ModelState(entry[0] if entry else None)
            mapped.append(fn(key, value, st))
            if st.removed:
                state.pop(key, None)
            elif st.updated:
                state[key] = (st.value, k)
            elif entry is not None:
                state[key] = (entry[0], k)
        if timeout_batches is not None:
            for key, (value, seen) in sorted(state.items()):
                if seen < k - timeout_batches:
                    mapped.append(fn(key, None, ModelState(value, timing_out=True)))
                    del state[key]
        out.append((sorted(mapped), sorted((key, v) for key, (v, _) in state.items())))
    return out


def word_batches(seed: int, batches: int, keys: str = "abcdef", per_batch: int = 6,
                 distinct: bool = False) -> list[list]:
    """Deterministic (key, small int) batches, one of them empty. ``distinct``: no key
    twice in a batch (the order of a key's records within a batch is not defined)."""
    rng = random.Random(seed)
    out = [[(k, rng.randint(1, 5)) for k in (rng.sample(keys, per_batch) if distinct else
                                              [rng.choice(keys) for _ in range(per_batch)])]
           for _ in range(batches)]
    out[batches // 2] = []
    return out


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


# -- updateStateByKey -----------------------------------------------------------------------------

def append_values(new_values, last):
    """PySpark's test updater: extends the state list (in place, as its tests do)."""
    if not last:
        last = []
    last.extend(new_values)
    return last


def test_update_state_by_key_as_pyspark(sc, checkpointed):
    inputs = [[("k", i)] for i in range(5)]
    got = run_batches(sc, inputs, lambda s: s.updateStateByKey(append_values), num_batches=7,
                      configure=checkpointed)
    expected = [[0], [0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4]]
    # The state is carried through the empty batches after the input ends.
    assert got == [[("k", v)] for v in expected + [expected[-1]] * 2]


def test_update_state_by_key_in_place_updates_leave_earlier_states_alone(sc, checkpointed):
    # append_values extends its argument; a window over the state stream still sees
    # each batch's state as it was (PySpark hands the function a fresh copy).
    inputs = [[("k", i)] for i in range(4)]
    got = run_batches(sc, inputs, lambda s: s.updateStateByKey(append_values).window(2, 1),
                      num_batches=5, configure=checkpointed)
    assert got == [[("k", [0])], [("k", [0]), ("k", [0, 1])], [("k", [0, 1]), ("k", [0, 1, 2])],
                   [("k", [0, 1, 2]), ("k", [0, 1, 2, 3])],
                   [("k", [0, 1, 2, 3]), ("k", [0, 1, 2, 3])]]


def test_update_state_by_key_runs_every_key_every_batch(sc, checkpointed):
    # State (total, calls): a key's function runs every batch once it exists, data or not.
    def update(values, last):
        total, calls = last or (0, 0)
        return (total + sum(values), calls + 1)

    inputs = [[("a", 1), ("b", 2), ("a", 3)], [], [("b", 1)], [], [], [("c", 5)]]
    got = run_batches(sc, inputs, lambda s: s.updateStateByKey(update), num_batches=8,
                      sort=True, configure=checkpointed)
    assert got == model_update_state(inputs, 8, update)
    assert got[-1] == [("a", (4, 8)), ("b", (3, 8)), ("c", (5, 3))]


def test_update_state_by_key_none_removes_the_key(sc, checkpointed):
    def update(values, last):
        if -1 in values:
            return None
        return (last or 0) + sum(values)

    inputs = [[("a", 1), ("b", 1)], [("a", 2), ("b", -1)], [("b", 4)], [("a", -1)], [],
              [("a", 7)]]
    got = run_batches(sc, inputs, lambda s: s.updateStateByKey(update), num_batches=7,
                      sort=True, configure=checkpointed)
    assert got == [[("a", 1), ("b", 1)], [("a", 3)], [("a", 3), ("b", 4)], [("b", 4)],
                   [("b", 4)], [("a", 7), ("b", 4)], [("a", 7), ("b", 4)]]


@pytest.mark.parametrize("as_rdd", [False, True], ids=["list", "rdd"])
def test_update_state_by_key_initial_rdd(sc, checkpointed, as_rdd):
    initial = [("k", [0, 1]), ("only_initial", [9])]
    if as_rdd:
        initial = sc.parallelize(initial, 1)
    inputs = [[("k", i)] for i in range(2, 5)]
    got = run_batches(sc, inputs, lambda s: s.updateStateByKey(append_values, initialRDD=initial),
                      num_batches=4, sort=True, configure=checkpointed)
    assert got == [[("k", [0, 1, 2]), ("only_initial", [9])],
                   [("k", [0, 1, 2, 3]), ("only_initial", [9])],
                   [("k", [0, 1, 2, 3, 4]), ("only_initial", [9])],
                   [("k", [0, 1, 2, 3, 4]), ("only_initial", [9])]]


def test_update_state_by_key_num_partitions(sc, checkpointed):
    inputs = [[(w, 1) for w in "abcdefg"], [(w, 1) for w in "aceg"]]
    got = run_batches(sc, inputs, lambda s: s.updateStateByKey(
        lambda vs, last: (last or 0) + sum(vs), numPartitions=5).glom(), num_batches=3,
        configure=checkpointed)
    for parts in got:
        assert len(parts) == 5
        for index, part in enumerate(parts):
            assert all(portable_hash(k) % 5 == index for k, _ in part)
    assert sorted(r for part in got[-1] for r in part) == \
        [("a", 2), ("b", 1), ("c", 2), ("d", 1), ("e", 2), ("f", 1), ("g", 2)]


def test_update_state_by_key_over_many_batches_matches_the_model(sc, checkpointed):
    # 16 batches of 1 s: the state is checkpointed (lineage cut) at the default 10 s.
    def update(values, last):
        total = (last or 0) + sum(values)
        return None if total > 40 else total  # big totals are dropped and start again

    inputs = word_batches(seed=23, batches=13, keys="abcdefgh", per_batch=8)
    got = run_batches(sc, inputs, lambda s: s.updateStateByKey(update), num_batches=16,
                      sort=True, configure=checkpointed)
    assert got == model_update_state(inputs, 16, update)


@pytest.mark.parametrize("operation", ["updateStateByKey", "mapWithState", "reduceByKeyAndWindow"])
def test_state_without_checkpoint_directory_fails_at_start(sc, operation):
    sc._checkpoint_dir = None  # as PySpark, the SparkContext's directory alone would do
    ssc = StreamingContext(sc, 1.0, clock=ManualClock(0))
    try:
        pairs = ssc.queueStream([[("a", 1)]])
        if operation == "updateStateByKey":
            stream = pairs.updateStateByKey(lambda vs, last: sum(vs) + (last or 0))
        elif operation == "mapWithState":
            stream = pairs.mapWithState(StateSpec.function(lambda k, v, st: v))
        else:
            stream = pairs.reduceByKeyAndWindow(add, sub, 5, 1)
        stream.foreachRDD(lambda rdd: None)
        with pytest.raises(ValueError, match=r"checkpoint directory has not been set.*"
                                             r"StreamingContext\.checkpoint\(\)"):
            ssc.start()
        assert StreamingContext.getActive() is None
    finally:
        ssc.stop(stopSparkContext=False)


def test_windows_without_inverse_need_no_checkpoint(sc):
    got = run_batches(sc, [[("a", 1)], [("a", 2)]], lambda s: s.reduceByKeyAndWindow(
        add, None, 5, 1).map(lambda kv: kv[1]), num_batches=2)
    assert got == [[1], [3]]


# -- mapWithState --------------------------------------------------------------------------------

def running_total(key, value, state):
    total = (state.getOption() or 0) + value
    state.update(total)
    return (key, total)


def total_or_timeout(key, value, state):
    if state.isTimingOut():
        return ("timeout", key, state.get())
    return running_total(key, value, state)


def with_snapshots(spec: StateSpec):
    """``op`` for run_batches: mapped records tagged "out", snapshots tagged "state"."""
    def op(stream):
        mapped = stream.mapWithState(spec)
        return mapped.map(lambda r: ("out", r)).union(
            mapped.stateSnapshots().map(lambda kv: ("state", kv)))
    return op


def split_tagged(batches: list[list]) -> list[tuple[list, list]]:
    return [(sorted(r for tag, r in b if tag == "out"), sorted(r for tag, r in b if tag == "state"))
            for b in batches]


def test_map_with_state_mapped_output_and_snapshots(sc, checkpointed):
    inputs = [[("a", 1), ("b", 2)], [("b", 5), ("a", 3)], [], [("c", 1), ("a", 1), ("c", 1)]]
    got = split_tagged(run_batches(sc, inputs, with_snapshots(StateSpec.function(running_total)),
                                   num_batches=5, configure=checkpointed))
    assert got == [
        ([("a", 1), ("b", 2)], [("a", 1), ("b", 2)]),
        ([("a", 4), ("b", 7)], [("a", 4), ("b", 7)]),
        ([], [("a", 4), ("b", 7)]),  # a batch without data: no output, same state
        ([("a", 5), ("c", 1), ("c", 2)], [("a", 5), ("b", 7), ("c", 2)]),
        ([], [("a", 5), ("b", 7), ("c", 2)]),
    ]
    assert got == model_map_with_state(inputs, 5, running_total)


def test_map_with_state_remove(sc, checkpointed):
    def fn(key, value, state):
        existed = state.exists()
        if value == "del":
            state.remove()
            return (key, "removed", existed, state.exists())
        state.update((state.getOption() or "") + value)
        return (key, state.get(), existed)

    inputs = [[("a", "x"), ("b", "y")], [("a", "del")], [("a", "z"), ("b", "del")], [("c", "del")]]
    got = split_tagged(run_batches(sc, inputs, with_snapshots(StateSpec.function(fn)),
                                   num_batches=4, configure=checkpointed))
    assert got == [
        ([("a", "x", False), ("b", "y", False)], [("a", "x"), ("b", "y")]),
        ([("a", "removed", True, False)], [("b", "y")]),
        ([("a", "z", False), ("b", "removed", True, False)], [("a", "z")]),
        ([("c", "removed", False, False)], [("a", "z")]),
    ]


def test_map_with_state_timeouts(sc, checkpointed):
    def fn(key, value, state):
        if state.isTimingOut():
            refusals = []
            for attempt in (lambda: state.update(0), state.remove):
                try:
                    attempt()
                except ValueError as exc:
                    refusals.append(str(exc))
            return ("timeout", key, value, state.get(), len(refusals))
        return running_total(key, value, state)

    inputs = [[("a", 1), ("b", 2)], [("a", 3)], [("a", 1)], [], [], [("b", 5)], [("c", 1)]]
    got = split_tagged(run_batches(sc, inputs, with_snapshots(StateSpec.function(fn).timeout(2)),
                                   num_batches=10, configure=checkpointed))
    assert got == [
        ([("a", 1), ("b", 2)], [("a", 1), ("b", 2)]),
        ([("a", 4)], [("a", 4), ("b", 2)]),
        ([("a", 5)], [("a", 5), ("b", 2)]),
        # b, last seen at 1 s, is idle more than 2 s at 4 s: one last call, then gone.
        ([("timeout", "b", None, 2, 2)], [("a", 5)]),
        ([], [("a", 5)]),
        ([("b", 5), ("timeout", "a", None, 5, 2)], [("b", 5)]),  # b starts afresh
        ([("c", 1)], [("b", 5), ("c", 1)]),
        ([], [("b", 5), ("c", 1)]),
        ([("timeout", "b", None, 5, 2)], [("c", 1)]),
        ([("timeout", "c", None, 1, 2)], []),
    ]
    assert got == model_map_with_state(inputs, 10, fn, timeout_batches=2)


@pytest.mark.parametrize("as_rdd", [False, True], ids=["list", "rdd"])
def test_map_with_state_initial_state(sc, checkpointed, as_rdd):
    initial = [("a", 100), ("z", 7)]
    if as_rdd:
        initial = sc.parallelize(initial, 2)
    spec = StateSpec.function(total_or_timeout).initialState(initial).timeout(3)
    inputs = [[("a", 1)], [("b", 2)], [], [("a", 1)]]
    got = split_tagged(run_batches(sc, inputs, with_snapshots(spec), num_batches=6,
                                   configure=checkpointed))
    assert got[0] == ([("a", 101)], [("a", 101), ("z", 7)])
    assert got[1] == ([("b", 2)], [("a", 101), ("b", 2), ("z", 7)])
    assert got[2] == ([], [("a", 101), ("b", 2), ("z", 7)])
    # Initial keys count as seen at the first batch: z, never touched, times out at 5 s.
    assert got[3] == ([("a", 102)], [("a", 102), ("b", 2), ("z", 7)])
    assert got[4] == ([("timeout", "z", 7)], [("a", 102), ("b", 2)])
    assert got[5] == ([("timeout", "b", 2)], [("a", 102)])
    assert got == model_map_with_state(inputs, 6, total_or_timeout, timeout_batches=3,
                                       initial=[("a", 100), ("z", 7)])


def test_map_with_state_four_argument_function(sc, checkpointed):
    def fn(time, key, value, state):
        state.update((state.getOption() or 0) + 1)
        return (time, key, value, state.get())

    inputs = [[("a", "x")], [("a", "y"), ("b", "z")]]
    got = run_batches(sc, inputs, lambda s: s.mapWithState(StateSpec.function(fn)),
                      batch_s=0.5, num_batches=2, sort=True, configure=checkpointed)
    assert got == [[(at(0.5), "a", "x", 1)], [(at(1.0), "a", "y", 2), (at(1.0), "b", "z", 1)]]


def test_map_with_state_partitions(sc, checkpointed):
    def op(stream):
        return stream.mapWithState(StateSpec.function(running_total).numPartitions(4)) \
            .stateSnapshots().glom()

    got = run_batches(sc, [[(w, 1) for w in "abcdefgh"]], op, num_batches=1,
                      configure=checkpointed)
    assert len(got[0]) == 4
    for index, part in enumerate(got[0]):
        assert all(portable_hash(k) % 4 == index for k, _ in part)
    assert sorted(r for part in got[0] for r in part) == [(w, 1) for w in "abcdefgh"]

    def by_partitioner(stream):
        spec = StateSpec.function(running_total).partitioner(Partitioner(2))
        return stream.mapWithState(spec).stateSnapshots().glom()

    got = run_batches(sc, [[(w, 1) for w in "abcdefgh"]], by_partitioner, num_batches=1,
                      configure=checkpointed)
    assert len(got[0]) == 2


def test_map_with_state_over_many_batches_matches_the_model(sc, checkpointed):
    # 16 batches: state versions are folded and the state is checkpointed at 10 s.
    def fn(key, value, state):
        if state.isTimingOut():
            return ("timeout", key, state.get())
        if value == 5:
            state.remove()
            return ("removed", key)
        total = (state.getOption() or 0) + value
        state.update(total)
        return (key, total)

    inputs = word_batches(seed=31, batches=12, keys="abcdefghijk", per_batch=5, distinct=True)
    got = split_tagged(run_batches(sc, inputs, with_snapshots(StateSpec.function(fn).timeout(3)),
                                   num_batches=16, configure=checkpointed))
    assert got == model_map_with_state(inputs, 16, fn, timeout_batches=3)
    assert got[-1][1] == []  # everything timed out after the input ended


def test_state_api():
    state = State()
    state._bind("k", None, False)
    assert not state.exists() and state.getOption() is None
    with pytest.raises(KeyError):
        state.get()
    state.update(3)
    assert state.exists() and state.get() == 3
    state.remove()
    assert not state.exists()
    with pytest.raises(ValueError, match="removed"):
        state.update(4)
    with pytest.raises(ValueError, match="already been removed"):
        state.remove()

    state._bind("k", (5, 1000), True)
    assert state.isTimingOut() and state.get() == 5
    with pytest.raises(ValueError, match="timing out"):
        state.update(6)
    with pytest.raises(ValueError, match="timing out"):
        state.remove()


def test_state_spec_and_map_with_state_misuse(sc):
    with pytest.raises(TypeError):
        StateSpec.function(42)
    with pytest.raises(ValueError):
        StateSpec.function(running_total).timeout(0)
    ssc = StreamingContext(sc, 1.0, clock=ManualClock(0))
    try:
        pairs = ssc.queueStream([[("a", 1)]])
        with pytest.raises(TypeError, match="StateSpec"):
            pairs.mapWithState(running_total)
        with pytest.raises(ValueError, match="only defined on the stream mapWithState returns"):
            pairs.stateSnapshots()
    finally:
        ssc.stop(stopSparkContext=False)


def test_a_failing_mapping_function_fails_its_batch_with_the_error(sc, checkpointed):
    def fn(key, value, state):
        if value == "boom":
            state.remove()
            state.update(1)  # update after remove: refused
        return value

    with pytest.raises(Exception, match="Cannot update the state after it has been removed"):
        run_batches(sc, [[("a", "boom")]], lambda s: s.mapWithState(StateSpec.function(fn)),
                    num_batches=1, configure=checkpointed)
