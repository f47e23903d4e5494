"""Cached and persisted partitions and shuffle blocks, spilled to disk past a limit."""
from .store import BlockMissing, BlockStore, estimate_size

__all__ = ["BlockMissing", "BlockStore", "estimate_size"]
