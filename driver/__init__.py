"""sluicegate's job API: PySpark's names, arguments and semantics.

Port a PySpark job by changing its imports::

    from sluicegate.driver import SparkConf, SparkContext
"""
from sluicegate.common.accumulators import Accumulator, AccumulatorParam
from sluicegate.common.broadcast import Broadcast
from sluicegate.common.hashing import portable_hash
from sluicegate.common.resultiterable import ResultIterable
from sluicegate.common.storagelevel import StorageLevel
from sluicegate.common.taskcontext import TaskContext

from .context.conf import SparkConf
from .context.spark_context import SparkContext
from .rdd.base import RDD
from .rdd.partitioner import Partitioner
from .scheduler.jobs import JobFailedError

__all__ = [
    "Accumulator", "AccumulatorParam", "Broadcast", "JobFailedError", "Partitioner", "RDD",
    "ResultIterable", "SparkConf", "SparkContext", "StorageLevel", "TaskContext", "portable_hash",
]
