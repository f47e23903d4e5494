"""Hadoop-format outputs without Hadoop: saveAsPickleFile, saveAsSequenceFile,
saveAsHadoopFile and friends, written in Hadoop's on-disk formats and layout."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import RDD  # noqa: F401


class HadoopOutputs:
    """Mixin of ``RDD``."""
