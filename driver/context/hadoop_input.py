"""Hadoop-format inputs without Hadoop: pickleFile, sequenceFile, hadoopFile, binaryFiles."""
from __future__ import annotations


class HadoopInputs:
    """Mixin of ``SparkContext``."""
