"""Executor-side work of the Hadoop-format inputs and outputs.

The driver puts these into task plans (pickled by reference, like
``taskfuncs``): writers get a partition's records and write one
``part-...`` file into a staging directory, which the driver moves into
place once every partition succeeded; readers get a split index and yield
that split's records. Paths may be fsspec URLs (``storage``).
"""
from __future__ import annotations

import bz2
import gzip
import io
import itertools
import re
import struct
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from . import object_file as objf
from . import storage
from . import writables as w
from .sequence_file import CODEC_EXTENSIONS, SequenceFileError, SequenceFileReader, SequenceFileWriter

_LINE_END = re.compile(rb"\r\n|\r|\n")
_INT = struct.Struct(">i")


def write_named_part(directory: str, name: str, write: Callable[[BinaryIO], None]) -> str:
    """Write ``directory/name`` so no reader sees half of it: locally via a hidden
    temporary name, on an object store as one upload (``storage.write_file``)."""
    storage.write_file(storage.join(directory, name), write)
    return name


def as_pair(record: Any, index: int, position: int) -> tuple:
    if isinstance(record, (tuple, list)) and len(record) == 2:
        return record[0], record[1]
    raise w.WritableError(
        f"RDD element of type {type(record).__name__} cannot be used: Hadoop outputs need "
        f"(key, value) pairs (element {position} of partition {index}: {record!r:.80})")


def _located(exc: w.WritableError, index: int, position: int) -> w.WritableError:
    return w.WritableError(f"{exc} (element {position} of partition {index})")


class WriteSequenceFilePartition:
    """One partition as a SequenceFile of ``key_class``/``value_class`` records."""

    def __init__(self, staging_dir: str, part_prefix: str, key_class: str, value_class: str,
                 codec: str | None, block: bool):
        self.staging_dir = staging_dir
        self.part_prefix = part_prefix
        self.key_class = key_class
        self.value_class = value_class
        self.codec = codec
        self.block = block

    def __call__(self, index: int, iterator: Iterable) -> list[str]:
        kc, vc = self.key_class, self.value_class

        def write(f: BinaryIO) -> None:
            writer = SequenceFileWriter(f, kc, vc, self.codec, self.block)
            for position, record in enumerate(iterator):
                key, value = as_pair(record, index, position)
                try:
                    w.check_writable(key, kc, "key")
                    w.check_writable(value, vc, "value")
                    key_bytes, value_bytes = bytearray(), bytearray()
                    w.encode(key, kc, key_bytes)
                    w.encode(value, vc, value_bytes)
                except w.WritableError as exc:
                    raise _located(exc, index, position) from None
                writer.append(bytes(key_bytes), bytes(value_bytes))
            writer.close()

        return [write_named_part(self.staging_dir, f"{self.part_prefix}{index:05d}", write)]


class _Compressed:
    """A writable file object compressing into ``f`` with a Hadoop codec's stream format."""

    def __init__(self, f: BinaryIO, codec: str | None):
        self._f = f
        self._zlib = None
        self._inner: Any = f
        if codec is None:
            return
        extension = CODEC_EXTENSIONS.get(codec)
        if extension == ".gz":
            self._inner = gzip.GzipFile(fileobj=f, mode="wb", mtime=0)
        elif extension == ".bz2":
            self._inner = bz2.BZ2File(f, "wb")
        elif extension == ".deflate":
            self._zlib = zlib.compressobj()
        else:
            raise SequenceFileError(f"compression codec {codec} is not supported; supported: "
                                    f"{', '.join(CODEC_EXTENSIONS)}")

    def write(self, data: bytes) -> None:
        if self._zlib is not None:
            self._f.write(self._zlib.compress(data))
        else:
            self._inner.write(data)

    def close(self) -> None:
        if self._zlib is not None:
            self._f.write(self._zlib.flush())
        elif self._inner is not self._f:
            self._inner.close()


class WriteTextOutputPartition:
    """One partition as TextOutputFormat writes it: ``key<separator>value`` lines of the
    Writables' ``toString()``; a None (NullWritable) key or value leaves out that side
    and the separator, and a pair of two Nones writes nothing."""

    def __init__(self, staging_dir: str, part_prefix: str, separator: str, codec: str | None):
        self.staging_dir = staging_dir
        self.part_prefix = part_prefix
        self.separator = separator
        self.codec = codec

    def __call__(self, index: int, iterator: Iterable) -> list[str]:
        separator = self.separator

        def write(f: BinaryIO) -> None:
            out = _Compressed(f, self.codec)
            for position, record in enumerate(iterator):
                key, value = as_pair(record, index, position)
                try:
                    parts = [w.java_string(x, w.natural_class(x)) for x in (key, value) if x is not None]
                except w.WritableError as exc:
                    raise _located(exc, index, position) from None
                if parts:
                    out.write((separator.join(parts) + "\n").encode("utf-8", "surrogatepass"))
            out.close()

        name = f"{self.part_prefix}{index:05d}{CODEC_EXTENSIONS.get(self.codec, '') if self.codec else ''}"
        return [write_named_part(self.staging_dir, name, write)]


