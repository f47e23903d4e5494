"""RDD actions, shared variables (accumulators, broadcasts), persistence and
checkpointing on real executor processes, against plain Python."""
from __future__ import annotations

import functools
import operator
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from sluicegate.driver import AccumulatorParam, StorageLevel, TaskContext

PROPS = settings(max_examples=20, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])

ints = st.lists(st.integers(-1000, 1000), max_size=60)
nonempty_ints = st.lists(st.integers(-1000, 1000), min_size=1, max_size=60)
slices = st.integers(1, 8)


class VectorParam(AccumulatorParam):
    """Adds equal-length lists element-wise (a user-defined AccumulatorParam)."""

    def zero(self, value):
        return [0] * len(value)

    def addInPlace(self, value1, value2):
        for i, x in enumerate(value2):
            value1[i] += x
        return value1


# -- collecting and counting ---------------------------------------------------------------

@PROPS
@given(data=ints, n=slices)
def test_collect_count_sum_and_counting_actions(sc, data, n):
    rdd = sc.parallelize(data, n)
    assert rdd.collect() == data
    assert rdd.count() == len(data)
    assert rdd.sum() == sum(data)
    assert rdd.countByValue() == Counter(data)
    pairs = rdd.map(lambda x: (x % 5, x))
    assert pairs.countByKey() == Counter(x % 5 for x in data)
    assert pairs.collectAsMap() == {x % 5: x for x in data}
    assert rdd.getNumPartitions() == n
    assert rdd.isEmpty() == (not data)


def test_count_by_value_and_key_return_dicts(sc):
    words = sc.parallelize(["a", "b", "a", "ü", "a", None], 4)
    counts = words.countByValue()
    assert isinstance(counts, dict)
    assert counts == {"a": 3, "b": 1, "ü": 1, None: 1}
    by_key = sc.parallelize([("x", 1), ("y", 2), ("x", 3)], 2).countByKey()
    assert isinstance(by_key, dict) and by_key == {"x": 2, "y": 1}
    assert sc.parallelize([], 2).countByValue() == {}


def test_sum_of_floats_and_mean(sc):
    floats = [0.5, 1.25, -3.0, 10.125]
    assert sc.parallelize(floats, 3).sum() == pytest.approx(sum(floats))
    assert sc.parallelize(floats, 3).mean() == pytest.approx(sum(floats) / len(floats))
    mean = sc.parallelize(range(10), 4).mean()
    assert isinstance(mean, float) and mean == 4.5
    assert sc.parallelize([], 2).sum() == 0


@PROPS
@given(data=nonempty_ints, n=slices)
def test_mean(sc, data, n):
    assert sc.parallelize(data, n).mean() == pytest.approx(sum(data) / len(data))


# -- take, first, top --------------------------------------------------------------------

@PROPS
@given(data=ints, n=st.integers(1, 30), num=st.integers(0, 80))
def test_take_is_a_prefix_of_collect(sc, data, n, num):
    rdd = sc.parallelize(data, n)
    assert rdd.take(num) == data[:num]
    if data:
        assert rdd.first() == data[0]


def test_take_across_many_sparse_partitions(sc):
    rdd = sc.parallelize(range(200), 50).filter(lambda x: x >= 190)
    assert rdd.take(5) == [190, 191, 192, 193, 194]
    assert rdd.take(100) == list(range(190, 200))
    assert rdd.first() == 190
    assert sc.parallelize(range(100), 10).take(1000) == list(range(100))
    assert sc.parallelize(range(100), 10).take(0) == []
    assert sc.parallelize([7], 20).take(3) == [7]
    scanned = sc.accumulator(0)

    def touch(index, iterator):
        scanned.add(1)
        return iterator

    assert sc.parallelize(range(100), 10).mapPartitionsWithIndex(touch).take(3) == [0, 1, 2]
    assert scanned.value == 1  # take reads only as many partitions as it needs


def test_first_and_reduce_of_empty_rdds(sc):
    for empty in (sc.parallelize([], 3), sc.emptyRDD(), sc.parallelize(range(5), 2).filter(bool).filter(lambda x: x > 9)):
        with pytest.raises(ValueError, match="RDD is empty"):
            empty.first()
        with pytest.raises(ValueError, match="Can not reduce\\(\\) empty RDD"):
            empty.reduce(operator.add)
        assert empty.isEmpty()
        assert empty.take(1) == []
        assert empty.top(3) == [] and empty.takeOrdered(3) == []
        assert empty.fold(0, operator.add) == 0


