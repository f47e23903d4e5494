"""Per-batch Hadoop-format outputs of a DStream: saveAsHadoopFiles, saveAsPickleFiles."""
from __future__ import annotations


class HadoopFileOutputs:
    """Mixin of ``DStream``."""
