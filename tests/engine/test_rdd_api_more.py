"""The rest of PySpark's RDD API on real executor processes: zip,
toLocalIterator, sampling, statistics, histogram, approximate actions,
pipe, tree aggregation, job groups, shuffle cleanup, barrier/resources,
and local checkpoints.

Literal expected values were observed with PySpark 4.3 (local[2]) running
the same program; sampling with a seed matches PySpark's records exactly
because the partition layout and the per-partition random streams are the
same.
"""
from __future__ import annotations

import math
import random
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

import psutil
import pytest

from sluicegate.common import hyperloglog as hll
from sluicegate.common.statcounter import StatCounter
from sluicegate.driver import AccumulatorParam, JobFailedError, TaskContext
from sluicegate.driver.cluster.loop_events import Inspect
from sluicegate.driver.rdd.approx import BoundedFloat, student_t_quantile

from conftest import executor_processes
from waiting import wait_until


class SetParam(AccumulatorParam):
    """Collects values into a set (which partitions ran)."""

    def zero(self, value):
        return set()

    def addInPlace(self, value1, value2):
        value1 |= value2
        return value1


def partitions_seen(sc):
    acc = sc.accumulator(set(), SetParam())

    def note(index, iterator):
        acc.add({index})
        return iterator

    return acc, note


# -- zip and toLocalIterator ------------------------------------------------------------------

def test_zip_pairs_the_ith_elements(sc):
    left = sc.parallelize(range(5), 2)
    zipped = left.zip(sc.parallelize(range(100, 105), 2))
    assert zipped.collect() == [(0, 100), (1, 101), (2, 102), (3, 103), (4, 104)]  # PySpark
    assert zipped.getNumPartitions() == 2
    assert left.zip(left.map(str)).collect() == [(i, str(i)) for i in range(5)]
    # Both sides can come out of shuffles; each task reads the matching partitions.
    counts = sc.parallelize("a b a c b a".split(), 3).map(lambda w: (w, 1)).reduceByKey(
        lambda a, b: a + b, 2)
    assert sorted(counts.keys().zip(counts.values()).collect()) == [("a", 3), ("b", 2), ("c", 1)]
    big = sc.parallelize(range(10_000), 4)
    assert big.zip(big.map(lambda x: -x)).map(lambda p: p[0] + p[1]).sum() == 0


def test_zip_refuses_mismatched_rdds(sc):
    with pytest.raises(ValueError, match="Can only zip with RDD which has the same number of "
                                         "partitions"):
        sc.parallelize(range(5), 2).zip(sc.parallelize(range(5), 3))
    with pytest.raises(JobFailedError, match="Can only zip RDDs with same number of elements in "
                                             "each partition"):
        sc.parallelize(range(5), 2).zip(sc.parallelize(range(6), 2)).collect()
    with pytest.raises(JobFailedError, match="same number of elements"):
        sc.parallelize(range(6), 2).zip(sc.parallelize(range(5), 2)).collect()


def test_to_local_iterator_fetches_one_partition_at_a_time(sc):
    acc, note = partitions_seen(sc)
    rdd = sc.parallelize(range(10), 3).mapPartitionsWithIndex(note)
    iterator = rdd.toLocalIterator()
    assert type(iterator).__name__ == "generator"  # as PySpark
    assert acc.value == set()  # nothing runs before the first element is asked for
    assert next(iterator) == 0
    assert acc.value == {0}
    assert list(iterator) == list(range(1, 10))
    assert acc.value == {0, 1, 2}
    assert list(sc.parallelize(range(10), 3).toLocalIterator()) == list(range(10))
    assert list(sc.emptyRDD().toLocalIterator()) == []
    assert list(sc.parallelize([], 4).toLocalIterator(prefetchPartitions=True)) == []


def test_to_local_iterator_with_prefetch_runs_at_most_one_partition_ahead(sc):
    acc, note = partitions_seen(sc)
    rdd = sc.parallelize(range(12), 4).mapPartitionsWithIndex(note)
    iterator = rdd.toLocalIterator(prefetchPartitions=True)
    assert next(iterator) == 0
    assert acc.value <= {0, 1}
    assert [0] + list(iterator) == list(range(12))
    assert acc.value == {0, 1, 2, 3}
    shuffled = sc.parallelize(range(30), 3).map(lambda x: (x % 4, x)).groupByKey(4).mapValues(sum)
    assert sorted(shuffled.toLocalIterator(True)) == sorted(shuffled.collect())


