"""Mirrors ``pyspark.streaming``: ``from sluicegate.driver.streaming import
StreamingContext, DStream, StreamingListener``, and its modules ``context``,
``dstream`` and ``listener``."""
from ..context.streaming_context import StreamingContext
from ..dstream.base import DStream
from ..streaming_scheduler.streaming_listener import StreamingListener

__all__ = ["StreamingContext", "DStream", "StreamingListener"]
