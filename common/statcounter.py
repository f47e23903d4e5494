"""StatCounter: count, mean, variance, min and max of numbers in one pass
(PySpark's ``pyspark.statcounter.StatCounter``).

Values are folded in with Welford's update and counters are merged with
Chan et al.'s parallel formula, so per-partition counters combine exactly
as PySpark's do: the same partitions merged in the same order give the
same floating-point results. Executors build one counter per partition
(``stats()``); the driver merges them.
"""
from __future__ import annotations

import copy
import math
from typing import Iterable


def _larger(a, b):
    # numpy arrays compare element-wise; PySpark relies on numpy.maximum for them.
    if hasattr(a, "__array__") or hasattr(b, "__array__"):
        import numpy  # only present when the values are numpy arrays already
        return numpy.maximum(a, b)
    return b if b > a else a


def _smaller(a, b):
    if hasattr(a, "__array__") or hasattr(b, "__array__"):
        import numpy
        return numpy.minimum(a, b)
    return b if b < a else a


def _sqrt(x):
    if hasattr(x, "__array__"):
        import numpy
        return numpy.sqrt(x)
    return math.sqrt(x)


class StatCounter:
    """A running count, mean, variance, maximum and minimum of numbers.

    ``StatCounter(values)`` folds ``values`` in; ``merge`` adds one value and
    ``mergeStats`` another counter. An empty counter has mean 0.0, variance
    NaN, max ``-inf`` and min ``inf``, as in PySpark.
    """

    def __init__(self, values: Iterable[float] | None = None):
        self.n = 0  # how many values
        self.mu = 0.0  # their running mean
        self.m2 = 0.0  # running sum of squared distances from the mean
        self.maxValue = float("-inf")
        self.minValue = float("inf")
        if values is not None:
            for value in values:
                self.merge(value)

    def merge(self, value: float) -> "StatCounter":
        """Add one value."""
        delta = value - self.mu
        self.n += 1
        self.mu += delta / self.n
        self.m2 += delta * (value - self.mu)
        self.maxValue = _larger(self.maxValue, value)
        self.minValue = _smaller(self.minValue, value)
        return self

    def mergeStats(self, other: "StatCounter") -> "StatCounter":
        """Add every value another StatCounter has seen."""
        if not isinstance(other, StatCounter):
            raise TypeError("Can only merge StatCounter but got %s" % type(other))
        if other is self:  # merging with itself: read a snapshot, not fields being updated
            return self.mergeStats(other.copy())
        if self.n == 0:
            self.n, self.mu, self.m2 = other.n, other.mu, other.m2
            self.maxValue, self.minValue = other.maxValue, other.minValue
        elif other.n != 0:
            delta = other.mu - self.mu
            total = self.n + other.n
            # Move the mean from the larger side: keeps precision when sizes differ a lot.
            if other.n * 10 < self.n:
                self.mu = self.mu + (delta * other.n) / total
            elif self.n * 10 < other.n:
                self.mu = other.mu - (delta * self.n) / total
            else:
                self.mu = (self.mu * self.n + other.mu * other.n) / total
            self.maxValue = _larger(self.maxValue, other.maxValue)
            self.minValue = _smaller(self.minValue, other.minValue)
            self.m2 += other.m2 + (delta * delta * self.n * other.n) / total
            self.n = total
        return self

    def copy(self) -> "StatCounter":
        """An independent copy."""
        return copy.deepcopy(self)

    def count(self) -> int:
        return int(self.n)

    def mean(self) -> float:
        return self.mu

    def sum(self) -> float:
        return self.n * self.mu

    def min(self) -> float:
        return self.minValue

    def max(self) -> float:
        return self.maxValue

    def variance(self) -> float:
        """The population variance (divides by N); NaN when empty."""
        return self.m2 / self.n if self.n else float("nan")

    def sampleVariance(self) -> float:
        """The sample variance (divides by N-1); NaN for fewer than two values."""
        return self.m2 / (self.n - 1) if self.n > 1 else float("nan")

    def stdev(self) -> float:
        return _sqrt(self.variance())

    def sampleStdev(self) -> float:
        return _sqrt(self.sampleVariance())

    def asDict(self, sample: bool = False) -> dict[str, float]:
        """The members as a dict.

        As in PySpark, ``stdev`` and ``variance`` here are the *sample* ones by
        default and the population ones with ``sample=True``.
        """
        return {
            "count": self.count(),
            "mean": self.mean(),
            "sum": self.sum(),
            "min": self.min(),
            "max": self.max(),
            "stdev": self.stdev() if sample else self.sampleStdev(),
            "variance": self.variance() if sample else self.sampleVariance(),
        }

    def __repr__(self) -> str:
        return "(count: %s, mean: %s, stdev: %s, max: %s, min: %s)" % (
            self.count(), self.mean(), self.stdev(), self.max(), self.min())


def stat_counter_of_partition(iterator: Iterable) -> list[StatCounter]:
    """``stats()``: one counter per partition (empty partitions included)."""
    return [StatCounter(iterator)]


def merge_stat_counters(a: StatCounter, b: StatCounter) -> StatCounter:
    return a.mergeStats(b)
