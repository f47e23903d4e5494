"""Hadoop-format inputs without Hadoop: pickleFile, sequenceFile, hadoopFile, binaryFiles.

Files are cut into splits the way Hadoop's FileInputFormat cuts them
(``goal = total / minPartitions``, ``max(minSize, min(goal, blockSize))``,
a last split up to 10% larger), SequenceFiles with Hadoop's minimum split
of one sync interval, so a program gets PySpark's partitions. Each split is
read on an executor by ``common.hadoop_taskfuncs``. A path may be a local path
or the URL of any file system fsspec opens (``common.storage``).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from sluicegate.common.config import parse_size_bytes
from sluicegate.common.fileformats import is_splittable
from sluicegate.common.hadoop_taskfuncs import ReadSplits
from sluicegate.common.protocol import plan as p
from sluicegate.common.sequence_file import SYNC_INTERVAL

from ..rdd.base import RDD
from ..rdd.lineage import Lineage, TextFiles, expand_paths_sized

if TYPE_CHECKING:
    from ..scheduler.planner import TaskPlanner
    from .spark_context import SparkContext

_MAPRED = "org.apache.hadoop.mapred."
_MAPREDUCE = "org.apache.hadoop.mapreduce.lib.input."
# input format class -> (reader kind, minimum split size in bytes)
OLD_API_FORMATS = {
    _MAPRED + "SequenceFileInputFormat": ("sequence", SYNC_INTERVAL),
    _MAPRED + "TextInputFormat": ("text", 1),
    _MAPRED + "KeyValueTextInputFormat": ("keyvalue", 1),
}
NEW_API_FORMATS = {
    _MAPREDUCE + "SequenceFileInputFormat": ("sequence", SYNC_INTERVAL),
    _MAPREDUCE + "TextInputFormat": ("text", 1),
    _MAPREDUCE + "KeyValueTextInputFormat": ("keyvalue", 1),
}
DEFAULT_INPUT_CONVERTER = "org.apache.spark.api.python.WritableToJavaConverter"
MIN_SPLIT_SIZE = "mapreduce.input.fileinputformat.split.minsize"
INPUT_DIR_KEYS = ("mapreduce.input.fileinputformat.inputdir", "mapred.input.dir")
KEY_VALUE_SEPARATOR_KEYS = ("mapreduce.input.keyvaluelinerecordreader.key.value.separator",
                            "key.value.separator.in.input.line")
MAX_PARTITION_BYTES = ("spark.files.maxPartitionBytes", 128 << 20)
OPEN_COST_BYTES = ("spark.files.openCostInBytes", 4 << 20)


def file_splits(path: str, min_partitions: int | None, min_split_size: int,
                splittable: Callable[[str], bool]) -> list[tuple[str, int, int]]:
    """``(path, start, length)`` splits of every file, as FileInputFormat.getSplits makes
    them; ``min_partitions`` None is the new API's rule (block-sized splits). Empty files
    make no split (spark.hadoopRDD.ignoreEmptySplits); unsplittable ones have length -1."""
    files = expand_paths_sized(path)
    block = TextFiles.LOCAL_BLOCK_SIZE
    if min_partitions is None:
        split_size = max(min_split_size, block)
    else:
        goal = sum(size for _, size in files) // max(1, min_partitions)
        split_size = max(min_split_size, min(goal, block))
    splits: list[tuple[str, int, int]] = []
    for name, size in files:
        if size == 0:
            continue
        if not splittable(name):
            splits.append((name, 0, -1))
            continue
        remaining = size
        while remaining / split_size > TextFiles.SPLIT_SLOP:
            splits.append((name, size - remaining, split_size))
            remaining -= split_size
        splits.append((name, size - remaining, remaining))
    return splits


def _text_splittable(path: str) -> bool:
    return is_splittable(path) and Path(path).suffix != ".deflate"


def _always(path: str) -> bool:
    return True


def binary_file_groups(path: str, min_partitions: int, parallelism: int,
                       max_partition_bytes: int, open_cost: int) -> list[list[str]]:
    """Files packed into partitions as PySpark's StreamFileInputFormat packs them: each
    file costs its size plus ``open_cost``; a partition closes once it holds
    ``min(max_partition_bytes, max(open_cost, total cost / parallelism))`` bytes."""
    files = expand_paths_sized(path)
    total = sum(size + open_cost for _, size in files)
    limit = min(max_partition_bytes, max(open_cost, total // max(parallelism, min_partitions, 1)))
    groups: list[list[str]] = []
    current: list[str] = []
    held = 0
    for name, size in files:
        current.append(name)
        held += size
        if held >= limit:
            groups.append(current)
            current, held = [], 0
    if current:
        groups.append(current)
    return groups


class HadoopFileSplits(Lineage):
    """A file input whose partition ``i`` is split ``i``, read by ``ReadSplits`` on an
    executor. Splits are computed at the first action (as PySpark lists input files)."""

    def __init__(self, description: str, make_reader: Callable[[], ReadSplits]):
        self.description = description
        self._make_reader = make_reader
        self._reader: ReadSplits | None = None
        self.dependencies = []

    def reader(self) -> ReadSplits:
        if self._reader is None:
            self._reader = self._make_reader()
        return self._reader

    def num_partitions(self) -> int:
        return len(self.reader().splits)

    def closures(self) -> list[Callable]:
        return [self.reader()]

    def plan(self, split: int, planner: "TaskPlanner") -> p.PlanNode:
        return p.MapPartitionsNode(planner.register(self.reader()), split, p.EmptySource())

    def describe(self) -> str:
        return self.description


def _check_converters(method: str, *converters: str | None) -> None:
    for converter in converters:
        if converter not in (None, DEFAULT_INPUT_CONVERTER):
            raise ValueError(
                f"{method}: converter {converter} is a JVM class, which sluicegate cannot run; "
                "Writables are converted as PySpark's default WritableToJavaConverter does -- "
                "convert further with .map() in Python")


def _conf_value(conf: dict | None, keys: tuple[str, ...], default=None):
    for key in keys:
        if conf and key in conf:
            return conf[key]
    return default


class HadoopInputs:
    """Mixin of ``SparkContext``."""

    def _hadoop_file_rdd(self: "SparkContext", method: str, path: str, input_format: str,
                         formats: dict, min_partitions: int | None, conf: dict | None,
                         key_converter: str | None = None,
                         value_converter: str | None = None) -> RDD:
        _check_converters(method, key_converter, value_converter)
        try:
            kind, format_min_split = formats[input_format]
        except KeyError:
            raise ValueError(f"{method}: input format {input_format} is not supported; supported: "
                             f"{', '.join(formats)}") from None
        min_split = max(int(_conf_value(conf, (MIN_SPLIT_SIZE,), 1)), format_min_split)
        splittable = _always if kind == "sequence" else _text_splittable
        option = _conf_value(conf, KEY_VALUE_SEPARATOR_KEYS, "\t") if kind == "keyvalue" else None

        def make_reader() -> ReadSplits:
            return ReadSplits(kind, file_splits(path, min_partitions, min_split, splittable), option)

        return RDD(self, HadoopFileSplits(f"{method}[{path}]", make_reader))

    def pickleFile(self: "SparkContext", name: str, minPartitions: int | None = None) -> RDD:
        """Load an RDD previously saved with :meth:`RDD.saveAsPickleFile` (by sluicegate or
        PySpark): a SequenceFile of pickled batches."""
        minimum = minPartitions or self.defaultMinPartitions

        def make_reader() -> ReadSplits:
            return ReadSplits("pickle", file_splits(name, minimum, SYNC_INTERVAL, _always))

        return RDD(self, HadoopFileSplits(f"pickleFile[{name}]", make_reader))

    def sequenceFile(self: "SparkContext", path: str, keyClass: str | None = None,
                     valueClass: str | None = None, keyConverter: str | None = None,
                     valueConverter: str | None = None, minSplits: int | None = None,
                     batchSize: int = 0) -> RDD:
        """Read a Hadoop SequenceFile as ``(key, value)`` pairs, Writables converted as
        PySpark converts them (Text -> str, IntWritable/LongWritable -> int,
        DoubleWritable/FloatWritable -> float, BooleanWritable -> bool, BytesWritable ->
        bytearray, NullWritable -> None, MapWritable -> dict). The classes come from the
        file's header; ``keyClass``/``valueClass`` are accepted as hints."""
        return self._hadoop_file_rdd("sequenceFile", path, _MAPRED + "SequenceFileInputFormat",
                                     OLD_API_FORMATS, minSplits or min(self.defaultParallelism, 2),
                                     None, keyConverter, valueConverter)

    def hadoopFile(self: "SparkContext", path: str, inputFormatClass: str, keyClass: str,
                   valueClass: str, keyConverter: str | None = None,
                   valueConverter: str | None = None, conf: dict | None = None,
                   batchSize: int = 0) -> RDD:
        """Read a file with an old-API (``org.apache.hadoop.mapred``) InputFormat:
        SequenceFileInputFormat, TextInputFormat (``(byte offset, line)``) or
        KeyValueTextInputFormat."""
        return self._hadoop_file_rdd("hadoopFile", path, inputFormatClass, OLD_API_FORMATS,
                                     self.defaultMinPartitions, conf, keyConverter, valueConverter)

    def newAPIHadoopFile(self: "SparkContext", path: str, inputFormatClass: str, keyClass: str,
                         valueClass: str, keyConverter: str | None = None,
                         valueConverter: str | None = None, conf: dict | None = None,
                         batchSize: int = 0) -> RDD:
        """Read a file with a new-API (``org.apache.hadoop.mapreduce``) InputFormat:
        SequenceFileInputFormat, TextInputFormat or KeyValueTextInputFormat."""
        return self._hadoop_file_rdd("newAPIHadoopFile", path, inputFormatClass, NEW_API_FORMATS,
                                     None, conf, keyConverter, valueConverter)

    def hadoopRDD(self: "SparkContext", inputFormatClass: str, keyClass: str, valueClass: str,
                  keyConverter: str | None = None, valueConverter: str | None = None,
                  conf: dict | None = None, batchSize: int = 0) -> RDD:
        """:meth:`hadoopFile` with the input path in ``conf``
        (``mapreduce.input.fileinputformat.inputdir``)."""
        return self._hadoop_file_rdd("hadoopRDD", _input_dir("hadoopRDD", conf), inputFormatClass,
                                     OLD_API_FORMATS, self.defaultMinPartitions, conf,
                                     keyConverter, valueConverter)

    def newAPIHadoopRDD(self: "SparkContext", inputFormatClass: str, keyClass: str,
                        valueClass: str, keyConverter: str | None = None,
                        valueConverter: str | None = None, conf: dict | None = None,
                        batchSize: int = 0) -> RDD:
        """:meth:`newAPIHadoopFile` with the input path in ``conf``."""
        return self._hadoop_file_rdd("newAPIHadoopRDD", _input_dir("newAPIHadoopRDD", conf),
                                     inputFormatClass, NEW_API_FORMATS, None, conf,
                                     keyConverter, valueConverter)

    def binaryFiles(self: "SparkContext", path: str, minPartitions: int | None = None) -> RDD:
        """``(path, content)`` for each file of a directory (or glob, or list), the path a
        ``file:`` URI (or the file's URL) and the content ``bytes``, as PySpark gives them."""
        minimum = minPartitions or self.defaultMinPartitions
        max_bytes = parse_size_bytes(self._conf.get(*MAX_PARTITION_BYTES))
        open_cost = parse_size_bytes(self._conf.get(*OPEN_COST_BYTES))
        parallelism = self.defaultParallelism

        def make_reader() -> ReadSplits:
            return ReadSplits("binary", binary_file_groups(path, minimum, parallelism,
                                                           max_bytes, open_cost))

        return RDD(self, HadoopFileSplits(f"binaryFiles[{path}]", make_reader))


def _input_dir(method: str, conf: dict | None) -> str:
    found = _conf_value(conf, INPUT_DIR_KEYS)
    if not found:
        raise ValueError(f"{method}: conf must name the input with {INPUT_DIR_KEYS[0]}")
    return found
