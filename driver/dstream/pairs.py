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
        return self._derive(lambda t, rdd: rdd.mapValues(f), kind="mapValues")

    def flatMapValues(self: "DStream", f: Callable) -> "DStream":
        return self._derive(lambda t, rdd: rdd.flatMapValues(f), kind="flatMapValues")

    def combineByKey(self: "DStream", createCombiner: Callable, mergeValue: Callable,
                     mergeCombiners: Callable, numPartitions: int | None = None) -> "DStream":
        n = self._partitions(numPartitions)
        return self._derive(lambda t, rdd: rdd.combineByKey(createCombiner, mergeValue,
                                                           mergeCombiners, n),
                            kind="combineByKey", params={"numPartitions": numPartitions})

    def reduceByKey(self: "DStream", func: Callable, numPartitions: int | None = None) -> "DStream":
        """Merge each batch's values per key with ``func``."""
        n = self._partitions(numPartitions)
        return self._derive(lambda t, rdd: rdd.combineByKey(tf.identity, func, func, n),
                            kind="reduceByKey", params={"numPartitions": numPartitions})

    def groupByKey(self: "DStream", numPartitions: int | None = None) -> "DStream":
        n = self._partitions(numPartitions)
        return self._derive(lambda t, rdd: rdd.groupByKey(n), kind="groupByKey",
                            params={"numPartitions": numPartitions})

    def partitionBy(self: "DStream", numPartitions: int,
                    partitionFunc: Callable = portable_hash) -> "DStream":
        return self._derive(lambda t, rdd: rdd.partitionBy(numPartitions, partitionFunc),
                            kind="partitionBy", params={"numPartitions": numPartitions})

    def cogroup(self: "DStream", other: "DStream", numPartitions: int | None = None) -> "DStream":
        n = self._partitions(numPartitions)
        return self._derive(lambda t, a, b: a.cogroup(b, n), other, kind="cogroup",
                            params={"numPartitions": numPartitions})

    def join(self: "DStream", other: "DStream", numPartitions: int | None = None) -> "DStream":
        n = self._partitions(numPartitions)
        return self._derive(lambda t, a, b: a.join(b, n), other, kind="join",
                            params={"numPartitions": numPartitions})

    def leftOuterJoin(self: "DStream", other: "DStream", numPartitions: int | None = None) -> "DStream":
        n = self._partitions(numPartitions)
        return self._derive(lambda t, a, b: a.leftOuterJoin(b, n), other,
                            kind="leftOuterJoin", params={"numPartitions": numPartitions})

    def rightOuterJoin(self: "DStream", other: "DStream", numPartitions: int | None = None) -> "DStream":
        n = self._partitions(numPartitions)
        return self._derive(lambda t, a, b: a.rightOuterJoin(b, n), other,
                            kind="rightOuterJoin", params={"numPartitions": numPartitions})

    def fullOuterJoin(self: "DStream", other: "DStream", numPartitions: int | None = None) -> "DStream":
        n = self._partitions(numPartitions)
        return self._derive(lambda t, a, b: a.fullOuterJoin(b, n), other,
                            kind="fullOuterJoin", params={"numPartitions": numPartitions})
