"""The layout of one map task's shuffle output, and of the segments in it.

A map task writes a single output (one block in the block store, in memory
or spilled to a file) holding the segment of every reduce partition, with an
index in front, as Spark's sort shuffle writes one data file and offsets per
map task. A reducer reads its segment of each map output by range, so a
shuffle costs one stored object per map task however many reduce partitions
it has. Little-endian throughout::

    b"SG" version(1) kind(1) u32 num_partitions u32 n
    kind "D" (dense):  (num_partitions + 1) u64 offsets
    kind "S" (sparse): n u32 reduce ids, ascending, then (n + 1) u64 offsets
                       -- only the non-empty segments are listed
    data               the segments back to back (offsets count from here)

Sparse indexes keep the output of a map task that wrote few records for
many reduce partitions small (a dense index costs 8 bytes a partition).

A segment is a run of frames, each ``u32 length, u32 records`` followed by
one record batch (see ``common.serializer``) of that length; frames hold a
bounded number of records, so a reader decodes a big segment piecewise.
"""
from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left
from itertools import accumulate
from typing import Callable, Iterator

HEAD = struct.Struct("<2sBcII")
MAGIC = b"SG"
VERSION = 1
DENSE, SPARSE = b"D", b"S"
FRAME_HEAD = struct.Struct("<II")
OFFSET = struct.Struct("<QQ")
FRAME_RECORDS = 16384  # records per frame: the unit a reader decodes at once

_LITTLE = sys.byteorder == "little"


class CorruptOutput(Exception):
    """Bytes that are not a map output of this layout."""


def frame(batch: bytes, records: int) -> bytes:
    return FRAME_HEAD.pack(len(batch), records) + batch


def encode_output(num_partitions: int, reduce_ids: list[int], segments: list[list[bytes]],
                  lengths: list[int]) -> bytes:
    """One map output from its non-empty segments (``reduce_ids`` ascending;
    ``segments[i]`` the parts of reduce ``reduce_ids[i]``'s segment, of total
    ``lengths[i]`` bytes)."""
    parts = [encode_index(num_partitions, reduce_ids, lengths)]
    for segment in segments:
        parts.extend(segment)
    return b"".join(parts)


def encode_index(num_partitions: int, reduce_ids: list[int], lengths: list[int]) -> bytes:
    n = len(reduce_ids)
    if (n + 1) * 8 + n * 4 < (num_partitions + 1) * 8:
        offsets = array("Q", accumulate(lengths, initial=0))
        ids = array("I", reduce_ids)
        if not _LITTLE:
            offsets.byteswap()
            ids.byteswap()
        return HEAD.pack(MAGIC, VERSION, SPARSE, num_partitions, n) + ids.tobytes() + offsets.tobytes()
    dense = [0] * num_partitions
    for reduce_id, length in zip(reduce_ids, lengths):
        dense[reduce_id] = length
    offsets = array("Q", accumulate(dense, initial=0))
    if not _LITTLE:
        offsets.byteswap()
    return HEAD.pack(MAGIC, VERSION, DENSE, num_partitions, num_partitions) + offsets.tobytes()


def index_size(head: bytes) -> int:
    """Bytes of header and index, from the first ``HEAD.size`` bytes."""
    _, kind, num_partitions, n = _head(head)
    return HEAD.size + ((num_partitions + 1) * 8 if kind == DENSE else n * 4 + (n + 1) * 8)


def locate(read_at: Callable[[int, int], bytes], reduce_id: int) -> tuple[int, int]:
    """``(start, length)`` of reduce ``reduce_id``'s segment in a map output
    read through ``read_at(offset, size)``; length 0 if it has none."""
    _, kind, num_partitions, n = _head(read_at(0, HEAD.size))
    if not 0 <= reduce_id < num_partitions:
        raise CorruptOutput(f"reduce partition {reduce_id} of a map output with {num_partitions}")
    if kind == DENSE:
        data_start = HEAD.size + (num_partitions + 1) * 8
        start, end = OFFSET.unpack(read_at(HEAD.size + reduce_id * 8, 16))
    else:
        ids = array("I")
        ids.frombytes(read_at(HEAD.size, n * 4))
        if not _LITTLE:
            ids.byteswap()
        at = bisect_left(ids, reduce_id)
        if at == n or ids[at] != reduce_id:
            return 0, 0
        data_start = HEAD.size + n * 4 + (n + 1) * 8
        start, end = OFFSET.unpack(read_at(HEAD.size + n * 4 + at * 8, 16))
    if end < start:
        raise CorruptOutput(f"segment {reduce_id} ends before it starts")
    return data_start + start, end - start


def _head(head: bytes) -> tuple[int, bytes, int, int]:
    if len(head) < HEAD.size:
        raise CorruptOutput("map output shorter than its header")
    magic, version, kind, num_partitions, n = HEAD.unpack_from(head)
    if magic != MAGIC or version != VERSION or kind not in (DENSE, SPARSE):
        raise CorruptOutput(f"not a map output (header {bytes(head[:HEAD.size])!r})")
    return version, kind, num_partitions, n


def iter_frames(segment) -> Iterator[tuple[int, memoryview]]:
    """``(records, batch)`` for each frame of a whole segment."""
    view = memoryview(segment)
    at, end = 0, len(view)
    while at < end:
        if end - at < FRAME_HEAD.size:
            raise CorruptOutput("a segment ends inside a frame header")
        length, records = FRAME_HEAD.unpack_from(view, at)
        at += FRAME_HEAD.size
        if at + length > end:
            raise CorruptOutput("a segment ends inside a frame")
        yield records, view[at:at + length]
        at += length


class FrameAssembler:
    """Frames of a segment that arrives in pieces (a segment bigger than a
    fetch's byte budget): keeps only the unfinished frame between pieces."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, piece) -> list[tuple[int, bytes]]:
        data = self._pending + bytes(piece) if self._pending else bytes(piece)
        frames, at, end = [], 0, len(data)
        while end - at >= FRAME_HEAD.size:
            length, records = FRAME_HEAD.unpack_from(data, at)
            if end - at - FRAME_HEAD.size < length:
                break
            start = at + FRAME_HEAD.size
            frames.append((records, data[start:start + length]))
            at = start + length
        self._pending = data[at:]
        return frames

    def finish(self) -> None:
        if self._pending:
            raise CorruptOutput("a segment ends inside a frame")
