"""Blocks the driver itself holds: parallelized data, broadcast values, received
input (until its batch is done). Executors that lack one get it attached to a
task or ask for it; a lost executor's copy is never the only one."""
from __future__ import annotations

import threading


class DriverBlocks:
    def __init__(self) -> None:
        self._blocks: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, block_id: str, data: bytes) -> None:
        with self._lock:
            self._blocks[block_id] = data

    def get(self, block_id: str) -> bytes | None:
        with self._lock:
            return self._blocks.get(block_id)

    def remove(self, block_ids) -> None:
        with self._lock:
            for block_id in block_ids:
                self._blocks.pop(block_id, None)

    def __contains__(self, block_id: str) -> bool:
        with self._lock:
            return block_id in self._blocks

    def __len__(self) -> int:
        with self._lock:
            return len(self._blocks)