def test_to_local_iterator_reports_an_unpicklable_function_at_the_call(sc):
    lock = threading.Lock()
    with pytest.raises(Exception, match="(?i)serialize|pickle"):
        sc.parallelize(range(3)).map(lambda x: (lock, x)).toLocalIterator()


# -- sampling ---------------------------------------------------------------------------------

def test_seeded_sample_keeps_the_records_pyspark_keeps(sc):
    rdd = sc.parallelize(range(1000), 10)
    assert rdd.sample(False, 0.01, 3).collect() == [172, 213, 299, 329, 615, 730, 821, 867,
                                                   880, 920, 966, 994]
    assert rdd.sample(True, 0.01, 3).collect() == [0, 42, 71, 100, 123, 172, 383, 561, 744, 793,
                                                  866, 870, 872, 904, 999]
    # A large mean takes the other Poisson branch (exponential gaps).
    assert sc.parallelize(range(5), 2).sample(True, 25.0, 3).count() == 97
    with pytest.raises(ValueError, match="Fraction must be nonnegative"):
        rdd.sample(False, -0.1)


def test_sample_without_a_seed_is_fixed_once_made(sc):
    sampled = sc.parallelize(range(2000), 4).sample(False, 0.5)
    first = sampled.collect()
    assert sampled.collect() == first  # the seed is drawn once, on the driver
    assert 800 < len(first) < 1200


def test_take_sample_sizes_and_pyspark_seeds(sc):
    rdd = sc.parallelize(range(1000), 10)
    assert rdd.takeSample(False, 5, 7) == [368, 215, 912, 330, 310]  # PySpark
    assert rdd.takeSample(True, 5, 7) == [455, 572, 271, 938, 963]  # PySpark
    everything = rdd.takeSample(False, 2000, 1)
    assert len(everything) == 1000 and sorted(everything) == list(range(1000))
    assert everything != list(range(1000))  # shuffled
    with_replacement = rdd.takeSample(True, 2000, 1)
    assert len(with_replacement) == 2000 and set(with_replacement) <= set(range(1000))
    for num in (1, 17, 999):
        picked = rdd.takeSample(False, num)
        assert len(picked) == num and len(set(picked)) == num
    assert rdd.takeSample(False, 0, 1) == []
    assert sc.parallelize([], 2).takeSample(False, 3, 1) == []
    assert sc.emptyRDD().takeSample(True, 3) == []
    with pytest.raises(ValueError, match="Sample size cannot be negative."):
        rdd.takeSample(False, -1)
    with pytest.raises(ValueError, match="Sample size cannot be greater than"):
        rdd.takeSample(False, 2 ** 63)


def test_take_sample_is_uniform(sc):
    rdd = sc.parallelize(range(10), 3)
    counts = Counter(x for seed in range(400) for x in rdd.takeSample(False, 3, seed))
    # 1,200 picks over 10 values: each near 120 (a 6-sigma band, seeds fixed: deterministic).
    assert set(counts) == set(range(10))
    assert all(60 < n < 180 for n in counts.values()), counts


def test_random_split_is_disjoint_and_complete(sc):
    parts = sc.parallelize(range(20), 2).randomSplit([1, 2], 17)
    assert [p.collect() for p in parts] == [[7, 9, 10, 11, 12, 17, 18],  # PySpark
                                            [0, 1, 2, 3, 4, 5, 6, 8, 13, 14, 15, 16, 19]]
    data = sc.parallelize(range(10_000), 4)
    for weights in ([0.5, 0.5], [1, 2, 3, 4], [0, 1, 0], [3, 0], [0.1] * 10):
        splits = [s.collect() for s in data.randomSplit(weights, 11)]
        together = [x for s in splits for x in s]
        assert sorted(together) == list(range(10_000)), weights  # every record exactly once
        total = sum(weights)
        for s, w in zip(splits, weights):
            assert abs(len(s) - 10_000 * w / total) < 300, (weights, [len(x) for x in splits])
    with pytest.raises(ValueError, match="Weights must be nonnegative"):
        data.randomSplit([1, -1])
    with pytest.raises(ValueError, match="Sum of weights must be positive"):
        data.randomSplit([0, 0])


