"""SparkConf, SparkContext (and, with streaming, StreamingContext).

Also stands for ``pyspark.context``: ``from sluicegate.driver.context import
SparkContext``. The names are looked up on first use, so importing a module of
this package (``context.conf``) does not import the whole driver.
"""
from typing import Any

__all__ = ["SparkConf", "SparkContext", "StreamingContext"]


def __getattr__(name: str) -> Any:
    if name == "SparkContext":
        from .spark_context import SparkContext
        return SparkContext
    if name == "SparkConf":
        from .conf import SparkConf
        return SparkConf
    if name == "StreamingContext":
        from .streaming_context import StreamingContext
        return StreamingContext
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
