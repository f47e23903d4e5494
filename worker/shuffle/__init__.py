"""Shuffle: map-side combine, hash-partitioned blocks, and fetching them from peers."""
