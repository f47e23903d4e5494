"""Cached and persisted partitions and shuffle blocks, spilled to disk past a limit."""
from .store import BlockStore, estimate_size

__all__ = ["BlockStore", "estimate_size"]
