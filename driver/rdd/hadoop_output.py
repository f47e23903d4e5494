"""Hadoop-format outputs without Hadoop: saveAsPickleFile, saveAsSequenceFile,
saveAsHadoopFile and friends, written in Hadoop's on-disk formats and layout.

Every save writes ``part-NNNNN`` files (``part-r-NNNNN`` for the new
``mapreduce`` API, as Hadoop names a reduce task's output) into a staging
directory and renames it into place with ``_SUCCESS`` once every partition
succeeded -- the same commit as ``saveAsTextFile``, on an object store too
(``actions.save_remote``). An existing output directory is refused, as
PySpark refuses it.

Keys and values become Writables as PySpark's default converter makes them
(``common.writables``). For a SequenceFile the classes come from the first
record, as in PySpark, unless ``keyClass``/``valueClass`` name them.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from sluicegate.common import hadoop_taskfuncs as htf
from sluicegate.common import writables as w
from sluicegate.common.sequence_file import CODEC_EXTENSIONS, DEFAULT_CODEC

from .actions import new_output_directory, save_atomically

if TYPE_CHECKING:
    from .base import RDD  # noqa: F401

_MAPRED = "org.apache.hadoop.mapred."
_MAPREDUCE = "org.apache.hadoop.mapreduce.lib.output."
OLD_SEQUENCE_FORMAT = _MAPRED + "SequenceFileOutputFormat"
NEW_SEQUENCE_FORMAT = _MAPREDUCE + "SequenceFileOutputFormat"
OLD_TEXT_FORMAT = _MAPRED + "TextOutputFormat"
NEW_TEXT_FORMAT = _MAPREDUCE + "TextOutputFormat"
OLD_API_FORMATS = {OLD_SEQUENCE_FORMAT: "sequence", OLD_TEXT_FORMAT: "text"}
NEW_API_FORMATS = {NEW_SEQUENCE_FORMAT: "sequence", NEW_TEXT_FORMAT: "text"}
DEFAULT_OUTPUT_CONVERTER = "org.apache.spark.api.python.JavaToWritableConverter"

# Hadoop job configuration keys honoured (new name first, then the deprecated one).
OUTPUT_DIR = ("mapreduce.output.fileoutputformat.outputdir", "mapred.output.dir")
OLD_OUTPUT_FORMAT_CLASS = ("mapred.output.format.class",)
NEW_OUTPUT_FORMAT_CLASS = ("mapreduce.job.outputformat.class",)
OUTPUT_KEY_CLASS = ("mapreduce.job.output.key.class", "mapred.output.key.class")
OUTPUT_VALUE_CLASS = ("mapreduce.job.output.value.class", "mapred.output.value.class")
COMPRESS = ("mapreduce.output.fileoutputformat.compress", "mapred.output.compress")
COMPRESS_CODEC = ("mapreduce.output.fileoutputformat.compress.codec",
                  "mapred.output.compression.codec")
COMPRESS_TYPE = ("mapreduce.output.fileoutputformat.compress.type", "mapred.output.compression.type")
TEXT_SEPARATOR = ("mapreduce.output.textoutputformat.separator", "mapred.textoutputformat.separator")


def _conf_value(conf: dict | None, keys: tuple[str, ...], default=None):
    for key in keys:
        if conf and conf.get(key) is not None:
            return conf[key]
    return default


def pickle_part_writer(batch_size: int) -> Callable[[str], Callable]:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool):
        raise ValueError(f"batchSize must be an int (0: automatic, -1: one batch a partition), "
                         f"got {batch_size!r}")
    return functools.partial(htf.WritePickleFilePartition, part_prefix="part-", batch_size=batch_size)


def _compression(method: str, codec: str | None, conf: dict | None) -> tuple[str | None, bool]:
    """(codec class or None, block compression?) from the argument or the job conf.

    A codec given as an argument compresses SequenceFiles by BLOCK (what Spark's
    saveAsHadoopFile sets); one set through the conf uses the conf's type, RECORD by default."""
    block = True
    if codec is None and str(_conf_value(conf, COMPRESS, "false")).lower() == "true":
        codec = _conf_value(conf, COMPRESS_CODEC, DEFAULT_CODEC)
        block = str(_conf_value(conf, COMPRESS_TYPE, "RECORD")).upper() == "BLOCK"
    if codec is not None and codec not in CODEC_EXTENSIONS:
        raise ValueError(f"{method}: compression codec {codec} is not supported; supported: "
                         f"{', '.join(CODEC_EXTENSIONS)}")
    return codec, block


