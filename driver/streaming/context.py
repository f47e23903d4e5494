"""Mirrors ``pyspark.streaming.context``."""
from ..context.streaming_context import StreamingContext

__all__ = ["StreamingContext"]
