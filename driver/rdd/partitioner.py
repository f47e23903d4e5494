"""Partitioners: which reduce partition a key goes to."""
from __future__ import annotations

from typing import Callable

from sluicegate.common.hashing import portable_hash


class Partitioner:
    """``partitionFunc(key) % numPartitions`` (PySpark's ``Partitioner``).

    Two RDDs with equal partitioners are co-partitioned: joining or
    cogrouping them needs no shuffle.
    """

    def __init__(self, numPartitions: int, partitionFunc: Callable = portable_hash):
        self.numPartitions = numPartitions
        self.partitionFunc = partitionFunc

    def __eq__(self, other) -> bool:
        return (isinstance(other, Partitioner) and self.numPartitions == other.numPartitions
                and self.partitionFunc == other.partitionFunc)

    def __hash__(self) -> int:
        return hash((self.numPartitions, id(self.partitionFunc)))

    def __call__(self, key) -> int:
        return self.partitionFunc(key) % self.numPartitions

    @property
    def is_hash(self) -> bool:
        return self.partitionFunc is portable_hash

    def __repr__(self) -> str:
        name = getattr(self.partitionFunc, "__name__", type(self.partitionFunc).__name__)
        return f"Partitioner({self.numPartitions}, {name})"
