"""RDD lineage: narrow vs shuffle dependencies, partitioners, and the RDD API."""
from sluicegate.common.hashing import portable_hash  # as pyspark.rdd has it

from .approx import BoundedFloat
from .barrier import RDDBarrier
from .base import RDD
from .partitioner import Partitioner

__all__ = ["BoundedFloat", "RDD", "RDDBarrier", "Partitioner", "portable_hash"]
