"""What a task's plan needs from the scheduler: closure ids and cache locations.

A cached partition whose holders are known is planned as a reference to the
block (read locally, or fetched from the executor holding it) instead of
its whole lineage. Long lineages -- a window or a state updated every batch
-- then cost the same to plan however far back the last checkpoint is. If
the block turns out to be gone, the task fails naming it and is planned
again from lineage.
"""
from __future__ import annotations

from typing import Callable

from .block_locations import BlockLocations
from .closures import ClosureRegistry


class TaskPlanner:
    def __init__(self, closures: ClosureRegistry, blocks: BlockLocations,
                 block_address: Callable[[str], str | None]):
        self.closures = closures
        self.blocks = blocks
        self.block_address = block_address

    def register(self, fn: Callable) -> int:
        return self.closures.register(fn)

    def cached_holders(self, block_id: str) -> list[list[str]]:
        """``[[executor_id, block_address], ...]`` of live executors caching ``block_id``."""
        holders = []
        for executor_id in sorted(self.blocks.holders(block_id)):
            address = self.block_address(executor_id)
            if address is not None:
                holders.append([executor_id, address])
        return holders
