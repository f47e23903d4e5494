"""DStream operations on ``(key, value)`` streams, batch by batch.

As in PySpark, shuffles default to ``defaultParallelism`` partitions (not the
input's), so every batch has the same layout however many blocks arrived.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from sluicegate.common import taskfuncs as tf
from sluicegate.common.hashing import portable_hash

if TYPE_CHECKING:
    from .base import DStream


class PairOperations:
    def _partitions(self: "DStream", numPartitions: int | None) -> int:
        return numPartitions if numPartitions is not None else self._sc.defaultParallelism

    def mapValues(self: "DStream", f: Callable) -> "DStream":
        return self._derive(lambda t, rdd: rdd.mapValues(f))

    def flatMapValues(self: "DStream", f: Callable) -> "DStream":
        return self._derive(lambda t, rdd: rdd.flatMapValues(f))

    def combineByKey(self: "DStream", createCombiner: Callable, mergeValue: Callable,
                     mergeCombiners: Callable, numPartitions: int | None = None) -> "DStream":
        n = self._partitions(numPartitions)
        return self._derive(lambda t, rdd: rdd.combineByKey(createCombiner, mergeValue,
                                                           mergeCombiners, n))

    def reduceByKey(self: "DStream", func: Callable, numPartitions: int | None = None) -> "DStream":
        """Merge each batch's values per key with ``func``."""
        return self.combineByKey(tf.identity, func, func, numPartitions)

    def groupByKey(self: "DStream", numPartitions: int | None = None) -> "DStream":
        n = self._partitions(numPartitions)
        return self._derive(lambda t, rdd: rdd.groupByKey(n))

    def partitionBy(self: "DStream", numPartitions: int,
                    partitionFunc: Callable = portable_hash) -> "DStream":
        return self._derive(lambda t, rdd: rdd.partitionBy(numPartitions, partitionFunc))

    def cogroup(self: "DStream", other: "DStream", numPartitions: int | None = None) -> "DStream":
        n = self._partitions(numPartitions)
        return self.transformWith(lambda a, b: a.cogroup(b, n), other)

    def join(self: "DStream", other: "DStream", numPartitions: int | None = None) -> "DStream":
        n = self._partitions(numPartitions)
        return self.transformWith(lambda a, b: a.join(b, n), other)

    def leftOuterJoin(self: "DStream", other: "DStream", numPartitions: int | None = None) -> "DStream":
        n = self._partitions(numPartitions)
        return self.transformWith(lambda a, b: a.leftOuterJoin(b, n), other)

    def rightOuterJoin(self: "DStream", other: "DStream", numPartitions: int | None = None) -> "DStream":
        n = self._partitions(numPartitions)
        return self.transformWith(lambda a, b: a.rightOuterJoin(b, n), other)

    def fullOuterJoin(self: "DStream", other: "DStream", numPartitions: int | None = None) -> "DStream":
        n = self._partitions(numPartitions)
        return self.transformWith(lambda a, b: a.fullOuterJoin(b, n), other)