def test_sample_by_key_uses_each_keys_rate(sc):
    pairs = sc.parallelize([(k, i) for k in "ab" for i in range(20)], 2)
    fractions = {"a": 0.2, "b": 0.5}
    assert pairs.sampleByKey(False, fractions, 2).collect() == [  # PySpark
        ("a", 15), ("a", 16), ("a", 18), ("a", 19),
        ("b", 1), ("b", 3), ("b", 5), ("b", 11), ("b", 14), ("b", 15), ("b", 17)]
    assert pairs.sampleByKey(True, fractions, 2).collect() == [  # PySpark
        ("a", 0), ("a", 2), ("a", 4), ("a", 5), ("a", 7), ("a", 7), ("a", 8), ("a", 17),
        ("b", 0), ("b", 1), ("b", 2), ("b", 3), ("b", 5), ("b", 7), ("b", 10), ("b", 11),
        ("b", 11), ("b", 12), ("b", 13), ("b", 14), ("b", 14), ("b", 17), ("b", 18)]
    many = sc.parallelize([(k, i) for k in "xy" for i in range(5000)], 4)
    counts = Counter(k for k, _ in many.sampleByKey(False, {"x": 0.1, "y": 0.6}).collect())
    assert 400 < counts["x"] < 600 and 2800 < counts["y"] < 3200
    with pytest.raises(AssertionError, match="Negative fraction value: -1"):
        pairs.sampleByKey(False, {"a": -1}, 2)
    with pytest.raises(JobFailedError, match="key 'b' has no sampling rate"):
        pairs.sampleByKey(False, {"a": 0.5}, 2).collect()


# -- statistics -------------------------------------------------------------------------------

def test_stats_and_its_shortcuts(sc):
    stats = sc.parallelize([1.0, 2.0, 3.0, 4.0]).stats()
    assert isinstance(stats, StatCounter)
    assert repr(stats) == "(count: 4, mean: 2.5, stdev: 1.118033988749895, max: 4.0, min: 1.0)"
    assert stats.asDict() == {"count": 4, "mean": 2.5, "sum": 10.0, "min": 1.0, "max": 4.0,
                              "stdev": 1.2909944487358056, "variance": 1.6666666666666667}
    assert stats.asDict(sample=True)["variance"] == 1.25
    three = sc.parallelize([1, 2, 3], 2)
    assert three.variance() == pytest.approx(2 / 3)
    assert three.sampleVariance() == 1.0 and three.sampleStdev() == 1.0
    assert three.stdev() == pytest.approx(math.sqrt(2 / 3))
    assert three.mean() == 2.0 and isinstance(three.mean(), float)
    one = sc.parallelize([5])
    assert one.variance() == 0.0 and one.stdev() == 0.0
    assert math.isnan(one.sampleVariance()) and math.isnan(one.sampleStdev())
    assert sc.parallelize([1, 2], 2).stats().max() == 2  # ints stay ints, as in PySpark
    empty = sc.parallelize([], 2)
    assert empty.mean() == 0.0 and empty.stats().count() == 0
    assert math.isnan(empty.variance())
    with pytest.raises(ValueError, match=r"Can not reduce\(\) empty RDD"):
        sc.emptyRDD().stats()
    with pytest.raises(ValueError, match=r"Can not reduce\(\) empty RDD"):
        sc.emptyRDD().mean()


def test_stats_merges_partitions_like_pyspark(sc):
    """Per-partition counters merged in partition order: the same floats as
    PySpark's StatCounter (checked against it when PySpark is installed)."""
    rng = random.Random(5)
    data = [rng.uniform(-1e6, 1e6) for _ in range(3000)] + [rng.random() for _ in range(10)]
    slices = 7
    got = sc.parallelize(data, slices).stats()
    parts = sc.parallelize(data, slices).glom().collect()
    expected = StatCounter(parts[0])
    for part in parts[1:]:
        expected.mergeStats(StatCounter(part))
    assert (got.count(), got.mean(), got.variance(), got.max(), got.min()) == (
        expected.count(), expected.mean(), expected.variance(), expected.max(), expected.min())
    pyspark_statcounter = pytest.importorskip("pyspark.statcounter")
    theirs = pyspark_statcounter.StatCounter(parts[0])
    for part in parts[1:]:
        theirs.mergeStats(pyspark_statcounter.StatCounter(part))
    assert repr(got) == repr(theirs)
    assert got.asDict() == theirs.asDict() and got.sampleStdev() == theirs.sampleStdev()