@PROPS
@given(data=ints, n=slices, num=st.integers(0, 10))
def test_top_and_take_ordered(sc, data, n, num):
    rdd = sc.parallelize(data, n)
    assert rdd.top(num) == sorted(data, reverse=True)[:num]
    assert rdd.takeOrdered(num) == sorted(data)[:num]
    by_last_digit = rdd.top(num, key=lambda x: (abs(x) % 10, x))
    assert by_last_digit == sorted(data, key=lambda x: (abs(x) % 10, x), reverse=True)[:num]
    assert rdd.takeOrdered(num, key=lambda x: -x) == sorted(data, key=lambda x: -x)[:num]


def test_top_and_take_ordered_match_pyspark_examples(sc):
    assert sc.parallelize([10, 4, 2, 12, 3], 2).top(1) == [12]
    assert sc.parallelize([2, 3, 4, 5, 6], 2).top(2) == [6, 5]
    assert sc.parallelize([10, 4, 2, 12, 3], 2).top(3, key=str) == [4, 3, 2]
    assert sc.parallelize([10, 1, 2, 9, 3, 4, 5, 6, 7], 2).takeOrdered(6) == [1, 2, 3, 4, 5, 6]
    assert sc.parallelize([10, 1, 2, 9, 3, 4, 5, 6, 7], 2).takeOrdered(6, key=lambda x: -x) == [
        10, 9, 7, 6, 5, 4]


# -- reduce, fold, aggregate, max, min ---------------------------------------------------

@PROPS
@given(data=nonempty_ints, n=slices)
def test_reduce_fold_aggregate_max_min(sc, data, n):
    rdd = sc.parallelize(data, n)
    assert rdd.reduce(operator.add) == sum(data)
    assert rdd.reduce(max) == max(data)
    assert rdd.fold(0, operator.add) == sum(data)
    # fold applies the zero once per partition and once more at the end (PySpark)
    assert rdd.fold(1, operator.add) == sum(data) + n + 1
    assert rdd.aggregate((0, 0), lambda acc, x: (acc[0] + x, acc[1] + 1),
                         lambda a, b: (a[0] + b[0], a[1] + b[1])) == (sum(data), len(data))
    assert rdd.max() == max(data) and rdd.min() == min(data)
    # With ties on the key, the first element in RDD order wins, as with max()/min().
    assert rdd.max(key=abs) == max(data, key=abs)
    assert rdd.min(key=lambda x: x % 7) == min(data, key=lambda x: x % 7)


def test_fold_and_aggregate_with_a_mutable_zero(sc):
    rdd = sc.parallelize(range(20), 4)

    def seq(acc, x):
        acc.append(x)
        return acc

    def comb(a, b):
        a.extend(b)
        return a

    for _ in range(3):  # the zero must not leak between partitions, tasks or jobs
        assert sorted(rdd.aggregate([], seq, comb)) == list(range(20))
        assert sorted(rdd.map(lambda x: [x]).fold([], comb)) == list(range(20))
    assert sc.parallelize(["b", "a", "c"], 2).max() == "c"
    assert sc.parallelize([(1, "z"), (2, "a")], 2).min(key=lambda kv: kv[1]) == (2, "a")


# -- foreach, lookup, runJob -------------------------------------------------------------

def test_foreach_and_foreach_partition_run_on_every_element(sc):
    total = sc.accumulator(0)
    sc.parallelize(range(1, 101), 7).foreach(lambda x: total.add(x))
    assert total.value == 5050
    partitions, elements = sc.accumulator(0), sc.accumulator(0)

    def per_partition(iterator):
        partitions.add(1)
        elements.add(sum(1 for _ in iterator))

    assert sc.parallelize(range(30), 4).foreachPartition(per_partition) is None
    assert (partitions.value, elements.value) == (4, 30)


def test_lookup(sc):
    data = [(k % 7, k) for k in range(50)] + [(None, -1), ("ü", -2)]
    rdd = sc.parallelize(data, 4)
    for key in [0, 3, 6, None, "ü"]:
        expected = [v for k, v in data if k == key]
        assert rdd.lookup(key) == expected  # unpartitioned: in RDD order
        assert sorted(rdd.partitionBy(3).lookup(key)) == sorted(expected)
    assert rdd.lookup(99) == [] and rdd.partitionBy(3).lookup(99) == []


def test_lookup_on_a_partitioned_rdd_reads_one_partition(sc):
    scanned = sc.accumulator(0)

    def touch(iterator):
        scanned.add(1)
        return iterator

    partitioned = sc.parallelize([(k, k * k) for k in range(40)], 3).partitionBy(5)
    watched = partitioned.mapPartitions(touch, preservesPartitioning=True)
    assert watched.lookup(12) == [144]
    assert scanned.value == 1
    unpartitioned = sc.parallelize([(k, k * k) for k in range(40)], 5).mapPartitions(touch)
    assert unpartitioned.lookup(12) == [144]
    assert scanned.value == 6


