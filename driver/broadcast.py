"""Mirrors ``pyspark.broadcast``."""
from sluicegate.common.broadcast import Broadcast

__all__ = ["Broadcast"]