def test_stat_counter_api():
    s = StatCounter([1, 2, 3])
    assert repr(s.copy().merge(10)) == ("(count: 4, mean: 4.0, stdev: 3.5355339059327378, "
                                        "max: 10, min: 1)")  # PySpark
    assert s.count() == 3  # copy() left s alone
    assert repr(s.mergeStats(s)) == ("(count: 6, mean: 2.0, stdev: 0.816496580927726, "
                                     "max: 3, min: 1)")
    with pytest.raises(TypeError, match="Can only merge StatCounter but got <class 'int'>"):
        s.mergeStats(5)
    empty = StatCounter()
    assert repr(empty) == "(count: 0, mean: 0.0, stdev: nan, max: -inf, min: inf)"
    assert empty.sum() == 0.0 and empty.mean() == 0.0
    d = empty.asDict()
    assert (d["count"], d["mean"], d["sum"], d["min"], d["max"]) == (0, 0.0, 0.0, math.inf,
                                                                     -math.inf)
    assert math.isnan(d["stdev"]) and math.isnan(d["variance"])
    assert StatCounter().mergeStats(StatCounter([4.0])).asDict(sample=True)["max"] == 4.0
    from sluicegate.driver.statcounter import StatCounter as mirrored  # pyspark.statcounter's path
    assert mirrored is StatCounter


@pytest.mark.parametrize("data, slices, buckets, expected", [  # all as PySpark 4.3 answers
    (list(range(51)), 2, 2, ([0, 25, 50], [25, 26])),
    (list(range(51)), 2, [0, 5, 25, 50], ([0, 5, 25, 50], [5, 20, 26])),
    (list(range(51)), 2, [0, 15, 30, 45, 60], ([0, 15, 30, 45, 60], [15, 15, 15, 6])),
    (["ab", "ac", "b", "bd", "ef"], 2, ("a", "b", "c"), (("a", "b", "c"), [2, 2])),
    ([], 2, [1, 2], ([1, 2], [0])),
    ([3, 3, 3], 2, 4, ([3, 3], [3])),
    ([1, 2, 3], 2, 1, ([1, 3], [3])),
    ([1.0, float("nan"), None, 2.0, 3.0], 2, 2, ([1.0, 2.0, 3.0], [1, 2])),
    ([1.0, 2.5, 3.3, 7.1], 2, 3, ([1.0, 3.033333333333333, 5.066666666666666, 7.1], [2, 1, 1])),
    (list(range(10)), 2, 3, ([0, 3, 6, 9], [3, 3, 4])),
    ([-1, 0, 10, 11, 5, 10.0], 2, [0, 5, 10], ([0, 5, 10], [1, 3])),
    ([0, 1, 2, 3, 9, 10], 2, [0, 1, 3, 10], ([0, 1, 3, 10], [1, 2, 3])),
    ([0.0, 0.1, 0.2, 0.3], 2, [0.0, 0.1, 0.2, 0.3], ([0.0, 0.1, 0.2, 0.3], [1, 1, 2])),
    (list(range(10)), 2, (0, 5, 10), ((0, 5, 10), [5, 5])),
    (list(range(10)), 2, True, ([0, 9], [10])),
])
def test_histogram_matches_pyspark(sc, data, slices, buckets, expected):
    result = sc.parallelize(data, slices).histogram(buckets)
    assert result == expected
    assert type(result[0]) is type(expected[0])


@pytest.mark.parametrize("data, buckets, error, message", [  # PySpark's errors
    (range(51), 0, ValueError, "number of buckets must be >= 1"),
    (range(51), [1], ValueError, "buckets should have more than one value"),
    (range(51), [3, 1, 2], ValueError, "buckets should be sorted"),
    (range(51), [1, 1, 2], ValueError, "buckets should not contain duplicated values"),
    (range(51), [1, None, 2], ValueError, "can not have None or NaN in buckets"),
    (range(51), [1, float("nan")], ValueError, "can not have None or NaN in buckets"),
    (range(51), "abc", TypeError, r"buckets should be a list or tuple or number\(int or long\)"),
    (range(51), 2.0, TypeError, r"buckets should be a list or tuple or number"),
    ([], 3, ValueError, r"Can not reduce\(\) empty RDD"),
    (["ab", "b"], 2, TypeError, "Can not generate buckets with non-number in RDD"),
    ([1.0, float("inf")], 2, ValueError, "Can not generate buckets with infinite value"),
    ([1.0, float("-inf"), float("inf")], 2, ValueError, "infinite value"),
])
def test_histogram_errors_match_pyspark(sc, data, buckets, error, message):
    with pytest.raises(error, match=message):
        sc.parallelize(list(data), 2).histogram(buckets)


# -- approximate actions ---------------------------------------------------------------------