def test_run_job(sc):
    rdd = sc.parallelize(range(6), 3)
    assert sc.runJob(rdd, lambda it: [sum(it)], [0, 2]) == [1, 9]
    assert sc.runJob(rdd, lambda it: [x * x for x in it]) == [0, 1, 4, 9, 16, 25]
    assert sc.runJob(rdd, lambda it: [len(list(it))], [1]) == [2]
    with pytest.raises(ValueError):
        sc.runJob(rdd, lambda it: it, [3])


def test_an_error_in_a_user_function_fails_the_action(sc):
    def explode(x):
        if x == 13:
            raise ValueError(f"bad record {x}")
        return x

    with pytest.raises(Exception, match="bad record 13") as failure:
        sc.parallelize(range(20), 4).map(explode).collect()
    assert "ValueError" in str(failure.value)
    assert "explode" in str(failure.value)  # the executor's traceback comes along
    with pytest.raises(Exception, match="bad record 13"):
        sc.parallelize(range(20), 4).map(lambda x: (x % 2, explode(x))).reduceByKey(
            operator.add).collect()
    assert sc.parallelize(range(20), 4).map(lambda x: x).sum() == 190  # the context still works


def test_a_closure_is_pickled_again_for_each_job(sc):
    factor = {"v": 2}

    def scale(x):
        return x * factor["v"]

    rdd = sc.parallelize([1, 2], 2)
    assert rdd.map(scale).collect() == [2, 4]
    factor["v"] = 3
    assert rdd.map(scale).collect() == [3, 6]


# -- accumulators --------------------------------------------------------------------------

def test_int_float_and_custom_accumulators(sc):
    counter = sc.accumulator(0)
    floats = sc.accumulator(1.5)
    vector = sc.accumulator([0, 0, 0], VectorParam())

    def record(x, counter=counter, floats=floats):
        counter += 1  # Accumulator supports +=
        floats.add(0.25)
        vector.add([1, x, x * x])

    sc.parallelize(range(10), 3).foreach(record)
    assert counter.value == 10
    assert floats.value == pytest.approx(1.5 + 2.5)
    assert vector.value == [10, 45, 285]
    sc.parallelize(range(10), 5).foreach(record)  # accumulates across jobs
    assert counter.value == 20 and vector.value == [20, 90, 570]


def test_accumulator_adds_of_a_failed_task_attempt_are_not_counted(own_context):
    sc = own_context("local[2,2]")  # a second attempt (local[N] alone gives one, as Spark)
    seen = sc.accumulator(0)

    def flaky(iterator):
        for _ in iterator:
            seen.add(1)
        ctx = TaskContext.get()
        if ctx.partitionId() == 1 and ctx.attemptNumber() == 0:
            raise RuntimeError("injected failure of the first attempt")

    sc.parallelize(range(30), 3).foreachPartition(flaky)
    assert seen.value == 30


def test_accumulator_value_cannot_be_read_in_a_task(sc):
    acc = sc.accumulator(0)
    with pytest.raises(Exception, match="cannot be accessed inside tasks"):
        sc.parallelize([1], 1).map(lambda x: acc.value).collect()


# -- broadcast -----------------------------------------------------------------------------

def test_broadcast_value_in_tasks(sc):
    table = {i: f"v{i}" * 3 for i in range(2000)}
    bc = sc.broadcast(table)
    assert bc.value == table
    keys = list(range(0, 2000, 13))
    lookup = sc.parallelize(keys, 4).map(lambda k: bc.value[k])
    assert lookup.collect() == [table[k] for k in keys]
    assert lookup.collect() == [table[k] for k in keys]  # cached on the executors
    bc.unpersist()
    assert sc.parallelize(keys, 3).map(lambda k: bc.value[k]).collect() == [table[k] for k in keys]
    assert bc.value == table  # unpersist keeps the driver's copy


def test_destroyed_broadcast_cannot_be_used(sc):
    bc = sc.broadcast([1, 2, 3])
    assert sc.parallelize([0, 2], 2).map(lambda i: bc.value[i]).collect() == [1, 3]
    bc.destroy()
    with pytest.raises(Exception, match="(?i)destroyed"):
        bc.value
    with pytest.raises(Exception, match="(?i)broadcast"):
        sc.parallelize([0, 2], 2).map(lambda i: bc.value[i] + 1).collect()


# -- cache / persist -----------------------------------------------------------------------

@pytest.mark.parametrize("level", [StorageLevel.MEMORY_ONLY, StorageLevel.MEMORY_AND_DISK,
                                   StorageLevel.DISK_ONLY])