def _writable_class(method: str, name: str | None) -> str | None:
    if name is not None and name not in w.WRITABLE_CLASSES:
        raise ValueError(f"{method}: Writable class {name} is not supported; supported: "
                         f"{', '.join(w.WRITABLE_CLASSES)}")
    return name


@dataclass(frozen=True)
class HadoopOutput:
    """A checked request to write pairs in a Hadoop output format."""
    method: str
    kind: str  # "sequence" or "text"
    part_prefix: str
    key_class: str | None
    value_class: str | None
    codec: str | None
    block: bool
    separator: str

    def part_writer(self, rdd: "RDD", empty_ok: bool = False) -> Callable[[str], Callable]:
        """The part writer for ``save_atomically``. May run a job: a SequenceFile's
        classes are those of the first pair where not given (PySpark's inferKeyValueTypes);
        with ``empty_ok`` an empty RDD gets NullWritable ones instead of an error."""
        if self.kind == "text":
            return functools.partial(htf.WriteTextOutputPartition, part_prefix=self.part_prefix,
                                     separator=self.separator, codec=self.codec)
        key_class, value_class = self.key_class, self.value_class
        if key_class is None or value_class is None:
            taken = rdd.take(1)
            if taken:
                key, value = htf.as_pair(taken[0], 0, 0)
                key_class = key_class or w.natural_class(key)
                value_class = value_class or w.natural_class(value)
            elif empty_ok:  # nothing to write: valid SequenceFiles with no records
                key_class, value_class = key_class or w.NULL, value_class or w.NULL
            else:
                raise ValueError(
                    f"{self.method}: the RDD is empty, so the key and value classes cannot be "
                    "inferred from its first element (PySpark fails with 'empty collection' "
                    "too); pass keyClass and valueClass to saveAsHadoopFile")
        return functools.partial(htf.WriteSequenceFilePartition, part_prefix=self.part_prefix,
                                 key_class=key_class, value_class=value_class, codec=self.codec,
                                 block=self.block)


def hadoop_output(method: str, output_format: str, formats: dict, key_class: str | None,
                  value_class: str | None, key_converter: str | None, value_converter: str | None,
                  conf: dict | None, codec: str | None) -> HadoopOutput:
    """Check an output request (format, classes, converters, codec) before any work."""
    for converter in (key_converter, value_converter):
        if converter not in (None, DEFAULT_OUTPUT_CONVERTER):
            raise ValueError(
                f"{method}: converter {converter} is a JVM class, which sluicegate cannot run; "
                "values are converted as PySpark's default JavaToWritableConverter does -- "
                "convert them with .map() in Python first")
    kind = formats.get(output_format)
    if kind is None:
        raise ValueError(f"{method}: output format {output_format} is not supported; supported: "
                         f"{', '.join(formats)}")
    codec, block = _compression(method, codec, conf)
    return HadoopOutput(method, kind, "part-r-" if formats is NEW_API_FORMATS else "part-",
                        _writable_class(method, key_class), _writable_class(method, value_class),
                        codec, block, str(_conf_value(conf, TEXT_SEPARATOR, "\t")))


