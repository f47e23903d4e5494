"""Mirrors ``pyspark.files``: ``from sluicegate.driver.files import SparkFiles``."""
from sluicegate.common.spark_files import SparkFiles

__all__ = ["SparkFiles"]
