"""Reading input files on the executor: line splits, whole files, fixed records.

A text file is cut into byte ranges; a line belongs to the range holding its
first byte (Hadoop's rule), so ranges can be read independently and no line
is lost or read twice. Compressed files are read whole by one task.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path
from typing import BinaryIO, Iterator

from sluicegate.common.serializer import load_records

_DECOMPRESSORS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def _open(path: str) -> BinaryIO:
    opener = _DECOMPRESSORS.get(Path(path).suffix)
    return opener(path, "rb") if opener else open(path, "rb")


def _decode(line: bytes) -> str:
    if line.endswith(b"\n"):
        line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
    elif line.endswith(b"\r"):
        line = line[:-1]
    return line.decode("utf-8", "replace")


def read_lines(path: str, start: int, length: int) -> Iterator[str]:
    """Lines starting in ``[start, start + length)``; length < 0 reads to the end."""
    with _open(path) as f:
        if length < 0:
            for line in f:
                yield _decode(line)
            return
        end = start + length
        position = start
        if start > 0:
            f.seek(start - 1)
            position = start - 1 + len(f.readline())
        while position < end:
            line = f.readline()
            if not line:
                return
            position += len(line)
            yield _decode(line)


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