def test_persist_computes_each_partition_once_until_unpersisted(sc, level):
    calls = sc.accumulator(0)

    def tracked(x):
        calls.add(1)
        return (x % 4, x * 2)

    rdd = sc.parallelize(range(60), 3).map(tracked)
    rdd = rdd.cache() if level == StorageLevel.MEMORY_ONLY else rdd.persist(level)
    assert rdd.is_cached and rdd.getStorageLevel() == level
    expected = [(x % 4, x * 2) for x in range(60)]
    assert rdd.collect() == expected
    assert calls.value == 60
    assert rdd.count() == 60
    assert rdd.values().sum() == sum(x * 2 for x in range(60))
    assert sorted(rdd.reduceByKey(operator.add).collect()) == sorted(
        {k: sum(v for kk, v in expected if kk == k) for k in range(4)}.items())
    assert rdd.collect() == expected
    assert calls.value == 60  # every later action read the persisted partitions
    rdd.unpersist()
    assert not rdd.is_cached and rdd.getStorageLevel() == StorageLevel.NONE
    assert rdd.count() == 60
    assert calls.value == 120
    assert rdd.collect() == expected
    assert calls.value == 180


def test_without_persist_every_action_recomputes(sc):
    calls = sc.accumulator(0)
    rdd = sc.parallelize(range(10), 2).map(lambda x: (calls.add(1), x)[1])
    assert rdd.count() == 10 and rdd.sum() == 45
    assert calls.value == 20


def test_persist_of_a_shuffled_rdd_and_storage_level_rules(sc):
    calls = sc.accumulator(0)

    def tracked(kv):
        calls.add(1)
        return kv

    counts = sc.parallelize([w for w in "abracadabra"], 3).map(lambda w: (w, 1)).reduceByKey(
        operator.add).map(tracked).persist(StorageLevel.MEMORY_AND_DISK)
    expected = sorted(Counter("abracadabra").items())
    assert sorted(counts.collect()) == expected
    assert sorted(counts.collect()) == expected
    assert calls.value == len(expected)
    with pytest.raises(Exception):
        counts.persist(StorageLevel.DISK_ONLY)  # cannot change an assigned level
    counts.unpersist()
    counts.persist(StorageLevel.DISK_ONLY)
    assert sorted(counts.collect()) == expected
    assert calls.value == 2 * len(expected)
    counts.unpersist()


# -- checkpoint ----------------------------------------------------------------------------

def test_checkpoint_cuts_the_lineage(sc, tmp_path):
    sc.setCheckpointDir(str(tmp_path / "checkpoints"))
    calls = sc.accumulator(0)

    def tracked(x):
        calls.add(1)
        return x * 3

    rdd = sc.parallelize(range(30), 3).map(tracked).filter(lambda x: x % 2 == 0)
    expected = [x * 3 for x in range(30) if x * 3 % 2 == 0]
    rdd.checkpoint()
    assert not rdd.isCheckpointed()
    assert rdd.collect() == expected
    assert rdd.isCheckpointed()
    checkpoint_file = rdd.getCheckpointFile()
    assert checkpoint_file and Path(checkpoint_file.removeprefix("file:")).resolve().is_relative_to(
        (tmp_path / "checkpoints").resolve())
    after_first = calls.value
    assert rdd.collect() == expected
    assert rdd.map(lambda x: x + 1).sum() == sum(x + 1 for x in expected)
    assert rdd.getNumPartitions() == 3
    assert calls.value == after_first  # later jobs read the checkpoint, not the lineage


def test_checkpoint_of_a_shuffled_rdd(sc, tmp_path):
    sc.setCheckpointDir(str(tmp_path))
    words = sc.parallelize("the quick brown fox jumps over the lazy dog the end".split(), 3)
    counts = words.map(lambda w: (w, 1)).reduceByKey(operator.add)
    counts.checkpoint()
    expected = sorted(Counter("the quick brown fox jumps over the lazy dog the end".split()).items())
    assert sorted(counts.collect()) == expected
    assert counts.isCheckpointed()
    assert sorted(counts.collect()) == expected
    assert sorted(counts.mapValues(lambda n: n * 10).collect()) == [(w, n * 10) for w, n in expected]
    assert dict(counts.join(counts).collect()) == {w: (n, n) for w, n in expected}


def test_checkpoint_needs_a_checkpoint_dir(own_context):
    ctx = own_context("local[1]")
    with pytest.raises(Exception, match="(?i)checkpoint directory"):
        ctx.parallelize([1, 2]).checkpoint()


# -- behaviour shared by all actions -------------------------------------------------------

def test_reduce_and_fold_agree_with_functools(sc):
    data = list(range(1, 15))
    rdd = sc.parallelize(data, 4)
    assert rdd.reduce(operator.mul) == functools.reduce(operator.mul, data)
    def longest(a, b):
        return a if len(a) >= len(b) else b

    assert rdd.map(str).reduce(longest) == functools.reduce(longest, map(str, data)) == "10"
