"""RDD transformations that do not need keys (PySpark's semantics and defaults)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

from sluicegate.common import rdd_funcs as rf
from sluicegate.common import taskfuncs as tf

from . import lineage as lin
from .barrier import RDDBarrier

if TYPE_CHECKING:
    from .base import RDD


class Transformations:
    """map, flatMap, filter, mapPartitions, union, coalesce, cartesian, ..."""

    def _narrow(self: "RDD", kind: str, fn: Callable, preserves_partitioning: bool) -> "RDD":
        if not callable(fn):
            raise TypeError(f"{kind}() expects a function, got {type(fn).__name__}")
        partitioner = self.partitioner if preserves_partitioning else None
        return self._derive(lin.MapPartitions(self, kind, fn), partitioner)

    def map(self: "RDD", f: Callable, preservesPartitioning: bool = False) -> "RDD":
        """Return a new RDD by applying a function to each element."""
        return self._narrow("map", f, preservesPartitioning)

    def flatMap(self: "RDD", f: Callable, preservesPartitioning: bool = False) -> "RDD":
        """Apply ``f`` to each element and flatten the iterables it returns."""
        return self._narrow("flatMap", f, preservesPartitioning)

    def filter(self: "RDD", f: Callable) -> "RDD":
        """Keep the elements for which ``f`` is true."""
        return self._narrow("filter", f, True)

    def mapPartitions(self: "RDD", f: Callable[[Iterable], Iterable],
                      preservesPartitioning: bool = False) -> "RDD":
        """Apply ``f`` to each partition's iterator."""
        return self._narrow("mapPartitions", f, preservesPartitioning)

    def mapPartitionsWithIndex(self: "RDD", f: Callable[[int, Iterable], Iterable],
                               preservesPartitioning: bool = False) -> "RDD":
        """Apply ``f(partition_index, iterator)`` to each partition."""
        return self._narrow("mapPartitionsWithIndex", f, preservesPartitioning)

    def mapPartitionsWithSplit(self: "RDD", f, preservesPartitioning: bool = False) -> "RDD":
        return self.mapPartitionsWithIndex(f, preservesPartitioning)

    def glom(self: "RDD") -> "RDD":
        """Each partition as one list."""
        return self.mapPartitions(tf.glom_partition)

    def keyBy(self: "RDD", f: Callable) -> "RDD":
        """Pairs ``(f(x), x)``."""
        return self.map(tf.KeyBy(f))

    def distinct(self: "RDD", numPartitions: int | None = None) -> "RDD":
        """The distinct elements (a shuffle)."""
        return (self.map(tf.key_with_none)
                .reduceByKey(tf.first_of_pair_arg, numPartitions)
                .map(tf.first))

    def union(self: "RDD", other: "RDD") -> "RDD":
        """All elements of both RDDs (duplicates kept)."""
        return self.ctx.union([self, other])

    def __add__(self: "RDD", other: "RDD") -> "RDD":
        if not hasattr(other, "_lineage"):
            raise TypeError(f"cannot add RDD and {type(other).__name__}")
        return self.union(other)

    def intersection(self: "RDD", other: "RDD") -> "RDD":
        """Elements in both RDDs, without duplicates."""
        return (self.map(tf.key_with_none).cogroup(other.map(tf.key_with_none))
                .filter(tf.kv_in_both).keys())

    def subtract(self: "RDD", other: "RDD", numPartitions: int | None = None) -> "RDD":
        """Elements of this RDD not in ``other``."""
        return self.map(tf.key_with_none).subtractByKey(other.map(tf.key_with_none),
                                                        numPartitions).keys()

    def cartesian(self: "RDD", other: "RDD") -> "RDD":
        """All pairs ``(a, b)`` with a in this RDD and b in ``other``."""
        return self._derive(lin.Cartesian(self, other))

    def coalesce(self: "RDD", numPartitions: int, shuffle: bool = False) -> "RDD":
        """Fewer partitions, merging neighbours (or any count, with ``shuffle``)."""
        if not numPartitions > 0:
            raise ValueError("Number of partitions must be positive.")
        if shuffle:
            return self.repartition(numPartitions)
        return self._derive(lin.Coalesce(self, numPartitions))

    def repartition(self: "RDD", numPartitions: int) -> "RDD":
        """Exactly ``numPartitions`` partitions, balanced by a shuffle."""
        if not numPartitions > 0:
            raise ValueError("Number of partitions must be positive.")
        keyed = self.mapPartitionsWithIndex(tf.RoundRobinKeys())
        return keyed.partitionBy(numPartitions, tf.int_key).values()

    def sortBy(self: "RDD", keyfunc: Callable, ascending: bool = True,
               numPartitions: int | None = None) -> "RDD":
        """Sort by ``keyfunc(x)`` (range-partitioned, so the result is globally ordered)."""
        return self.keyBy(keyfunc).sortByKey(ascending, numPartitions).values()

    def zipWithIndex(self: "RDD") -> "RDD":
        """Pairs ``(x, index)`` in partition order (runs a job to count partitions)."""
        counts = self.mapPartitions(tf.count_partition).collect()
        starts, total = [], 0
        for c in counts:
            starts.append(total)
            total += c
        return self.mapPartitionsWithIndex(tf.WithIndexOffset(starts))

    def zipWithUniqueId(self: "RDD") -> "RDD":
        """Pairs ``(x, unique id)``: ids are k*n+i in partition i (no job)."""
        return self.mapPartitionsWithIndex(tf.WithUniqueId(self.getNumPartitions()))

    def pipe(self: "RDD", command: str, env: dict[str, str] | None = None,
             checkCode: bool = False) -> "RDD":
        """Pipe each partition through an external command: every element's
        ``str`` is written to its stdin as one line, and its stdout lines
        (without the newline) are the new RDD's elements.

        ``command`` is split like a shell would (no shell runs it). ``env`` is
        the command's entire environment (none when omitted, as PySpark).
        With ``checkCode`` a non-zero exit status fails the task.
        """
        if not isinstance(command, str):
            raise TypeError(f"pipe() expects the command as a str, got {type(command).__name__}")
        if env is not None and not isinstance(env, dict):
            raise TypeError(f"pipe() expects env as a dict, got {type(env).__name__}")
        return self.mapPartitions(rf.PipeThrough(command, env, checkCode))

    def barrier(self: "RDD") -> "RDDBarrier":
        """Mark the next stage as a barrier stage (PySpark's ``RDDBarrier``).

        sluicegate runs it as an ordinary stage: its tasks are not launched
        together and ``BarrierTaskContext`` is not available.
        """
        return RDDBarrier(self)
