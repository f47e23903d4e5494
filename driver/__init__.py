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
from .context.streaming_context import StreamingContext
from .dstream.base import DStream
from .dstream.stateful import StateSpec
from .receivers.receiver import Receiver
from .scheduler.clock import ManualClock
from .scheduler.streaming_listener import BatchInfo, StreamingListener
from .rdd.base import RDD
from .rdd.partitioner import Partitioner
from .scheduler.jobs import JobFailedError

__all__ = [
    "Accumulator", "AccumulatorParam", "BatchInfo", "Broadcast", "DStream", "JobFailedError",
    "ManualClock", "Partitioner", "RDD", "Receiver", "ResultIterable", "SparkConf", "SparkContext",
    "StateSpec", "StorageLevel", "StreamingContext", "StreamingListener", "TaskContext", "portable_hash",
]
