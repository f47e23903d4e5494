"""RDDBarrier: what ``RDD.barrier()`` returns (PySpark's ``pyspark.RDDBarrier``).

sluicegate has no barrier execution mode: the stage these methods make
runs like any other, its tasks are not gang-scheduled, and a failed task is
retried alone instead of the whole stage.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    from .base import RDD


class RDDBarrier:
    """Wraps an RDD whose next stage is to be a barrier stage."""

    def __init__(self, rdd: "RDD"):
        self.rdd = rdd

    def mapPartitions(self, f: Callable[[Iterable], Iterable],
                      preservesPartitioning: bool = False) -> "RDD":
        """``RDD.mapPartitions`` in the barrier stage."""
        return self.rdd.mapPartitions(f, preservesPartitioning)

    def mapPartitionsWithIndex(self, f: Callable[[int, Iterable], Iterable],
                               preservesPartitioning: bool = False) -> "RDD":
        """``RDD.mapPartitionsWithIndex`` in the barrier stage."""
        return self.rdd.mapPartitionsWithIndex(f, preservesPartitioning)