class WritePickleFilePartition:
    """One partition as PySpark's saveAsPickleFile writes it (see ``object_file``)."""

    def __init__(self, staging_dir: str, part_prefix: str, batch_size: int):
        self.staging_dir = staging_dir
        self.part_prefix = part_prefix
        self.batch_size = batch_size

    def __call__(self, index: int, iterator: Iterable) -> list[str]:
        def write(f: BinaryIO) -> None:
            writer = SequenceFileWriter(f, objf.KEY_CLASS, objf.VALUE_CLASS)
            batches = objf.pickled_batches(iterator, self.batch_size)
            while True:
                group = list(itertools.islice(batches, objf.BATCHES_PER_RECORD))
                if not group:
                    break
                payload = objf.serialize_byte_arrays(group)
                writer.append(b"", _INT.pack(len(payload)) + payload)
            writer.close()

        return [write_named_part(self.staging_dir, f"{self.part_prefix}{index:05d}", write)]


# -- reading ---------------------------------------------------------------------------

def read_sequence_file(path: str, start: int, length: int) -> Iterator[tuple]:
    """``(key, value)`` of each record in the split, converted as PySpark converts Writables."""
    with SequenceFileReader(path) as reader:
        decode_key = w.decoder(reader.header.key_class)
        decode_value = w.decoder(reader.header.value_class)
        for key, value in reader.records(start, length):
            yield decode_key(key, 0)[0], decode_value(value, 0)[0]


def read_pickle_file(path: str, start: int, length: int) -> Iterator:
    """The records of a pickle file's split."""
    with SequenceFileReader(path) as reader:
        header = reader.header
        if (header.key_class, header.value_class) != (objf.KEY_CLASS, objf.VALUE_CLASS):
            raise objf.ObjectFileError(
                f"{path} is not a pickle file: its records are {header.key_class}/"
                f"{header.value_class}, not {objf.KEY_CLASS}/{objf.VALUE_CLASS}")
        for _, value in reader.records(start, length):
            size = _INT.unpack_from(value, 0)[0]
            yield from objf.unpickle_batches(objf.deserialize_byte_arrays(value[4:4 + size]))


def _open(path: str) -> BinaryIO:
    suffix = Path(path).suffix
    if storage.is_remote(path):
        if suffix in (".gz", ".bz2", ".deflate"):  # compressed files are read whole
            data = storage.read_bytes(path)
            if suffix == ".gz":
                return gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")
            if suffix == ".bz2":
                return bz2.BZ2File(io.BytesIO(data), "rb")
            return io.BytesIO(zlib.decompress(data))
        return storage.open_input(path)
    if suffix == ".gz":
        return gzip.open(path, "rb")
    if suffix == ".bz2":
        return bz2.open(path, "rb")
    if suffix == ".deflate":
        with open(path, "rb") as f:
            return io.BytesIO(zlib.decompress(f.read()))
    return open(path, "rb")


def read_offset_lines(path: str, start: int, length: int) -> list[tuple[int, str]]:
    """``(byte offset, line)`` as Hadoop's LineRecordReader reads the split: a split
    other than the first skips its first (partial) line, and reads every line that
    starts at or before its end. Lines end at ``\\n``, ``\\r\\n`` or a lone ``\\r``."""
    with _open(path) as f:
        if length < 0:
            data, base = f.read(), 0
            end = len(data)
        else:
            end = start + length
            f.seek(start)
            data, base = f.read(end - start + 1), start
            if data and not data.endswith((b"\n", b"\r")):
                data += f.readline()  # finish the line that starts at or before ``end``
    pos = 0
    if start != 0:
        match = _LINE_END.search(data)
        if match is None:
            return []
        pos = match.end()
    lines = []
    size = len(data)
    while pos < size and base + pos <= end:
        match = _LINE_END.search(data, pos)
        stop, after = (match.start(), match.end()) if match else (size, size)
        lines.append((base + pos, data[pos:stop].decode("utf-8", "replace")))
        pos = after
    return lines


def read_key_value_lines(path: str, start: int, length: int, separator: str) -> Iterator[tuple]:
    """KeyValueTextInputFormat: each line split at its first ``separator``."""
    for _, line in read_offset_lines(path, start, length):
        key, found, value = line.partition(separator)
        yield key, value if found else ""


def read_binary_files(paths: list[str]) -> Iterator[tuple[str, bytes]]:
    for path in paths:
        if storage.is_remote(path):
            yield path, storage.read_bytes(path)
            continue
        with open(path, "rb") as f:
            yield "file:" + str(Path(path).resolve()), f.read()


class ReadSplits:
    """A partition of a file input: ``splits[index]`` read by the reader named ``kind``."""

    def __init__(self, kind: str, splits: list, option: Any = None):
        self.kind = kind
        self.splits = splits
        self.option = option

    def __call__(self, index: int, _nothing: Iterable) -> Iterator:
        split = self.splits[index]
        if self.kind == "binary":
            return read_binary_files(split)
        path, start, length = split
        if self.kind == "sequence":
            return read_sequence_file(path, start, length)
        if self.kind == "pickle":
            return read_pickle_file(path, start, length)
        if self.kind == "text":
            return iter(read_offset_lines(path, start, length))
        if self.kind == "keyvalue":
            return read_key_value_lines(path, start, length, self.option)
        raise ValueError(f"unknown file input kind {self.kind!r}")
