"""Which input files can be read in byte ranges (both sides must agree)."""
from __future__ import annotations

from pathlib import Path

COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz")


def is_splittable(path: str) -> bool:
    """Compressed files are read whole by one task."""
    return Path(path).suffix not in COMPRESSED_SUFFIXES
