"""Job groups, job tags, cancellation and the status tracker of a SparkContext."""
from __future__ import annotations


class JobControl:
    """Mixin of ``SparkContext``."""
