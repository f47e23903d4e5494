"""RDD lineage: narrow vs shuffle dependencies, partitioners, and the RDD API."""
from .base import RDD
from .partitioner import Partitioner

__all__ = ["RDD", "Partitioner"]
