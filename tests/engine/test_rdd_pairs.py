"""Key-value RDD operations on real executor processes, against plain Python:
aggregations, partitioning, joins, sorting, default partition counts, and the
shapes of keys and values that must survive serialization and shuffles."""
from __future__ import annotations

from collections import Counter, OrderedDict, defaultdict
from itertools import chain
from operator import add

from hypothesis import HealthCheck, given, settings, strategies as st

from sluicegate.driver import ResultIterable, portable_hash

PROPS = settings(max_examples=20, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])

slices = st.integers(1, 6)
mixed_keys = st.one_of(
    st.integers(-5, 5), st.sampled_from(["a", "ü", "😀", "", "日本"]), st.none(),
    st.binary(max_size=2), st.tuples(st.integers(0, 2), st.text(max_size=1)))
pairs = st.lists(st.tuples(mixed_keys, st.integers(-100, 100)), max_size=50)
small_pairs = st.lists(st.tuples(st.integers(0, 6), st.integers(-9, 9)), max_size=25)


class Point:
    """A user class, as values and as keys (its hash uses only ints: the same in
    every process)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    def __hash__(self):
        return hash((self.x, self.y))

    def __repr__(self):
        return f"Point({self.x!r}, {self.y!r})"


def groups(data) -> dict:
    out: dict = defaultdict(list)
    for k, v in data:
        out[k].append(v)
    return dict(out)


def canon(x):
    """A comparable form that keeps every container's and scalar's exact type."""
    kind = type(x)
    if kind in (list, tuple):
        return kind.__name__, [canon(v) for v in x]
    if kind in (set, frozenset):
        return kind.__name__, sorted((canon(v) for v in x), key=repr)
    if isinstance(x, dict):
        return kind.__name__, sorted(((canon(k), canon(v)) for k, v in x.items()), key=repr)
    return kind.__name__, repr(x)


def as_dict_of_sorted(rdd) -> dict:
    result = rdd.collect()
    assert len(result) == len({k for k, _ in result}), f"a key came back twice: {result}"
    return {k: sorted(v) for k, v in result}


# -- per-key transformations -------------------------------------------------------------

@PROPS
@given(data=pairs, n=slices)
def test_keys_values_map_values_flat_map_values(sc, data, n):
    rdd = sc.parallelize(data, n)
    assert rdd.keys().collect() == [k for k, _ in data]
    assert rdd.values().collect() == [v for _, v in data]
    assert rdd.mapValues(lambda v: v * 2).collect() == [(k, v * 2) for k, v in data]
    assert rdd.flatMapValues(lambda v: range(v % 3)).collect() == [
        (k, x) for k, v in data for x in range(v % 3)]
    assert rdd.collectAsMap() == dict(data)


@PROPS
@given(data=pairs, n=slices, out=st.one_of(st.none(), st.integers(1, 5)))
def test_key_aggregations_match_python(sc, data, n, out):
    rdd = sc.parallelize(data, n)
    expected = groups(data)
    sums = rdd.reduceByKey(add, out).collect()
    assert len(sums) == len(expected)
    assert dict(sums) == {k: sum(v) for k, v in expected.items()}
    assert rdd.reduceByKey(add, out).getNumPartitions() == (out or n)
    grouped = rdd.groupByKey(out).mapValues(sorted)
    assert as_dict_of_sorted(grouped) == {k: sorted(v) for k, v in expected.items()}
    combined = rdd.combineByKey(lambda v: [v], lambda c, v: c + [v], lambda a, b: a + b, out)
    assert as_dict_of_sorted(combined) == {k: sorted(v) for k, v in expected.items()}
    stats = rdd.aggregateByKey((0, 0), lambda acc, v: (acc[0] + v, acc[1] + 1),
                               lambda a, b: (a[0] + b[0], a[1] + b[1]), out).collectAsMap()
    assert stats == {k: (sum(v), len(v)) for k, v in expected.items()}
    assert rdd.foldByKey(0, add, out).collectAsMap() == {k: sum(v) for k, v in expected.items()}
    assert rdd.countByKey() == Counter(k for k, _ in data)


def test_group_by_key_values_are_result_iterables(sc):
    rdd = sc.parallelize([("a", 1), ("b", 2), ("a", 3), ("a", 4)], 3)
    grouped = dict(rdd.groupByKey().collect())
    assert all(isinstance(v, ResultIterable) for v in grouped.values())
    assert len(grouped["a"]) == 3
    assert sorted(grouped["a"]) == [1, 3, 4]
    assert sorted(grouped["a"]) == [1, 3, 4]  # iterable more than once
    assert list(grouped["b"]) == [2]
    as_lists = rdd.groupByKey().mapValues(list).collect()
    assert all(type(v) is list for _, v in as_lists)
    assert sorted((k, sorted(v)) for k, v in as_lists) == [("a", [1, 3, 4]), ("b", [2])]


def test_aggregate_and_fold_by_key_never_share_a_mutable_zero(sc):
    data = [(k % 4, k) for k in range(40)]
    expected = {k: sorted(v) for k, v in groups(data).items()}
    rdd = sc.parallelize(data, 5)

    def seq(acc, v):
        acc.append(v)
        return acc

    def comb(a, b):
        a.extend(b)
        return a

    for _ in range(3):  # executors keep the closure (and its zero) across tasks and jobs
        assert as_dict_of_sorted(rdd.aggregateByKey([], seq, comb)) == expected
        assert as_dict_of_sorted(rdd.aggregateByKey([], seq, comb, 2)) == expected
        as_lists = rdd.mapValues(lambda v: [v])
        assert as_dict_of_sorted(as_lists.foldByKey([], comb)) == expected
    # Already partitioned as asked: combined in place, still from fresh zeros.
    partitioned = rdd.partitionBy(3)
    for _ in range(2):
        assert as_dict_of_sorted(partitioned.aggregateByKey([], seq, comb, 3)) == expected
        assert as_dict_of_sorted(partitioned.mapValues(lambda v: [v]).foldByKey([], comb, 3)) == expected


def test_combine_by_key_on_a_partitioned_rdd(sc):
    data = [(k % 5, 1) for k in range(50)]
    partitioned = sc.parallelize(data, 4).partitionBy(3)
    counted = partitioned.reduceByKey(add, 3)
    assert counted.partitioner == partitioned.partitioner
    assert sorted(counted.collect()) == [(k, 10) for k in range(5)]
    for index, part in enumerate(counted.glom().collect()):
        assert all(portable_hash(k) % 3 == index for k, _ in part)
    other_count = partitioned.reduceByKey(add, 2)
    assert other_count.getNumPartitions() == 2
    assert sorted(other_count.collect()) == [(k, 10) for k in range(5)]


# -- partitioning ------------------------------------------------------------------------

def test_partition_by_places_keys_with_partition_func(sc):
    data = [(k, k * 10) for k in range(-5, 25)]
    rdd = sc.parallelize(data, 3).partitionBy(4, lambda k: k // 3)
    assert rdd.getNumPartitions() == 4
    assert rdd.partitioner.numPartitions == 4
    parts = rdd.glom().collect()
    for index, part in enumerate(parts):
        assert all((k // 3) % 4 == index for k, _ in part), (index, part)
    assert sorted(chain.from_iterable(parts)) == sorted(data)
    pyspark_example = sc.parallelize(range(10), 3).map(lambda x: (x % 3, x)).partitionBy(
        3, lambda k: k * 2)
    assert [sorted(p) for p in pyspark_example.glom().collect()] == [
        [(0, 0), (0, 3), (0, 6), (0, 9)], [(2, 2), (2, 5), (2, 8)], [(1, 1), (1, 4), (1, 7)]]


def test_partition_by_default_uses_portable_hash(sc):
    keys = ["a", "ünïcødé", "😀", None, b"\x00\xff", 1, 2.5, (1, "a"), -7, 2 ** 70, ""]
    rdd = sc.parallelize([(k, i) for i, k in enumerate(keys)], 2).partitionBy(3)
    parts = rdd.glom().collect()
    for index, part in enumerate(parts):
        assert all(portable_hash(k) % 3 == index for k, _ in part), (index, part)
    assert sorted(i for _, i in chain.from_iterable(parts)) == list(range(len(keys)))


@PROPS
@given(data=pairs, n=slices, out=st.integers(1, 7))
def test_every_executor_hashes_keys_like_the_driver(sc, data, n, out):
    parts = sc.parallelize(data, n).partitionBy(out).glom().collect()
    assert len(parts) == out
    for index, part in enumerate(parts):
        assert all(portable_hash(k) % out == index for k, _ in part), (index, part)
    assert Counter(chain.from_iterable(parts)) == Counter(data)


def test_partitioner_is_kept_or_dropped_like_pyspark(sc):
    base = sc.parallelize([(k, k) for k in range(30)], 2)
    assert base.partitioner is None
    part = base.partitionBy(3)
    assert part.partitionBy(3) is part  # same partitioner: nothing to do
    assert part.partitionBy(4) is not part
    assert part.mapValues(str).partitioner == part.partitioner
    assert part.flatMapValues(lambda v: [v]).partitioner == part.partitioner
    assert part.filter(lambda kv: kv[1] > 3).partitioner == part.partitioner
    assert part.map(lambda kv: kv).partitioner is None
    assert part.map(lambda kv: kv, preservesPartitioning=True).partitioner == part.partitioner
    assert part.keys().partitioner is None
    assert part.reduceByKey(add).partitioner == part.partitioner
    assert part.groupByKey().mapValues(list).partitioner == part.partitioner


def test_word_count_on_a_larger_input(sc):
    words = [f"w{(i * 7919) % 5003}" for i in range(120_000)]
    counts = sc.parallelize(words, 6).map(lambda w: (w, 1)).reduceByKey(add, 4)
    result = counts.collect()
    assert len(result) == len(set(words))
    assert dict(result) == Counter(words)
    grouped_sizes = sc.parallelize(words, 5).map(lambda w: (w, 1)).groupByKey(3).mapValues(len)
    assert dict(grouped_sizes.collect()) == Counter(words)


# -- joins -------------------------------------------------------------------------------

def py_join(a, b):
    return [(k, (v, w)) for k, v in a for k2, w in b if k == k2]


def py_left(a, b):
    out = []
    for k, v in a:
        ws = [w for k2, w in b if k2 == k] or [None]
        out.extend((k, (v, w)) for w in ws)
    return out


def py_right(a, b):
    return [(k, (v, w)) for k, (w, v) in py_left(b, a)]


def py_full(a, b):
    left_keys = {k for k, _ in a}
    return py_left(a, b) + [(k, (None, w)) for k, w in b if k not in left_keys]


@PROPS
@given(a=small_pairs, b=small_pairs, n=slices, m=slices)
def test_joins_match_python(sc, a, b, n, m):
    left, right = sc.parallelize(a, n), sc.parallelize(b, m)
    assert Counter(left.join(right).collect()) == Counter(py_join(a, b))
    assert Counter(left.leftOuterJoin(right).collect()) == Counter(py_left(a, b))
    assert Counter(left.rightOuterJoin(right).collect()) == Counter(py_right(a, b))
    assert Counter(left.fullOuterJoin(right).collect()) == Counter(py_full(a, b))
    right_keys = {k for k, _ in b}
    assert Counter(left.subtractByKey(right).collect()) == Counter(
        (k, v) for k, v in a if k not in right_keys)
    cogrouped = {k: (sorted(vs), sorted(ws)) for k, (vs, ws) in left.cogroup(right).collect()}
    ga, gb = groups(a), groups(b)
    assert cogrouped == {k: (sorted(ga.get(k, [])), sorted(gb.get(k, [])))
                         for k in set(ga) | set(gb)}
    assert left.join(right).getNumPartitions() == n + m
    assert left.join(right, 2).getNumPartitions() == 2


def test_join_with_none_keys_and_duplicates(sc):
    a = [(None, 1), (None, 2), ("ü", 3), (1, 4)]
    b = [(None, "x"), ("ü", "y"), ("ü", "z"), (2, "w")]
    left, right = sc.parallelize(a, 2), sc.parallelize(b, 3)
    assert sorted(left.join(right).collect(), key=repr) == sorted(py_join(a, b), key=repr)
    assert sorted(left.fullOuterJoin(right).collect(), key=repr) == sorted(py_full(a, b), key=repr)


def test_cogroup_and_group_with_give_result_iterables(sc):
    a = sc.parallelize([(1, "a"), (2, "b")], 2)
    b = sc.parallelize([(1, "x"), (3, "y"), (1, "z")], 2)
    c = sc.parallelize([(3, 0)], 1)
    cogrouped = a.cogroup(b).collect()
    assert all(type(v) is tuple and len(v) == 2 for _, v in cogrouped)
    assert all(isinstance(g, ResultIterable) for _, v in cogrouped for g in v)
    as_lists = {k: tuple(sorted(g) for g in v) for k, v in cogrouped}
    assert as_lists == {1: (["a"], ["x", "z"]), 2: (["b"], []), 3: ([], ["y"])}
    grouped = {k: tuple(sorted(g) for g in v) for k, v in a.groupWith(b, c).collect()}
    assert grouped == {1: (["a"], ["x", "z"], []), 2: (["b"], [], []), 3: ([], ["y"], [0])}
    assert a.groupWith(b, c).getNumPartitions() == 5
    assert a.cogroup(b, 3).getNumPartitions() == 3


def test_join_of_co_partitioned_rdds_keeps_their_partitioning(sc):
    a = sc.parallelize([(k, k) for k in range(30)], 2).partitionBy(4)
    b = sc.parallelize([(k, -k) for k in range(0, 30, 2)], 3).partitionBy(4)
    joined = a.join(b)
    assert joined.getNumPartitions() == 4
    assert joined.partitioner == a.partitioner
    assert sorted(joined.collect()) == [(k, (k, -k)) for k in range(0, 30, 2)]
    for index, part in enumerate(joined.glom().collect()):
        assert all(portable_hash(k) % 4 == index for k, _ in part)


# -- sortByKey ---------------------------------------------------------------------------

@PROPS
@given(keys=st.lists(st.integers(-50, 50), max_size=60), n=slices, out=st.integers(1, 5),
       ascending=st.booleans())
def test_sort_by_key_is_globally_sorted(sc, keys, n, out, ascending):
    data = [(k, i) for i, k in enumerate(keys)]
    result = sc.parallelize(data, n).sortByKey(ascending, out)
    collected = result.collect()
    assert [k for k, _ in collected] == sorted(keys, reverse=not ascending)
    assert Counter(collected) == Counter(data)
    if data:
        assert result.getNumPartitions() == out


def test_sort_by_key_layout_matches_pyspark(sc):
    rdd = sc.parallelize([(i, i) for i in range(20)], 3)
    assert rdd.sortByKey(False, 4).glom().collect() == [
        [(19, 19), (18, 18), (17, 17), (16, 16)],
        [(15, 15), (14, 14), (13, 13), (12, 12), (11, 11)],
        [(10, 10), (9, 9), (8, 8), (7, 7), (6, 6)],
        [(5, 5), (4, 4), (3, 3), (2, 2), (1, 1), (0, 0)]]
    assert rdd.sortByKey().getNumPartitions() == 3
    assert rdd.sortByKey(numPartitions=1).glom().collect() == [[(i, i) for i in range(20)]]


def test_sort_by_key_with_keyfunc(sc):
    words = ["banana", "Apple", "cherry", "apple2", "Banana2", "date", "Cherry2", "elder"]
    rdd = sc.parallelize([(w, len(w)) for w in words], 3)
    ascending = rdd.sortByKey(True, 3, keyfunc=str.lower).keys().collect()
    assert ascending == sorted(words, key=str.lower)
    descending = rdd.sortByKey(False, 2, keyfunc=lambda w: w.lower()).keys().collect()
    assert descending == sorted(words, key=str.lower, reverse=True)
    by_length = rdd.sortByKey(keyfunc=len).keys().collect()
    assert [len(w) for w in by_length] == sorted(len(w) for w in words)
    assert sc.parallelize([("a", 1), ("B", 2), ("c", 3)], 2).sortByKey(
        True, 2, keyfunc=str.lower).collect() == [("a", 1), ("B", 2), ("c", 3)]


def test_sort_by_key_on_empty_and_tiny_inputs(sc):
    assert sc.parallelize([], 3).sortByKey().collect() == []
    assert sc.parallelize([(1, 1)], 3).sortByKey(numPartitions=2).collect() == [(1, 1)]
    strings = [("b", 1), ("a", 2), ("c", 3), ("a", 4)]
    assert [k for k, _ in sc.parallelize(strings, 2).sortByKey().collect()] == ["a", "a", "b", "c"]


# -- default partition counts ------------------------------------------------------------

def test_default_partition_counts_follow_pyspark(sc):
    data = sc.parallelize([(i % 4, i) for i in range(40)], 5)
    other = sc.parallelize([(i % 3, i) for i in range(9)], 2)
    third = sc.parallelize([(1, 1)], 1)
    for derived in (data.reduceByKey(add), data.groupByKey(), data.distinct(),
                    data.combineByKey(lambda v: v, add, add), data.foldByKey(0, add),
                    data.aggregateByKey(0, add, add), data.sortByKey(), data.groupBy(len)):
        assert derived.getNumPartitions() == 5
    for derived in (data.join(other), data.leftOuterJoin(other), data.rightOuterJoin(other),
                    data.fullOuterJoin(other), data.cogroup(other), data.subtractByKey(other),
                    data.intersection(other), data.subtract(other)):
        assert derived.getNumPartitions() == 7
    assert data.groupWith(other, third).getNumPartitions() == 8
    assert data.reduceByKey(add, 2).getNumPartitions() == 2
    assert data.join(other, 6).getNumPartitions() == 6


def test_spark_default_parallelism_decides_reduce_partitions(own_context):
    ctx = own_context("local[2]", spark__default__parallelism="7")
    assert ctx.defaultParallelism == 7
    assert ctx.parallelize(range(20)).getNumPartitions() == 7
    data = ctx.parallelize([(i % 4, i) for i in range(40)], 5)
    other = ctx.parallelize([(i % 3, i) for i in range(9)], 2)
    for derived in (data.reduceByKey(add), data.groupByKey(), data.distinct(), data.sortByKey(),
                    data.join(other), data.cogroup(other), data.leftOuterJoin(other)):
        assert derived.getNumPartitions() == 7
    assert data.reduceByKey(add, 3).getNumPartitions() == 3
    assert sorted(data.reduceByKey(add).collect()) == [
        (k, sum(i for i in range(40) if i % 4 == k)) for k in range(4)]
    assert sorted(data.join(other).collect()) == sorted(
        (k, (v, w)) for k, v in [(i % 4, i) for i in range(40)]
        for k2, w in [(i % 3, i) for i in range(9)] if k == k2)


# -- shapes of keys and values -----------------------------------------------------------

def test_none_unicode_and_bytes_keys(sc):
    data = [(None, 1), (None, 2), ("ünïcødé", 3), ("😀", 4), ("😀", 5), (b"\x00\xff", 6),
            (b"\x00\xff", 7), ("", 8), (b"", 9), ("日本語", 10), (b"\xe6\x97\xa5", 11)]
    rdd = sc.parallelize(data, 3)
    expected = {k: sum(v) for k, v in groups(data).items()}
    result = rdd.reduceByKey(add).collect()
    assert len(result) == len(expected) and dict(result) == expected
    assert as_dict_of_sorted(rdd.groupByKey(4).mapValues(list)) == {
        k: sorted(v) for k, v in groups(data).items()}
    partitioned = rdd.partitionBy(5)
    for key, values in groups(data).items():
        assert sorted(partitioned.lookup(key)) == sorted(values)
        assert sorted(rdd.lookup(key)) == sorted(values)


def test_equal_int_float_and_bool_keys_group_together(sc):
    data = [(1, "a"), (1.0, "b"), (True, "c"), (2, "d"), (2.0, "e"), (0, "f"), (False, "g"),
            (0.0, "h"), (2 ** 70, "i"), (float(2 ** 70), "j")]
    rdd = sc.parallelize(data, 4)
    grouped = as_dict_of_sorted(rdd.groupByKey().mapValues(list))
    assert grouped == {1: ["a", "b", "c"], 2: ["d", "e"], 0: ["f", "g", "h"], 2 ** 70: ["i", "j"]}
    assert dict(rdd.mapValues(lambda _: 1).reduceByKey(add).collect()) == {1: 3, 2: 2, 0: 3, 2 ** 70: 2}
    assert sorted(sc.parallelize([1, 1.0, True, 2, 2.0], 3).distinct().collect()) == [1, 2]
    joined = rdd.join(sc.parallelize([(1.0, "x")], 1)).values().collect()
    assert sorted(joined) == [("a", "x"), ("b", "x"), ("c", "x")]


def test_nested_tuples_stay_tuples_through_every_path(sc):
    data = [((1, ("a", 2)), (3, (4.5, None), [5, (6,)])),
            ((1, ("a", 2)), (7, (8.0, "z"), [])),
            (("k",), ((), [(), [()]], {"d": (1, 2)}))]
    rdd = sc.parallelize(data, 2)
    assert canon(rdd.collect()) == canon(data)
    assert canon(rdd.map(lambda kv: kv).collect()) == canon(data)
    grouped = {k: list(v) for k, v in rdd.groupByKey().collect()}
    assert canon(sorted(grouped.items(), key=repr)) == canon(sorted(groups(data).items(), key=repr))
    assert canon(sorted(rdd.partitionBy(3).collect(), key=repr)) == canon(sorted(data, key=repr))
    joined = rdd.join(sc.parallelize([((1, ("a", 2)), ("w", 1))], 1)).collect()
    assert canon(sorted(joined, key=repr)) == canon(sorted(
        [((1, ("a", 2)), (v, ("w", 1))) for k, v in data if k == (1, ("a", 2))], key=repr))
    triples = [(1, 2, 3), (4, (5, 6), 7)]
    assert canon(sc.parallelize(triples, 2).collect()) == canon(triples)
    cached = rdd.cache()
    assert canon(cached.collect()) == canon(data)
    assert canon(cached.collect()) == canon(data)
    cached.unpersist()


def test_large_ints_as_keys_and_values(sc):
    big = [2 ** 64, 2 ** 100, -(2 ** 70), 2 ** 63, -(2 ** 63) - 1, 10 ** 30]
    data = [(k, k * 3) for k in big] + [(k, 1) for k in big]
    rdd = sc.parallelize(data, 3)
    result = rdd.reduceByKey(add).collect()
    assert dict(result) == {k: k * 3 + 1 for k in big}
    assert all(type(k) is int and type(v) is int for k, v in result)
    assert rdd.values().sum() == sum(v for _, v in data)
    assert sorted(rdd.keys().distinct().collect()) == sorted(big)
    assert [k for k, _ in rdd.sortByKey().collect()] == sorted(k for k, _ in data)


def test_lists_sets_and_dicts_as_values(sc):
    data = [("a", [1, 2]), ("b", {1, 2}), ("c", frozenset({"x"})), ("d", {"k": [1, (2, 3)]}),
            ("e", {1: "int key", (1, 2): "tuple key"}), ("f", OrderedDict([("z", 1), ("y", 2)])),
            ("a", [3]), ("h", {None: {True: 1.5}})]
    rdd = sc.parallelize(data, 3)
    assert canon(rdd.collect()) == canon(data)
    grouped = dict(rdd.groupByKey().mapValues(list).collect())
    assert canon(sorted(grouped.items(), key=repr)) == canon(sorted(groups(data).items(), key=repr))
    lists = sc.parallelize([(k % 3, [k]) for k in range(12)], 4).reduceByKey(add).collect()
    assert {k: sorted(v) for k, v in lists} == {k: [x for x in range(12) if x % 3 == k] for k in range(3)}
    assert all(type(v) is list for _, v in lists)


def test_bytearray_values_stay_bytearray(sc):
    data = [("g", bytearray(b"ab")), ("h", bytearray())]
    assert canon(sc.parallelize(data, 2).collect()) == canon(data)
    assert canon(sc.parallelize([bytearray(b"x")], 1).collect()) == canon([bytearray(b"x")])
    nested = [[1, {"k": bytearray(b"\xc4")}], [b"bytes stay bytes"]]
    assert canon(sc.parallelize(nested, 2).collect()) == canon(nested)
    summed = dict(sc.parallelize(data + [("g", bytearray(b"c"))], 2).reduceByKey(add).collect())
    assert summed == {"g": bytearray(b"abc"), "h": bytearray()}
    assert all(type(v) is bytearray for v in summed.values())


def test_user_classes_as_keys_and_values(sc):
    data = [(Point(1, 2), Point(0, 0)), (Point(1, 2), Point(5, 6)), (Point(-1, 3), Point(7, 7))]
    rdd = sc.parallelize(data, 3)
    assert rdd.collect() == data
    assert all(type(v) is Point for v in rdd.values().collect())
    grouped = {k: sorted(v, key=repr) for k, v in rdd.groupByKey().collect()}
    assert grouped == {Point(1, 2): [Point(0, 0), Point(5, 6)], Point(-1, 3): [Point(7, 7)]}
    moved = rdd.mapValues(lambda p: Point(p.x + 1, p.y)).reduceByKey(
        lambda a, b: Point(a.x + b.x, a.y + b.y)).collectAsMap()
    assert moved == {Point(1, 2): Point(7, 6), Point(-1, 3): Point(8, 7)}


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=5), st.binary(max_size=5))
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.tuples(children, children),
        st.dictionaries(st.one_of(st.text(max_size=3), st.integers(), st.tuples(st.integers())),
                        children, max_size=3),
        st.frozensets(st.integers(), max_size=3)),
    max_leaves=8)


@PROPS
@given(data=st.lists(values, max_size=20), n=slices)
def test_any_value_round_trips_with_its_exact_types(sc, data, n):
    rdd = sc.parallelize(data, n)
    assert canon(rdd.collect()) == canon(data)
    keyed = sc.parallelize(list(enumerate(data)), n)
    assert canon(sorted(keyed.partitionBy(3).collect(), key=lambda kv: kv[0])) == canon(
        list(enumerate(data)))
    grouped = keyed.map(lambda kv: (kv[0] % 3, kv)).groupByKey().mapValues(
        lambda kvs: sorted(kvs, key=lambda kv: kv[0])).collectAsMap()
    assert canon(grouped) == canon({k: [(i, v) for i, v in enumerate(data) if i % 3 == k]
                                    for k in {i % 3 for i in range(len(data))}})
