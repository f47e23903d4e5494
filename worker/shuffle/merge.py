"""Aggregation by key within a memory budget, spilling to disk past it.

What PySpark's ``ExternalMerger`` does for ``spark.python.worker.memory``:
pairs are folded into a dict in chunks; after each chunk the dict's size is
estimated, and once it passes the budget its combiners go to a spill file,
split by a hash of the key into parts, and the dict starts empty. At the end
each part is merged across the spill files on its own (recursively, with
another hash, if one part is still too big), so the memory held is about
one part's combiners rather than the partition's.

The map side uses ``fold_within`` alone: a full dict is written out as a run
of the map output (the reducer merges whatever the map side did not).
"""
from __future__ import annotations

import os
import sys
import tempfile
from itertools import chain, islice
from pathlib import Path
from typing import Callable, Iterable, Iterator

from sluicegate.common.serializer import dump_pairs, load_records
from sluicegate.common.taskfuncs import identity

from .format import FRAME_RECORDS, encode_index, frame, iter_frames, locate
from .writer import combine_by_key

FIRST_CHUNK = 4096
MIN_CHUNK, MAX_CHUNK = 256, 1 << 17
SPILL_PARTS = 32
MAX_DEPTH = 3  # re-splits of one part; past that a part is merged in memory whatever it costs

_END = object()


def estimate_dict_bytes(combined: dict) -> int:
    """Approximate bytes held by a dict and its keys and values, from the
    oldest and the newest entries (a growing combiner is oldest)."""
    n = len(combined)
    if n == 0:
        return 0
    items = combined.items()
    sample = list(islice(items, 8))
    if n > 8:
        sample.extend(islice(reversed(items), min(8, n - 8)))
    per_entry = sum(deep_size(k) + deep_size(v) for k, v in sample) / len(sample)
    return sys.getsizeof(combined) + int(per_entry * n)


def deep_size(obj, depth: int = 0) -> int:
    """Approximate bytes of a record: itself, and (two levels deep, from up to
    16 items) what a tuple or list holds."""
    size = sys.getsizeof(obj)
    if depth < 2 and type(obj) in (tuple, list) and obj:
        head = obj[:16]
        size += int(sum(deep_size(x, depth + 1) for x in head) * len(obj) / len(head))
    return size


def fold_within(pairs: Iterable, create: Callable, merge: Callable, budget: int,
                on_full: Callable[[dict], None]) -> dict:
    """Fold ``pairs`` into ``{key: combiner}``; whenever the dict passes
    ``budget`` bytes, hand it to ``on_full`` and go on with an empty one.
    Returns the last dict."""
    combined: dict = {}
    it = iter(pairs)
    chunk, last_estimate = FIRST_CHUNK, 0
    first = next(it, _END)
    while first is not _END:
        combine_by_key(chain((first,), islice(it, chunk - 1)), create, merge, combined)
        first = next(it, _END)
        if first is _END:
            break  # all in: what is held is the result, whatever its size
        estimate = estimate_dict_bytes(combined)
        if estimate > budget:
            on_full(combined)
            combined = {}
            last_estimate = 0
            chunk = FIRST_CHUNK
            continue
        # Size the next chunk so that, growing as this one did, it stays inside
        # the budget with room to spare.
        growth = max(estimate - last_estimate, 1) / chunk
        chunk = int(min(MAX_CHUNK, max(MIN_CHUNK, (budget - estimate) / growth / 2)))
        last_estimate = estimate
    return combined


def frames_of_pairs(keys: list, values: list) -> list[bytes]:
    """One segment's frames for these pairs."""
    if len(keys) <= FRAME_RECORDS:
        return [frame(dump_pairs(keys, values), len(keys))]
    return [frame(dump_pairs(keys[i:i + FRAME_RECORDS], values[i:i + FRAME_RECORDS]),
                  min(FRAME_RECORDS, len(keys) - i))
            for i in range(0, len(keys), FRAME_RECORDS)]


def pairs_of_frames(segment) -> Iterator[list]:
    for _, batch in iter_frames(segment):
        yield load_records(batch)


class SpillingMerger:
    """Combine pairs by key in about ``budget`` bytes, spilling past it.

    ``add`` folds ``(key, value)`` pairs with ``create``/``merge_value``;
    ``items`` yields every ``(key, combiner)`` once, combining parts of a
    key's value that were spilled at different times with ``merge_combiners``.
    """

    def __init__(self, create: Callable, merge_value: Callable, merge_combiners: Callable,
                 budget: int, scratch_dir: Path, depth: int = 0):
        self.create = create
        self.merge_value = merge_value
        self.merge_combiners = merge_combiners
        self.budget = budget if depth < MAX_DEPTH else sys.maxsize
        self.scratch_dir = scratch_dir
        self.depth = depth
        self.spills: list = []  # open temporary files, each one spill's parts
        self.spilled_bytes = 0
        self._combined: dict = {}
        self._added = False

    def add(self, pairs: Iterable) -> None:
        """Fold all the input (once: a partition's pairs come as one iterable)."""
        if self._added:
            raise RuntimeError("SpillingMerger.add takes all the input in one call")
        self._added = True
        self._combined = fold_within(pairs, self.create, self.merge_value, self.budget,
                                     self._spill)

    def items(self) -> Iterator[tuple]:
        if not self.spills:
            combined, self._combined = self._combined, {}
            return iter(combined.items())
        if self._combined:
            self._spill(self._combined)
            self._combined = {}
        return self._merge_parts()

    def close(self) -> None:
        for spill in self.spills:
            spill.close()
        self.spills = []

    # -- internals ------------------------------------------------------------------
    def _part_of(self, key) -> int:
        return hash((key, self.depth)) % SPILL_PARTS

    def _spill(self, combined: dict) -> None:
        columns = [([], []) for _ in range(SPILL_PARTS)]
        part_of = self._part_of
        for key, value in combined.items():
            keys, values = columns[part_of(key)]
            keys.append(key)
            values.append(value)
        combined.clear()
        parts, lengths = [], []
        for keys, values in columns:
            frames = frames_of_pairs(keys, values) if keys else []
            parts.append(frames)
            lengths.append(sum(map(len, frames)))
        spill = tempfile.TemporaryFile(dir=self.scratch_dir, prefix="merge-")
        spill.write(encode_index(SPILL_PARTS, list(range(SPILL_PARTS)), lengths))
        for frames in parts:
            spill.writelines(frames)
        spill.flush()
        self.spilled_bytes += spill.tell()
        self.spills.append(spill)

    def _merge_parts(self) -> Iterator[tuple]:
        try:
            for part in range(SPILL_PARTS):
                inner = SpillingMerger(identity, self.merge_combiners, self.merge_combiners,
                                       self.budget, self.scratch_dir, self.depth + 1)
                try:
                    inner.add(chain.from_iterable(chain.from_iterable(
                        self._part_pairs(spill, part) for spill in self.spills)))
                    self.spilled_bytes += inner.spilled_bytes
                    yield from inner.items()
                finally:
                    inner.close()
        finally:
            self.close()

    @staticmethod
    def _part_pairs(spill, part: int) -> Iterator[list]:
        fd = spill.fileno()

        def read_at(offset: int, size: int) -> bytes:
            return os.pread(fd, size, offset)

        start, length = locate(read_at, part)
        if length:
            yield from pairs_of_frames(read_at(start, length))
