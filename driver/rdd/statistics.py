"""RDD statistics: stats (a StatCounter), mean, variance, stdev, histogram and
the approximate actions (countApprox, sumApprox, meanApprox,
countApproxDistinct)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

from sluicegate.common import hyperloglog as hll
from sluicegate.common import rdd_funcs as rf
from sluicegate.common.statcounter import (
    StatCounter, merge_stat_counters, stat_counter_of_partition)

from .approx import BoundedFloat, mean_estimate, run_approximate, sum_estimate

if TYPE_CHECKING:
    from .base import RDD


class Statistics:
    """Mixin of ``RDD``."""

    # -- exact ------------------------------------------------------------------------
    def stats(self: "RDD") -> StatCounter:
        """Count, mean, variance, max and min of the elements in one job.

        One StatCounter per partition, merged in partition order (an empty
        RDD with partitions gives an empty counter; one with no partitions
        raises, as ``reduce`` does).
        """
        return self.mapPartitions(stat_counter_of_partition).reduce(merge_stat_counters)

    def mean(self: "RDD") -> float:
        """The mean of the elements (0.0 for an empty RDD that has partitions)."""
        return self.stats().mean()

    def variance(self: "RDD") -> float:
        """The population variance of the elements (divides by N)."""
        return self.stats().variance()

    def stdev(self: "RDD") -> float:
        """The population standard deviation of the elements."""
        return self.stats().stdev()

    def sampleVariance(self: "RDD") -> float:
        """The sample variance of the elements (divides by N-1)."""
        return self.stats().sampleVariance()

    def sampleStdev(self: "RDD") -> float:
        """The sample standard deviation of the elements (divides by N-1)."""
        return self.stats().sampleStdev()

    def histogram(self: "RDD", buckets: int | Sequence) -> tuple[Sequence, list[int]]:
        """Count the elements in buckets; returns ``(buckets, counts)``.

        ``buckets`` is a sorted list or tuple of at least two distinct edges,
        ``[1, 10, 20, 50]`` meaning [1,10) [10,20) [20,50] (the last bucket is
        closed), or a number n of evenly spaced buckets between the minimum
        and the maximum (one bucket if they are equal). None and NaN elements
        are ignored, as are elements outside the edges.
        """
        if isinstance(buckets, int):
            return self._histogram_of_count(buckets)
        if not isinstance(buckets, (list, tuple)):
            raise TypeError("buckets should be a list or tuple or number(int or long)")
        if len(buckets) < 2:
            raise ValueError("buckets should have more than one value")
        if any(b is None or (isinstance(b, float) and math.isnan(b)) for b in buckets):
            raise ValueError("can not have None or NaN in buckets")
        if sorted(buckets) != list(buckets):
            raise ValueError("buckets should be sorted")
        if len(set(buckets)) != len(buckets):
            raise ValueError("buckets should not contain duplicated values")
        even, increment = False, None
        try:
            steps = [buckets[i + 1] - buckets[i] for i in range(len(buckets) - 1)]
        except TypeError:
            pass  # edges without subtraction (strings): binary search it is
        else:
            if max(steps) - min(steps) < 1e-10:  # evenly spaced, up to rounding
                even = True
                increment = (buckets[-1] - buckets[0]) / (len(buckets) - 1)
        counts = self.mapPartitions(rf.HistogramPartition(buckets, even, increment))
        return buckets, counts.reduce(rf.add_counts)

    def _histogram_of_count(self: "RDD", count: int) -> tuple[list, list[int]]:
        if count < 1:
            raise ValueError("number of buckets must be >= 1")
        values = self.filter(rf.comparable)
        low, high = values.map(rf.min_max_pair).reduce(rf.merge_min_max)
        if low == high or count == 1:
            return [low, high], [values.count()]
        try:
            increment: Any = (high - low) / count
        except TypeError:
            raise TypeError("Can not generate buckets with non-number in RDD") from None
        if math.isinf(increment):
            raise ValueError("Can not generate buckets with infinite value")
        # Integer edges when the range divides evenly (as PySpark), else floats.
        if int(increment) * count == high - low:
            increment = int(increment)
        else:
            increment = (high - low) * 1.0 / count
        edges = [i * increment + low for i in range(count)]
        edges.append(high)  # exactly the maximum, whatever the rounding above
        counts = self.mapPartitions(rf.HistogramPartition(edges, True, increment))
        return edges, counts.reduce(rf.add_counts)

    # -- approximate -------------------------------------------------------------------
    def countApprox(self: "RDD", timeout: int, confidence: float = 0.95) -> int:
        """The count, or an estimate of it from the partitions finished within
        ``timeout`` milliseconds."""
        _check_confidence(confidence)
        return int(sum_estimate(run_approximate(self, "count", timeout), confidence))

    def sumApprox(self: "RDD", timeout: int, confidence: float = 0.95) -> BoundedFloat:
        """The sum, or an estimate with bounds from the partitions finished
        within ``timeout`` milliseconds (a ``BoundedFloat``)."""
        _check_confidence(confidence)
        return sum_estimate(run_approximate(self, "sum", timeout), confidence)

    def meanApprox(self: "RDD", timeout: int, confidence: float = 0.95) -> BoundedFloat:
        """The mean, or an estimate with bounds from the partitions finished
        within ``timeout`` milliseconds (a ``BoundedFloat``)."""
        _check_confidence(confidence)
        return mean_estimate(run_approximate(self, "stats", timeout), confidence)

    def countApproxDistinct(self: "RDD", relativeSD: float = 0.05) -> int:
        """An estimate of the number of distinct elements (HyperLogLog).

        ``relativeSD`` is the target relative standard deviation of the
        estimate; it must be greater than 0.000017. Smaller values use more
        registers (2**p, p = ceil(2 * log2(1.054 / relativeSD))).
        """
        p = hll.precision_for(relativeSD)
        parts = self.mapPartitions(hll.SketchPartition(p)).collect()
        return int(round(hll.estimate(p, hll.merge_registers(p, parts))))


def _check_confidence(confidence: float) -> None:
    if not 0.0 <= confidence <= 1.0:
        raise ValueError(f"confidence must be in [0, 1], got {confidence!r}")
