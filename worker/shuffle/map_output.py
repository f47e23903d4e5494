"""Writing one map task's shuffle output within a memory budget.

The task's records are combined (or, without a combiner, bucketed) by reduce
partition in memory; when that passes the budget
(``spark.python.worker.memory``) what is held is written out as a *run* --
the same segments-and-index layout as the output -- and memory starts over.
The output is then one block in the block store: built in memory when there
was no run (the store spills it to disk if it must), else assembled from the
runs straight into a file the store takes over. A reduce partition's
segment may then hold a key more than once; reducers merge anyway.
"""
from __future__ import annotations

import os
import sys
import tempfile
from itertools import islice
from typing import Callable, Iterable, Iterator

from sluicegate.common.serializer import dump_records

from .block_ids import map_output_id
from .format import FRAME_RECORDS, encode_index, encode_output, frame
from .merge import deep_size, fold_within, frames_of_pairs

BUCKET_CHUNK = 8192
DENSE_BUCKETS = 1024  # up to this many reduce partitions a map keeps a list per partition

_UNPACK_ERRORS = ("cannot unpack", "values to unpack")


class _Segments:
    """Non-empty segments in ascending reduce id: ids, frames, byte lengths."""

    __slots__ = ("reduce_ids", "frames", "lengths")

    def __init__(self) -> None:
        self.reduce_ids: list[int] = []
        self.frames: list[list[bytes]] = []
        self.lengths: list[int] = []

    def add(self, reduce_id: int, frames: list[bytes]) -> None:
        self.reduce_ids.append(reduce_id)
        self.frames.append(frames)
        self.lengths.append(sum(map(len, frames)))


def segments_of_dict(combined: dict, num_partitions: int, partition_of: Callable) -> _Segments:
    out = _Segments()
    if not combined:
        return out
    if num_partitions == 1:
        out.add(0, frames_of_pairs(list(combined.keys()), list(combined.values())))
        return out
    if len(combined) >= num_partitions // 4:
        columns: list | dict = [([], []) for _ in range(num_partitions)]
        for key, value in combined.items():
            keys, values = columns[partition_of(key)]
            keys.append(key)
            values.append(value)
        for reduce_id, (keys, values) in enumerate(columns):
            if keys:
                out.add(reduce_id, frames_of_pairs(keys, values))
        return out
    # Few keys for many partitions: only the partitions that get any.
    sparse: dict[int, tuple[list, list]] = {}
    for key, value in combined.items():
        reduce_id = partition_of(key)
        column = sparse.get(reduce_id)
        if column is None:
            sparse[reduce_id] = column = ([], [])
        column[0].append(key)
        column[1].append(value)
    for reduce_id in sorted(sparse):
        keys, values = sparse[reduce_id]
        out.add(reduce_id, frames_of_pairs(keys, values))
    return out


def _frames_of_records(bucket: list) -> list[bytes]:
    if len(bucket) <= FRAME_RECORDS:
        return [frame(dump_records(bucket), len(bucket))]
    frames = []
    for i in range(0, len(bucket), FRAME_RECORDS):
        piece = bucket[i:i + FRAME_RECORDS]
        frames.append(frame(dump_records(piece), len(piece)))
    return frames


def segments_of_buckets(buckets: list | dict) -> _Segments:
    out = _Segments()
    items = enumerate(buckets) if isinstance(buckets, list) else sorted(buckets.items())
    for reduce_id, bucket in items:
        if bucket:
            out.add(reduce_id, _frames_of_records(bucket))
    return out