def test_approximate_actions_that_finish_in_time_are_exact(sc):
    rdd = sc.parallelize(range(1000), 10)
    assert rdd.countApprox(60_000, 1.0) == 1000 and rdd.countApprox(60_000) == 1000
    total = rdd.sumApprox(60_000)
    assert isinstance(total, BoundedFloat) and isinstance(total, float)
    assert (total, total.confidence, total.low, total.high) == (499500.0, 1.0, 499500.0, 499500.0)
    mean = rdd.meanApprox(60_000, 0.9)
    assert (mean, mean.confidence, mean.low, mean.high) == (499.5, 1.0, 499.5, 499.5)
    empty = sc.parallelize([], 2)
    assert empty.countApprox(60_000) == 0
    s, m = empty.sumApprox(60_000), empty.meanApprox(60_000)
    assert (s, s.confidence, s.low, s.high) == (0.0, 1.0, 0.0, 0.0)  # PySpark
    assert (m, m.confidence, m.low, m.high) == (0.0, 1.0, 0.0, 0.0)  # PySpark
    assert BoundedFloat(100.0, 0.95, 95.0, 105.0) == 100.0
    with pytest.raises(ValueError, match="confidence"):
        rdd.countApprox(1000, 1.5)
    with pytest.raises(ValueError, match="timeout"):
        rdd.sumApprox(-1)


def test_approximate_actions_answer_at_the_timeout_with_bounds(sc, tmp_path):
    """The last partition is held until the answer is in: the estimate comes
    from the other nine, with an interval around it."""

    def held_back(flag: Path):
        def hold_last(index, iterator):
            if index == 9:
                deadline = time.monotonic() + 120
                while not flag.exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
            return iterator
        return hold_last

    def approx(call, name):
        flag = tmp_path / name
        rdd = sc.parallelize(range(1000), 10).mapPartitionsWithIndex(held_back(flag))
        try:
            return call(rdd)
        finally:
            flag.touch()

    # Equal partitions: any number of finished ones scales up to the exact count.
    assert approx(lambda r: r.countApprox(4000), "count") == 1000
    total = approx(lambda r: r.sumApprox(4000, 0.9), "sum")
    assert total.confidence == 0.9 and total.low < total < total.high
    assert total != 499500.0
    mean = approx(lambda r: r.meanApprox(4000), "mean")
    assert mean.confidence == 0.95 and mean.low < mean < mean.high
    assert mean != 499.5
    assert sc.parallelize(range(10), 2).sum() == 45  # the held jobs were released


def test_student_t_quantiles():
    for dof, expected in ((1, 12.706204736), (2, 4.302652730), (9, 2.262157163),
                          (30, 2.042272456), (99, 1.984216952)):
        assert student_t_quantile(dof, 0.975) == pytest.approx(expected, abs=1e-8)
    assert student_t_quantile(5, 0.025) == pytest.approx(-2.570581836, abs=1e-8)


def test_count_approx_distinct(sc):
    assert 900 < sc.parallelize(range(1000)).map(str).countApproxDistinct() < 1100  # PySpark doc
    assert 16 < sc.parallelize([i % 20 for i in range(1000)]).countApproxDistinct() < 24
    assert sc.parallelize([], 3).countApproxDistinct() == 0
    assert sc.parallelize([1, 1.0, True, "1", b"1"], 2).countApproxDistinct(0.01) == 3
    exact = 100_000
    estimate = sc.parallelize(range(exact), 4).countApproxDistinct(0.01)
    assert abs(estimate - exact) / exact < 0.03  # 3 relative SDs
    # Sparse registers (p > 16) for a tiny relativeSD
    pairs = sc.parallelize(range(20_000), 3).map(lambda x: (x, str(x)))
    estimate = pairs.countApproxDistinct(0.001)
    assert abs(estimate - 20_000) / 20_000 < 0.003
    with pytest.raises(ValueError, match="relativeSD should be greater than 0.000017"):
        sc.parallelize(range(10)).countApproxDistinct(0.00001)
    with pytest.raises(ValueError, match="too large"):
        sc.parallelize(range(10)).countApproxDistinct(0.5)


