"""RDD statistics: stats (a StatCounter), variance, stdev, histogram and the
approximate actions (countApprox, sumApprox, meanApprox, countApproxDistinct)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import RDD  # noqa: F401


class Statistics:
    """Mixin of ``RDD``."""
