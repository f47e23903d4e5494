"""Reading input files on the executor: line splits, whole files, fixed records.

A text file is cut into byte ranges; a line belongs to the range holding its
first byte (Hadoop's rule), so ranges can be read independently and no line
is lost or read twice. A line ends at ``\n``, ``\r\n`` or a lone ``\r``, as in
Hadoop's LineReader. Compressed files are read whole by one task.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import re
from pathlib import Path
from typing import BinaryIO, Iterator

from sluicegate.common.serializer import load_records, split_lines

_DECOMPRESSORS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_LINE_END = re.compile(rb"\r\n|\r|\n")


def _open(path: str) -> BinaryIO:
    opener = _DECOMPRESSORS.get(Path(path).suffix)
    return opener(path, "rb") if opener else open(path, "rb")


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


def read_lines(path: str, start: int, length: int) -> list[str]:
    """Lines starting in ``[start, start + length)``; length < 0 reads to the end.

    The range (from one byte before it, to see whether a line starts right at
    ``start``) is read in one go and split in C; the line that starts inside
    it and runs past its end is finished by one more read.
    """
    with _open(path) as f:
        if length < 0:
            return split_lines(f.read())
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
        return split_lines(data[first:])


def read_whole_files(paths: list[str]) -> Iterator[tuple[str, str]]:
    for path in paths:
        with _open(path) as f:
            # Hadoop names local files "file:/abs/path", as PySpark shows them.
            yield ("file:" + str(Path(path).resolve()), f.read().decode("utf-8", "replace"))


def read_fixed_records(path: str, record_length: int) -> Iterator[bytes]:
    with _open(path) as f:
        while True:
            record = f.read(record_length)
            if len(record) < record_length:
                return
            yield record


def read_checkpoint(path: str) -> list:
    return load_records(Path(path).read_bytes())
