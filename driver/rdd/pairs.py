"""Operations on RDDs of ``(key, value)`` pairs (PySpark's semantics and defaults).

Every keyed aggregation is ``combineByKey``: map-side combine, a hash
shuffle, merge on the reduce side. When the input is already partitioned
the way the result must be, it combines in place with no shuffle, and
joins/cogroups of co-partitioned RDDs read both sides where they lie.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from sluicegate.common import taskfuncs as tf
from sluicegate.common.config import DEFAULT_PARALLELISM
from sluicegate.common.hashing import portable_hash

from . import lineage as lin
from .dependencies import ShuffleDependency
from .partitioner import Partitioner

if TYPE_CHECKING:
    from .base import RDD


class PairFunctions:
    """reduceByKey, combineByKey, groupByKey, joins, cogroup, sortByKey, ..."""

    def _defaultReducePartitions(self: "RDD") -> int:
        """PySpark's rule: spark.default.parallelism if set, else this RDD's partition count."""
        if self.ctx._conf.contains(DEFAULT_PARALLELISM):
            return self.ctx.defaultParallelism
        return self.getNumPartitions()

    def keys(self: "RDD") -> "RDD":
        return self.map(tf.first)

    def values(self: "RDD") -> "RDD":
        return self.map(tf.second)

    def mapValues(self: "RDD", f: Callable) -> "RDD":
        """Apply ``f`` to each value, keeping keys and partitioning."""
        return self._narrow("mapValues", f, True)

    def flatMapValues(self: "RDD", f: Callable) -> "RDD":
        """Apply ``f`` to each value and flatten, keeping keys and partitioning."""
        return self._narrow("flatMapValues", f, True)

    # -- aggregation --------------------------------------------------------------
    def combineByKey(self: "RDD", createCombiner: Callable, mergeValue: Callable,
                     mergeCombiners: Callable, numPartitions: int | None = None,
                     partitionFunc: Callable = portable_hash) -> "RDD":
        """Turn ``RDD[(K, V)]`` into ``RDD[(K, C)]`` with the three functions."""
        if numPartitions is None:
            numPartitions = self._defaultReducePartitions()
        partitioner = Partitioner(numPartitions, partitionFunc)
        combiner = (createCombiner, mergeValue, mergeCombiners)
        if self.partitioner == partitioner:
            return self._derive(lin.LocalCombine(self, combiner, False), partitioner)
        dep = self.ctx._new_shuffle(self, partitioner, combiner, True)
        return self._derive(lin.Shuffled(dep), partitioner)

    def reduceByKey(self: "RDD", func: Callable, numPartitions: int | None = None,
                    partitionFunc: Callable = portable_hash) -> "RDD":
        """Merge the values of each key with an associative, commutative ``func``."""
        return self.combineByKey(tf.identity, func, func, numPartitions, partitionFunc)

    def reduceByKeyLocally(self: "RDD", func: Callable) -> dict:
        """Merge the values of each key and return them to the driver as a dict."""
        return dict(self.reduceByKey(func).collect())

    def aggregateByKey(self: "RDD", zeroValue: Any, seqFunc: Callable, combFunc: Callable,
                       numPartitions: int | None = None,
                       partitionFunc: Callable = portable_hash) -> "RDD":
        return self.combineByKey(tf.ZeroThen(zeroValue, seqFunc), seqFunc, combFunc,
                                 numPartitions, partitionFunc)

    def foldByKey(self: "RDD", zeroValue: Any, func: Callable, numPartitions: int | None = None,
                  partitionFunc: Callable = portable_hash) -> "RDD":
        return self.combineByKey(tf.ZeroThen(zeroValue, func), func, func, numPartitions,
                                 partitionFunc)

    def groupByKey(self: "RDD", numPartitions: int | None = None,
                   partitionFunc: Callable = portable_hash) -> "RDD":
        """Group the values of each key into a ResultIterable."""
        return self.combineByKey(tf.group_create, tf.group_merge_value, tf.group_merge_groups,
                                 numPartitions, partitionFunc).mapValues(tf.to_result_iterable)

    def groupBy(self: "RDD", f: Callable, numPartitions: int | None = None,
                partitionFunc: Callable = portable_hash) -> "RDD":
        return self.keyBy(f).groupByKey(numPartitions, partitionFunc)

    def partitionBy(self: "RDD", numPartitions: int,
                    partitionFunc: Callable = portable_hash) -> "RDD":
        """Shuffle so key k lands in partition ``partitionFunc(k) % numPartitions``."""
        partitioner = Partitioner(numPartitions, partitionFunc)
        if self.partitioner == partitioner:
            return self
        dep = self.ctx._new_shuffle(self, partitioner, None, False)
        return self._derive(lin.Shuffled(dep), partitioner)

    # -- joins ------------------------------------------------------------------------
    def _cogroup_partitioner(self: "RDD", others: list["RDD"],
                             numPartitions: int | None) -> Partitioner:
        if numPartitions is not None:
            return Partitioner(numPartitions, portable_hash)
        existing = [r.partitioner for r in [self, *others] if r.partitioner is not None]
        if existing:
            return max(existing, key=lambda part: part.numPartitions)
        if self.ctx._conf.contains(DEFAULT_PARALLELISM):
            return Partitioner(self.ctx.defaultParallelism, portable_hash)
        return Partitioner(sum(r.getNumPartitions() for r in [self, *others]), portable_hash)

    def cogroup(self: "RDD", other: "RDD", numPartitions: int | None = None) -> "RDD":
        """``(k, (values in self, values in other))`` for every key of either."""
        return self.groupWith(other, numPartitions=numPartitions)

    def groupWith(self: "RDD", other: "RDD", *others: "RDD", numPartitions: int | None = None) -> "RDD":
        parents = [self, other, *others]
        partitioner = self._cogroup_partitioner(parents[1:], numPartitions)
        grouped = lin.CoGrouped(parents, partitioner, self.ctx._new_shuffle_id)
        for dep in grouped.dependencies:
            if isinstance(dep, ShuffleDependency):
                self.ctx._runtime.track_shuffle(dep)
        return self._derive(grouped, partitioner)

    def join(self: "RDD", other: "RDD", numPartitions: int | None = None) -> "RDD":
        """``(k, (v, w))`` for every v and w sharing key k."""
        return self.cogroup(other, numPartitions).flatMapValues(tf.join_values)

    def leftOuterJoin(self: "RDD", other: "RDD", numPartitions: int | None = None) -> "RDD":
        return self.cogroup(other, numPartitions).flatMapValues(tf.left_outer_join_values)

    def rightOuterJoin(self: "RDD", other: "RDD", numPartitions: int | None = None) -> "RDD":
        return self.cogroup(other, numPartitions).flatMapValues(tf.right_outer_join_values)

    def fullOuterJoin(self: "RDD", other: "RDD", numPartitions: int | None = None) -> "RDD":
        return self.cogroup(other, numPartitions).flatMapValues(tf.full_outer_join_values)

    def subtractByKey(self: "RDD", other: "RDD", numPartitions: int | None = None) -> "RDD":
        """Pairs whose key is not in ``other``."""
        return (self.cogroup(other, numPartitions).filter(tf.kv_only_in_first)
                .flatMapValues(tf.first_group))

    # -- sorting ----------------------------------------------------------------------
    def sortByKey(self: "RDD", ascending: bool = True, numPartitions: int | None = None,
                  keyfunc: Callable = tf.identity) -> "RDD":
        """Sort by key: range-partition on sampled bounds, then sort each partition.

        Like PySpark, this runs two small jobs at once (count, sample).
        """
        if numPartitions is None:
            numPartitions = self._defaultReducePartitions()
        sort_key = None if keyfunc is tf.identity else keyfunc
        if numPartitions <= 1:
            single = self.coalesce(1) if self.getNumPartitions() > 1 else self
            return single._derive(lin.SortWithinPartitions(single, sort_key, ascending),
                                  single.partitioner)
        size = self.count()
        if not size:
            return self
        fraction = min(numPartitions * 20.0 / max(size, 1), 1.0)
        samples = sorted((keyfunc(k) for k in self.sample(False, fraction, 1).keys().collect()))
        bounds = [samples[int(len(samples) * (i + 1) / numPartitions)]
                  for i in range(numPartitions - 1)] if samples else []
        ranged = self.partitionBy(numPartitions, tf.RangePartition(bounds, ascending, keyfunc))
        return ranged._derive(lin.SortWithinPartitions(ranged, sort_key, ascending),
                              ranged.partitioner)

    def repartitionAndSortWithinPartitions(self: "RDD", numPartitions: int | None = None,
                                           partitionFunc: Callable = portable_hash,
                                           ascending: bool = True,
                                           keyfunc: Callable = tf.identity) -> "RDD":
        if numPartitions is None:
            numPartitions = self._defaultReducePartitions()
        part = self.partitionBy(numPartitions, partitionFunc)
        sort_key = None if keyfunc is tf.identity else keyfunc
        return part._derive(lin.SortWithinPartitions(part, sort_key, ascending), part.partitioner)
