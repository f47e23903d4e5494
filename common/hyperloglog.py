"""HyperLogLog sketches for ``countApproxDistinct``.

Every record is hashed to 64 bits; the first ``p`` bits pick one of
``m = 2**p`` registers, which keeps the largest "leading zeros + 1" of the
remaining bits it has seen. Each partition fills its own registers and the
driver merges them with an element-wise maximum, so the answer does not
depend on how records are partitioned. The estimate is Ertl's improved
estimator ("New cardinality estimation algorithms for HyperLogLog
sketches", 2017), which needs no empirical bias tables and has a relative
standard error of about 1.04 / sqrt(m) from zero up to 2**64.

The precision follows Spark's rule ``p = ceil(2 * log2(1.054 / relativeSD))``.
Small precisions keep a dense byte per register; above ``DENSE_MAX_P`` only
the registers that are set are kept (a dict), so a tiny relativeSD costs
memory in proportion to the distinct records seen, not to 2**p.
"""
from __future__ import annotations

import math
from hashlib import blake2b
from typing import Iterable

from .hashing import portable_hash

MIN_RELATIVE_SD = 0.000017  # PySpark's bound: below it p would exceed 32
DENSE_MAX_P = 16
_MASK64 = (1 << 64) - 1


def precision_for(relative_sd: float) -> int:
    """Register-index bits ``p`` for a target relative standard deviation."""
    if not relative_sd >= MIN_RELATIVE_SD:
        raise ValueError("relativeSD should be greater than 0.000017")
    p = math.ceil(2.0 * math.log(1.054 / relative_sd) / math.log(2.0))
    if p < 4:
        raise ValueError(f"relativeSD {relative_sd} is too large: it gives a sketch precision "
                         f"p = {p}, and p must be >= 4 (use relativeSD <= 0.37)")
    return p


def hash64(record) -> int:
    """A well-mixed 64-bit hash, equal in every process for equal records."""
    # Text and bytes hash in separate families, so "1" and b"1" stay distinct.
    if isinstance(record, str):
        return int.from_bytes(blake2b(record.encode("utf-8", "surrogatepass"), digest_size=8,
                                      person=b"str").digest(), "little")
    if isinstance(record, (bytes, bytearray, memoryview)):
        return int.from_bytes(blake2b(bytes(record), digest_size=8,
                                      person=b"bytes").digest(), "little")
    # Numbers hash without salt (and 1 == 1.0 == True hash alike); the rest
    # goes through the partition hash. Either way, spread the bits (splitmix64).
    z = (portable_hash(record) + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class SketchPartition:
    """One partition's registers: ``bytes`` (dense) or ``{index: rank}`` (sparse)."""

    def __init__(self, p: int):
        self.p = p

    def __call__(self, iterator: Iterable) -> list:
        p = self.p
        q = 64 - p
        low_bits = (1 << q) - 1
        if p <= DENSE_MAX_P:
            dense = bytearray(1 << p)
            for record in iterator:
                h = hash64(record)
                index = h >> q
                rank = q - (h & low_bits).bit_length() + 1
                if rank > dense[index]:
                    dense[index] = rank
            return [bytes(dense)]
        sparse: dict[int, int] = {}
        for record in iterator:
            h = hash64(record)
            index = h >> q
            rank = q - (h & low_bits).bit_length() + 1
            if rank > sparse.get(index, 0):
                sparse[index] = rank
        return [sparse]


def merge_registers(p: int, parts: Iterable) -> dict[int, int]:
    """The element-wise maximum of partitions' registers, as ``{index: rank}``."""
    merged: dict[int, int] = {}
    for part in parts:
        items = enumerate(part) if isinstance(part, (bytes, bytearray)) else part.items()
        for index, rank in items:
            if rank and rank > merged.get(int(index), 0):
                merged[int(index)] = rank
    return merged


def estimate(p: int, registers: dict[int, int]) -> float:
    """Ertl's improved raw estimator over the set registers."""
    m = 1 << p
    q = 64 - p
    histogram = [0] * (q + 2)  # histogram[k]: registers holding rank k
    for rank in registers.values():
        histogram[rank] += 1
    histogram[0] = m - len(registers)
    if histogram[0] == m:
        return 0.0
    z = m * _tau(1.0 - histogram[q + 1] / m)
    for k in range(q, 0, -1):
        z = 0.5 * (z + histogram[k])
    z += m * _sigma(histogram[0] / m)
    return m * m / (2.0 * math.log(2.0)) / z


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        previous = z
        z += x * y
        y += y
        if z == previous:
            return z


def _tau(x: float) -> float:
    if x == 0.0 or x == 1.0:
        return 0.0
    y, z = 1.0, 1.0 - x
    while True:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= (1.0 - x) ** 2 * y
        if z == previous:
            return z / 3.0
