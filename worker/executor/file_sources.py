"""Reading input files on the executor: line splits, whole files, fixed records.

A text file is cut into byte ranges; a line belongs to the range holding its
first byte (Hadoop's rule), so ranges can be read independently and no line
is lost or read twice. A line ends at ``\n``, ``\r\n`` or a lone ``\r``, as in
Hadoop's LineReader. Compressed files are read whole by one task.

A path may be a URL of any file system fsspec opens (``common.storage``).

Invalid UTF-8 decodes to U+FFFD, as in PySpark; the lines where that happened
are counted and reported with the task (``common.input_text``).
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import re
from pathlib import Path
from typing import BinaryIO, Iterator

from sluicegate.common import storage
from sluicegate.common.input_text import decode_counting, note_invalid_utf8, split_lines_counting
from sluicegate.common.serializer import load_records

_DECOMPRESSORS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_LINE_END = re.compile(rb"\r\n|\r|\n")


def _open(path: str) -> BinaryIO:
    opener = _DECOMPRESSORS.get(Path(path).suffix)
    if storage.is_remote(path):
        raw = storage.open_input(path)
        return _Decompressed(opener(raw, "rb"), raw) if opener else raw
    return opener(path, "rb") if opener else open(path, "rb")


class _Decompressed:
    """A decompressing reader over a remote file, closing both when done."""

    def __init__(self, reader: BinaryIO, raw: BinaryIO):
        self._reader, self._raw = reader, raw

    def __getattr__(self, name: str):
        return getattr(self._reader, name)

    def __enter__(self) -> "_Decompressed":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._reader.close()
        finally:
            self._raw.close()


def _finish_line(f: BinaryIO, data: bytes) -> bytes:
    """Read on from where ``data`` stopped to the end of the line it is in."""
    if data.endswith(b"\n"):
        return b""
    if data.endswith(b"\r"):
        following = f.read(1)
        return following if following == b"\n" else b""
    rest = f.readline()  # stops at \n; a lone \r may end the line sooner
    match = _LINE_END.search(rest)
    return rest if match is None else rest[:match.end()]


def _lines(path: str, raw: bytes) -> list[str]:
    lines, invalid = split_lines_counting(raw)
    if invalid:
        note_invalid_utf8(_source_name(path), invalid)
    return lines


def _source_name(path: str) -> str:
    # Hadoop names local files "file:/abs/path", as PySpark shows them; remote ones by URL.
    if storage.is_remote(path):
        return path
    return "file:" + str(Path(path).resolve())


def read_lines(path: str, start: int, length: int) -> list[str]:
    """Lines starting in ``[start, start + length)``; length < 0 reads to the end.

    The range (from one byte before it, to see whether a line starts right at
    ``start``) is read in one go and split in C; the line that starts inside
    it and runs past its end is finished by one more read.
    """
    with _open(path) as f:
        if length < 0:
            return _lines(path, f.read())
        end = start + length
        base = max(0, start - 1)
        f.seek(base)
        data = f.read(end - base)
        if len(data) == end - base:
            data += _finish_line(f, data)
        first = 0
        if start > 0:
            match = _LINE_END.search(data)
            if match is None:
                return []
            first = match.end()
        if base + first >= end:
            return []
        return _lines(path, data[first:])


def read_whole_files(paths: list[str]) -> Iterator[tuple[str, str]]:
    for path in paths:
        with _open(path) as f:
            text, invalid = decode_counting(f.read())
        name = _source_name(path)
        if invalid:
            note_invalid_utf8(name, invalid)
        yield name, text


def read_fixed_records(path: str, record_length: int) -> Iterator[bytes]:
    with _open(path) as f:
        while True:
            record = f.read(record_length)
            if len(record) < record_length:
                return
            yield record


def read_checkpoint(path: str) -> list:
    return load_records(storage.read_bytes(path))
