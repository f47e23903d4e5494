"""How an RDD depends on its parents: narrow (pipelined) or shuffle (a stage cut)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .partitioner import Partitioner

if TYPE_CHECKING:
    from .base import RDD


class Dependency:
    def __init__(self, rdd: "RDD"):
        self.rdd = rdd


class NarrowDependency(Dependency):
    """Each child partition needs a few known parent partitions: same task."""


class ShuffleDependency(Dependency):
    """Every child partition may need every parent partition: a new stage.

    ``combiner`` is combineByKey's (create, mergeValue, mergeCombiners); with
    ``map_side_combine`` map tasks fold values before writing blocks.
    """

    def __init__(self, rdd: "RDD", shuffle_id: int, partitioner: Partitioner,
                 combiner: tuple[Callable, Callable, Callable] | None, map_side_combine: bool):
        super().__init__(rdd)
        self.shuffle_id = shuffle_id
        self.partitioner = partitioner
        self.combiner = combiner
        self.map_side_combine = map_side_combine and combiner is not None

    @property
    def num_maps(self) -> int:
        return self.rdd.getNumPartitions()

    def __repr__(self) -> str:
        return f"ShuffleDependency(shuffle {self.shuffle_id}, {self.partitioner})"
