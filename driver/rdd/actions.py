"""RDD actions: run a job and bring a value back (PySpark's semantics)."""
from __future__ import annotations

import functools
import math
import operator
import warnings
import os
import shutil
import uuid
from collections import defaultdict
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from sluicegate.common import rdd_funcs as rf
from sluicegate.common import storage
from sluicegate.common import taskfuncs as tf
from sluicegate.common.stopiteration import fail_on_stopiteration

if TYPE_CHECKING:
    from .base import RDD


class Actions:
    """collect, count, take, reduce, fold, aggregate, foreach, save..."""

    def collect(self: "RDD") -> list:
        """All elements, in partition order."""
        return list(chain.from_iterable(self.ctx._run_job(self)))

    def collectWithJobGroup(self: "RDD", groupId: str, description: str,
                            interruptOnCancel: bool = False) -> list:
        """``collect`` in job group ``groupId`` (deprecated in PySpark 3.1).

        Like PySpark, this sets the job group of the calling thread, which
        stays set for its later jobs.
        """
        warnings.warn("collectWithJobGroup is deprecated since PySpark 3.1: call "
                      "sc.setJobGroup(groupId, description) and then collect()", FutureWarning,
                      stacklevel=2)
        self.ctx.setJobGroup(groupId, description, interruptOnCancel)
        return self.collect()

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
        return functools.reduce(fail_on_stopiteration(f), values)

    def treeReduce(self: "RDD", f: Callable, depth: int = 2) -> Any:
        """``reduce`` in a multi-level tree of partial results (see ``treeAggregate``)."""
        if depth < 1:
            raise ValueError("Depth cannot be smaller than 1 but got %d." % depth)
        placeholder = (None, True)  # (value, is_placeholder): empty partitions add nothing
        merge = rf.MergeReal(f)
        value, empty = self.map(rf.as_real).treeAggregate(placeholder, merge, merge, depth)
        if empty:
            raise ValueError("Cannot reduce empty RDD.")
        return value

    def fold(self: "RDD", zeroValue: Any, op: Callable) -> Any:
        """Fold each partition from ``zeroValue``, then fold the results from it again."""
        values = self.mapPartitions(tf.FoldPartition(zeroValue, op)).collect()
        return functools.reduce(fail_on_stopiteration(op), values, zeroValue)

    def aggregate(self: "RDD", zeroValue: Any, seqOp: Callable, combOp: Callable) -> Any:
        """Aggregate each partition with ``seqOp`` from ``zeroValue``, combine with ``combOp``."""
        values = self.mapPartitions(tf.FoldPartition(zeroValue, seqOp)).collect()
        return functools.reduce(fail_on_stopiteration(combOp), values, zeroValue)

    def treeAggregate(self: "RDD", zeroValue: Any, seqOp: Callable, combOp: Callable,
                      depth: int = 2) -> Any:
        """``aggregate`` whose partial results are combined in a tree of about
        ``depth`` levels of shuffles, so the driver merges only a few of them.

        Unlike ``aggregate``, the zero is not folded in again at the end (as
        PySpark): n empty partitions give ``combOp`` applied to n zeros.
        """
        if depth < 1:
            raise ValueError("Depth cannot be smaller than 1 but got %d." % depth)
        if self.getNumPartitions() == 0:
            return zeroValue
        partial = self.mapPartitions(tf.FoldPartition(zeroValue, seqOp))
        groups = partial.getNumPartitions()
        scale = max(int(math.ceil(groups ** (1.0 / depth))), 2)
        # Another level only while it cuts the work of the level after it.
        while groups > scale + groups / scale:
            groups /= scale
            level = int(groups)
            partial = (partial.mapPartitionsWithIndex(rf.KeyByPartitionModulo(level))
                       .reduceByKey(combOp, level).values())
        return partial.reduce(combOp)

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
        moved into place only when every partition succeeded. ``path`` may be
        an fsspec URL (``s3a://bucket/out``); see ``save_atomically``.
        """
        if compressionCodecClass is not None:
            raise ValueError(f"compression codec {compressionCodecClass!r} is not supported")
        save_text_atomically(self, new_output_directory(path), replace=False)


def new_output_directory(path: str) -> Path | str:
    """The directory ``path`` names (a local ``Path``, or a URL); refused when it exists,
    as Hadoop's FileOutputFormat refuses it (FileAlreadyExistsException)."""
    if storage.is_remote(str(path)):
        storage.check_shared(str(path), "output directory")
        if storage.exists(str(path)):
            raise FileExistsError(f"Output directory {storage.absolute(str(path))} already exists")
        return storage.absolute(str(path))
    target = Path(storage.local_path(str(path)))
    if target.exists():
        raise FileExistsError(f"Output directory file:{target.absolute()} already exists")
    return target


def save_text_atomically(rdd: "RDD", target: Path | str, replace: bool) -> None:
    """Write ``rdd`` as text parts into ``target`` in one rename (``save_atomically``)."""
    save_atomically(rdd, target, replace, tf.WriteTextPartition)


def save_atomically(rdd: "RDD", target: Path | str, replace: bool,
                    part_writer: Callable[[str], Callable]) -> None:
    """Write ``rdd``'s part files into ``target`` in one rename; ``part_writer(staging_dir)``
    is the ``mapPartitionsWithIndex`` function writing one partition's part file.

    With ``replace`` an existing ``target`` (a replayed batch) is swapped out,
    and what an earlier attempt of it left behind when its driver died (a
    staging or swapped-out directory) is removed once the new one is in place.

    A URL (``s3://``, ``gs://``, ``hdfs://``...) has no rename to commit with: see
    ``save_remote``.
    """
    if storage.is_remote(str(target)):
        save_remote(rdd, str(target), replace, part_writer)
        return
    target = Path(storage.local_path(str(target))).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.staging-{uuid.uuid4().hex[:12]}"
    try:
        rdd.mapPartitionsWithIndex(part_writer(str(staging))).collect()
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


def save_remote(rdd: "RDD", target: str, replace: bool,
                part_writer: Callable[[str], Callable]) -> None:
    """``save_atomically`` on a file system without rename (an object store).

    Each task uploads its part whole under ``target/_temporary/<attempt id>/`` (a
    task run twice uploads the same name twice: one part). Once every partition
    succeeded, ``storage.commit_directory`` copies the parts into ``target`` and
    writes ``_SUCCESS`` last; with ``replace`` (a batch run again after a driver
    died) it first deletes what ``target`` held -- ``_SUCCESS`` first, and the
    staging areas of killed attempts -- so a replayed batch replaces its output,
    never adds to it. A directory without ``_SUCCESS`` is incomplete: a reader that
    wants only complete outputs checks for it, as with Hadoop's committers.
    """
    storage.check_shared(target, "output directory")
    target = storage.absolute(target)
    staging = storage.staging_directory(target)
    try:
        rdd.mapPartitionsWithIndex(part_writer(staging)).collect()
        storage.commit_directory(staging, target, replace)
    except BaseException:
        storage.remove_tree(staging)
        raise
