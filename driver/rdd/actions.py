"""RDD actions: run a job and bring a value back (PySpark's semantics)."""
from __future__ import annotations

import functools
import operator
import os
import shutil
import uuid
from collections import defaultdict
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from sluicegate.common import taskfuncs as tf

if TYPE_CHECKING:
    from .base import RDD


class Actions:
    """collect, count, take, reduce, fold, aggregate, foreach, save..."""

    def collect(self: "RDD") -> list:
        """All elements, in partition order."""
        return list(chain.from_iterable(self.ctx._run_job(self)))

    def collectAsMap(self: "RDD") -> dict:
        return dict(self.collect())

    def count(self: "RDD") -> int:
        return sum(self.mapPartitions(tf.count_partition).collect())

    def take(self: "RDD", num: int) -> list:
        """The first ``num`` elements, scanning as few partitions as it can.

        Like PySpark: one partition first, then more each round, estimated from
        how many elements the partitions scanned so far held.
        """
        items: list = []
        total = self.getNumPartitions()
        scanned = 0
        while len(items) < num and scanned < total:
            to_try = 1
            if scanned > 0:
                if not items:
                    to_try = scanned * 4
                else:
                    to_try = int(1.5 * num * scanned / len(items)) - scanned
                    to_try = min(max(to_try, 1), scanned * 4)
            partitions = list(range(scanned, min(scanned + to_try, total)))
            taker = self.mapPartitions(tf.TakeUpTo(num - len(items)))
            for part in self.ctx._run_job(taker, partitions):
                items.extend(part)
            scanned += to_try
        return items[:num]

    def first(self: "RDD") -> Any:
        taken = self.take(1)
        if taken:
            return taken[0]
        raise ValueError("RDD is empty")

    def isEmpty(self: "RDD") -> bool:
        return self.getNumPartitions() == 0 or len(self.take(1)) == 0

    def reduce(self: "RDD", f: Callable) -> Any:
        """Reduce the elements with a commutative, associative binary function."""
        values = self.mapPartitions(tf.ReducePartition(f)).collect()
        if not values:
            raise ValueError("Can not reduce() empty RDD")
        return functools.reduce(f, values)

    def treeReduce(self: "RDD", f: Callable, depth: int = 2) -> Any:
        return self.reduce(f)

    def fold(self: "RDD", zeroValue: Any, op: Callable) -> Any:
        """Fold each partition from ``zeroValue``, then fold the results from it again."""
        values = self.mapPartitions(tf.FoldPartition(zeroValue, op)).collect()
        return functools.reduce(op, values, zeroValue)

    def aggregate(self: "RDD", zeroValue: Any, seqOp: Callable, combOp: Callable) -> Any:
        """Aggregate each partition with ``seqOp`` from ``zeroValue``, combine with ``combOp``."""
        values = self.mapPartitions(tf.FoldPartition(zeroValue, seqOp)).collect()
        return functools.reduce(combOp, values, zeroValue)

    def treeAggregate(self: "RDD", zeroValue, seqOp, combOp, depth: int = 2):
        return self.aggregate(zeroValue, seqOp, combOp)

    def sum(self: "RDD") -> Any:
        return self.mapPartitions(tf.sum_partition).fold(0, operator.add)

    def max(self: "RDD", key: Callable | None = None) -> Any:
        if key is None:
            return self.reduce(max)
        return self.reduce(functools.partial(tf.max_by, key))

    def min(self: "RDD", key: Callable | None = None) -> Any:
        if key is None:
            return self.reduce(min)
        return self.reduce(functools.partial(tf.min_by, key))

    def mean(self: "RDD") -> float:
        """The mean of the elements (0.0 for an empty RDD, as PySpark's StatCounter)."""
        if self.getNumPartitions() == 0:
            raise ValueError("Can not reduce() empty RDD")
        count, total = self.map(tf.count_and_value).fold((0, 0), tf.add_pairs)
        return total / count if count else 0.0

    def top(self: "RDD", num: int, key: Callable | None = None) -> list:
        """The ``num`` largest elements, largest first."""
        parts = self.mapPartitions(tf.TopOf(num, key, True)).collect()
        return sorted(chain.from_iterable(parts), key=key, reverse=True)[:num]

    def takeOrdered(self: "RDD", num: int, key: Callable | None = None) -> list:
        """The ``num`` smallest elements, in ascending order."""
        parts = self.mapPartitions(tf.TopOf(num, key, False)).collect()
        return sorted(chain.from_iterable(parts), key=key)[:num]

    def foreach(self: "RDD", f: Callable) -> None:
        """Apply ``f`` to every element, on the executors."""
        self.mapPartitions(tf.ForeachRecord(f)).collect()

    def foreachPartition(self: "RDD", f: Callable) -> None:
        self.mapPartitions(tf.ForeachPartition(f)).collect()

    def countByValue(self: "RDD") -> dict:
        """How many times each distinct element occurs (a dict)."""
        counts: dict = defaultdict(int)
        for value, n in self.map(tf.with_one).reduceByKey(operator.add).collect():
            counts[value] = n
        return counts

    def countByKey(self: "RDD") -> dict:
        return self.map(tf.first).countByValue()

    def lookup(self: "RDD", key: Any) -> list:
        """Values for ``key``; reads only one partition when the RDD is partitioned."""
        values = self.filter(tf.Equals(key)).values()
        if self.partitioner is not None:
            return list(chain.from_iterable(
                self.ctx._run_job(values, [self.partitioner(key)])))
        return values.collect()

    def saveAsTextFile(self: "RDD", path: str, compressionCodecClass: str | None = None) -> None:
        """Write each element's ``str`` as a line: ``path/part-NNNNN`` plus ``_SUCCESS``.

        The parts are written in a staging directory next to ``path`` and
        moved into place only when every partition succeeded.
        """
        if compressionCodecClass is not None:
            raise ValueError(f"compression codec {compressionCodecClass!r} is not supported")
        target = Path(str(path).removeprefix("file://").removeprefix("file:"))
        if target.exists():
            raise FileExistsError(f"Output directory file:{target.absolute()} already exists")
        save_text_atomically(self, target, replace=False)


def save_text_atomically(rdd: "RDD", target: Path, replace: bool) -> None:
    """Write ``rdd`` as text parts into ``target`` in one rename.

    With ``replace`` an existing ``target`` (a replayed batch) is swapped out,
    and what an earlier attempt of it left behind when its driver died (a
    staging or swapped-out directory) is removed once the new one is in place.
    """
    target = target.absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.staging-{uuid.uuid4().hex[:12]}"
    try:
        rdd.mapPartitionsWithIndex(tf.WriteTextPartition(str(staging))).collect()
        staging.mkdir(exist_ok=True)  # an RDD with no partitions still saves a directory
        (staging / "_SUCCESS").touch()
        if replace and target.exists():
            trash = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:12]}"
            os.rename(target, trash)
            os.rename(staging, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(staging, target)
        if replace:
            for debris in target.parent.iterdir():
                if debris.name.startswith((f".{target.name}.staging-", f".{target.name}.old-")):
                    shutil.rmtree(debris, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