def test_hyperloglog_error_is_within_the_stated_relative_sd():
    """Over many data sets the estimate's relative error has a standard
    deviation no larger than relativeSD, and no bias, across the range."""
    for relative_sd, n in ((0.05, 300), (0.05, 3000), (0.05, 30_000), (0.02, 20_000)):
        p = hll.precision_for(relative_sd)
        errors = []
        for trial in range(40):
            sketch = hll.SketchPartition(p)(f"{trial}-{i}" for i in range(n))
            errors.append(hll.estimate(p, hll.merge_registers(p, sketch)) / n - 1)
        rms = math.sqrt(sum(e * e for e in errors) / len(errors))
        bias = sum(errors) / len(errors)
        assert rms < relative_sd, (relative_sd, n, rms)
        assert abs(bias) < 3 * relative_sd / math.sqrt(len(errors)) + 0.002, (relative_sd, n, bias)
    assert hll.precision_for(0.05) == 9 and hll.precision_for(0.000017) == 32


# -- pipe ---------------------------------------------------------------------------------------

def test_pipe_as_pyspark(sc):
    assert sc.parallelize(["1", "2", "", "3"]).pipe("cat").collect() == ["1", "2", "", "3"]
    assert sc.parallelize(["a\n", "b\nc", 1, None], 2).pipe("cat").collect() == [
        "a", "b", "c", "1", "None"]
    assert sc.parallelize(["x"], 1).pipe('sh -c "echo $FOO; cat"', env={"FOO": "bar"}).collect() \
        == ["bar", "x"]
    # Without env the command gets an empty environment, as in PySpark.
    assert sc.parallelize(["x"], 1).pipe('sh -c "echo ${HOME:-none}"').collect() == ["none"]
    assert sc.parallelize(["x"], 3).pipe("echo hi").collect() == ["hi", "hi", "hi"]
    assert sc.parallelize(["x"], 1).pipe('sh -c "exit 3"').collect() == []
    with pytest.raises(JobFailedError, match=r"Pipe function `sh -c \"exit 3\"` exited with "
                                             r"error code 3\."):
        sc.parallelize(["x"], 1).pipe('sh -c "exit 3"', checkCode=True).collect()
    lines = sc.parallelize(range(20_000), 2).pipe("sort -n -r").collect()
    assert lines[:2] == ["9999", "9998"] and len(lines) == 20_000
    with pytest.raises(TypeError, match="command as a str"):
        sc.parallelize([1]).pipe(["cat"])


def test_pipe_fails_the_task_when_its_input_fails(sc):
    def bad(x):
        if x == 7:
            raise ValueError("bad record 7")
        return x

    with pytest.raises(JobFailedError, match="bad record 7"):
        sc.parallelize(range(10), 2).map(bad).pipe("cat").collect()


def test_functions_upstream_of_a_pipe_see_their_task_context(sc):
    def tagged(x):
        return f"{TaskContext.get().partitionId()}:{x}"

    assert sc.parallelize(range(4), 2).map(tagged).pipe("cat").collect() == [
        "0:0", "0:1", "1:2", "1:3"]


def test_pipe_stops_the_command_when_the_task_stops_reading(sc):
    assert sc.parallelize(["x"], 1).pipe("yes").take(3) == ["y", "y", "y"]

    def running_yes():
        found = []
        for executor in executor_processes():
            try:
                found += [c for c in executor.children(recursive=True) if c.name() == "yes"]
            except psutil.NoSuchProcess:
                continue
        return found

    try:
        wait_until(lambda: not running_yes(), 30, "the piped command to be stopped")
    finally:
        for proc in running_yes():
            proc.kill()


# -- tree aggregation, job groups, shuffle cleanup ------------------------------------------

def test_tree_aggregate_and_tree_reduce(sc):
    add = lambda a, b: a + b  # noqa: E731
    rdd = sc.parallelize([-5, -4, -3, -2, -1, 1, 2, 3, 4], 10)
    for depth in (1, 2, 5, 10):
        assert rdd.treeAggregate(0, add, add, depth) == -5
        assert rdd.treeReduce(add, depth) == -5
    many = sc.parallelize(range(10_000), 40)
    assert many.treeAggregate((0, 0), lambda acc, x: (acc[0] + x, acc[1] + 1),
                              lambda a, b: (a[0] + b[0], a[1] + b[1]), 2) == (49995000, 10_000)
    assert many.treeReduce(max, 3) == 9999
    assert sorted(many.treeAggregate([], lambda acc, x: acc + [x] if x % 1000 == 0 else acc,
                                     lambda a, b: a + b)) == list(range(0, 10_000, 1000))
    # PySpark: the zero is not folded in again at the end (3 empty partitions: 5+5+5)
    assert sc.parallelize([], 3).treeAggregate(5, add, add) == 15
    assert sc.emptyRDD().treeAggregate(5, add, add) == 5
    with pytest.raises(ValueError, match="Cannot reduce empty RDD."):
        sc.parallelize([], 2).treeReduce(add)
    with pytest.raises(ValueError, match="Depth cannot be smaller than 1 but got 0."):
        rdd.treeAggregate(0, add, add, 0)
    with pytest.raises(ValueError, match="Depth cannot be smaller than 1 but got 0."):
        rdd.treeReduce(add, 0)


