"""The receiver write-ahead log: every received block on disk before it counts.

With ``spark.streaming.receiver.writeAheadLog.enable`` each block is written
(and fsynced) under ``<checkpoint dir>/receivedBlocks/<stream>/`` before the
tracker records it, so a driver killed at any moment restarts with every
block a receiver was told was stored. A block file also carries the
receiver's metadata for it (say, the source offset after it), written in the
same atomic rename: a receiver that resumes from ``lastStoredMetadata()``
neither loses nor repeats records. Files are deleted when their batch is
forgotten; names sort by the time they were written.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import msgpack


class ReceivedBlockLog:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory) / "receivedBlocks"
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, stream_id: int, block_id: str) -> Path:
        return self.directory / str(stream_id) / block_id

    def write(self, stream_id: int, block_id: str, data: bytes, num_records: int,
              metadata: Any = None) -> None:
        path = self._path(stream_id, block_id)
        path.parent.mkdir(exist_ok=True)
        header = msgpack.packb({"records": num_records, "metadata": metadata})
        tmp = path.with_name(f".{block_id}.tmp")
        with open(tmp, "wb") as f:
            f.write(struct.pack(">I", len(header)) + header + data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self, stream_id: int, block_id: str) -> tuple[bytes, int, Any] | None:
        """``(data, num_records, metadata)``, or None if the block is not in the log."""
        try:
            raw = self._path(stream_id, block_id).read_bytes()
        except FileNotFoundError:
            return None
        (size,) = struct.unpack(">I", raw[:4])
        header = msgpack.unpackb(raw[4:4 + size])
        return raw[4 + size:], header["records"], header["metadata"]

    def block_ids(self, stream_id: int) -> list[str]:
        directory = self.directory / str(stream_id)
        if not directory.is_dir():
            return []
        return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))

    def stream_ids(self) -> list[int]:
        return sorted(int(p.name) for p in self.directory.iterdir() if p.name.isdigit())

    def delete(self, stream_id: int, block_ids: list[str]) -> None:
        for block_id in block_ids:
            self._path(stream_id, block_id).unlink(missing_ok=True)
