"""The executor's block store: shuffle outputs, input blocks, cached partitions.

Blocks are either serialized bytes (shuffle blocks, received input, driver
data, serialized cache levels) or live Python lists (deserialized cached
partitions). The store keeps at most ``memory_limit_bytes`` in memory; past
that it spills the least recently used bytes blocks to files in the work
directory, then evicts cached partitions (to disk when their level allows,
else dropped: they are recomputed from lineage when next needed).

Both the task thread and the link thread use it (the link thread stores
pushed blocks, drops blocks and serves peers), so every method takes the
store's lock; file reads happen outside it.

Every entry costs ``ENTRY_OVERHEAD`` bytes of bookkeeping on top of its data,
and that counts against the limit too: a store of many tiny blocks spills
like one of a few big ones (a shuffle's map outputs are one block per map
task, however many reduce partitions it has; see ``worker.shuffle.format``).
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sluicegate.common.serializer import dump_records, load_records

log = logging.getLogger("sluicegate.worker.block_store")

# What one in-memory entry costs beyond its data: the entry, its id, the
# bytes object's header and the LRU order's node, measured with tracemalloc.
ENTRY_OVERHEAD = 400


class BlockMissing(Exception):
    """A block a task needs is on neither this executor nor anywhere it asked."""

    def __init__(self, block_id: str, why: str):
        super().__init__(f"block {block_id} {why}")
        self.block_id = block_id


@dataclass
class _Entry:
    size: int
    data: bytes | None = None      # serialized, in memory
    records: list | None = None    # deserialized, in memory
    path: Path | None = None       # serialized, on disk
    may_spill: bool = True         # a deserialized entry may go to disk


class BlockStore:
    """Blocks by id, in memory up to a limit and on disk past it."""

    def __init__(self, work_dir: Path, memory_limit_bytes: int):
        self._dir = Path(work_dir) / "blocks"
        self._dir.mkdir(parents=True, exist_ok=True)
        self._limit = memory_limit_bytes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # LRU order
        self._memory = 0
        self._disk = 0
        self._lock = threading.Lock()
        self.spilled_blocks = 0
        self._scratch: Path | None = None

    # -- queries ----------------------------------------------------------------
    @property
    def memory_bytes(self) -> int:
        return self._memory

    @property
    def disk_bytes(self) -> int:
        return self._disk

    def contains(self, block_id: str) -> bool:
        with self._lock:
            return block_id in self._entries

    def block_ids(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    # -- serialized blocks ----------------------------------------------------------
    def put_bytes(self, block_id: str, data: bytes) -> None:
        size = len(data)
        with self._lock:
            self._remove_locked(block_id)
            self._make_room_locked(size + ENTRY_OVERHEAD)
            if self._memory + size + ENTRY_OVERHEAD <= self._limit:
                self._entries[block_id] = _Entry(size, data=data)
                self._memory += size + ENTRY_OVERHEAD
                return
        # Does not fit even after spilling others: straight to disk.
        path = self._write_file(block_id, data)
        with self._lock:
            self._entries[block_id] = _Entry(size, path=path)
            self._disk += size
            self.spilled_blocks += 1

    def get_bytes(self, block_id: str) -> bytes | None:
        """The block serialized (a cached list is serialized on demand)."""
        held = self._held(block_id)
        if held is None:
            return None
        data, records, path = held
        if data is not None:
            return data
        if records is not None:
            return dump_records(records)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def reader(self, block_id: str) -> "BlockReader | None":
        """Random access to a serialized block without loading it whole (a
        spilled block is read from its file); None if there is no such block.
        Close it after use."""
        held = self._held(block_id)
        if held is None:
            return None
        data, records, path = held
        if records is not None:  # a live cached list
            data = dump_records(records)
        if data is not None:
            return BlockReader(memoryview(data), None)
        try:
            # Opened, the file stays readable even if the block is dropped meanwhile.
            return BlockReader(None, os.open(path, os.O_RDONLY))
        except FileNotFoundError:
            return None

    def scratch_dir(self) -> Path:
        """A directory for a task's temporary spill files (removed with the store)."""
        if self._scratch is None:
            self._scratch = self._dir / "scratch"
            self._scratch.mkdir(exist_ok=True)
        return self._scratch

    def put_file(self, block_id: str, path: Path) -> None:
        """Take a block already written to ``path`` (on the store's file
        system) as a block on disk."""
        target = self._dir / block_id
        os.replace(path, target)
        size = target.stat().st_size
        with self._lock:
            self._remove_locked(block_id)
            self._entries[block_id] = _Entry(size, path=target)
            self._disk += size
            self.spilled_blocks += 1

    # -- deserialized (cached) partitions --------------------------------------------
    def put_records(self, block_id: str, records: list, deserialized: bool,
                    use_memory: bool, use_disk: bool) -> bool:
        """Cache a computed partition at a storage level; False if not kept."""
        if use_memory and deserialized:
            size = estimate_size(records) + ENTRY_OVERHEAD
            with self._lock:
                self._remove_locked(block_id)
                self._make_room_locked(size)
                if self._memory + size <= self._limit:
                    self._entries[block_id] = _Entry(size, records=records, may_spill=use_disk)
                    self._memory += size
                    return True
            if not use_disk:
                return False
            self.put_bytes_on_disk(block_id, dump_records(records))
            return True
        data = dump_records(records)
        if use_memory:
            self.put_bytes(block_id, data)
        elif use_disk:
            self.put_bytes_on_disk(block_id, data)
        else:
            return False
        return True

    def put_bytes_on_disk(self, block_id: str, data: bytes) -> None:
        path = self._write_file(block_id, data)
        with self._lock:
            self._remove_locked(block_id)
            self._entries[block_id] = _Entry(len(data), path=path)
            self._disk += len(data)

    def get_records(self, block_id: str) -> list | None:
        held = self._held(block_id)
        if held is None:
            return None
        if held[1] is not None:  # the list itself
            return held[1]
        data = self.get_bytes(block_id)
        return None if data is None else load_records(data)

    # -- removal ------------------------------------------------------------------
    def remove(self, block_id: str) -> None:
        with self._lock:
            self._remove_locked(block_id)

    def remove_where(self, predicate: Callable[[str], bool]) -> int:
        with self._lock:
            doomed = [b for b in self._entries if predicate(b)]
            for block_id in doomed:
                self._remove_locked(block_id)
        return len(doomed)

    def clear(self) -> None:
        with self._lock:
            for block_id in list(self._entries):
                self._remove_locked(block_id)
        shutil.rmtree(self._dir, ignore_errors=True)

    # -- internals --------------------------------------------------------------------
    def _held(self, block_id: str) -> tuple[bytes | None, list | None, Path | None] | None:
        """How the block is held now -- ``(data, records, path)``, one of them set --
        read under the lock, for the caller to use outside it; the block is now the
        most recently used. None if there is no such block."""
        with self._lock:
            entry = self._entries.get(block_id)
            if entry is None:
                return None
            self._entries.move_to_end(block_id)
            return entry.data, entry.records, entry.path

    def _remove_locked(self, block_id: str) -> None:
        entry = self._entries.pop(block_id, None)
        if entry is None:
            return
        if entry.path is not None:
            self._disk -= entry.size
            try:
                entry.path.unlink()
            except FileNotFoundError:
                pass
        elif entry.data is not None:
            self._memory -= entry.size + ENTRY_OVERHEAD
        else:
            self._memory -= entry.size

    def _make_room_locked(self, size: int) -> None:
        """Spill bytes blocks, then evict cached lists, least recent first."""
        if self._memory + size <= self._limit:
            return
        for wanted in ("bytes", "records"):
            dropped = []
            for block_id, entry in self._entries.items():
                if self._memory + size <= self._limit:
                    break
                if wanted == "bytes" and entry.data is not None:
                    entry.path = self._write_file(block_id, entry.data)
                    entry.data = None
                    self._memory -= entry.size + ENTRY_OVERHEAD
                    self._disk += entry.size
                    self.spilled_blocks += 1
                elif wanted == "records" and entry.records is not None:
                    self._memory -= entry.size
                    if entry.may_spill:
                        data = dump_records(entry.records)
                        entry.path = self._write_file(block_id, data)
                        entry.records = None
                        entry.size = len(data)
                        self._disk += entry.size
                        self.spilled_blocks += 1
                    else:
                        dropped.append(block_id)
            for block_id in dropped:
                del self._entries[block_id]
            if self._memory + size <= self._limit:
                return

    def _write_file(self, block_id: str, data: bytes) -> Path:
        path = self._dir / block_id
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return path


class BlockReader:
    """Reads ranges of one block, from memory or from its file."""

    def __init__(self, view: memoryview | None, fd: int | None):
        self._view = view
        self._fd = fd

    def read_at(self, offset: int, size: int) -> bytes | memoryview:
        if self._view is not None:
            return self._view[offset:offset + size]
        data = os.pread(self._fd, size, offset)
        if len(data) < size:
            raise EOFError(f"block file is shorter than {offset + size} bytes")
        return data

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._view = None

    def __enter__(self) -> "BlockReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def estimate_size(records: list) -> int:
    """Approximate bytes held by a list of records, from a sample."""
    n = len(records)
    if n == 0:
        return sys.getsizeof(records)
    step = max(1, n // 64)
    sample = records[::step]
    per_record = sum(_deep_size(r) for r in sample) / len(sample)
    return sys.getsizeof(records) + int(per_record * n)


def _deep_size(obj, depth: int = 0) -> int:
    size = sys.getsizeof(obj)
    if depth < 2 and isinstance(obj, (tuple, list)):
        size += sum(_deep_size(x, depth + 1) for x in obj[:16]) * max(1, len(obj) / 16 if len(obj) > 16 else 1)
    return int(size)
