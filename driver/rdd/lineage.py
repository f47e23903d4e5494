"""How each kind of RDD computes a partition, as a plan tree for a task.

A lineage object knows its parents (``dependencies``), its partition count,
the user functions it needs shipped (``closures``), and how partition
``split`` becomes a concrete ``PlanNode``. Partition mappings (union,
coalesce, cartesian) are resolved here, on the driver, so executors only
interpret. A shuffle dependency ends the tree with a ``ShuffleRead``; the
scheduler runs the parent's map stage first.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from sluicegate.common import rdd_funcs, storage
from sluicegate.common.fileformats import is_splittable
from sluicegate.common.protocol import plan as p

from .dependencies import Dependency, NarrowDependency, ShuffleDependency
from .partitioner import Partitioner

if TYPE_CHECKING:
    from ..scheduler.planner import TaskPlanner
    from .base import RDD


class Lineage:
    """One RDD kind. Subclasses set ``dependencies`` and implement the rest."""

    dependencies: list[Dependency] = []

    def num_partitions(self) -> int:
        raise NotImplementedError

    def plan(self, split: int, planner: TaskPlanner) -> p.PlanNode:
        raise NotImplementedError

    def closures(self) -> list[Callable]:
        return []

    def describe(self) -> str:
        return type(self).__name__


# -- sources -------------------------------------------------------------------

class ParallelCollection(Lineage):
    """``parallelize``: ranges ship as bounds; other data as driver blocks."""

    def __init__(self, slices: list[p.PlanNode]):
        self.slices = slices
        self.dependencies = []

    def num_partitions(self) -> int:
        return len(self.slices)

    def plan(self, split, planner):
        return self.slices[split]


class Empty(Lineage):
    def __init__(self):
        self.dependencies = []

    def num_partitions(self):
        return 0

    def plan(self, split, planner):
        return p.EmptySource()


class Blocks(Lineage):
    """Received input: partition i is block i (streaming receivers)."""

    def __init__(self, block_ids: list[str]):
        self.block_ids = block_ids
        self.dependencies = []

    def num_partitions(self):
        return len(self.block_ids)

    def plan(self, split, planner):
        return p.BlockSource(self.block_ids[split])


class TextFiles(Lineage):
    """``textFile``: byte-range splits of every matched file (Hadoop's rules)."""

    LOCAL_BLOCK_SIZE = 32 << 20  # Hadoop's fs.local.block.size
    SPLIT_SLOP = 1.1

    def __init__(self, path: str, min_partitions: int):
        self.path = path
        self.min_partitions = max(1, min_partitions)
        self.dependencies = []
        self._splits: list[p.PlanNode] | None = None

    def splits(self) -> list[p.PlanNode]:
        if self._splits is None:
            self._splits = self._compute_splits()
        return self._splits

    def _compute_splits(self) -> list[p.PlanNode]:
        files = expand_paths_sized(self.path)
        goal = sum(size for _, size in files) // self.min_partitions
        split_size = max(1, min(goal, self.LOCAL_BLOCK_SIZE))
        splits: list[p.PlanNode] = []
        for path, size in files:
            if not is_splittable(path):
                splits.append(p.FileSplitSource(path, 0, -1))
                continue
            remaining = size
            while remaining / split_size > self.SPLIT_SLOP:
                splits.append(p.FileSplitSource(path, size - remaining, split_size))
                remaining -= split_size
            if remaining:  # empty files make no split (spark.hadoopRDD.ignoreEmptySplits)
                splits.append(p.FileSplitSource(path, size - remaining, remaining))
        return splits

    def num_partitions(self):
        return len(self.splits())

    def plan(self, split, planner):
        return self.splits()[split]

    def describe(self):
        return f"TextFiles[{self.path}]"


class WholeTextFiles(Lineage):
    def __init__(self, path: str, min_partitions: int):
        self.path = path
        self.min_partitions = max(1, min_partitions)
        self.dependencies = []
        self._groups: list[list[str]] | None = None

    def groups(self) -> list[list[str]]:
        if self._groups is None:
            files = expand_paths(self.path)
            n = min(self.min_partitions, len(files)) or 1
            self._groups = [files[i::n] for i in range(n)] if files else []
        return self._groups

    def num_partitions(self):
        return len(self.groups())

    def plan(self, split, planner):
        return p.WholeFilesSource(self.groups()[split])


class BinaryRecords(Lineage):
    def __init__(self, path: str, record_length: int):
        self.path = path
        self.record_length = record_length
        self.dependencies = []
        self._files: list[str] | None = None

    def files(self):
        if self._files is None:
            self._files = expand_paths(self.path)
        return self._files

    def num_partitions(self):
        return len(self.files())

    def plan(self, split, planner):
        return p.BinaryRecordsSource(self.files()[split], self.record_length)


# -- narrow ------------------------------------------------------------------------

_NODE_OF_KIND = {
    "map": p.MapNode,
    "flatMap": p.FlatMapNode,
    "filter": p.FilterNode,
    "mapValues": p.MapValuesNode,
    "flatMapValues": p.FlatMapValuesNode,
}


class OneToOne(Lineage):
    """Partition i is made from the parent's partition i, in the same task (what
    Spark's ``OneToOneDependency`` describes)."""

    def __init__(self, parent: "RDD"):
        self.parent = parent
        self.dependencies = [NarrowDependency(parent)]

    def num_partitions(self):
        return self.parent.getNumPartitions()


class MapPartitions(OneToOne):
    """One function over each record/partition of the parent, pipelined in its task.

    ``kind`` is map, flatMap, filter, mapValues, flatMapValues, mapPartitions
    or mapPartitionsWithIndex.
    """

    def __init__(self, parent: "RDD", kind: str, fn: Callable):
        super().__init__(parent)
        self.kind = kind
        self.fn = fn

    def closures(self):
        return [self.fn]

    def plan(self, split, planner):
        child = self.parent._plan(split, planner)
        node = _NODE_OF_KIND.get(self.kind)
        if node is not None:
            return node(planner.register(self.fn), child)
        index = split if self.kind == "mapPartitionsWithIndex" else None
        return p.MapPartitionsNode(planner.register(self.fn), index, child)

    def describe(self):
        return f"{self.kind}[{getattr(self.fn, '__name__', type(self.fn).__name__)}]"


class Union(Lineage):
    """Partitions of each parent, one after another."""

    def __init__(self, parents: list["RDD"]):
        self.parents = parents
        self.dependencies = [NarrowDependency(r) for r in parents]

    def num_partitions(self):
        return sum(r.getNumPartitions() for r in self.parents)

    def plan(self, split, planner):
        for parent in self.parents:
            n = parent.getNumPartitions()
            if split < n:
                return parent._plan(split, planner)
            split -= n
        raise IndexError("union partition out of range")


class PartitionerAwareUnion(Lineage):
    """Union of co-partitioned parents: partition i joins every parent's i."""

    def __init__(self, parents: list["RDD"]):
        self.parents = parents
        self.dependencies = [NarrowDependency(r) for r in parents]

    def num_partitions(self):
        return self.parents[0].getNumPartitions()

    def plan(self, split, planner):
        return p.ConcatNode([r._plan(split, planner) for r in self.parents])


class Coalesce(Lineage):
    """Fewer partitions without a shuffle: consecutive parent partitions grouped."""

    def __init__(self, parent: "RDD", num_partitions: int):
        self.parent = parent
        self.dependencies = [NarrowDependency(parent)]
        n = parent.getNumPartitions()
        k = max(1, min(num_partitions, n)) if n else 0
        self.groups = [list(range(i * n // k, (i + 1) * n // k)) for i in range(k)]

    def num_partitions(self):
        return len(self.groups)

    def plan(self, split, planner):
        return p.ConcatNode([self.parent._plan(i, planner) for i in self.groups[split]])


class Cartesian(Lineage):
    def __init__(self, left: "RDD", right: "RDD"):
        self.left, self.right = left, right
        self.dependencies = [NarrowDependency(left), NarrowDependency(right)]

    def num_partitions(self):
        return self.left.getNumPartitions() * self.right.getNumPartitions()

    def plan(self, split, planner):
        n = self.right.getNumPartitions()
        return p.CartesianNode(self.left._plan(split // n, planner), self.right._plan(split % n, planner))


class Zipped(Lineage):
    """``zip``: partition i pairs the i-th partitions of both parents in one task.

    The task reads the first parent's partition, then a marker, then the
    second's; ``zip_halves`` pairs them up in order.
    """

    def __init__(self, left: "RDD", right: "RDD"):
        self.left, self.right = left, right
        self.dependencies = [NarrowDependency(left), NarrowDependency(right)]

    def num_partitions(self):
        return self.left.getNumPartitions()

    def plan(self, split, planner):
        right = p.MapPartitionsNode(planner.register(rdd_funcs.mark_right_half), None,
                                    self.right._plan(split, planner))
        both = p.ConcatNode([self.left._plan(split, planner), right])
        return p.MapPartitionsNode(planner.register(rdd_funcs.zip_halves), None, both)


class LocalCombine(OneToOne):
    """combineByKey on data already partitioned by the target partitioner: no shuffle."""

    def __init__(self, parent: "RDD", combiner: tuple, values_are_combiners: bool):
        super().__init__(parent)
        self.combiner = combiner
        self.values_are_combiners = values_are_combiners

    def closures(self):
        return list(self.combiner)

    def plan(self, split, planner):
        return p.CombineNode(combiner_spec(self.combiner, planner), self.values_are_combiners,
                             self.parent._plan(split, planner))


class SortWithinPartitions(OneToOne):
    def __init__(self, parent: "RDD", keyfunc: Callable | None, ascending: bool):
        super().__init__(parent)
        self.keyfunc = keyfunc
        self.ascending = ascending

    def closures(self):
        return [self.keyfunc] if self.keyfunc is not None else []

    def plan(self, split, planner):
        key_fn = planner.register(self.keyfunc) if self.keyfunc is not None else None
        return p.SortNode(key_fn, self.ascending, self.parent._plan(split, planner))


# -- shuffles -----------------------------------------------------------------------

def combiner_spec(combiner: tuple, planner: TaskPlanner) -> p.Combiner:
    create, merge_value, merge_combiners = combiner
    return p.Combiner(planner.register(create), planner.register(merge_value), planner.register(merge_combiners))


def partitioner_spec(partitioner: Partitioner, planner: TaskPlanner) -> p.PartitionerSpec:
    if partitioner.is_hash:
        return p.PartitionerSpec("hash", partitioner.numPartitions, None)
    return p.PartitionerSpec("func", partitioner.numPartitions, planner.register(partitioner.partitionFunc))


def shuffle_read(dep: ShuffleDependency, split: int, planner: TaskPlanner) -> p.ShuffleRead:
    combiner = combiner_spec(dep.combiner, planner) if dep.combiner is not None else None
    return p.ShuffleRead(dep.shuffle_id, split, dep.num_maps, combiner, dep.map_side_combine)


class Shuffled(Lineage):
    """The reduce side of one shuffle (reduceByKey, partitionBy, groupByKey...)."""

    def __init__(self, dep: ShuffleDependency):
        self.dep = dep
        self.dependencies = [dep]

    def num_partitions(self):
        return self.dep.partitioner.numPartitions

    def closures(self):
        fns = list(self.dep.combiner or ())
        if not self.dep.partitioner.is_hash:
            fns.append(self.dep.partitioner.partitionFunc)
        return fns

    def plan(self, split, planner):
        return shuffle_read(self.dep, split, planner)

    def describe(self):
        return f"Shuffled[shuffle {self.dep.shuffle_id}]"


class CoGrouped(Lineage):
    """cogroup: parents already partitioned like the result are read in place,
    the others are shuffled into that partitioning."""

    def __init__(self, parents: list["RDD"], partitioner: Partitioner, new_shuffle_id: Callable[[], int]):
        self.partitioner = partitioner
        self.dependencies: list[Dependency] = []
        for parent in parents:
            if parent.partitioner == partitioner:
                self.dependencies.append(NarrowDependency(parent))
            else:
                self.dependencies.append(
                    ShuffleDependency(parent, new_shuffle_id(), partitioner, None, False))

    def num_partitions(self):
        return self.partitioner.numPartitions

    def closures(self):
        return [] if self.partitioner.is_hash else [self.partitioner.partitionFunc]

    def plan(self, split, planner):
        children = []
        for dep in self.dependencies:
            if isinstance(dep, ShuffleDependency):
                children.append(shuffle_read(dep, split, planner))
            else:
                children.append(dep.rdd._plan(split, planner))
        return p.CoGroupNode(children)


# -- files ---------------------------------------------------------------------------

def expand_paths(path: str) -> list[str]:
    """Files named by a path, directory, glob, or comma-separated list of them."""
    return [name for name, _ in expand_paths_sized(path, with_sizes=False)]


def expand_paths_sized(path: str, with_sizes: bool = True) -> list[tuple[str, int]]:
    """``(file, size in bytes)`` for the files ``expand_paths`` names. A local path or
    ``file:`` URI is listed with os calls; any other URL with fsspec
    (``common.storage``). Sizes are -1 when ``with_sizes`` is false (local files)."""
    found: list[tuple[str, int]] = []
    for part in (x.strip() for x in str(path).split(",")):
        if not part:
            continue
        if storage.is_remote(part):
            storage.check_shared(part, "input path")
            found.extend(storage.expand_input(part))
            continue
        if part.startswith("file://"):
            part = part[len("file://"):]
        elif part.startswith("file:"):
            part = part[len("file:"):]
        matches = sorted(glob.glob(part)) if glob.has_magic(part) else [part]
        if not matches or not all(os.path.exists(m) for m in matches):
            raise FileNotFoundError(f"Input path does not exist: {Path(part).absolute()}")
        names: list[str] = []
        for match in matches:
            if os.path.isdir(match):
                names.extend(sorted(
                    str(f) for f in Path(match).iterdir()
                    if f.is_file() and not f.name.startswith((".", "_"))))
            else:
                names.append(match)
        found.extend((name, os.path.getsize(name) if with_sizes else -1) for name in names)
    return found


class CheckpointFiles(Lineage):
    """An RDD read back from its checkpoint directory (after a driver restart)."""

    def __init__(self, path: str, num_partitions: int):
        self.path = path
        self.count = num_partitions
        self.dependencies = []

    def num_partitions(self):
        return self.count

    def plan(self, split, planner):
        return p.CheckpointSource(f"{self.path}/part-{split:05d}")


class StateBatch(Lineage):
    """One batch of keyed state: each partition's previous state (or initial
    pairs) and this batch's data, partitioned alike, make the new state --
    narrow on both sides, so the state never moves."""

    def __init__(self, previous: "RDD | None", previous_is_state: bool, data: "RDD", fn: Callable):
        self.previous = previous
        self.previous_is_state = previous_is_state
        self.data = data
        self.fn = fn
        self.dependencies = [NarrowDependency(data)]
        if previous is not None:
            self.dependencies.append(NarrowDependency(previous))

    def num_partitions(self):
        return self.data.getNumPartitions()

    def closures(self):
        return [self.fn]

    def plan(self, split, planner):
        previous = self.previous._plan(split, planner) if self.previous is not None else p.EmptySource()
        return self.node(planner.register(self.fn), previous, self.data._plan(split, planner))

    def node(self, fn: int, previous: p.PlanNode, data: p.PlanNode) -> p.PlanNode:
        raise NotImplementedError


class UpdateStateBatch(StateBatch):
    """updateStateByKey: ``fn(new_values, last_state)`` for every key."""

    def node(self, fn, previous, data):
        return p.UpdateStateNode(fn, self.previous_is_state or self.previous is None, previous, data)


class MapWithStateBatch(StateBatch):
    """mapWithState: ``fn(key, value, state)`` per record, state versioned per batch."""

    def __init__(self, previous: "RDD | None", previous_is_state: bool, data: "RDD", fn: Callable,
                 time_ms: int, timeout_ms: int | None, keep_versions: int):
        super().__init__(previous, previous_is_state, data, fn)
        self.time_ms = time_ms
        self.timeout_ms = timeout_ms
        self.keep_versions = keep_versions

    def node(self, fn, previous, data):
        return p.MapWithStateNode(
            fn=fn, time_ms=self.time_ms, timeout_ms=self.timeout_ms,
            keep_versions=self.keep_versions,
            previous_is_state=self.previous_is_state and self.previous is not None,
            previous=previous, data=data)
