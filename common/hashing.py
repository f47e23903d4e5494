"""A partition hash that gives the same number in every process on every host.

Python salts ``hash()`` of ``str`` and ``bytes`` (and of anything hashed
through them, such as ``datetime``) per process unless PYTHONHASHSEED is
pinned. PySpark therefore refuses to run without PYTHONHASHSEED; we instead
hash text and bytes with CRC-32, which is unsalted and runs in C.

Equal keys must hash equally: ``1 == 1.0 == True`` all go through the
numeric hash, which CPython defines without salt.
"""
from __future__ import annotations

import datetime
import sys
from numbers import Number
from zlib import crc32

_MASK = sys.maxsize


def portable_hash(x) -> int:
    """Hash ``x`` identically in every process (PySpark's ``portable_hash``)."""
    kind = type(x)
    if kind is str:
        return crc32(x.encode("utf-8", "surrogatepass"))
    if kind is int or kind is float or kind is bool:
        return hash(x)
    if x is None:
        return 0
    if kind is bytes or kind is bytearray or kind is memoryview:
        return crc32(x)
    if kind is tuple:
        return _combine(x)
    return _portable_hash_other(x)


def _combine(items) -> int:
    # Same mixing shape as CPython 2's tuple hash, as PySpark uses for tuples.
    h = 0x345678
    for item in items:
        h ^= portable_hash(item)
        h *= 1000003
        h &= _MASK
    h ^= len(items)
    return -2 if h == -1 else h


def _portable_hash_other(x) -> int:
    if isinstance(x, str):
        return crc32(str(x).encode("utf-8", "surrogatepass"))
    if isinstance(x, (bytes, bytearray)):
        return crc32(bytes(x))
    if isinstance(x, tuple):  # namedtuple and other tuple subclasses
        return _combine(x)
    if isinstance(x, frozenset):
        h = 0
        for item in x:  # order-free, so iteration order cannot matter
            h ^= portable_hash(item)
        return h
    if isinstance(x, (datetime.datetime, datetime.date, datetime.time)):
        return crc32(x.isoformat().encode())
    if isinstance(x, datetime.timedelta):
        return hash((x.days, x.seconds, x.microseconds))
    if isinstance(x, Number):
        return hash(x)  # numeric hashes are unsalted
    # A user type: its own __hash__ decides. Document: such a hash must not
    # depend on str/bytes hashing, or partitioning differs across processes.
    return hash(x)


def partition_of(key, num_partitions: int) -> int:
    """The reduce partition of ``key`` under hash partitioning."""
    return portable_hash(key) % num_partitions