class MapOutputWriter:
    """Collects a map task's segments; spills runs; stores the output."""

    def __init__(self, num_partitions: int, partition_of: Callable, store, budget: int):
        self.num_partitions = num_partitions
        self.partition_of = partition_of
        self.store = store
        self.budget = budget
        self.runs: list[tuple] = []  # (temporary file, _Segments without frames)

    # -- with a combiner --------------------------------------------------------------
    def combine(self, records: Iterable, create: Callable, merge: Callable) -> tuple[_Segments, int]:
        written = 0

        def spill(combined: dict) -> None:
            nonlocal written
            written += len(combined)
            self._spill_run(segments_of_dict(combined, self.num_partitions, self.partition_of))

        combined = fold_within(records, create, merge, self.budget, spill)
        written += len(combined)
        return segments_of_dict(combined, self.num_partitions, self.partition_of), written

    # -- without ------------------------------------------------------------------------
    def bucket(self, records: Iterable) -> tuple[_Segments, int]:
        num_partitions, partition_of = self.num_partitions, self.partition_of
        dense = num_partitions <= DENSE_BUCKETS
        buckets = self._new_buckets(dense)
        it = iter(records)
        written = held = 0
        per_record = 0.0
        try:
            while True:
                batch = list(islice(it, BUCKET_CHUNK))
                if not batch:
                    break
                if num_partitions == 1:
                    append = buckets[0].append
                    for key, value in batch:
                        append((key, value))
                elif dense:
                    for key, value in batch:
                        buckets[partition_of(key)].append((key, value))
                else:
                    for key, value in batch:
                        reduce_id = partition_of(key)
                        bucket = buckets.get(reduce_id)
                        if bucket is None:
                            buckets[reduce_id] = bucket = []
                        bucket.append((key, value))
                written += len(batch)
                held += len(batch)
                sample = batch[:: max(1, len(batch) // 8)]
                per_record = max(per_record, 8 + sum(map(deep_size, sample)) / len(sample))
                if held * per_record > self.budget:
                    self._spill_run(segments_of_buckets(buckets))
                    buckets = self._new_buckets(dense)
                    held = 0
        except (TypeError, ValueError) as exc:
            if any(s in str(exc) for s in _UNPACK_ERRORS):
                raise TypeError(f"a key-value operation needs (key, value) pairs: {exc}") from exc
            raise
        return segments_of_buckets(buckets), written

    def _new_buckets(self, dense: bool) -> list | dict:
        return [[] for _ in range(self.num_partitions)] if dense else {}

    # -- output -----------------------------------------------------------------------------
    def _spill_run(self, segments: _Segments) -> None:
        run = tempfile.TemporaryFile(dir=self.store.scratch_dir(), prefix="map-run-")
        for frames in segments.frames:
            run.writelines(frames)
        run.flush()
        segments.frames = []
        self.runs.append((run, segments))

    def store_output(self, block_id: str, last: _Segments) -> list[int]:
        """Store the output; return each reduce partition's segment length."""
        sizes = [0] * self.num_partitions
        if not self.runs:
            for reduce_id, length in zip(last.reduce_ids, last.lengths):
                sizes[reduce_id] = length
            self.store.put_bytes(block_id, encode_output(
                self.num_partitions, last.reduce_ids, last.frames, last.lengths))
            return sizes
        self._spill_run(last)
        try:
            for _, segments in self.runs:
                for reduce_id, length in zip(segments.reduce_ids, segments.lengths):
                    sizes[reduce_id] += length
            reduce_ids = [r for r, size in enumerate(sizes) if size]
            path = self._assemble(reduce_ids, [sizes[r] for r in reduce_ids])
            self.store.put_file(block_id, path)
        finally:
            for run, _ in self.runs:
                run.close()
            self.runs = []
        return sizes

    def _assemble(self, reduce_ids: list[int], lengths: list[int]):
        """Interleave the runs' segments into one output file, reduce by reduce
        (each run is read front to back once)."""
        cursors = []
        for run, segments in self.runs:
            run.seek(0)
            cursors.append((run, iter(zip(segments.reduce_ids, segments.lengths)), [None]))
        fd, name = tempfile.mkstemp(dir=self.store.scratch_dir(), prefix="map-output-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(encode_index(self.num_partitions, reduce_ids, lengths))
                for reduce_id in reduce_ids:
                    for run, entries, head in cursors:
                        if head[0] is None:
                            head[0] = next(entries, (sys.maxsize, 0))
                        if head[0][0] == reduce_id:
                            out.write(_read_exactly(run, head[0][1]))
                            head[0] = None
        except BaseException:
            os.unlink(name)
            raise
        return name


def _read_exactly(f, size: int) -> bytes:
    data = f.read(size)
    if len(data) != size:
        raise EOFError("a map-side spill run is shorter than its index")
    return data


def write_output(records: Iterator, shuffle_id: int, map_id: int, num_partitions: int,
                 partition_of: Callable, combiner: tuple[Callable, Callable] | None,
                 store, budget: int, before_store: Callable[[], None] | None = None
                 ) -> tuple[list[int], int]:
    writer = MapOutputWriter(num_partitions, partition_of, store, budget)
    try:
        if combiner is not None:
            last, written = writer.combine(records, combiner[0], combiner[1])
        else:
            last, written = writer.bucket(records)
        if before_store is not None:
            before_store()
        return writer.store_output(map_output_id(shuffle_id, map_id), last), written
    finally:
        for run, _ in writer.runs:
            run.close()
