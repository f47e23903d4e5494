"""Approximate actions: a job that answers by a deadline with what it has.

``countApprox``, ``sumApprox`` and ``meanApprox`` run an ordinary job whose
tasks report their partition's share through an accumulator as they
finish. At the timeout the driver estimates the whole from the finished
partitions with Spark's sum and mean evaluators (Student's t, normal past
100 observations); as in PySpark, ``countApprox`` is the sum estimate over
the partitions' counts. A job that finishes in
time gives the exact value with confidence 1.0. A job still running at the
deadline goes on in the background, as in Spark, and its result is dropped.
"""
from __future__ import annotations

import math
import threading
from statistics import NormalDist
from typing import TYPE_CHECKING

from sluicegate.common.rdd_funcs import PartialResultsParam, ReportPartition
from sluicegate.common.statcounter import StatCounter

if TYPE_CHECKING:
    from .base import RDD


class BoundedFloat(float):
    """A float from an approximate job, with its ``confidence`` and the
    ``low``/``high`` bounds of its interval (PySpark's ``BoundedFloat``)."""

    confidence: float
    low: float
    high: float

    def __new__(cls, mean: float, confidence: float, low: float, high: float) -> "BoundedFloat":
        value = float.__new__(cls, mean)
        value.confidence = confidence
        value.low = low
        value.high = high
        return value


# -- running the job ------------------------------------------------------------------

class PartialJob:
    """What an approximate job had by its deadline."""

    def __init__(self, values: list, total: int, complete: bool):
        self.values = values  # one value per finished partition
        self.total = total
        self.complete = complete

    @property
    def finished(self) -> int:
        return len(self.values)


def run_approximate(rdd: "RDD", kind: str, timeout_ms: float) -> PartialJob:
    """Run ``rdd``'s ``kind`` partial results (see ``ReportPartition``) for at most
    ``timeout_ms`` milliseconds; raise the job's error if it failed by then."""
    if timeout_ms is None or not timeout_ms >= 0:
        raise ValueError("timeout must be a non-negative number of milliseconds, "
                         f"got {timeout_ms!r}")
    ctx = rdd.ctx
    total = rdd.getNumPartitions()
    if total == 0:
        return PartialJob([], 0, True)
    accumulator = ctx.accumulator([], PartialResultsParam())
    reporting = rdd.mapPartitionsWithIndex(ReportPartition(kind, accumulator))
    ctx._prepare(reporting)  # an unpicklable function fails here, in the caller's thread
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            ctx._run_job(reporting)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller if it still waits
            failure.append(exc)
        finally:
            done.set()
            ctx._accumulators.pop(accumulator.aid, None)  # nothing adds to it any more

    threading.Thread(target=run, name=f"approximate job on {rdd!r}", daemon=True).start()
    complete = done.wait(timeout_ms / 1000.0)
    if complete and failure:
        raise failure[0]
    entries = list(accumulator.value)
    values = [value for _, value in sorted(entries, key=lambda e: e[0])]
    return PartialJob(values, total, complete and len(values) == total)


# -- estimates ---------------------------------------------------------------------------

def sum_estimate(job: PartialJob, confidence: float) -> BoundedFloat:
    """Spark's SumEvaluator, observing one value per finished partition (its
    sum), as PySpark's ``sumApprox`` does."""
    counter = StatCounter(job.values)
    seen = float(sum(job.values))  # exact for counts, unlike count * mean
    if job.complete:
        return BoundedFloat(seen, 1.0, seen, seen)
    if job.finished == 0:
        return BoundedFloat(0.0, 0.0, -math.inf, math.inf)
    p = job.finished / job.total
    mean = counter.mean()
    unseen_count = counter.count() * (1 - p) / p  # partitions still running
    estimate = seen + mean * unseen_count
    mean_var = counter.sampleVariance() / counter.count()
    if math.isnan(mean_var) or counter.count() == 1:
        return BoundedFloat(estimate, confidence, -math.inf, math.inf)
    count_var = counter.count() * (1 - p) / (p * p)
    # Var(mean * count) for independent mean and count
    sum_var = (mean * mean * count_var + unseen_count * unseen_count * mean_var
               + mean_var * count_var)
    spread = _confidence_factor(counter.count(), confidence) * math.sqrt(sum_var)
    return BoundedFloat(estimate, confidence, estimate - spread, estimate + spread)


def mean_estimate(job: PartialJob, confidence: float) -> BoundedFloat:
    """Spark's MeanEvaluator over every record of the finished partitions."""
    counter = StatCounter()
    for n, mu, m2 in job.values:
        part = StatCounter()
        part.n, part.mu, part.m2 = int(n), float(mu), float(m2)  # max/min are not needed
        counter.mergeStats(part)
    mean = counter.mean()
    if job.complete:
        return BoundedFloat(mean, 1.0, mean, mean)
    if job.finished == 0 or counter.count() == 0:
        return BoundedFloat(0.0, 0.0, -math.inf, math.inf)
    if counter.count() == 1:
        return BoundedFloat(mean, confidence, -math.inf, math.inf)
    spread = _confidence_factor(counter.count(), confidence) * math.sqrt(
        counter.sampleVariance() / counter.count())
    return BoundedFloat(mean, confidence, mean - spread, mean + spread)


def _confidence_factor(observations: int, confidence: float) -> float:
    """The two-sided factor: normal past 100 observations, else Student's t."""
    q = (1 + confidence) / 2
    if observations > 100:
        return NormalDist().inv_cdf(q)
    return student_t_quantile(observations - 1, q)


# -- distributions (no SciPy on the driver) ------------------------------------------

def student_t_quantile(dof: int, q: float) -> float:
    """The ``q`` quantile of Student's t with ``dof`` degrees of freedom."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    if q < 0.5:
        return -student_t_quantile(dof, 1.0 - q)
    if q == 0.5:
        return 0.0
    low, high = 0.0, 1.0
    while student_t_cdf(dof, high) < q:
        high *= 2.0
    for _ in range(200):  # bisection: the cdf is monotone and cheap
        middle = (low + high) / 2
        if student_t_cdf(dof, middle) < q:
            low = middle
        else:
            high = middle
        if high - low <= 1e-12 * max(1.0, high):
            break
    return (low + high) / 2


def student_t_cdf(dof: int, t: float) -> float:
    tail = 0.5 * regularized_incomplete_beta(dof / 2.0, 0.5, dof / (dof + t * t))
    return 1.0 - tail if t >= 0 else tail


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), by its continued fraction (modified Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast only below this point
        return 1.0 - regularized_incomplete_beta(b, a, 1.0 - x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(log_front) * fraction / a