class HadoopOutputs:
    """Mixin of ``RDD``."""

    def saveAsPickleFile(self: "RDD", path: str, batchSize: int = 10) -> None:
        """Save the RDD as a SequenceFile of pickled batches of ``batchSize`` records
        (0: batches sized automatically, -1: one batch a partition), readable by ``SparkContext.pickleFile`` of
        sluicegate and of PySpark."""
        writer = pickle_part_writer(batchSize)
        save_atomically(self, new_output_directory(path), False, writer)

    def saveAsSequenceFile(self: "RDD", path: str,
                           compressionCodecClass: str | None = None) -> None:
        """Save an RDD of ``(key, value)`` pairs as a Hadoop SequenceFile, keys and values
        converted to Writables (str -> Text, int -> IntWritable or LongWritable, float ->
        DoubleWritable, bool -> BooleanWritable, bytes -> BytesWritable, None ->
        NullWritable, dict -> MapWritable); their classes are the first pair's."""
        self._save_hadoop("saveAsSequenceFile", path, OLD_SEQUENCE_FORMAT, OLD_API_FORMATS,
                          None, None, None, None, None, compressionCodecClass)

    def saveAsHadoopFile(self: "RDD", path: str, outputFormatClass: str,
                         keyClass: str | None = None, valueClass: str | None = None,
                         keyConverter: str | None = None, valueConverter: str | None = None,
                         conf: dict | None = None,
                         compressionCodecClass: str | None = None) -> None:
        """Save ``(key, value)`` pairs with an old-API (``org.apache.hadoop.mapred``) output
        format: SequenceFileOutputFormat or TextOutputFormat (``key<TAB>value`` lines)."""
        self._save_hadoop("saveAsHadoopFile", path, outputFormatClass, OLD_API_FORMATS, keyClass,
                          valueClass, keyConverter, valueConverter, conf, compressionCodecClass)

    def saveAsNewAPIHadoopFile(self: "RDD", path: str, outputFormatClass: str,
                               keyClass: str | None = None, valueClass: str | None = None,
                               keyConverter: str | None = None,
                               valueConverter: str | None = None,
                               conf: dict | None = None) -> None:
        """Save ``(key, value)`` pairs with a new-API (``org.apache.hadoop.mapreduce``) output
        format: SequenceFileOutputFormat or TextOutputFormat; parts are ``part-r-NNNNN``."""
        self._save_hadoop("saveAsNewAPIHadoopFile", path, outputFormatClass, NEW_API_FORMATS,
                          keyClass, valueClass, keyConverter, valueConverter, conf, None)

    def saveAsHadoopDataset(self: "RDD", conf: dict, keyConverter: str | None = None,
                            valueConverter: str | None = None) -> None:
        """:meth:`saveAsHadoopFile` with everything in the job ``conf``: the output directory
        (``mapreduce.output.fileoutputformat.outputdir``), ``mapred.output.format.class``
        (TextOutputFormat by default) and the key and value classes."""
        self._save_dataset("saveAsHadoopDataset", conf, OLD_OUTPUT_FORMAT_CLASS, OLD_TEXT_FORMAT,
                           OLD_API_FORMATS, keyConverter, valueConverter)

    def saveAsNewAPIHadoopDataset(self: "RDD", conf: dict, keyConverter: str | None = None,
                                  valueConverter: str | None = None) -> None:
        """:meth:`saveAsNewAPIHadoopFile` with everything in the job ``conf``
        (``mapreduce.job.outputformat.class``, TextOutputFormat by default)."""
        self._save_dataset("saveAsNewAPIHadoopDataset", conf, NEW_OUTPUT_FORMAT_CLASS,
                           NEW_TEXT_FORMAT, NEW_API_FORMATS, keyConverter, valueConverter)

    def _save_dataset(self: "RDD", method: str, conf: dict, format_keys: tuple, default_format: str,
                      formats: dict, key_converter: str | None, value_converter: str | None) -> None:
        path = _conf_value(conf, OUTPUT_DIR)
        if not path:
            raise ValueError(f"{method}: conf must name the output directory with {OUTPUT_DIR[0]}")
        self._save_hadoop(method, path, _conf_value(conf, format_keys, default_format), formats,
                          _conf_value(conf, OUTPUT_KEY_CLASS), _conf_value(conf, OUTPUT_VALUE_CLASS),
                          key_converter, value_converter, conf, None)

    def _save_hadoop(self: "RDD", method: str, path: str, output_format: str, formats: dict,
                     key_class: str | None, value_class: str | None, key_converter: str | None,
                     value_converter: str | None, conf: dict | None, codec: str | None) -> None:
        request = hadoop_output(method, output_format, formats, key_class, value_class,
                                key_converter, value_converter, conf, codec)
        target = new_output_directory(path)
        save_atomically(self, target, False, request.part_writer(self))
