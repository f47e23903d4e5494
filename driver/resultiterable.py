"""Mirrors ``pyspark.resultiterable``."""
from sluicegate.common.resultiterable import ResultIterable

__all__ = ["ResultIterable"]
