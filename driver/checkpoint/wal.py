"""The receiver write-ahead log: every received block on disk before it counts.

With ``spark.streaming.receiver.writeAheadLog.enable`` each block is written
(and fsynced) under ``<checkpoint dir>/receivedBlocks/<stream>/`` before the
tracker records it, so a driver killed at any moment restarts with every
block a receiver was told was stored. A block file also carries the
receiver's metadata for it (say, the source offset after it), written in the
same atomic rename: a receiver that resumes from ``lastStoredMetadata()``
neither loses nor repeats records. Files are deleted when their batch is
forgotten; names sort by the time they were written. A write cut short (the
driver killed mid-write) leaves only a ``.<block>.tmp`` file, which no reader
takes for a block; the log removes such leftovers when it is opened, before
any receiver of this run writes.

A checkpoint directory given as a URL (``s3a://bucket/ckpt``) gets
``RemoteBlockLog``: one object per block, each an upload that appears whole
or not at all (``common.storage``), so it needs no temporary name there.
"""
from __future__ import annotations

import logging
import os
import struct
from pathlib import Path
from typing import Any

import msgpack

from sluicegate.common import storage

log = logging.getLogger("sluicegate.streaming.wal")


class ReceivedBlockLog:
    def __new__(cls, directory: str | Path):
        if cls is ReceivedBlockLog and storage.is_remote(directory):
            cls = RemoteBlockLog
        return super().__new__(cls)

    def __init__(self, directory: str | Path):
        self.directory = Path(directory) / "receivedBlocks"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.remove_partial_writes()

    def remove_partial_writes(self) -> int:
        """Delete the temporary files of writes that never completed; how many."""
        removed = 0
        for stream_dir in self.directory.iterdir():
            if not stream_dir.is_dir():
                continue
            for leftover in stream_dir.glob(".*.tmp"):
                leftover.unlink(missing_ok=True)
                removed += 1
        if removed:
            log.info("removed %s unfinished write(s) from the write-ahead log in %s",
                     removed, self.directory)
        return removed

    def _path(self, stream_id: int, block_id: str) -> Path:
        return self.directory / str(stream_id) / block_id

    def write(self, stream_id: int, block_id: str, data: bytes, num_records: int,
              metadata: Any = None) -> None:
        path = self._path(stream_id, block_id)
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(f".{block_id}.tmp")
        with open(tmp, "wb") as f:
            f.write(_encode(data, num_records, metadata))
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
        return _decode(raw)

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


def _encode(data: bytes, num_records: int, metadata: Any) -> bytes:
    header = msgpack.packb({"records": num_records, "metadata": metadata})
    return struct.pack(">I", len(header)) + header + data


def _decode(raw: bytes) -> tuple[bytes, int, Any]:
    (size,) = struct.unpack(">I", raw[:4])
    header = msgpack.unpackb(raw[4:4 + size])
    return raw[4 + size:], header["records"], header["metadata"]


class RemoteBlockLog(ReceivedBlockLog):
    """The log on a file system fsspec opens (``s3://``, ``gs://``, ``hdfs://``...):
    ``<checkpoint URL>/receivedBlocks/<stream>/<block>``, one object per block."""

    def __init__(self, directory: str | Path):
        self.directory = storage.join(str(directory), "receivedBlocks")  # type: ignore[assignment]
        storage.makedirs(self.directory)
        self.remove_partial_writes()

    def remove_partial_writes(self) -> int:
        """Temporary files of writes cut short (file systems with a rename: HDFS...)."""
        leftovers = [storage.join(storage.join(self.directory, stream), name)
                     for stream, _ in self._streams()
                     for name, _ in storage.list_names(storage.join(self.directory, stream))
                     if name.startswith(".") and name.endswith(".tmp")]
        storage.remove_files(leftovers)
        return len(leftovers)

    def _streams(self) -> list[tuple[str, bool]]:
        return [(name, is_dir) for name, is_dir in storage.list_names(self.directory)
                if is_dir and name.isdigit()]

    def _url(self, stream_id: int, block_id: str) -> str:
        return storage.join(storage.join(self.directory, str(stream_id)), block_id)

    def write(self, stream_id: int, block_id: str, data: bytes, num_records: int,
              metadata: Any = None) -> None:
        storage.write_bytes(self._url(stream_id, block_id), _encode(data, num_records, metadata))

    def read(self, stream_id: int, block_id: str) -> tuple[bytes, int, Any] | None:
        try:
            raw = storage.read_bytes(self._url(stream_id, block_id))
        except FileNotFoundError:
            return None
        return _decode(raw)

    def block_ids(self, stream_id: int) -> list[str]:
        return sorted(name for name, is_dir in
                      storage.list_names(storage.join(self.directory, str(stream_id)))
                      if not is_dir and not name.startswith("."))

    def stream_ids(self) -> list[int]:
        return sorted(int(name) for name, _ in self._streams())

    def delete(self, stream_id: int, block_ids: list[str]) -> None:
        storage.remove_files(self._url(stream_id, block_id) for block_id in block_ids)
