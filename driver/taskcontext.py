"""Mirrors ``pyspark.taskcontext``: ``TaskContext.get()`` inside a task (barrier
execution, ``BarrierTaskContext``, is not supported)."""
from sluicegate.common.taskcontext import TaskContext

__all__ = ["TaskContext"]
