"""The metadata checkpoint writer: checkpoint files written on a thread of their own.

Spark's CheckpointWriter. The streaming scheduler's loop builds and serializes
a record (the graph must hold still while it is pickled) and hands the bytes
over; the write -- an fsync, or an upload to an object store -- happens on the
writer's thread, off the loop and off the threads that run the batches.

Only the newest record matters: one handed over while an older one still
waits replaces it, since the newer record says all the older one said. A
``CheckpointTicket`` says when the record it was given for, or a newer one, is
on disk. What depends on a record waits for its ticket; the scheduler makes a
batch's output jobs wait for the record of the batch's generation, because a
batch re-run after a crash must read exactly what it read the first time (its
input positions: files chosen, Kafka offset ranges, blocks claimed), or an
output replaced on replay would not hold the same records.

State checkpoint directories that a record no longer names are deleted once
that record is durable, never before: a crash in between would leave the older
record naming deleted state. If the write fails, they wait for the next
record that is written.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

from sluicegate.common import storage
from sluicegate.common.constants import VERSION

from ..checkpoint import metadata

if TYPE_CHECKING:
    from ..dstream.graph import DStreamGraph

log = logging.getLogger("sluicegate.checkpoint")


@dataclass(frozen=True, slots=True)
class CheckpointTarget:
    """Where metadata checkpoints go and what every record says of the application
    (fixed when the context starts)."""

    directory: str
    fingerprint: str
    app_name: str
    conf: dict
    batch_ms: int
    wal_enabled: bool
    clock: "metadata.ClockRef | None"

    def record(self, graph: "DStreamGraph", time_ms: int, pending_ms: Iterable[int],
               received: tuple[dict, dict, dict]) -> metadata.StreamingCheckpoint:
        """The checkpoint of ``graph`` after the batch at ``time_ms``; ``received``: the
        received-block tracker's ``snapshot()``."""
        batches, unallocated, last_metadata = received
        return metadata.StreamingCheckpoint(
            sluicegate_version=VERSION, fingerprint=self.fingerprint, app_name=self.app_name,
            conf=self.conf, batch_ms=self.batch_ms, zero_ms=graph.zero_ms or 0, time_ms=time_ms,
            pending_ms=sorted(pending_ms), graph=graph, received_batches=batches,
            received_unallocated=unallocated, received_metadata=last_metadata,
            checkpoint_dir=self.directory, wal_enabled=self.wal_enabled, clock=self.clock)


def without_secrets(conf: dict) -> dict:
    """The configuration a checkpoint may keep: no secrets, tokens or passwords."""
    return {k: v for k, v in conf.items()
            if not any(word in k.lower() for word in ("secret", "token", "password"))}


@dataclass(frozen=True, slots=True)
class CheckpointTicket:
    """A record handed to the writer; ``wait`` returns once it, or a newer one, is
    written (or its write failed, which is logged)."""

    writer: "CheckpointWriter"
    seq: int

    def wait(self, timeout_s: float | None = None) -> bool:
        return self.writer.wait_for(self.seq, timeout_s)


class CheckpointWriter:
    """Writes the newest metadata checkpoint record on its own thread (started on
    the first record, ended by ``stop``), then deletes what it made stale."""

    def __init__(self, write: Callable[[str, int, bytes], Any] = metadata.write_serialized,
                 remove: Callable[[str], Any] = storage.remove_tree):
        self._write = write
        self._remove = remove
        self._changed = threading.Condition()
        self._record: tuple[int, str, int, bytes] | None = None  # (seq, directory, time, data)
        self._stale: list[str] = []  # deleted after the record handed over with them
        self._held: list[str] = []  # their record's write failed: after the next one written
        self._seq = 0  # the newest record handed over
        self._done = 0  # the newest record written, or given up
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.written = 0

    def submit(self, directory: str | None, time_ms: int, data: bytes | None,
               stale: Iterable[str] = ()) -> CheckpointTicket | None:
        """Hand over a serialized record of the batch at ``time_ms`` (None: no record,
        only ``stale`` directories to delete once the records before are written)."""
        with self._changed:
            self._stale.extend(stale)
            ticket = None
            if data is not None:
                self._seq += 1
                self._record = (self._seq, str(directory), time_ms, data)
                ticket = CheckpointTicket(self, self._seq)
            elif not self._stale:
                return None
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="streaming-checkpoint-writer",
                                                daemon=True)
                self._thread.start()
            self._changed.notify_all()
        return ticket

    def wait_for(self, seq: int, timeout_s: float | None = None) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._done >= seq, timeout_s)

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Return once everything handed over is written and deleted (False: timed out)."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._record is None and not self._stale and not self._busy, timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Write what was handed over, then end the thread."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        with self._changed:
            self._stopping = False
            self._done = self._seq  # nobody waits for a write that will not come
            self._changed.notify_all()

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._record is None and not self._stale and not self._stopping:
                    self._changed.wait()
                if self._record is None and not self._stale:
                    self._thread = None
                    return
                record, self._record = self._record, None
                stale, self._stale = self._stale, []
                self._busy = True
            try:
                self._handle(record, stale)
            finally:
                with self._changed:
                    if record is not None:
                        self._done = max(self._done, record[0])
                    self._busy = False
                    self._changed.notify_all()

    def _handle(self, record: tuple[int, str, int, bytes] | None, stale: list[str]) -> None:
        if record is not None:
            _, directory, time_ms, data = record
            try:
                self._write(directory, time_ms, data)
            except Exception:  # noqa: BLE001 - a failed checkpoint must not stop the stream
                log.exception("could not write the metadata checkpoint for batch %s", time_ms)
                self._held.extend(stale)  # the record on disk may still name them
                return
            self.written += 1
            stale, self._held = self._held + stale, []
        for path in stale:
            try:
                self._remove(path)  # a local directory or a URL
            except Exception:  # noqa: BLE001 - left behind; recovery removes unreferenced data
                log.exception("could not delete the superseded state checkpoint %s", path)
