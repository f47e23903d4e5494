"""Every stateless DStream operation, batch by batch, against PySpark's semantics.

Each test feeds a queueStream through ``streaming_harness`` (a manual clock
steps the batches; no sleeps) and compares what every batch held. The shared
context is ``local[3]``, so a batch given as a list is an RDD of 3 partitions
laid out as PySpark's ``parallelize`` does (``[1, 2, 3, 4]`` ->
``[1] [2] [3, 4]``); an exhausted queue yields ``emptyRDD()`` (no partitions).
"""
from __future__ import annotations

import datetime
from operator import add

import pytest

from sluicegate.driver import StorageLevel, StreamingContext
from sluicegate.driver.rdd.base import RDD
from streaming_harness import run_batches, run_batches2, run_streams


def at(seconds: float) -> datetime.datetime:
    """A batch time as PySpark shows it (local time)."""
    return datetime.datetime.fromtimestamp(seconds)


@pytest.fixture(autouse=True)
def three_partitions(sc):
    assert sc.defaultParallelism == 3, "these expectations assume a local[3] context"


# -- element-wise ------------------------------------------------------------------------

def test_map(sc):
    out = run_batches(sc, [[1, 2, 3], [4, 5], []], lambda s: s.map(lambda x: x * 2))
    assert out == [[2, 4, 6], [8, 10], []]


def test_flat_map(sc):
    out = run_batches(sc, [["a b", "c"], [], ["d e f"]], lambda s: s.flatMap(str.split))
    assert out == [["a", "b", "c"], [], ["d", "e", "f"]]


def test_filter(sc):
    out = run_batches(sc, [[1, 2, 3, 4], [5], [], [6, 8]], lambda s: s.filter(lambda x: x % 2 == 0))
    assert out == [[2, 4], [], [], [6, 8]]


def test_map_partitions(sc):
    out = run_batches(sc, [[1, 2, 3, 4], [], [10]], lambda s: s.mapPartitions(lambda it: [sum(it)]))
    assert out == [[1, 2, 7], [0, 0, 0], [0, 0, 10]]


def test_map_partitions_with_index(sc):
    out = run_batches(sc, [[1, 2, 3, 4], ["x"]],
                      lambda s: s.mapPartitionsWithIndex(lambda i, it: [(i, list(it))]))
    assert out == [[(0, [1]), (1, [2]), (2, [3, 4])], [(0, []), (1, []), (2, ["x"])]]


def test_glom(sc):
    out = run_batches(sc, [[1, 2, 3, 4], [], list(range(6))], lambda s: s.glom(), num_batches=4)
    # the fourth batch comes from an exhausted queue: as PySpark's, one empty partition
    assert out == [[[1], [2], [3, 4]], [[], [], []], [[0, 1], [2, 3], [4, 5]], [[]]]


def test_map_values(sc):
    out = run_batches(sc, [[("a", 1), ("b", 2)], [], [("a", 3)]],
                      lambda s: s.mapValues(lambda v: v * 10))
    assert out == [[("a", 10), ("b", 20)], [], [("a", 30)]]


def test_flat_map_values(sc):
    out = run_batches(sc, [[("a", 2), ("b", 0)], [("c", 1)], []],
                      lambda s: s.flatMapValues(range))
    assert out == [[("a", 0), ("a", 1)], [("c", 0)], []]


# -- aggregations ---------------------------------------------------------------------------

def test_count(sc):
    # PySpark: count = mapPartitions(len).reduce(add). An empty batch of partitions
    # counts 0; so does an exhausted queue's batch (one empty partition, as PySpark's).
    out = run_batches(sc, [[1, 2, 3], [], ["a"] * 5], lambda s: s.count(), num_batches=4)
    assert out == [[3], [0], [5], [0]]


def test_count_by_value(sc):
    out = run_batches(sc, [["a", "b", "a", "c", "a"], [], [1, 1, 2]],
                      lambda s: s.countByValue(), sort=repr)
    assert out == [[("a", 3), ("b", 1), ("c", 1)], [], [(1, 2), (2, 1)]]


def test_reduce(sc):
    out = run_batches(sc, [[1, 2, 3, 4], [], [5], [[3], [1], [2, 4]]], lambda s: s.reduce(add))
    # partitions' results are merged in arrival order (as in Spark): compare as sets
    assert out[:3] == [[10], [], [5]]
    assert len(out[3]) == 1 and sorted(out[3][0]) == [1, 2, 3, 4]


def test_reduce_by_key(sc):
    data = [[("a", 1), ("b", 2), ("a", 3), ("c", 4), ("a", 5)], [], [("b", 1), ("b", 1)]]
    out = run_batches(sc, data, lambda s: s.reduceByKey(add), sort=True)
    assert out == [[("a", 9), ("b", 2), ("c", 4)], [], [("b", 2)]]


