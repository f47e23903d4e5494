"""RDD sources and element-wise transformations on real executor processes,
checked against plain Python on the same data (PySpark's semantics).

Literal partition layouts below were observed with PySpark 4.3 (local mode).
"""
from __future__ import annotations

from collections import Counter
from itertools import chain, product

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

PROPS = settings(max_examples=20, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])

ints = st.lists(st.integers(-1000, 1000), max_size=60)
slices = st.integers(1, 8)


def pyspark_range_slices(r: range, n: int) -> list[list[int]]:
    """PySpark's ``parallelize(range)``: slice i starts at ``r[0] + int(i * len / n) * step``."""
    size = len(r)
    if size == 0:
        return [[] for _ in range(n)]

    def start(i: int) -> int:
        return r[0] + int(i * size / n) * r.step

    return [list(range(start(i), start(i + 1), r.step)) for i in range(n)]


def pyspark_list_slices(data: list, n: int) -> list[list]:
    """PySpark's ``parallelize(list)``: the list is pickled in batches of
    ``max(1, min(len // n, 1024))`` items and the JVM cuts the sequence of
    batches at ``i * batches // n``."""
    batch = max(1, min(len(data) // n, 1024))
    batches = [data[i:i + batch] for i in range(0, len(data), batch)]
    nb = len(batches)
    return [list(chain.from_iterable(batches[i * nb // n:(i + 1) * nb // n])) for i in range(n)]


# -- SparkContext sources -------------------------------------------------------------

def test_default_parallelism_is_the_number_of_local_executors(sc):
    assert sc.defaultParallelism == 3
    assert sc.defaultMinPartitions == 2
    assert sc.parallelize([1, 2, 3, 4]).getNumPartitions() == 3
    assert sc.parallelize(range(10)).getNumPartitions() == 3


@pytest.mark.parametrize("r, n, expected", [
    (range(0, 6, 2), 5, [[], [0], [], [2], [4]]),
    (range(10, 0, -3), 2, [[10, 7], [4, 1]]),
    (range(5), 3, [[0], [1, 2], [3, 4]]),
    (range(5, 5), 3, [[], [], []]),
    (range(0, -5, -1), 1, [[0, -1, -2, -3, -4]]),
])
def test_parallelize_range_layout_matches_pyspark(sc, r, n, expected):
    assert sc.parallelize(r, n).glom().collect() == expected
    assert pyspark_range_slices(r, n) == expected


@pytest.mark.parametrize("data, n, expected", [
    ([1, 2, 3, 4, 5], 3, [[1], [2, 3], [4, 5]]),
    (list(range(11)), 4, [[0, 1], [2, 3, 4, 5], [6, 7], [8, 9, 10]]),
    ([], 3, [[], [], []]),
    (["a"], 4, [[], [], [], ["a"]]),
])
def test_parallelize_list_layout_matches_pyspark(sc, data, n, expected):
    assert sc.parallelize(data, n).glom().collect() == expected
    assert pyspark_list_slices(data, n) == expected


def test_parallelize_large_list_is_sliced_in_pyspark_batches(sc):
    data = list(range(5000))
    layout = sc.parallelize(data, 3).glom().collect()
    assert [len(p) for p in layout] == [1024, 2048, 1928]  # what PySpark 4.3 gives
    assert list(chain.from_iterable(layout)) == data


@PROPS
@given(start=st.integers(-40, 40), stop=st.integers(-40, 40),
       step=st.integers(-7, 7).filter(bool), n=slices)
def test_parallelize_any_range(sc, start, stop, step, n):
    r = range(start, stop, step)
    rdd = sc.parallelize(r, n)
    assert rdd.getNumPartitions() == n
    assert rdd.glom().collect() == pyspark_range_slices(r, n)
    assert rdd.collect() == list(r)
    assert rdd.count() == len(r)


@PROPS
@given(data=st.lists(st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=80),
       n=slices)
def test_parallelize_any_list(sc, data, n):
    rdd = sc.parallelize(data, n)
    assert rdd.getNumPartitions() == n
    assert rdd.glom().collect() == pyspark_list_slices(data, n)
    assert rdd.collect() == data


def test_parallelize_accepts_any_iterable(sc):
    assert sc.parallelize((x * x for x in range(6)), 2).collect() == [0, 1, 4, 9, 16, 25]
    assert sc.parallelize(("a", "b", "c"), 2).collect() == ["a", "b", "c"]
    assert sorted(sc.parallelize({3, 1, 2}, 2).collect()) == [1, 2, 3]
    assert sc.parallelize("xyz", 3).glom().collect() == [["x"], ["y"], ["z"]]


def test_sc_range(sc):
    assert sc.range(5).collect() == [0, 1, 2, 3, 4]
    assert sc.range(2, 10, 3, 2).glom().collect() == [[2], [5, 8]]
    assert sc.range(10, 0, -4, 2).collect() == [10, 6, 2]
    assert sc.range(3, 3).collect() == []
    assert sc.range(100, numSlices=7).getNumPartitions() == 7


def test_only_one_spark_context_at_a_time(sc):
    from sluicegate.driver import SparkConf, SparkContext

    with pytest.raises(ValueError, match="Cannot run multiple SparkContexts at once"):
        SparkContext(conf=SparkConf().setMaster("local[1]").setAppName("second"))
    assert SparkContext._active_spark_context is sc
    assert sc.parallelize([1, 2, 3], 2).sum() == 6


def test_union_of_different_sources(sc, tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("a\nb\n")
    mixed = sc.textFile(str(path), 1).union(sc.parallelize(["c"], 2)).union(sc.range(2).map(str))
    assert mixed.collect() == ["a", "b", "c", "0", "1"]
    assert mixed.getNumPartitions() == 1 + 2 + 3


def test_empty_rdd(sc):
    empty = sc.emptyRDD()
    assert empty.getNumPartitions() == 0
    assert empty.collect() == []
    assert empty.count() == 0
    assert empty.isEmpty()
    assert empty.take(3) == []
    assert empty.sum() == 0
    assert empty.map(lambda x: x + 1).glom().collect() == []
    assert empty.union(sc.parallelize([1, 2], 2)).collect() == [1, 2]
    with pytest.raises(ValueError, match="empty"):
        empty.reduce(lambda a, b: a + b)


def test_union_keeps_order_and_partitions(sc):
    a = sc.parallelize([1, 2, 3], 2)
    b = sc.parallelize(["x", "y"], 3)
    c = sc.parallelize(range(4), 1)
    assert a.union(b).collect() == [1, 2, 3, "x", "y"]
    assert a.union(b).getNumPartitions() == 5
    assert (a + b).collect() == [1, 2, 3, "x", "y"]
    assert sc.union([a, b, c]).collect() == [1, 2, 3, "x", "y", 0, 1, 2, 3]
    assert sc.union([a, b, c]).getNumPartitions() == 6
    assert a.union(a).collect() == [1, 2, 3, 1, 2, 3]
    assert sc.union([a]).collect() == [1, 2, 3]


def test_union_of_co_partitioned_rdds_stays_partitioned(sc):
    left = sc.parallelize([(k, "l") for k in range(20)], 3).partitionBy(4)
    right = sc.parallelize([(k, "r") for k in range(10, 30)], 2).partitionBy(4)
    both = left.union(right)
    assert both.getNumPartitions() == 4
    assert both.partitioner == left.partitioner
    expected = [(k, "l") for k in range(20)] + [(k, "r") for k in range(10, 30)]
    assert sorted(both.collect()) == sorted(expected)
    for index, part in enumerate(both.glom().collect()):
        assert all(left.partitioner(k) == index for k, _ in part)


# -- element-wise transformations ------------------------------------------------------

@PROPS
@given(data=ints, n=slices)
def test_map_flat_map_filter(sc, data, n):
    rdd = sc.parallelize(data, n)
    assert rdd.map(lambda x: x * 3 - 1).collect() == [x * 3 - 1 for x in data]
    assert rdd.map(lambda x: (x, str(x))).collect() == [(x, str(x)) for x in data]
    assert rdd.flatMap(lambda x: range(x % 4)).collect() == [y for x in data for y in range(x % 4)]
    assert rdd.flatMap(lambda x: [(x, 1), (x, 2)]).collect() == [(x, i) for x in data for i in (1, 2)]
    assert rdd.filter(lambda x: x % 3 == 0).collect() == [x for x in data if x % 3 == 0]
    chained = rdd.map(lambda x: x + 1).filter(lambda x: x > 0).flatMap(lambda x: [x, -x]).map(abs)
    assert chained.collect() == [abs(y) for x in data if x + 1 > 0 for y in (x + 1, -(x + 1))]


@PROPS
@given(data=ints, n=slices)
def test_map_partitions_and_glom(sc, data, n):
    rdd = sc.parallelize(data, n)
    parts = rdd.glom().collect()
    assert len(parts) == n
    assert list(chain.from_iterable(parts)) == data
    assert rdd.mapPartitions(lambda it: [sum(it)]).collect() == [sum(p) for p in parts]

    def running_total(iterator):
        total = 0
        for x in iterator:
            total += x
            yield total

    expected = []
    for part in parts:
        total = 0
        for x in part:
            total += x
            expected.append(total)
    assert rdd.mapPartitions(running_total).collect() == expected
    with_index = rdd.mapPartitionsWithIndex(lambda i, it: [(i, len(list(it)))]).collect()
    assert with_index == [(i, len(p)) for i, p in enumerate(parts)]
    tagged = rdd.mapPartitionsWithIndex(lambda i, it: ((i, x) for x in it)).collect()
    assert tagged == [(i, x) for i, p in enumerate(parts) for x in p]


def test_map_partitions_runs_once_per_partition(sc):
    calls = sc.accumulator(0)

    def count_call(iterator):
        calls.add(1)
        return [sum(1 for _ in iterator)]

    assert sc.parallelize(range(10), 3).mapPartitions(count_call).collect() == [3, 3, 4]
    assert calls.value == 3
    assert sc.parallelize([], 4).mapPartitions(count_call).collect() == [0, 0, 0, 0]
    assert calls.value == 7


def test_key_by_and_group_by(sc):
    data = ["apple", "avocado", "banana", "blueberry", "cherry", "kiwi"]
    rdd = sc.parallelize(data, 2)
    assert rdd.keyBy(len).collect() == [(len(w), w) for w in data]
    grouped = rdd.groupBy(lambda w: w[0]).mapValues(sorted).collectAsMap()
    assert grouped == {"a": ["apple", "avocado"], "b": ["banana", "blueberry"],
                       "c": ["cherry"], "k": ["kiwi"]}
    assert rdd.groupBy(lambda w: w[0], numPartitions=5).getNumPartitions() == 5
    assert rdd.groupBy(lambda w: w[0]).getNumPartitions() == 2


# -- set-like operations ---------------------------------------------------------------

@PROPS
@given(data=st.lists(st.integers(-10, 10), max_size=40), n=slices)
def test_distinct(sc, data, n):
    rdd = sc.parallelize(data, n)
    result = rdd.distinct().collect()
    assert len(result) == len(set(result))
    assert set(result) == set(data)
    assert rdd.distinct().getNumPartitions() == n
    assert rdd.distinct(2).getNumPartitions() == 2
    assert sorted(rdd.distinct(2).collect()) == sorted(set(data))


@PROPS
@given(a=st.lists(st.integers(-8, 8), max_size=30), b=st.lists(st.integers(-8, 8), max_size=30),
       n=slices, m=slices)
def test_intersection_subtract_cartesian(sc, a, b, n, m):
    left, right = sc.parallelize(a, n), sc.parallelize(b, m)
    inter = left.intersection(right).collect()
    assert len(inter) == len(set(inter))
    assert set(inter) == set(a) & set(b)
    assert Counter(left.subtract(right).collect()) == Counter(x for x in a if x not in set(b))
    assert left.subtract(right).getNumPartitions() == n + m
    assert left.subtract(right, 3).getNumPartitions() == 3
    cart = left.cartesian(right)
    assert cart.getNumPartitions() == n * m
    assert Counter(cart.collect()) == Counter(product(a, b))


def test_cartesian_layout_matches_pyspark(sc):
    left = sc.parallelize(range(10), 2)
    right = sc.parallelize("ab", 3)
    assert left.cartesian(right).glom().collect() == [
        [], [(0, "a"), (1, "a"), (2, "a"), (3, "a"), (4, "a")],
        [(0, "b"), (1, "b"), (2, "b"), (3, "b"), (4, "b")],
        [], [(5, "a"), (6, "a"), (7, "a"), (8, "a"), (9, "a")],
        [(5, "b"), (6, "b"), (7, "b"), (8, "b"), (9, "b")]]


# -- partition counts ------------------------------------------------------------------

@pytest.mark.parametrize("n, k, expected", [
    (3, 2, [[0, 1, 2], [3, 4, 5, 6, 7, 8, 9]]),
    (5, 2, [[0, 1, 2, 3], [4, 5, 6, 7, 8, 9]]),
    (7, 3, [[0, 1], [2, 3, 4], [5, 6, 7, 8, 9]]),
    (3, 1, [list(range(10))]),
])
def test_coalesce_merges_neighbouring_partitions_like_pyspark(sc, n, k, expected):
    assert sc.parallelize(range(10), n).coalesce(k).glom().collect() == expected


def test_coalesce_and_repartition_counts(sc):
    rdd = sc.parallelize(range(1000), 3)
    assert rdd.coalesce(5).getNumPartitions() == 3  # no shuffle: cannot grow
    assert rdd.coalesce(3).collect() == list(range(1000))
    grown = rdd.coalesce(5, shuffle=True)
    assert grown.getNumPartitions() == 5
    assert sorted(grown.collect()) == list(range(1000))
    shrunk = rdd.coalesce(2, True)
    assert shrunk.getNumPartitions() == 2
    assert sorted(shrunk.collect()) == list(range(1000))
    for target in (1, 4, 7):
        parts = rdd.repartition(target).glom().collect()
        assert len(parts) == target
        assert sorted(chain.from_iterable(parts)) == list(range(1000))
    balanced = rdd.repartition(4).glom().collect()
    assert all(200 <= len(p) <= 300 for p in balanced), [len(p) for p in balanced]
    assert sc.parallelize([], 3).repartition(2).getNumPartitions() == 2
    assert sc.emptyRDD().repartition(2).collect() == []


def test_coalesce_to_zero_partitions_is_refused(sc):
    rdd = sc.parallelize([1, 2, 3], 3)
    with pytest.raises(ValueError, match="Number of partitions must be positive"):
        rdd.coalesce(0)
    with pytest.raises(ValueError, match="Number of partitions must be positive"):
        rdd.repartition(0)


# -- sorting ---------------------------------------------------------------------------

@PROPS
@given(data=ints, n=slices, out=st.integers(1, 5), ascending=st.booleans())
def test_sort_by(sc, data, n, out, ascending):
    rdd = sc.parallelize(data, n)
    result = rdd.sortBy(lambda x: (x % 7, x), ascending, out)
    # An empty input is returned as it is (PySpark), unless one partition was asked for.
    assert result.getNumPartitions() == (out if data or out == 1 else n)
    assert result.collect() == sorted(data, key=lambda x: (x % 7, x), reverse=not ascending)
    assert rdd.sortBy(abs).map(abs).collect() == sorted(abs(x) for x in data)


def test_sort_by_keeps_the_parent_partition_count_by_default(sc):
    rdd = sc.parallelize(list(range(50, 0, -1)), 4)
    result = rdd.sortBy(lambda x: x)
    assert result.getNumPartitions() == 4
    parts = result.glom().collect()
    assert list(chain.from_iterable(parts)) == list(range(1, 51))
    assert sum(1 for p in parts if p) >= 2  # range-partitioned, not one partition


# -- sampling and numbering ------------------------------------------------------------

def test_sample_fraction_and_determinism(sc):
    data = list(range(20000))
    rdd = sc.parallelize(data, 4)
    sampled = rdd.sample(False, 0.1, 42).collect()
    assert 1700 <= len(sampled) <= 2300
    assert len(set(sampled)) == len(sampled)  # without replacement: no repeats
    assert set(sampled) <= set(data)
    assert sampled == sorted(sampled)  # a sample keeps the input order
    assert rdd.sample(False, 0.1, 42).collect() == sampled
    assert rdd.sample(False, 0.1, 43).collect() != sampled
    with_replacement = rdd.sample(True, 2.0, 7).collect()
    assert 36000 <= len(with_replacement) <= 44000
    assert max(Counter(with_replacement).values()) > 1
    assert rdd.sample(True, 2.0, 7).collect() == with_replacement
    assert rdd.sample(False, 0.0, 1).count() == 0
    assert rdd.sample(False, 1.0, 1).collect() == data
    with pytest.raises(ValueError):
        rdd.sample(False, -0.5)


def test_zip_with_index_after_a_shuffle_numbers_each_element_once(sc):
    counts = sc.parallelize([i % 37 for i in range(500)], 4).map(lambda x: (x, 1)).reduceByKey(
        lambda a, b: a + b, 3)
    indexed = counts.zipWithIndex().collect()
    assert sorted(i for _, i in indexed) == list(range(37))
    assert sorted(kv for kv, _ in indexed) == [(k, len(range(k, 500, 37))) for k in range(37)]


@PROPS
@given(data=st.lists(st.text(max_size=3), max_size=50), n=slices)
def test_zip_with_index_and_unique_id(sc, data, n):
    rdd = sc.parallelize(data, n)
    assert rdd.zipWithIndex().collect() == [(x, i) for i, x in enumerate(data)]
    parts = rdd.glom().collect()
    expected = [(x, k * n + i) for i, part in enumerate(parts) for k, x in enumerate(part)]
    with_ids = rdd.zipWithUniqueId().collect()
    assert with_ids == expected
    assert len({i for _, i in with_ids}) == len(data)


def test_zip_with_unique_id_matches_pyspark(sc):
    assert sc.parallelize(range(10), 3).zipWithUniqueId().collect() == [
        (0, 0), (1, 3), (2, 6), (3, 1), (4, 4), (5, 7), (6, 2), (7, 5), (8, 8), (9, 11)]
