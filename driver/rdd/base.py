"""The RDD: an immutable, partitioned collection computed from its lineage.

An ``RDD`` is what users hold; its ``Lineage`` says how partitions are
computed. This module keeps what every RDD has: identity, partition count,
persistence and checkpointing, and the per-partition plan with the cache
wrapped around it. The operations live in the mixins it combines.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from sluicegate.common import storage
from sluicegate.common import taskfuncs as tf
from sluicegate.common.protocol import plan as p
from sluicegate.common.rdd_funcs import CheckpointBlockLost
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

log = logging.getLogger("sluicegate.driver.rdd")

# Where a local checkpoint is: asked for; being completed after a job; done
# (the partitions sit in executor block storage and the lineage is cut).
_LOCAL_MARKED, _LOCAL_MATERIALIZING, _LOCAL_DONE = "marked", "materializing", "done"

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

    # ``RDD[Tuple[str, int]]`` in annotations, as PySpark's generic RDD allows.
    __class_getitem__ = classmethod(__import__("types").GenericAlias)

    def __init__(self, ctx: "SparkContext", lineage: Lineage, partitioner: Partitioner | None = None):
        self.ctx = ctx
        self._lineage = lineage
        self._id = ctx._next_rdd_id()
        self.partitioner = partitioner
        self._storage_level = StorageLevel.NONE
        self.is_cached = False
        self.is_checkpointed = False  # PySpark's attribute: checkpoint() was called
        self._checkpoint_requested = False
        self._checkpoint_path: str | None = None  # a plain path once reliably checkpointed
        self._local_checkpoint: str | None = None
        self.has_resource_profile = False
        self._resource_profile: Any = None
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
    def _lineage_cut(self) -> bool:
        return self._checkpoint_path is not None or self._local_checkpoint == _LOCAL_DONE

    @property
    def dependencies(self) -> list[Dependency]:
        return [] if self._lineage_cut else self._lineage.dependencies

    def _closures(self) -> list[Callable]:
        return [] if self._lineage_cut else self._lineage.closures()

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
        if self._local_checkpoint == _LOCAL_DONE:
            # The cached block was the only copy and no executor has it any more.
            lost = CheckpointBlockLost(rdd_block_id(self._id, split))
            return p.MapPartitionsNode(planner.register(lost), None, p.EmptySource())
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
        and forget its lineage from then on (call it before any job on this RDD)."""
        if self.ctx._checkpoint_dir is None:
            raise RuntimeError("Checkpoint directory has not been set in the SparkContext; "
                               "call sc.setCheckpointDir(path) first")
        self.is_checkpointed = True
        # As Spark: a local checkpoint asked for earlier, or any finished one, stays.
        if self._local_checkpoint is None and self._checkpoint_path is None:
            self._checkpoint_requested = True

    def localCheckpoint(self) -> None:
        """Truncate this RDD's lineage using the executors' block storage.

        The partitions are persisted (with disk added to the storage level)
        and, after the next job that computes this RDD, completed and kept
        there as the only copy: the lineage is cut, and a partition lost with
        its executor (or dropped by ``unpersist``) fails the jobs that need
        it. Faster than ``checkpoint()``, not fault-tolerant; the checkpoint
        directory is not used.
        """
        level = self._storage_level
        if level == StorageLevel.NONE:
            wanted = StorageLevel(True, True, False, True, 1)  # Spark's MEMORY_AND_DISK
        else:
            wanted = StorageLevel(True, level.useMemory, level.useOffHeap, level.deserialized,
                                  level.replication)
        if not self.is_cached:
            self.ctx._runtime.track_cached_rdd(self)
        self._storage_level = wanted
        self.is_cached = True
        if self.isCheckpointed():
            log.warning("Not marking %r for local checkpoint because it was already "
                        "checkpointed and materialized", self)
            return
        if self._checkpoint_requested:
            log.warning("%r was already marked for reliable checkpointing: overriding with "
                        "local checkpoint", self)
            self._checkpoint_requested = False
        if self._local_checkpoint is None:
            self._local_checkpoint = _LOCAL_MARKED

    def isCheckpointed(self) -> bool:
        """Whether this RDD is checkpointed and materialized, reliably or locally."""
        return self._checkpoint_path is not None or self._local_checkpoint == _LOCAL_DONE

    def isLocallyCheckpointed(self) -> bool:
        """Whether ``localCheckpoint()`` was called on this RDD."""
        return self._local_checkpoint is not None

    def getCheckpointFile(self) -> str | None:
        """The ``file:`` URI (or the URL) of this RDD's checkpoint directory (None until
        a reliable checkpoint is written, and always for local checkpoints)."""
        if self._checkpoint_path is None:
            return None
        return self._checkpoint_path if storage.is_remote(self._checkpoint_path) else \
            f"file:{self._checkpoint_path}"

    def _checkpoint_after_job(self) -> None:
        """Called for every RDD a job computed: write a requested checkpoint,
        or complete a requested local one; either way the lineage is then cut."""
        if self._checkpoint_requested and self._checkpoint_path is None:
            self._checkpoint_requested = False  # the writing job below must not recurse
            directory = f"{self.ctx._checkpoint_dir}/rdd-{self._id}"
            self.mapPartitionsWithIndex(tf.WriteCheckpointPartition(directory)).collect()
            storage.makedirs(directory)  # a local directory; nothing on an object store
            self._checkpoint_path = directory
        elif self._local_checkpoint == _LOCAL_MARKED and self.is_cached:
            self._local_checkpoint = _LOCAL_MATERIALIZING
            try:
                # The job may have computed only some partitions (take): cache the rest.
                missing = self._uncached_partitions()
                if missing:
                    self.ctx._run_job(self.mapPartitions(tf.nothing), missing)
            except BaseException:
                self._local_checkpoint = _LOCAL_MARKED
                raise
            self._local_checkpoint = _LOCAL_DONE

    def _uncached_partitions(self) -> list[int]:
        runtime = self.ctx._runtime
        blocks = [rdd_block_id(self._id, split) for split in range(self.getNumPartitions())]
        held = runtime.blocks_held(blocks)
        return [split for split, is_held in enumerate(held) if not is_held]

    def cleanShuffleDependencies(self, blocking: bool = False) -> None:
        """Remove the shuffle outputs this RDD depends on, through every
        non-persisted ancestor, from the executors.

        Using the RDD afterwards recomputes those shuffles (checkpoint and
        materialize it first to avoid that). With ``blocking`` the call
        returns once the driver has forgotten the outputs and told the
        executors to drop them.
        """
        shuffle_ids: list[int] = []
        visited: set[int] = set()
        stack = list(self.dependencies)
        while stack:
            dep = stack.pop()
            if isinstance(dep, ShuffleDependency) and dep.shuffle_id not in shuffle_ids:
                shuffle_ids.append(dep.shuffle_id)
            if not dep.rdd.is_cached and dep.rdd.id() not in visited:
                visited.add(dep.rdd.id())
                stack.extend(dep.rdd.dependencies)
        runtime = self.ctx._runtime
        for shuffle_id in shuffle_ids:
            runtime.drop_shuffle(shuffle_id)
        if blocking and shuffle_ids:
            runtime.wait_for_posted()  # the drops are done

    # -- resources and barrier stages ---------------------------------------------------
    def withResources(self, profile: Any) -> "RDD":
        """Record a resource profile for this RDD (returns the same RDD).

        sluicegate's executors are uniform, so the profile does not change
        where or how tasks run; ``getResourceProfile`` returns it.
        """
        self.has_resource_profile = True
        self._resource_profile = profile
        return self

    def getResourceProfile(self) -> Any:
        """The profile given to ``withResources``, or None."""
        return self._resource_profile
