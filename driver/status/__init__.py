"""Watching an application: status store, status pages, REST API, metrics, live progress.

Also mirrors ``pyspark.status``: ``from sluicegate.driver.status import StatusTracker``.
"""
from .tracker import SparkExecutorInfo, SparkJobInfo, SparkStageInfo, StatusTracker

__all__ = ["SparkExecutorInfo", "SparkJobInfo", "SparkStageInfo", "StatusTracker"]