def test_collect_with_job_group(sc):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert sc.parallelize(range(4), 2).collectWithJobGroup("g-1", "desc") == [0, 1, 2, 3]
    assert [w.category for w in caught] == [FutureWarning]
    assert sc.getLocalProperty("spark.jobGroup.id") == "g-1"
    assert sc.getLocalProperty("spark.job.description") == "desc"
    assert len(sc.statusTracker().getJobIdsForGroup("g-1")) == 1  # the collect ran in the group


def test_clean_shuffle_dependencies_makes_the_next_job_recompute_the_shuffle(sc):
    map_side = sc.accumulator(0)

    def counted(x):
        map_side.add(1)
        return x % 3, x

    sums = sc.parallelize(range(30), 3).map(counted).reduceByKey(lambda a, b: a + b)
    expected = {k: sum(range(k, 30, 3)) for k in range(3)}
    assert dict(sums.collect()) == expected
    assert dict(sums.collect()) == expected
    assert map_side.value == 30  # the second job reused the shuffle output
    dep = sums.dependencies[0]
    sums.cleanShuffleDependencies(blocking=True)
    runtime = sc._runtime
    assert not runtime.endpoint.call(
        Inspect(lambda: runtime.dag.map_outputs.is_available(dep.shuffle_id)))
    assert dict(sums.collect()) == expected
    assert map_side.value == 60  # the shuffle was computed again
    # A persisted RDD shields the shuffles behind it.
    cached = sums.mapValues(lambda v: v * 2).cache()
    cached.count()
    on_top = cached.map(lambda kv: (kv[0], 1)).reduceByKey(lambda a, b: a + b)
    on_top.collect()
    before = map_side.value
    on_top.cleanShuffleDependencies(blocking=True)
    assert sorted(on_top.collect()) == [(0, 1), (1, 1), (2, 1)]
    assert map_side.value == before  # sums' shuffle was kept: the cache sat in front of it


# -- barrier, resources, attributes -------------------------------------------------------

def test_barrier_and_resource_profiles(sc):
    rdd = sc.parallelize(range(4), 2)
    barrier = rdd.barrier()
    assert type(barrier).__name__ == "RDDBarrier"
    assert barrier.mapPartitions(lambda it: [sum(it)]).collect() == [1, 5]  # PySpark
    assert barrier.mapPartitionsWithIndex(lambda i, it: [(i, sum(it))]).collect() == [
        (0, 1), (1, 5)]
    assert rdd.getResourceProfile() is None and rdd.has_resource_profile is False
    profile = object()
    assert rdd.withResources(profile) is rdd
    assert rdd.getResourceProfile() is profile and rdd.has_resource_profile is True
    assert rdd.sum() == 6


def test_pyspark_attributes_and_small_methods(sc):
    rdd = sc.parallelize([1])
    assert (rdd.is_cached, rdd.is_checkpointed, rdd.has_resource_profile) == (False, False, False)
    assert sc.parallelize(list("abcde"), 3).zipWithUniqueId().collect() == [  # PySpark
        ("a", 0), ("b", 1), ("c", 4), ("d", 2), ("e", 5)]
    assert sc.parallelize([1.0, 5.0, 43.0, 10.0]).max(key=str) == 5.0
    assert sc.parallelize([2.0, 5.0, 43.0, 10.0]).min(key=str) == 10.0


def test_every_public_rdd_method_of_pyspark_exists():
    pyspark = pytest.importorskip("pyspark")
    from sluicegate.driver.rdd import RDD

    theirs = {n for n in dir(pyspark.RDD) if not n.startswith("_")}
    ours = {n for n in dir(RDD) if not n.startswith("_")}
    assert theirs - ours <= {"toDF"}  # toDF belongs to the SQL layer


# -- checkpoints -------------------------------------------------------------------------------

