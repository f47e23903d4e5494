"""RDD sampling and splitting: takeSample, randomSplit, sampleByKey, zip,
toLocalIterator and the other PySpark RDD methods that pick or pair records."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import RDD  # noqa: F401


class Sampling:
    """Mixin of ``RDD``."""
