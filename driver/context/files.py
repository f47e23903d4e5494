"""Files shipped with a job: addFile, addPyFile, addArchive and their listings."""
from __future__ import annotations


class FileDistribution:
    """Mixin of ``SparkContext``."""
