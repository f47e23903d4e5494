"""DStream operations that act on each batch's RDD alone (PySpark's semantics).

Each one is a ``transform`` of the batch RDD; the functions shipped to
executors are the user's own, or helpers from ``common.taskfuncs``, so they
keep one closure id across batches.
"""
from __future__ import annotations

import inspect
from types import GenericAlias
from typing import TYPE_CHECKING, Callable

from sluicegate.common import taskfuncs as tf

if TYPE_CHECKING:
    from .base import DStream


def arity(func: Callable) -> int:
    """How many positional arguments ``func`` takes (1 or 2 for transform/foreachRDD)."""
    code = getattr(func, "__code__", None)
    if code is not None and not inspect.ismethod(func):
        return code.co_argcount
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 1
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               and p.default is p.empty)


def with_time(func: Callable, extra: int = 0) -> Callable:
    """Accept ``func(rdd...)`` or ``func(time, rdd...)``; always call with time."""
    if arity(func) == 1 + extra:
        return lambda t, *rdds: func(*rdds)
    return func


class StatelessOperations:
    # ``DStream[Tuple[str, int]]`` in annotations, as PySpark's generic DStream allows.
    __class_getitem__ = classmethod(GenericAlias)

    def map(self: "DStream", f: Callable, preservesPartitioning: bool = False) -> "DStream":
        """Apply ``f`` to each element of each RDD."""
        return self._derive(lambda t, rdd: rdd.map(f, preservesPartitioning), kind="map")

    def flatMap(self: "DStream", f: Callable, preservesPartitioning: bool = False) -> "DStream":
        return self._derive(lambda t, rdd: rdd.flatMap(f, preservesPartitioning), kind="flatMap")

    def filter(self: "DStream", f: Callable) -> "DStream":
        return self._derive(lambda t, rdd: rdd.filter(f), kind="filter")

    def mapPartitions(self: "DStream", f: Callable, preservesPartitioning: bool = False) -> "DStream":
        return self._derive(lambda t, rdd: rdd.mapPartitions(f, preservesPartitioning),
                            kind="mapPartitions")

    def mapPartitionsWithIndex(self: "DStream", f: Callable,
                               preservesPartitioning: bool = False) -> "DStream":
        return self._derive(lambda t, rdd: rdd.mapPartitionsWithIndex(f, preservesPartitioning),
                            kind="mapPartitionsWithIndex")

    def glom(self: "DStream") -> "DStream":
        return self._derive(lambda t, rdd: rdd.glom(), kind="glom")

    def count(self: "DStream") -> "DStream":
        """A stream of one element per batch: its number of records."""
        return self.mapPartitions(tf.count_partition).reduce(tf.add)

    def reduce(self: "DStream", func: Callable) -> "DStream":
        """A stream of one element per batch: the batch's elements reduced by ``func``."""
        return self.map(tf.none_key).reduceByKey(func, 1).map(tf.second)

    def countByValue(self: "DStream") -> "DStream":
        return self.map(tf.with_one).reduceByKey(tf.add)

    def repartition(self: "DStream", numPartitions: int) -> "DStream":
        return self._derive(lambda t, rdd: rdd.repartition(numPartitions), kind="repartition",
                            params={"numPartitions": numPartitions})

    def transform(self: "DStream", func: Callable) -> "DStream":
        """A stream of ``func(rdd)`` or ``func(time, rdd)`` for each batch."""
        func = with_time(func)
        return self._derive(func)

    def transformWith(self: "DStream", func: Callable, other: "DStream",
                      keepSerializer: bool = False) -> "DStream":
        """A stream of ``func(rdd_a, rdd_b)`` or ``func(time, rdd_a, rdd_b)``."""
        func = with_time(func, extra=1)
        return self._derive(func, other, kind="transformWith")

    def union(self: "DStream", other: "DStream") -> "DStream":
        """Both streams' elements in each batch (same slide duration required)."""
        if self._slide_ms != other._slide_ms:
            raise ValueError("the two DStream should have same slide duration")
        return self._derive(lambda t, a, b: a.union(b), other, kind="union")
