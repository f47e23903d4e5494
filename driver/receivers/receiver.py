"""Receiver: write your own input source in Python (PySpark cannot).

Subclass ``Receiver``, start your own threads in ``onStart`` (it must not
block), call ``self.store(record)`` or ``self.store(list_of_records)`` from
them, and release resources in ``onStop``. Loops should run while
``not self.isStopped()``. On trouble call ``self.restart(message)``: the
supervisor calls ``onStop``, waits ``spark.streaming.receiverRestartDelay``
and calls ``onStart`` again. Receivers run in the driver process.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sluicegate.common.storagelevel import StorageLevel

if TYPE_CHECKING:
    from .supervisor import ReceiverSupervisor


class Receiver:
    """Base class of custom receivers (Spark's ``Receiver``, in Python)."""

    def __init__(self, storageLevel: StorageLevel = StorageLevel.MEMORY_AND_DISK_2):
        self._storage_level = storageLevel
        self._supervisor: "ReceiverSupervisor | None" = None

    # -- to implement ---------------------------------------------------------------
    def onStart(self) -> None:
        """Start receiving: launch threads that call ``store``. Must not block."""
        raise NotImplementedError("a Receiver must implement onStart()")

    def onStop(self) -> None:
        """Stop receiving: close what onStart opened."""

    # -- to call -------------------------------------------------------------------------
    @property
    def storageLevel(self) -> StorageLevel:
        return self._storage_level

    @property
    def streamId(self) -> int:
        return self._require_supervisor().stream_id

    def store(self, data: Any, metadata: Any = None) -> None:
        """Store one record, or a list of records.

        One record is buffered and cut into a block with others every block
        interval. A list becomes a block of its own at once and, with the
        write-ahead log on, is on disk when ``store`` returns: acknowledge
        your source only after that (a reliable receiver). ``metadata`` (for
        a list; msgpack-able, e.g. the source offset after it) is saved in the
        same write; ``lastStoredMetadata()`` returns it after a driver restart,
        so a receiver can resume exactly where its stored data ends.

        Once the streaming context has stopped the receiver, ``store`` raises
        (as in Spark) instead of accepting data that no batch would get.
        """
        supervisor = self._require_supervisor()
        if isinstance(data, list):
            supervisor.push_block_now(data, metadata)
        else:
            supervisor.push_records([data])

    def lastStoredMetadata(self) -> Any:
        """The metadata of this stream's newest stored block (survives driver restarts
        with the write-ahead log); None if there is none."""
        return self._require_supervisor().last_stored_metadata()

    def restart(self, message: str, error: BaseException | None = None,
                millisecondsDelay: int | None = None) -> None:
        """Stop and start again after a delay (asynchronously)."""
        self._require_supervisor().restart_receiver(message, error, millisecondsDelay)

    def stop(self, message: str, error: BaseException | None = None) -> None:
        """Stop this receiver for good."""
        self._require_supervisor().stop_receiver(message, error)

    def reportError(self, message: str, error: BaseException | None = None) -> None:
        """Report a problem without stopping (logged, and sent to listeners)."""
        self._require_supervisor().report_error(message, error)

    def isStopped(self) -> bool:
        supervisor = self._supervisor
        return supervisor is None or not supervisor.receiver_running

    def isStarted(self) -> bool:
        return not self.isStopped()

    def __getstate__(self):
        # Checkpointed with the graph; the running supervisor is not.
        state = self.__dict__.copy()
        state["_supervisor"] = None
        return state

    def _require_supervisor(self) -> "ReceiverSupervisor":
        if self._supervisor is None:
            raise RuntimeError("this receiver is not running (pass it to ssc.receiverStream)")
        return self._supervisor
