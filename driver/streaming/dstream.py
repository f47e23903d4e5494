"""Mirrors ``pyspark.streaming.dstream``."""
from ..dstream.base import DStream

__all__ = ["DStream"]
