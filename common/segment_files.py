"""Byte streams kept as capped, rotated segment files, and read back from any offset.

A stream (a job's stdout, an executor's stderr) is written to segment files
named by the stream offset of their first byte (16 digits, so that names sort
in stream order): ``stdout.0000000000000000``, ``stdout.0000000004194304``...
A new segment starts every ``segment_bytes`` and only the newest ``segments``
are kept, so a stream never holds more than about ``segments * segment_bytes``
on disk, and a reader can tell by the offsets how much was dropped.

The driver service's job keeper writes a job's output this way, and a worker
its executors' output; the service and the worker read it back for
``sluicegate submit`` and ``sluicegate logs``. Only the standard library is
used here: the job keeper runs as a small script of its own.
"""
from __future__ import annotations

import bisect
import os
from pathlib import Path

OFFSET_DIGITS = 16
SCAN_BYTES = 1 << 16  # how much is read at a time when looking for line starts backwards


def segment_name(stream: str, offset: int) -> str:
    return f"{stream}.{offset:0{OFFSET_DIGITS}d}"


def segment_offsets(directory: Path, stream: str) -> list[int]:
    """The start offsets of the stream's segments on disk, oldest first."""
    prefix = stream + "."
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(int(name[len(prefix):]) for name in names
                  if name.startswith(prefix) and len(name) == len(prefix) + OFFSET_DIGITS
                  and name[len(prefix):].isdigit())


class SegmentWriter:
    """One stream written to segment files of ``segment_bytes`` each, keeping the newest
    ``segments``. A write that fails (a full disk) drops that output and nothing else: the
    process whose output this is is never held up by it."""

    def __init__(self, directory: Path, stream: str, segment_bytes: int, segments: int):
        self.directory = Path(directory)
        self.stream = stream
        self.segment_bytes = max(1, segment_bytes)
        self.segments = max(1, segments)
        self.offset = 0        # bytes of the stream written so far
        self.dropped = 0       # bytes lost to write errors
        self._fd: int | None = None
        self._base = 0         # offset of the current segment's first byte

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._fd is None or self.offset - self._base >= self.segment_bytes:
                if not self._roll():
                    self.dropped += len(view)
                    return
            room = self._base + self.segment_bytes - self.offset
            try:
                written = os.write(self._fd, view[:room])
            except OSError:
                self.dropped += len(view)
                return
            self.offset += written
            view = view[written:]

    def _roll(self) -> bool:
        self.close()
        try:
            self._fd = os.open(self.directory / segment_name(self.stream, self.offset),
                               os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError:
            return False
        self._base = self.offset
        for old in segment_offsets(self.directory, self.stream)[:-self.segments]:
            try:
                os.unlink(self.directory / segment_name(self.stream, old))
            except OSError:
                pass
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def stream_end(directory: Path, stream: str) -> int:
    """The offset just past the stream's last byte written so far (0 if none)."""
    offsets = segment_offsets(directory, stream)
    if not offsets:
        return 0
    try:
        return offsets[-1] + (Path(directory) / segment_name(stream, offsets[-1])).stat().st_size
    except FileNotFoundError:
        return offsets[-1]


def start_of_last_lines(directory: Path, stream: str, lines: int) -> int:
    """The offset where the stream's last ``lines`` lines start (as ``tail -n`` counts
    them: a last line without its newline counts); the oldest byte still kept when the
    stream holds fewer; its end for 0."""
    directory = Path(directory)
    end = stream_end(directory, stream)
    if lines <= 0:
        return end
    wanted = None  # newlines still to pass, counted back from the end
    oldest = end
    for start, block in _blocks_backwards(directory, stream, end):
        if wanted is None:
            # A stream that ends with a newline: that one ends its last line.
            wanted = lines + (1 if block.endswith(b"\n") else 0)
        index = len(block)
        while True:
            index = block.rfind(b"\n", 0, index)
            if index < 0:
                break
            wanted -= 1
            if wanted == 0:
                return start + index + 1
        oldest = start
    return oldest


def _blocks_backwards(directory: Path, stream: str, end: int):
    """``(offset, bytes)`` blocks of the stream from ``end`` back to its oldest byte kept."""
    position = end
    for base in reversed(segment_offsets(directory, stream)):
        if base >= position:
            continue
        try:
            with open(directory / segment_name(stream, base), "rb") as f:
                while position > base:
                    start = max(base, position - SCAN_BYTES)
                    f.seek(start - base)
                    block = f.read(position - start)
                    if len(block) != position - start:  # a short segment (a failed write)
                        return
                    yield start, block
                    position = start
        except FileNotFoundError:  # dropped meanwhile: what is older is gone as well
            return


class OutputTail:
    """One stream read from ``offset`` on, following it as it grows."""

    def __init__(self, directory: Path, stream: str, offset: int = 0):
        self.directory = Path(directory)
        self.stream = stream
        self.offset = max(0, offset)

    def read(self, max_bytes: int) -> tuple[int, bytes] | None:
        """The next bytes (at most ``max_bytes``) with the offset of the first one, or
        ``None`` when there is nothing more yet. The offset is above the one asked for
        only when the bytes in between were dropped (the stream's size cap)."""
        if max_bytes <= 0:
            return None
        offsets = segment_offsets(self.directory, self.stream)
        if not offsets:
            return None
        if self.offset < offsets[0]:
            self.offset = offsets[0]
        index = max(0, bisect.bisect_right(offsets, self.offset) - 1)
        for base in offsets[index:]:
            if self.offset < base:  # a segment that could not be written: skip the hole
                self.offset = base
            try:
                with open(self.directory / segment_name(self.stream, base), "rb") as f:
                    f.seek(self.offset - base)
                    data = f.read(max_bytes)
            except FileNotFoundError:  # dropped since the listing: go on with the next one
                continue
            if data:
                start = self.offset
                self.offset += len(data)
                return start, data
        return None
