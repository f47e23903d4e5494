"""StorageLevel, with PySpark's constants and constructor."""
from __future__ import annotations


class StorageLevel:
    """How an RDD's partitions are kept once computed (PySpark's ``StorageLevel``)."""

    NONE: "StorageLevel"
    DISK_ONLY: "StorageLevel"
    DISK_ONLY_2: "StorageLevel"
    DISK_ONLY_3: "StorageLevel"
    MEMORY_ONLY: "StorageLevel"
    MEMORY_ONLY_2: "StorageLevel"
    MEMORY_AND_DISK: "StorageLevel"
    MEMORY_AND_DISK_2: "StorageLevel"
    MEMORY_AND_DISK_DESER: "StorageLevel"
    OFF_HEAP: "StorageLevel"

    def __init__(self, useDisk: bool, useMemory: bool, useOffHeap: bool,
                 deserialized: bool, replication: int = 1):
        self.useDisk = useDisk
        self.useMemory = useMemory
        self.useOffHeap = useOffHeap
        self.deserialized = deserialized
        self.replication = replication

    def to_wire(self) -> list[int]:
        return [int(self.useDisk), int(self.useMemory), int(self.useOffHeap),
                int(self.deserialized), int(self.replication)]

    @classmethod
    def from_wire(cls, flags: list[int]) -> "StorageLevel":
        return cls(bool(flags[0]), bool(flags[1]), bool(flags[2]), bool(flags[3]), int(flags[4]))

    def __eq__(self, other) -> bool:
        return isinstance(other, StorageLevel) and self.to_wire() == other.to_wire()

    def __hash__(self) -> int:
        return hash(tuple(self.to_wire()))

    def __repr__(self) -> str:
        return "StorageLevel(%s, %s, %s, %s, %s)" % (
            self.useDisk, self.useMemory, self.useOffHeap, self.deserialized, self.replication)

    def __str__(self) -> str:
        parts = [("Disk " if self.useDisk else ""), ("Memory " if self.useMemory else ""),
                 ("OffHeap " if self.useOffHeap else ""),
                 ("Deserialized " if self.deserialized else "Serialized ")]
        return "".join(parts) + "%sx Replicated" % self.replication


StorageLevel.NONE = StorageLevel(False, False, False, False)
StorageLevel.DISK_ONLY = StorageLevel(True, False, False, False)
StorageLevel.DISK_ONLY_2 = StorageLevel(True, False, False, False, 2)
StorageLevel.DISK_ONLY_3 = StorageLevel(True, False, False, False, 3)
StorageLevel.MEMORY_ONLY = StorageLevel(False, True, False, False)
StorageLevel.MEMORY_ONLY_2 = StorageLevel(False, True, False, False, 2)
StorageLevel.MEMORY_AND_DISK = StorageLevel(True, True, False, False)
StorageLevel.MEMORY_AND_DISK_2 = StorageLevel(True, True, False, False, 2)
StorageLevel.MEMORY_AND_DISK_DESER = StorageLevel(True, True, False, True)
StorageLevel.OFF_HEAP = StorageLevel(True, True, True, False, 1)
