"""The map side of a shuffle: combine, then one block per reduce partition.

With a combiner (reduceByKey, combineByKey, groupByKey) the partition's pairs
are folded into a dict first, so each key is hashed once and each block holds
one combiner per key, written as two msgpack columns straight from the dict.
"""
from __future__ import annotations

import operator
from typing import Callable, Iterable, Iterator

from sluicegate.common.hashing import portable_hash
from sluicegate.common.taskfuncs import identity
from sluicegate.common.serializer import dump_pairs, dump_records

from .blocks import shuffle_block_id

_UNPACK_ERRORS = ("cannot unpack", "values to unpack")


_MISSING = object()


def _add(a, b):
    return a + b


def adds(fn: Callable) -> bool:
    """Is ``fn`` plain addition of its two arguments: ``operator.add``, or a
    function compiled to exactly ``return a + b`` (``lambda a, b: a + b``)?"""
    if fn is operator.add:
        return True
    code = getattr(fn, "__code__", None)
    return (code is not None and code.co_code == _add.__code__.co_code
            and code.co_argcount == 2 and not code.co_freevars
            and not getattr(fn, "__defaults__", None))


def combine_by_key(pairs: Iterable, create: Callable, merge: Callable) -> dict:
    """Fold ``(key, value)`` pairs into ``{key: combiner}``.

    reduceByKey(add) -- the word count -- merges with ``+`` inline rather than
    a call per record (the same operation on the same operands; if it raises,
    the user's function is called to raise it, so the traceback shows their
    code).
    """
    combined: dict = {}
    get = combined.get
    inline_add = create is identity and adds(merge)
    old = value = _MISSING
    try:
        if inline_add:
            for key, value in pairs:
                old = get(key, _MISSING)
                combined[key] = value if old is _MISSING else old + value
        else:
            for key, value in pairs:
                old = get(key, _MISSING)
                combined[key] = create(value) if old is _MISSING else merge(old, value)
    except (TypeError, ValueError) as exc:
        if any(s in str(exc) for s in _UNPACK_ERRORS):
            raise TypeError(f"a key-value operation needs (key, value) pairs: {exc}") from exc
        if inline_add and old is not _MISSING:
            merge(old, value)
        raise
    return combined


def partitioner_function(kind: str, num_partitions: int, fn: Callable | None) -> Callable:
    if kind == "hash":
        return lambda key: portable_hash(key) % num_partitions
    if kind == "func" and fn is not None:
        return lambda key: fn(key) % num_partitions
    raise ValueError(f"unknown partitioner {kind!r}")


def write_map_output(records: Iterator, shuffle_id: int, map_id: int, num_partitions: int,
                     partition_of: Callable, combiner: tuple[Callable, Callable] | None,
                     put: Callable[[str, bytes], None]) -> tuple[list[int], int]:
    """Write one map task's output; return each reduce block's size, and the records written."""
    if combiner is not None:
        combined = combine_by_key(records, combiner[0], combiner[1])
        if num_partitions == 1:
            columns = [(list(combined.keys()), list(combined.values()))]
        else:
            columns = [([], []) for _ in range(num_partitions)]
            for key, value in combined.items():
                keys, values = columns[partition_of(key)]
                keys.append(key)
                values.append(value)
        blocks = [dump_pairs(keys, values) for keys, values in columns]
        written = len(combined)
    else:
        buckets: list[list] = [[] for _ in range(num_partitions)]
        try:
            if num_partitions == 1:
                append = buckets[0].append
                for key, value in records:
                    append((key, value))
            else:
                for key, value in records:
                    buckets[partition_of(key)].append((key, value))
        except (TypeError, ValueError) as exc:
            if any(s in str(exc) for s in _UNPACK_ERRORS):
                raise TypeError(f"a key-value operation needs (key, value) pairs: {exc}") from exc
            raise
        blocks = [dump_records(bucket) for bucket in buckets]
        written = sum(len(bucket) for bucket in buckets)
    sizes = []
    for reduce_id, data in enumerate(blocks):
        put(shuffle_block_id(shuffle_id, map_id, reduce_id), data)
        sizes.append(len(data))
    return sizes, written
