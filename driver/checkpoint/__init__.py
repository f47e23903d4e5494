"""Metadata and state checkpoints, the receiver write-ahead log, and recovery."""
