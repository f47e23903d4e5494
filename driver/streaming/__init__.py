"""Mirrors ``pyspark.streaming``: StreamingContext, DStream and their modules."""
from ..context.streaming_context import StreamingContext
from ..dstream.base import DStream

__all__ = ["StreamingContext", "DStream"]
