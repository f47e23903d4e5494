"""Which executors hold which blocks: cached partitions and shipped input."""
from __future__ import annotations

from collections import defaultdict


class BlockLocations:
    def __init__(self) -> None:
        self._holders: dict[str, set[str]] = defaultdict(set)

    def add(self, block_id: str, executor_id: str) -> None:
        self._holders[block_id].add(executor_id)

    def holders(self, block_id: str) -> set[str]:
        return self._holders.get(block_id, set())

    def has(self, block_id: str, executor_id: str) -> bool:
        return executor_id in self._holders.get(block_id, ())

    def remove_executor(self, executor_id: str) -> None:
        for block_id in [b for b, h in self._holders.items() if executor_id in h]:
            self._holders[block_id].discard(executor_id)
            if not self._holders[block_id]:
                del self._holders[block_id]

    def remove_where(self, predicate) -> list[str]:
        doomed = [b for b in self._holders if predicate(b)]
        for block_id in doomed:
            del self._holders[block_id]
        return doomed

    def held_by(self) -> dict[str, int]:
        """How many blocks each executor holds."""
        counts: dict[str, int] = {}
        for holders in self._holders.values():
            for executor_id in holders:
                counts[executor_id] = counts.get(executor_id, 0) + 1
        return counts

    def __len__(self) -> int:
        return len(self._holders)
