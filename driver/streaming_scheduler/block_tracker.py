"""Which received blocks belong to which batch.

``ReceivedBlockTracker`` holds each receiver stream's blocks until a batch
time claims them (``allocate``, when the batch is generated), then what each
batch got until the batch is forgotten; a metadata checkpoint keeps its
``snapshot`` and recovery ``restore``s it (Spark's ReceivedBlockTracker).

Input operators read it through ``ReceivedBlocks`` -- the blocks a batch
claimed, and letting go of them -- which the streaming scheduler hands every
receiver input at start (``ReceiverInput.use_blocks``); they never reach into
the context for it.
"""
from __future__ import annotations

import threading
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..receivers.received_blocks import BlockInfo


class ReceivedBlocks(Protocol):
    """What a receiver input reads of the received blocks."""

    def blocks_of(self, batch_ms: int, stream_id: int) -> list["BlockInfo"]:
        """The blocks of stream ``stream_id`` that the batch at ``batch_ms`` claimed."""

    def forget_batch(self, batch_ms: int, stream_id: int) -> None:
        """The batch is forgotten: drop its blocks of the stream (and their log files)."""


class ReceivedBlockTracker:
    """Each stream's blocks not yet in a batch, and what each batch got."""

    def __init__(self) -> None:
        self._unallocated: dict[int, list[BlockInfo]] = defaultdict(list)
        self._batches: dict[int, dict[int, list[BlockInfo]]] = {}
        self.last_metadata: dict[int, Any] = {}
        # Counts of text that was not clean: per stream until a batch claims them, then per batch.
        self._unallocated_notes: dict[int, dict[str, int]] = {}
        self._batch_notes: dict[int, dict[int, dict[str, int]]] = {}
        self._lock = threading.Lock()

    def add(self, stream_id: int, info: BlockInfo, metadata: Any = None) -> None:
        with self._lock:
            self._unallocated[stream_id].append(info)
            if metadata is not None:
                self.last_metadata[stream_id] = metadata

    def add_notes(self, stream_id: int, notes: dict[str, int]) -> None:
        with self._lock:
            waiting = self._unallocated_notes.setdefault(stream_id, {})
            for key, count in notes.items():
                waiting[key] = waiting.get(key, 0) + count

    def notes_of(self, batch_ms: int, stream_id: int) -> dict[str, int]:
        """The counts of text that was not clean in one stream's input of a batch."""
        with self._lock:
            return dict(self._batch_notes.get(batch_ms, {}).get(stream_id, {}))

    def known_block_ids(self) -> set[str]:
        with self._lock:
            known = {i.block_id for infos in self._unallocated.values() for i in infos}
            for streams in self._batches.values():
                known.update(i.block_id for infos in streams.values() for i in infos)
            return known

    def allocate(self, batch_ms: int, stream_ids: list[int]) -> None:
        """Give every waiting block to the batch at ``batch_ms``."""
        with self._lock:
            if batch_ms in self._batches:
                return
            self._batches[batch_ms] = {s: self._unallocated.pop(s, []) for s in stream_ids}
            notes = {s: self._unallocated_notes.pop(s) for s in stream_ids if s in self._unallocated_notes}
            if notes:
                self._batch_notes[batch_ms] = notes

    def blocks_of(self, batch_ms: int, stream_id: int) -> list[BlockInfo]:
        with self._lock:
            return list(self._batches.get(batch_ms, {}).get(stream_id, []))

    def has_unallocated(self) -> bool:
        with self._lock:
            return any(self._unallocated.values())

    def forget(self, batch_ms: int, stream_id: int) -> list[BlockInfo]:
        """Drop one stream's blocks of a batch; return them."""
        with self._lock:
            notes = self._batch_notes.get(batch_ms)
            if notes is not None:
                notes.pop(stream_id, None)
                if not notes:
                    del self._batch_notes[batch_ms]
            streams = self._batches.get(batch_ms)
            if streams is None:
                return []
            infos = streams.pop(stream_id, [])
            if not streams:
                del self._batches[batch_ms]
            return infos

    def forget_all_blocks(self) -> int:
        """Drop every block (recovery without a write-ahead log: they died with the
        driver); return how many there were."""
        with self._lock:
            lost = sum(len(b) for streams in self._batches.values() for b in streams.values())
            lost += sum(len(b) for b in self._unallocated.values())
            self._batches = {t: {} for t in self._batches}
            self._unallocated.clear()
            self._unallocated_notes.clear()
            self._batch_notes.clear()
            return lost

    def snapshot(self) -> tuple[dict, dict, dict]:
        """Claimed blocks by batch, unclaimed blocks by stream, and each stream's
        newest metadata: what a checkpoint keeps."""
        with self._lock:
            batches = {t: {s: list(b) for s, b in streams.items()}
                       for t, streams in self._batches.items()}
            unallocated = {s: list(b) for s, b in self._unallocated.items() if b}
            return batches, unallocated, dict(self.last_metadata)

    def restore(self, batches: dict, unallocated: dict, last_metadata: dict) -> None:
        with self._lock:
            self.last_metadata.update(last_metadata)
            self._batches = {t: {s: list(b) for s, b in streams.items()}
                             for t, streams in batches.items()}
            for stream_id, infos in unallocated.items():
                self._unallocated[stream_id] = list(infos) + self._unallocated.get(stream_id, [])
