"""The RDD: an immutable, partitioned collection computed from its lineage.

An ``RDD`` is what users hold; its ``Lineage`` says how partitions are
computed. This module keeps what every RDD has: identity, partition count,
persistence and checkpointing, and the per-partition plan with the cache
wrapped around it. The operations live in the mixins it combines.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from sluicegate.common.protocol import plan as p
from sluicegate.common.storagelevel import StorageLevel

from .actions import Actions
from .dependencies import Dependency, ShuffleDependency
from .hadoop_output import HadoopOutputs
from .lineage import Lineage
from .pairs import PairFunctions
from .partitioner import Partitioner
from .sampling import Sampling
from .statistics import Statistics
from .transformations import Transformations

if TYPE_CHECKING:
    from ..context.spark_context import SparkContext
    from ..scheduler.planner import TaskPlanner

_SPARK_5063 = (
    "It appears that you are attempting to broadcast an RDD or reference an RDD from an action "
    "or transformation. RDD transformations and actions can only be invoked by the driver, not "
    "inside of other transformations; for example, rdd1.map(lambda x: rdd2.values.count() * x) "
    "is invalid because the values transformation and count action cannot be performed inside "
    "of the rdd1.map transformation. For more information, see SPARK-5063.")


def rdd_block_id(rdd_id: int, split: int) -> str:
    return f"rdd_{rdd_id}_{split}"


class RDD(Transformations, Actions, PairFunctions, Sampling, Statistics, HadoopOutputs):
    """A Resilient Distributed Dataset (PySpark's ``RDD``): the basic abstraction.

    Transformations return new RDDs lazily; actions run a job on the
    cluster's executors and return a value to the driver.
    """

    def __init__(self, ctx: "SparkContext", lineage: Lineage, partitioner: Partitioner | None = None):
        self.ctx = ctx
        self._lineage = lineage
        self._id = ctx._next_rdd_id()
        self.partitioner = partitioner
        self._storage_level = StorageLevel.NONE
        self.is_cached = False
        self._checkpoint_requested = False
        self._checkpoint_path: str | None = None
        self._name: str | None = None
        self._num_partitions: int | None = None

    def _derive(self, lineage: Lineage, partitioner: Partitioner | None = None) -> "RDD":
        return RDD(self.ctx, lineage, partitioner)

    # -- identity ---------------------------------------------------------------
    def id(self) -> int:
        """A unique id for this RDD within its SparkContext."""
        return self._id

    @property
    def context(self) -> "SparkContext":
        return self.ctx

    def name(self) -> str | None:
        return self._name

    def setName(self, name: str) -> "RDD":
        self._name = name
        return self

    def getNumPartitions(self) -> int:
        if self._num_partitions is None:
            self._num_partitions = self._lineage.num_partitions()
        return self._num_partitions

    def __repr__(self) -> str:
        label = self._name or self._lineage.describe()
        return f"{label} RDD[{self._id}]"

    def toDebugString(self) -> bytes:
        lines: list[str] = []

        def walk(rdd: "RDD", depth: int) -> None:
            cached = f" [{rdd._storage_level}]" if rdd.is_cached else ""
            lines.append(f"{'  ' * depth}({rdd.getNumPartitions()}) {rdd!r}{cached}")
            for dep in rdd.dependencies:
                marker = "+-" if isinstance(dep, ShuffleDependency) else ""
                if marker:
                    lines.append(f"{'  ' * depth}{marker}{dep!r}")
                walk(dep.rdd, depth + 1)

        walk(self, 0)
        return "\n".join(lines).encode()

    def __reduce__(self):
        raise RuntimeError(_SPARK_5063)

    # -- lineage, as the scheduler sees it -----------------------------------------
    @property
    def dependencies(self) -> list[Dependency]:
        return [] if self._checkpoint_path else self._lineage.dependencies

    def _closures(self) -> list[Callable]:
        return [] if self._checkpoint_path else self._lineage.closures()

    def _plan(self, split: int, planner: "TaskPlanner") -> p.PlanNode:
        """Partition ``split`` as a plan tree: from the cache, the checkpoint, or lineage."""
        if self.is_cached:
            block_id = rdd_block_id(self._id, split)
            holders = planner.cached_holders(block_id)
            if holders:  # no need to ship the lineage behind a cached partition
                child: p.PlanNode = p.CachedBlockRef(block_id, holders)
            else:
                child = self._compute_plan(split, planner)
            return p.PersistNode(block_id, self._storage_level.to_wire(), child)
        return self._compute_plan(split, planner)

    def _compute_plan(self, split: int, planner: "TaskPlanner") -> p.PlanNode:
        if self._checkpoint_path:
            return p.CheckpointSource(f"{self._checkpoint_path}/part-{split:05d}")
        return self._lineage.plan(split, planner)

    # -- persistence --------------------------------------------------------------------
    def cache(self) -> "RDD":
        """Keep this RDD's partitions on the executors once computed (MEMORY_ONLY)."""
        return self.persist(StorageLevel.MEMORY_ONLY)

    def persist(self, storageLevel: StorageLevel = StorageLevel.MEMORY_ONLY) -> "RDD":
        """Keep partitions at ``storageLevel``; they are computed at most once
        while their executor lives (and recomputed from lineage if it dies)."""
        if self.is_cached and self._storage_level != storageLevel:
            raise ValueError(
                f"Cannot change storage level of RDD {self._id} after it was already assigned "
                f"({self._storage_level} -> {storageLevel}); unpersist it first")
        if not self.is_cached and storageLevel != StorageLevel.NONE:
            self.ctx._runtime.track_cached_rdd(self)
        self._storage_level = storageLevel
        self.is_cached = storageLevel != StorageLevel.NONE
        return self

    def unpersist(self, blocking: bool = False) -> "RDD":
        """Drop the cached partitions from every executor."""
        if self.is_cached:
            self.is_cached = False
            self._storage_level = StorageLevel.NONE
            self.ctx._runtime.drop_rdd(self._id)
        return self

    def getStorageLevel(self) -> StorageLevel:
        return self._storage_level

    # -- checkpointing --------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Save this RDD to the checkpoint directory after the next job computes it,
        and forget its lineage from then on."""
        if self.ctx._checkpoint_dir is None:
            raise RuntimeError("Checkpoint directory has not been set in the SparkContext; "
                               "call sc.setCheckpointDir(path) first")
        self._checkpoint_requested = True

    def localCheckpoint(self) -> None:
        self.persist(StorageLevel.MEMORY_AND_DISK)

    def isCheckpointed(self) -> bool:
        return self._checkpoint_path is not None

    def isLocallyCheckpointed(self) -> bool:
        return False

    def getCheckpointFile(self) -> str | None:
        return self._checkpoint_path
