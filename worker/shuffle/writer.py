"""The map side of a shuffle: combine, then one output holding every reduce partition's segment.

With a combiner (reduceByKey, combineByKey, groupByKey) the partition's pairs
are folded into a dict first, so each key is hashed once and each segment
holds one combiner per key, written as two msgpack columns straight from the
dict. The output's layout is in ``format``; writing it within the memory
budget (spilling runs to disk) is ``map_output``'s.
"""
from __future__ import annotations

import operator
from typing import Callable, Iterable, Iterator

from sluicegate.common.hashing import portable_hash
from sluicegate.common.taskfuncs import identity

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


def combine_by_key(pairs: Iterable, create: Callable, merge: Callable,
                   into: dict | None = None) -> dict:
    """Fold ``(key, value)`` pairs into ``{key: combiner}`` (``into``, if given).

    reduceByKey(add) -- the word count -- merges with ``+`` inline rather than
    a call per record (the same operation on the same operands; if it raises,
    the user's function is called to raise it, so the traceback shows their
    code).
    """
    combined: dict = {} if into is None else into
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
                     store, before_store: Callable[[], None] | None = None
                     ) -> tuple[list[int], int]:
    """Write one map task's output into ``store`` (a ``BlockStore``); return
    each reduce partition's segment size, and the records written.
    ``before_store`` runs once every record is read, before the output is kept."""
    from .limits import limits
    from .map_output import write_output  # it builds on combine_by_key above

    return write_output(records, shuffle_id, map_id, num_partitions, partition_of, combiner,
                        store, limits.merge_memory_bytes, before_store)
