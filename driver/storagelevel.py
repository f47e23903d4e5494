"""Mirrors ``pyspark.storagelevel``."""
from sluicegate.common.storagelevel import StorageLevel

__all__ = ["StorageLevel"]
