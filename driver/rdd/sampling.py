"""RDD sampling and splitting: sample, takeSample, randomSplit, sampleByKey,
and the methods that pair or stream records: zip, toLocalIterator.

Seeded samples use PySpark's per-partition random streams (see
``common.sampling``), so the same seed over the same partitions keeps the
same records on both engines.
"""
from __future__ import annotations

import math
import random
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Iterator, Sequence

from sluicegate.common.sampling import (
    FractionSampler, RangeSampler, StratifiedSampler, fraction_for_sample_size)

from . import lineage as lin

if TYPE_CHECKING:
    from .base import RDD


def _random_seed() -> int:
    return random.randint(0, sys.maxsize)


class Sampling:
    """Mixin of ``RDD``."""

    def sample(self: "RDD", withReplacement: bool, fraction: float,
               seed: int | None = None) -> "RDD":
        """A sampled subset of this RDD.

        Without replacement each element is kept with probability ``fraction``
        (in [0, 1]); with replacement each appears a Poisson(``fraction``)
        number of times. The size is not exactly ``fraction`` of the count.
        """
        if not fraction >= 0:
            raise ValueError(f"Fraction must be nonnegative. (sample got fraction={fraction!r})")
        seed = _random_seed() if seed is None else seed
        return self.mapPartitionsWithIndex(FractionSampler(withReplacement, fraction, seed), True)

    def randomSplit(self: "RDD", weights: Sequence[float], seed: int | None = None) -> list["RDD"]:
        """Split this RDD randomly by ``weights`` (normalized to sum to 1).

        Every element lands in exactly one of the returned RDDs, provided the
        RDD gives the same partitions each time it is computed (cache it if
        it is not deterministic).
        """
        weights = list(weights)
        if not all(w >= 0 for w in weights):
            raise ValueError("Weights must be nonnegative")
        total = float(sum(weights))
        if not total > 0:
            raise ValueError("Sum of weights must be positive")
        bounds, running, raw = [0.0], 0.0, 0.0
        for w in weights:
            running += w / total
            raw += w
            # Once all weight is used the bound is exactly 1.0, so no rounding
            # shortfall can leave the highest draws in no split.
            bounds.append(1.0 if raw >= total else running)
        seed = random.randint(0, 2 ** 32 - 1) if seed is None else seed
        return [self.mapPartitionsWithIndex(RangeSampler(lower, upper, seed), True)
                for lower, upper in zip(bounds, bounds[1:])]

    def takeSample(self: "RDD", withReplacement: bool, num: int,
                   seed: int | None = None) -> list:
        """A sample of exactly ``num`` elements (all of them, shuffled, when
        sampling without replacement and ``num`` is at least the count).

        Runs a count, then samples with a rate that yields enough elements
        99.99% of the time, trying again if it did not.
        """
        max_size = sys.maxsize - int(10.0 * math.sqrt(sys.maxsize))
        if num < 0:
            raise ValueError("Sample size cannot be negative.")
        if num > max_size:
            raise ValueError(f"Sample size cannot be greater than {max_size}.")
        if num == 0 or self.getNumPartitions() == 0:
            return []
        total = self.count()
        if total == 0:
            return []
        rng = random.Random(seed)
        if not withReplacement and num >= total:
            everything = self.collect()
            rng.shuffle(everything)
            return everything
        fraction = fraction_for_sample_size(num, total, withReplacement)
        picked = self.sample(withReplacement, fraction, seed).collect()
        while len(picked) < num:  # rare: the first sample came out short
            seed = rng.randint(0, sys.maxsize)
            picked = self.sample(withReplacement, fraction, seed).collect()
        rng.shuffle(picked)
        return picked[:num]

    def sampleByKey(self: "RDD", withReplacement: bool, fractions: dict,
                    seed: int | None = None) -> "RDD":
        """Stratified sample of a pair RDD: each key sampled at its own rate
        from ``fractions`` (every key of the RDD must have one)."""
        for fraction in fractions.values():
            if not fraction >= 0.0:
                # PySpark asserts this; raised explicitly so it holds under python -O.
                raise AssertionError(f"Negative fraction value: {fraction}")
        seed = _random_seed() if seed is None else seed
        return self.mapPartitionsWithIndex(
            StratifiedSampler(withReplacement, dict(fractions), seed), True)

    def zip(self: "RDD", other: "RDD") -> "RDD":
        """Pairs ``(x, y)`` of the i-th elements of this RDD and ``other``.

        Both must have the same number of partitions and the same number of
        elements in each partition (e.g. one is a ``map`` of the other); a
        mismatch in sizes fails the job. No shuffle: each task reads the
        matching partition of both.
        """
        if self.getNumPartitions() != other.getNumPartitions():
            raise ValueError("Can only zip with RDD which has the same number of partitions")
        return self._derive(lin.Zipped(self, other))

    def toLocalIterator(self: "RDD", prefetchPartitions: bool = False) -> Iterator:
        """All elements, fetched one partition per job as the iterator advances,
        so the driver holds at most one partition (two with
        ``prefetchPartitions``, which computes the next partition while the
        current one is consumed)."""
        self.ctx._prepare(self)  # an unpicklable function fails now, not at the first next()
        return _partitions_in_turn(self, prefetchPartitions)


def _partitions_in_turn(rdd: "RDD", prefetch: bool) -> Iterator:
    total = rdd.getNumPartitions()
    if not prefetch:
        for split in range(total):
            yield from rdd.ctx._run_job(rdd, [split])[0]
        return
    if total == 0:
        return
    pool = ThreadPoolExecutor(1, thread_name_prefix=f"toLocalIterator-{rdd.id()}")
    try:
        pending = pool.submit(rdd.ctx._run_job, rdd, [0])
        for split in range(total):
            records = pending.result()[0]
            if split + 1 < total:
                pending = pool.submit(rdd.ctx._run_job, rdd, [split + 1])
            yield from records
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
