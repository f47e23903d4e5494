"""Per-partition samplers behind ``sample``, ``randomSplit``, ``sampleByKey``
and ``takeSample``.

Each partition draws from its own ``random.Random``, seeded from the
sampler's seed and the partition index and stirred a little first (seeds of
neighbouring partitions differ in one or two bits). That is PySpark's
scheme, so a seeded sample of the same partitions picks the same records
on both engines. Without replacement a record is kept when its uniform
draw falls below the fraction; with replacement it is emitted a
Poisson(fraction) number of times.
"""
from __future__ import annotations

import math
import random
from typing import Any, Iterable, Iterator

_STIR_DRAWS = 10


def partition_rng(seed: int, split: int) -> random.Random:
    """The random stream of partition ``split`` for ``seed``."""
    rng = random.Random(seed ^ split)
    for _ in range(_STIR_DRAWS):  # decorrelate the streams of neighbouring seeds
        rng.randint(0, 1)
    return rng


def poisson_draw(rng: random.Random, mean: float) -> int:
    """A Poisson(``mean``) count.

    Small means multiply uniforms until the product drops to e^-mean
    (Knuth); large ones add exponential gaps until they pass 1, which never
    underflows.
    """
    count = 0
    if mean < 20.0:
        threshold = math.exp(-mean)
        product = rng.random()
        while product > threshold:
            count += 1
            product *= rng.random()
    else:
        elapsed = rng.expovariate(mean)
        while elapsed < 1.0:
            count += 1
            elapsed += rng.expovariate(mean)
    return count


class FractionSampler:
    """``sample(withReplacement, fraction, seed)`` of one partition."""

    def __init__(self, with_replacement: bool, fraction: float, seed: int):
        self.with_replacement = with_replacement
        self.fraction = fraction
        self.seed = seed

    def __call__(self, split: int, iterator: Iterable) -> Iterator:
        rng = partition_rng(self.seed, split)
        fraction = self.fraction
        if self.with_replacement:
            for record in iterator:
                for _ in range(poisson_draw(rng, fraction)):
                    yield record
        else:
            uniform = rng.random
            for record in iterator:
                if uniform() < fraction:
                    yield record


class RangeSampler:
    """One part of ``randomSplit``: records whose draw is in ``[lower, upper)``.

    Every part uses the same seed, so each record gets the same draw in
    every part: the parts are disjoint and together hold every record.
    """

    def __init__(self, lower: float, upper: float, seed: int):
        self.lower = lower
        self.upper = upper
        self.seed = seed

    def __call__(self, split: int, iterator: Iterable) -> Iterator:
        uniform = partition_rng(self.seed, split).random
        lower, upper = self.lower, self.upper
        for record in iterator:
            if lower <= uniform() < upper:
                yield record


class StratifiedSampler:
    """``sampleByKey``: each pair sampled with its key's fraction."""

    def __init__(self, with_replacement: bool, fractions: dict, seed: int):
        self.with_replacement = with_replacement
        self.fractions = fractions
        self.seed = seed

    def _fraction(self, key: Any) -> float:
        try:
            return self.fractions[key]
        except KeyError:
            known = ", ".join(sorted(map(repr, self.fractions))[:10])
            raise KeyError(f"sampleByKey: key {key!r} has no sampling rate in fractions "
                           f"(which has {known})") from None

    def __call__(self, split: int, iterator: Iterable) -> Iterator:
        rng = partition_rng(self.seed, split)
        if self.with_replacement:
            for key, value in iterator:
                for _ in range(poisson_draw(rng, self._fraction(key))):
                    yield key, value
        else:
            for key, value in iterator:
                if rng.random() < self._fraction(key):
                    yield key, value


def fraction_for_sample_size(num: int, total: int, with_replacement: bool) -> float:
    """A sampling rate whose sample has at least ``num`` of ``total`` records
    99.99% of the time (``takeSample``'s first try; it retries if short).

    With replacement the sample size is Poisson, and 5 standard deviations
    above the mean are enough from 12 records up (9 below). Without, it is
    binomial, and the rate comes from a Chernoff bound with delta = 5e-5.
    """
    fraction = float(num) / total
    if with_replacement:
        stdevs = 5 if num >= 12 else 9
        return fraction + stdevs * math.sqrt(fraction / total)
    delta = 0.00005
    gamma = -math.log(delta) / total
    return min(1.0, fraction + gamma + math.sqrt(gamma * gamma + 2 * gamma * fraction))
