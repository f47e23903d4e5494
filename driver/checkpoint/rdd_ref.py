"""An RDD as a checkpoint can hold it: where its checkpointed partitions lie."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..rdd.lineage import CheckpointFiles
from ..rdd.partitioner import Partitioner

if TYPE_CHECKING:
    from ..context.spark_context import SparkContext
    from ..rdd.base import RDD


@dataclass(frozen=True)
class CheckpointedRDD:
    path: str
    num_partitions: int
    partitioner: Partitioner | None

    @classmethod
    def of(cls, rdd: "RDD") -> "CheckpointedRDD":
        # The local directory itself: getCheckpointFile() may give it as a file: URI.
        path = getattr(rdd, "_checkpoint_path", None)
        if not path:
            raise ValueError(f"{rdd!r} has not been checkpointed to files")
        return cls(str(path).removeprefix("file:"), rdd.getNumPartitions(), rdd.partitioner)

    def restore(self, sc: "SparkContext") -> "RDD":
        from ..rdd.base import RDD

        rdd = RDD(sc, CheckpointFiles(self.path, self.num_partitions), self.partitioner)
        rdd._checkpoint_path = self.path
        return rdd