def test_reduce_by_key_partitions(sc):
    """Shuffles use defaultParallelism partitions unless told otherwise, as in PySpark."""
    data = [[(k, 1) for k in range(20)], [(1, 1)], []]

    def layout(s):
        default = s.reduceByKey(add).transform(lambda rdd: rdd.map(lambda kv: kv[1]).glom())
        two = s.reduceByKey(add, 2).transform(lambda rdd: rdd.glom().map(len))
        return default.map(len).transformWith(lambda a, b: a.union(b), two)

    out = run_batches(sc, data, layout)
    assert [len(batch) for batch in out] == [5, 5, 5]  # 3 partitions + 2 partitions each
    assert [sum(batch) for batch in out] == [40, 2, 0]


def test_combine_by_key(sc):
    data = [[("a", 1), ("b", 4), ("a", 3), ("a", 5)], [], [("z", 7)]]
    out = run_batches(sc, data,
                      lambda s: s.combineByKey(lambda v: (v, 1),
                                               lambda acc, v: (acc[0] + v, acc[1] + 1),
                                               lambda x, y: (x[0] + y[0], x[1] + y[1]))
                      .mapValues(lambda acc: acc[0] / acc[1]),
                      sort=True)
    assert out == [[("a", 3.0), ("b", 4.0)], [], [("z", 7.0)]]


def test_group_by_key(sc):
    data = [[("a", 1), ("b", 2), ("a", 3)], [], [("c", 5), ("c", 4)]]
    out = run_batches(sc, data,
                      lambda s: s.groupByKey().mapValues(lambda vs: (type(vs).__name__, sorted(vs))),
                      sort=True)
    assert out == [[("a", ("ResultIterable", [1, 3])), ("b", ("ResultIterable", [2]))], [],
                   [("c", ("ResultIterable", [4, 5]))]]


