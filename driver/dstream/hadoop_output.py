"""Per-batch Hadoop-format outputs of a DStream: saveAsHadoopFiles, saveAsPickleFiles.

Each batch is saved in ``prefix-<batch ms>[.suffix]`` exactly once, as
``saveAsTextFiles`` saves it: written in a staging directory and renamed into
place complete, and a batch replayed after recovery replaces its directory
instead of adding to it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..rdd.actions import save_atomically
from ..rdd.hadoop_output import (NEW_API_FORMATS, NEW_SEQUENCE_FORMAT, OLD_API_FORMATS,
                                 OLD_SEQUENCE_FORMAT, hadoop_output, pickle_part_writer)
from .ops import to_ms
from .output import batch_path

if TYPE_CHECKING:
    from ..rdd.base import RDD
    from .base import DStream


class HadoopFileOutputs:
    """Mixin of ``DStream``."""

    def _save_batches(self: "DStream", name: str, prefix: str, suffix: str | None,
                      part_writer: Callable[["RDD"], Callable[[str], Callable]]) -> None:
        def save(time, rdd: "RDD") -> None:
            path = batch_path(prefix, suffix, to_ms(time))
            save_atomically(rdd, path, True, part_writer(rdd))  # a local path or a URL

        self._output(save, name)

    def saveAsPickleFiles(self: "DStream", prefix: str, suffix: str | None = None,
                          batchSize: int = 10) -> None:
        """Save each batch with ``RDD.saveAsPickleFile`` in ``prefix-<batch ms>[.suffix]``,
        exactly once (a replayed batch replaces its directory)."""
        writer = pickle_part_writer(batchSize)
        self._save_batches("saveAsPickleFiles", prefix, suffix, lambda rdd: writer)

    def saveAsObjectFiles(self: "DStream", prefix: str, suffix: str | None = None) -> None:
        """Spark's ``saveAsObjectFiles``: in Python, the objects are pickled
        (:meth:`saveAsPickleFiles`, the format PySpark's object files hold)."""
        writer = pickle_part_writer(10)
        self._save_batches("saveAsObjectFiles", prefix, suffix, lambda rdd: writer)

    def saveAsHadoopFiles(self: "DStream", prefix: str, suffix: str | None = None,
                          outputFormatClass: str = OLD_SEQUENCE_FORMAT,
                          keyClass: str | None = None, valueClass: str | None = None,
                          keyConverter: str | None = None, valueConverter: str | None = None,
                          conf: dict | None = None,
                          compressionCodecClass: str | None = None) -> None:
        """Save each batch of ``(key, value)`` pairs with ``RDD.saveAsHadoopFile`` in
        ``prefix-<batch ms>[.suffix]``, exactly once. A SequenceFile's classes are
        each batch's first pair's unless given; an empty batch writes empty files."""
        request = hadoop_output("saveAsHadoopFiles", outputFormatClass, OLD_API_FORMATS, keyClass,
                                valueClass, keyConverter, valueConverter, conf,
                                compressionCodecClass)
        self._save_batches("saveAsHadoopFiles", prefix, suffix,
                           lambda rdd: request.part_writer(rdd, empty_ok=True))

    def saveAsNewAPIHadoopFiles(self: "DStream", prefix: str, suffix: str | None = None,
                                outputFormatClass: str = NEW_SEQUENCE_FORMAT,
                                keyClass: str | None = None, valueClass: str | None = None,
                                keyConverter: str | None = None,
                                valueConverter: str | None = None,
                                conf: dict | None = None) -> None:
        """Save each batch with ``RDD.saveAsNewAPIHadoopFile``, exactly once."""
        request = hadoop_output("saveAsNewAPIHadoopFiles", outputFormatClass, NEW_API_FORMATS,
                                keyClass, valueClass, keyConverter, valueConverter, conf, None)
        self._save_batches("saveAsNewAPIHadoopFiles", prefix, suffix,
                           lambda rdd: request.part_writer(rdd, empty_ok=True))
