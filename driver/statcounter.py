"""Mirrors ``pyspark.statcounter``."""
from sluicegate.common.statcounter import StatCounter

__all__ = ["StatCounter"]
