"""The reduce side of a shuffle: gather one partition's segments and merge them.

Every segment is read before any user code sees a record, so a fetch
failure can never be swallowed by a user's try/except: with a combiner the
segments are merged as they arrive (``merge.SpillingMerger``, within
``spark.python.worker.memory``, spilling past it); without one their raw
frames are kept (``FrameBuffer``, spilling to a file past the same budget)
and decoded one frame at a time as the partition is iterated. Fetches from
peers are bounded by ``spark.reducer.maxSizeInFlight`` (see ``fetcher``).
"""
from __future__ import annotations

import tempfile
from itertools import chain
from pathlib import Path
from typing import Callable, Iterator

from sluicegate.common.serializer import load_records
from sluicegate.common.taskfuncs import identity

from .block_ids import FetchFailed, map_output_id
from .fetcher import PeerFetcher
from .format import FRAME_HEAD, CorruptOutput, FrameAssembler, iter_frames, locate
from .limits import ShuffleLimits, limits as executor_limits
from .merge import SpillingMerger


class ShuffleReadResult:
    """What a task's shuffle reads came to: bytes, and records."""

    def __init__(self) -> None:
        self.bytes_read = 0
        self.records_read = 0


def read_reduce_partition(shuffle_id: int, reduce_id: int, locations: list, my_executor_id: str,
                          store, fetcher: PeerFetcher, stats: ShuffleReadResult,
                          combiner: tuple[Callable, Callable, Callable] | None,
                          map_side_combined: bool, limits: ShuffleLimits | None = None) -> Iterator:
    """Reduce partition ``reduce_id``'s records: merged by key with
    ``combiner``, else as they were written.

    ``locations`` is ``[[map_id, executor_id, block_address], ...]`` for the
    map outputs that hold data for this partition (the driver leaves out the
    empty ones), an executor of ``None`` marking an output with no known place.
    """
    limits = limits or executor_limits
    frames = _frames(shuffle_id, reduce_id, locations, my_executor_id, store, fetcher, stats, limits)
    if combiner is None:
        buffer = FrameBuffer(limits.merge_memory_bytes, store.scratch_dir())
        for records, batch in frames:
            stats.records_read += records
            buffer.add(records, batch)
        return buffer.records()
    create, merge_value, merge_combiners = combiner
    if map_side_combined:  # the segments hold combiners already
        create, merge_value = identity, merge_combiners
    merger = SpillingMerger(create, merge_value, merge_combiners, limits.merge_memory_bytes,
                            store.scratch_dir())
    try:
        merger.add(chain.from_iterable(map(load_records, _batches(frames, stats))))
    except BaseException:
        merger.close()
        raise
    return merger.items()


def _batches(frames: Iterator, stats: ShuffleReadResult) -> Iterator:
    for records, batch in frames:
        stats.records_read += records
        yield batch


def _frames(shuffle_id: int, reduce_id: int, locations: list, my_executor_id: str, store,
            fetcher: PeerFetcher, stats: ShuffleReadResult, limits: ShuffleLimits) -> Iterator:
    """``(records, batch)`` of every frame of the partition's segments."""
    local: list[int] = []
    remote: dict[tuple[str, str], list[int]] = {}
    for map_id, executor_id, address in locations:
        if executor_id is None:
            raise FetchFailed(shuffle_id, int(map_id), None, "no known output location")
        if executor_id == my_executor_id:
            local.append(int(map_id))
        else:
            remote.setdefault((executor_id, address), []).append(int(map_id))
    fetch = fetcher.fetch_segments(shuffle_id, reduce_id, remote, limits.max_bytes_in_flight) \
        if remote else ()
    if remote:
        fetch.start()  # the peers work on their answers while the local segments are read
    for map_id in local:
        yield from _local_frames(shuffle_id, map_id, reduce_id, my_executor_id, store, stats,
                                 limits.max_bytes_in_flight)
    assembler = None
    for map_id, executor_id, piece, whole, last in fetch:
        stats.bytes_read += len(piece)
        if whole:
            yield from _checked_frames(piece, shuffle_id, map_id, executor_id)
            continue
        if assembler is None:
            assembler = FrameAssembler()
        try:
            yield from assembler.feed(piece)
            if last:
                assembler.finish()
                assembler = None
        except CorruptOutput as exc:
            raise FetchFailed(shuffle_id, map_id, executor_id, f"corrupt segment: {exc}") from None


def _checked_frames(segment, shuffle_id: int, map_id: int, executor_id: str | None) -> Iterator:
    try:
        yield from iter_frames(segment)
    except CorruptOutput as exc:
        raise FetchFailed(shuffle_id, map_id, executor_id, f"corrupt segment: {exc}") from None


def _local_frames(shuffle_id: int, map_id: int, reduce_id: int, my_executor_id: str, store,
                  stats: ShuffleReadResult, piece_bytes: int) -> Iterator:
    reader = store.reader(map_output_id(shuffle_id, map_id))
    if reader is None:
        raise FetchFailed(shuffle_id, map_id, my_executor_id, "local map output is gone")
    with reader:
        try:
            start, length = locate(reader.read_at, reduce_id)
        except (CorruptOutput, EOFError) as exc:
            raise FetchFailed(shuffle_id, map_id, my_executor_id, f"corrupt map output: {exc}") from None
        stats.bytes_read += length
        if length <= piece_bytes:
            yield from _checked_frames(reader.read_at(start, length), shuffle_id, map_id,
                                       my_executor_id)
            return
        # A big segment of a spilled output: read it in pieces.
        assembler = FrameAssembler()
        for at in range(0, length, piece_bytes):
            yield from assembler.feed(reader.read_at(start + at, min(piece_bytes, length - at)))
        assembler.finish()


class FrameBuffer:
    """Raw frames of a partition read without a combiner: kept in memory up
    to ``budget`` bytes, the rest in a temporary file; decoded one frame at a
    time when iterated."""

    def __init__(self, budget: int, scratch_dir: Path):
        self.budget = budget
        self.scratch_dir = scratch_dir
        self.memory: list[bytes] = []
        self.held = 0
        self.spill = None
        self.spilled_bytes = 0

    def add(self, records: int, batch) -> None:
        if self.spill is None and self.held + len(batch) <= self.budget:
            self.memory.append(bytes(batch))
            self.held += len(batch)
            return
        if self.spill is None:
            self.spill = tempfile.TemporaryFile(dir=self.scratch_dir, prefix="reduce-")
        self.spill.write(FRAME_HEAD.pack(len(batch), records))
        self.spill.write(batch)
        self.spilled_bytes += FRAME_HEAD.size + len(batch)

    def records(self) -> Iterator:
        memory, self.memory = self.memory, []
        spill, self.spill = self.spill, None
        if spill is None:
            # The common case stays one C-level chain over decoded batches.
            return chain.from_iterable(map(load_records, memory))
        return self._with_spill(memory, spill)

    @staticmethod
    def _with_spill(memory: list[bytes], spill) -> Iterator:
        try:
            for i, batch in enumerate(memory):
                memory[i] = b""  # let each decoded batch's bytes go
                yield from load_records(batch)
            spill.seek(0)
            while True:
                head = spill.read(FRAME_HEAD.size)
                if not head:
                    return
                length, _ = FRAME_HEAD.unpack(head)
                yield from load_records(spill.read(length))
        finally:
            spill.close()