def test_checkpoint_file_is_a_file_uri(sc, tmp_path):
    sc.setCheckpointDir(str(tmp_path))
    rdd = sc.parallelize(range(10), 2).map(lambda x: x + 1)
    assert rdd.getCheckpointFile() is None
    rdd.checkpoint()
    assert rdd.is_checkpointed and not rdd.isCheckpointed()
    rdd.count()
    # PySpark: 'file:/tmp/.../<uuid>/rdd-1'
    uri = rdd.getCheckpointFile()
    assert uri == f"file:{Path(sc.getCheckpointDir().removeprefix('file:'))}/rdd-{rdd.id()}"
    assert Path(uri.removeprefix("file:")).is_dir()
    assert (rdd.isCheckpointed(), rdd.isLocallyCheckpointed()) == (True, False)
    assert rdd.collect() == list(range(1, 11))


def test_local_checkpoint_cuts_the_lineage(sc):
    calls = sc.accumulator(0)

    def counted(x):
        calls.add(1)
        return x * 2

    rdd = sc.parallelize(range(10), 2).map(counted)
    assert not rdd.isLocallyCheckpointed()
    rdd.localCheckpoint()
    assert (rdd.isCheckpointed(), rdd.isLocallyCheckpointed(), rdd.getCheckpointFile()) == (
        False, True, None)
    assert str(rdd.getStorageLevel()) == "Disk Memory Deserialized 1x Replicated"  # PySpark
    assert rdd.dependencies  # not cut before a job computes it
    assert rdd.take(1) == [0]  # computes partition 0; the checkpoint completes the rest
    assert (rdd.isCheckpointed(), rdd.isLocallyCheckpointed(), rdd.getCheckpointFile()) == (
        True, True, None)
    assert rdd.dependencies == []
    assert len(rdd.toDebugString().splitlines()) == 1
    assert calls.value == 10  # every partition computed once
    assert rdd.collect() == [x * 2 for x in range(10)]
    assert rdd.map(lambda x: x + 1).sum() == sum(x * 2 + 1 for x in range(10))
    assert calls.value == 10  # later jobs read the blocks, never the lineage
    cached = sc.parallelize(range(4), 2).cache()
    cached.localCheckpoint()
    assert str(cached.getStorageLevel()) == "Disk Memory Serialized 1x Replicated"  # PySpark


def test_local_and_reliable_checkpoints_together_as_pyspark(sc, tmp_path):
    sc.setCheckpointDir(str(tmp_path))
    local_first = sc.parallelize(range(10), 2).map(lambda x: x * 2)
    local_first.localCheckpoint()
    local_first.checkpoint()
    local_first.count()
    assert (local_first.isCheckpointed(), local_first.isLocallyCheckpointed(),
            local_first.getCheckpointFile()) == (True, True, None)  # PySpark
    reliable_first = sc.parallelize(range(10), 2).map(lambda x: x * 2)
    reliable_first.checkpoint()
    reliable_first.localCheckpoint()
    reliable_first.count()
    assert (reliable_first.isCheckpointed(), reliable_first.isLocallyCheckpointed(),
            reliable_first.getCheckpointFile()) == (True, True, None)  # PySpark
    done = sc.parallelize(range(10), 2).map(lambda x: x * 2)
    done.checkpoint()
    done.count()
    done.localCheckpoint()  # already checkpointed to files: stays so
    assert done.getCheckpointFile() is not None and done.collect() == list(range(0, 20, 2))


def test_a_lost_local_checkpoint_fails_instead_of_recomputing(sc):
    rdd = sc.parallelize(range(10), 2).map(lambda x: x * 2)
    rdd.localCheckpoint()
    assert rdd.count() == 10
    rdd.unpersist()
    with pytest.raises(JobFailedError, match=rf"Checkpoint block rdd_{rdd.id()}_\d not found"):
        rdd.collect()


def test_a_local_checkpoint_lost_with_its_executors_fails_clearly(own_context):
    ctx = own_context("local[2]")
    wait_until(lambda: len(executor_processes()) == 2, 30, "two executors")
    checkpointed = ctx.parallelize(range(20), 4).map(lambda x: x + 1)
    checkpointed.localCheckpoint()
    cached = ctx.parallelize(range(20), 4).map(lambda x: x + 1).cache()
    assert checkpointed.sum() == cached.sum() == 210
    for proc in executor_processes():
        proc.kill()
    wait_until(lambda: len(executor_processes()) == 2 and ctx._runtime.endpoint.call(
        Inspect(lambda: len(ctx._runtime.endpoint.registry.alive()))) == 2, 60,
        "replacement executors")
    assert cached.sum() == 210  # a cache is recomputed from its lineage
    with pytest.raises(JobFailedError, match="Checkpoint block rdd_.* not found"):
        checkpointed.sum()  # a local checkpoint has none left