def test_partition_by(sc):
    data = [[(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e")], []]
    out = run_batches(sc, data, lambda s: s.partitionBy(2).glom().map(sorted))
    assert out == [[[(2, "b"), (4, "d")], [(1, "a"), (3, "c"), (5, "e")]], [[], []]]


def test_partition_by_custom_function(sc):
    data = [[("apple", 1), ("banana", 2), ("avocado", 3)]]
    out = run_batches(sc, data,
                      lambda s: s.partitionBy(3, lambda k: 0 if k.startswith("a") else 2)
                      .glom().map(sorted))
    assert out == [[[("apple", 1), ("avocado", 3)], [], [("banana", 2)]]]


def test_repartition(sc):
    data = [list(range(30)), [], [7]]
    sizes = run_batches(sc, data, lambda s: s.repartition(5).glom().map(len))
    assert [len(batch) for batch in sizes] == [5, 5, 5]
    assert [sum(batch) for batch in sizes] == [30, 0, 1]
    assert max(sizes[0]) < 30  # actually spread out
    content = run_batches(sc, data, lambda s: s.repartition(5), sort=True)
    assert content == [list(range(30)), [], [7]]


# -- several streams ------------------------------------------------------------------------

def test_union_method(sc):
    out = run_batches2(sc, [[1, 2], [], [3]], [[10], [20], []],
                       lambda a, b: a.union(b), sort=True)
    assert out == [[1, 2, 10], [20], [3]]


def test_context_union_of_three(sc):
    out = run_streams(sc, [[[1], [2]], [[10], []], [[100], [200, 300]]],
                      lambda a, b, c: a.context().union(a, b, c), sort=True)
    assert out == [[1, 10, 100], [2, 200, 300]]


def test_context_union_needs_a_stream(sc):
    ssc = StreamingContext(sc, 1.0)
    with pytest.raises(ValueError):
        ssc.union()
    one = ssc.queueStream([[1]])
    assert ssc.union(one) is one


def test_cogroup(sc):
    left = [[("a", 1), ("b", 2), ("a", 3)], [("x", 1)], []]
    right = [[("a", "u"), ("c", "w")], [], [("y", 2)]]
    out = run_batches2(sc, left, right,
                       lambda a, b: a.cogroup(b).mapValues(lambda g: (sorted(g[0]), sorted(g[1]))),
                       sort=True)
    assert out == [
        [("a", ([1, 3], ["u"])), ("b", ([2], [])), ("c", ([], ["w"]))],
        [("x", ([1], []))],
        [("y", ([], [2]))],
    ]


JOIN_LEFT = [[("a", 1), ("b", 2), ("a", 3)], [("x", 1)], [], [("k", 0)]]
JOIN_RIGHT = [[("a", "u"), ("c", "w"), ("a", "v")], [], [("y", 2)], [("k", 9)]]


def test_join(sc):
    out = run_batches2(sc, JOIN_LEFT, JOIN_RIGHT, lambda a, b: a.join(b), sort=True)
    assert out == [[("a", (1, "u")), ("a", (1, "v")), ("a", (3, "u")), ("a", (3, "v"))],
                   [], [], [("k", (0, 9))]]


def test_join_with_partitions(sc):
    out = run_batches2(sc, JOIN_LEFT, JOIN_RIGHT,
                       lambda a, b: a.join(b, 4).transform(lambda rdd: rdd.glom().map(len)))
    assert [len(batch) for batch in out] == [4, 4, 4, 4]
    assert [sum(batch) for batch in out] == [4, 0, 0, 1]


def test_left_outer_join(sc):
    out = run_batches2(sc, JOIN_LEFT, JOIN_RIGHT, lambda a, b: a.leftOuterJoin(b), sort=repr)
    assert out == [
        [("a", (1, "u")), ("a", (1, "v")), ("a", (3, "u")), ("a", (3, "v")), ("b", (2, None))],
        [("x", (1, None))],
        [],
        [("k", (0, 9))],
    ]


def test_right_outer_join(sc):
    out = run_batches2(sc, JOIN_LEFT, JOIN_RIGHT, lambda a, b: a.rightOuterJoin(b), sort=repr)
    assert out == [
        [("a", (1, "u")), ("a", (1, "v")), ("a", (3, "u")), ("a", (3, "v")), ("c", (None, "w"))],
        [],
        [("y", (None, 2))],
        [("k", (0, 9))],
    ]


def test_full_outer_join(sc):
    out = run_batches2(sc, JOIN_LEFT, JOIN_RIGHT, lambda a, b: a.fullOuterJoin(b), sort=repr)
    assert out == [
        [("a", (1, "u")), ("a", (1, "v")), ("a", (3, "u")), ("a", (3, "v")), ("b", (2, None)),
         ("c", (None, "w"))],
        [("x", (1, None))],
        [("y", (None, 2))],
        [("k", (0, 9))],
    ]


# -- transform ----------------------------------------------------------------------------------

def test_transform_one_argument(sc):
    out = run_batches(sc, [[3, 1, 2], [], [5, 4]],
                      lambda s: s.transform(lambda rdd: rdd.sortBy(lambda x: x)))
    assert out == [[1, 2, 3], [], [4, 5]]


def test_transform_with_time(sc):
    seen: list = []

    def tag(time, rdd):
        seen.append(time)
        return rdd.map(lambda x: (time, x))

    out = run_batches(sc, [[1], [], [2, 3]], lambda s: s.transform(tag))
    assert all(type(t) is datetime.datetime for t in seen)
    assert seen == [at(1), at(2), at(3)]
    assert out == [[(at(1), 1)], [], [(at(3), 2), (at(3), 3)]]


def test_transform_with_half_second_batches(sc):
    out = run_batches(sc, [["a"], ["b"]], lambda s: s.transform(lambda t, rdd: rdd.map(lambda x: (t, x))),
                      batch_s=0.5)
    assert out == [[(at(0.5), "a")], [(at(1.0), "b")]]


def test_transform_must_return_an_rdd(sc):
    with pytest.raises(TypeError, match="must return an RDD"):
        run_batches(sc, [[1]], lambda s: s.transform(lambda rdd: rdd.collect()))


def test_transform_with(sc):
    out = run_batches2(sc, [[1, 2], [3], []], [[10], [], [30]],
                       lambda a, b: a.transformWith(lambda x, y: x.cartesian(y), b), sort=True)
    assert out == [[(1, 10), (2, 10)], [], []]


def test_transform_with_time_argument(sc):
    out = run_batches2(sc, [[1], [2]], [["a"], ["b"]],
                       lambda a, b: a.transformWith(
                           lambda t, x, y: x.union(y).map(lambda v: (t.second, v)), b),
                       sort=repr)
    assert out == [[(1, "a"), (1, 1)], [(2, "b"), (2, 2)]]


def test_context_transform(sc):
    def op(a, b, c):
        return a.context().transform(
            [a, b, c], lambda rdds: rdds[0].union(rdds[1]).filter(lambda x: x % 2 == 0)
            .union(rdds[2]))

    out = run_streams(sc, [[[1, 2], [4]], [[3, 6], []], [[100], [200]]], op, sort=True)
    assert out == [[2, 6, 100], [4, 200]]


def test_context_transform_sees_all_rdds(sc):
    out = run_streams(sc, [[[1, 2]], [["x"]]],
                      lambda a, b: a.context().transform(
                          [a, b], lambda rdds: rdds[0].context.parallelize(
                              [len(rdds)] + [r.count() for r in rdds], 1)))
    assert out == [[2, 2, 1]]


# -- persistence ------------------------------------------------------------------------------

@pytest.mark.parametrize("cached", [True, False])
def test_cache_computes_each_batch_once(sc, cached):
    calls = sc.accumulator(0)
    levels: list = []

    def op(s):
        def counted(x):
            calls.add(1)
            return x * 2

        doubled = s.map(counted)
        if cached:
            doubled = doubled.cache()
        doubled.foreachRDD(lambda rdd: levels.append((rdd.is_cached, rdd.count())))
        return doubled

    out = run_batches(sc, [[1, 2, 3], [4], []], op)
    assert out == [[2, 4, 6], [8], []]
    assert levels == [(cached, 3), (cached, 1), (cached, 0)]
    # two output operations read every batch: with cache() the map ran once per record
    assert calls.value == (4 if cached else 8)


def test_persist_level_and_unpersist_after_the_batch(sc):
    rdds: list[RDD] = []

    def op(s):
        kept = s.map(lambda x: x + 1).persist(StorageLevel.MEMORY_AND_DISK)
        kept.foreachRDD(lambda rdd: rdds.append((rdd, rdd.getStorageLevel())))
        return kept

    out = run_batches(sc, [[1], [2], [3], [4]], op)
    assert out == [[2], [3], [4], [5]]
    assert [level for _, level in rdds] == [StorageLevel.MEMORY_AND_DISK] * 4
    # RDDs that fell out of the remember window (one batch) were unpersisted
    assert [rdd.is_cached for rdd, _ in rdds[:2]] == [False, False]


# -- slice ----------------------------------------------------------------------------------------

def test_slice(sc):
    sliced: dict[str, list] = {}

    def take_slices(ssc, stream):
        sliced["datetimes"] = [r.collect() for r in stream.slice(at(2), at(3))]
        sliced["seconds"] = [r.collect() for r in stream.slice(2, 4)]
        sliced["all"] = [r.collect() for r in stream.slice(0, 4)]
        sliced["unaligned"] = [r.collect() for r in stream.slice(1.5, 3.7)]
        sliced["one"] = [r.collect() for r in stream.slice(at(1), at(1))]

    out = run_batches(sc, [[1], [2, 2], [], [4]], lambda s: s.map(lambda x: x * 10),
                      configure=lambda ssc: ssc.remember(60), after=take_slices)
    assert out == [[10], [20, 20], [], [40]]
    assert sliced["datetimes"] == [[20, 20], []]
    assert sliced["seconds"] == [[20, 20], [], [40]]
    assert sliced["all"] == [[10], [20, 20], [], [40]]
    # like Spark, unaligned times are floored to batch times: 1.5 -> 1, 3.7 -> 3
    assert sliced["unaligned"] == [[10], [20, 20], []]
    assert sliced["one"] == [[10]]


def test_slice_before_start_is_an_error(sc):
    ssc = StreamingContext(sc, 1.0)
    stream = ssc.queueStream([[1]])
    with pytest.raises(ValueError):
        stream.slice(0, 10)


# -- queueStream ------------------------------------------------------------------------------------

def test_queue_stream_one_at_a_time_then_empty(sc):
    out = run_batches(sc, [[1], [2, 3]], lambda s: s, num_batches=4)
    assert out == [[1], [2, 3], [], []]


def test_queue_stream_all_at_once(sc):
    out = run_batches(sc, [[1, 2], [3], [4, 5]], lambda s: s, num_batches=3, one_at_a_time=False)
    assert out == [[1, 2, 3, 4, 5], [], []]


def test_queue_stream_default(sc):
    out = run_batches(sc, [[1], [2]], lambda s: s, num_batches=4, default=[9, 8])
    assert out == [[1], [2], [9, 8], [9, 8]]


def test_queue_stream_default_rdd_all_at_once(sc):
    out = run_batches(sc, [[1], [2]], lambda s: s.map(lambda x: -x), num_batches=3,
                      one_at_a_time=False, default=sc.parallelize([7], 1))
    assert out == [[-1, -2], [-7], [-7]]


def test_queue_stream_of_rdds(sc):
    rdds = [sc.parallelize(range(5), 2), sc.parallelize(["a"], 1)]
    out = run_batches(sc, rdds, lambda s: s.glom())
    assert out == [[[0, 1], [2, 3, 4]], [["a"]]]
