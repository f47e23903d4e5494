"""Mirrors ``pyspark.conf``."""
from .context.conf import SparkConf

__all__ = ["SparkConf"]
