"""Running receivers: start, restart after failures, stop; and where their blocks go.

Each receiver runs under a ``ReceiverSupervisor`` in the driver. A receiver
whose ``onStart`` raises, or that asks to ``restart``, is stopped, and started
again after the restart delay. The ``ReceiverTracker`` owns the supervisors
and hands every cut block on: kept by the driver (so no executor loss can
lose it), pushed to an executor ahead of its batch, and recorded for the next
batch to claim. Counts of received text that was not clean (invalid UTF-8,
lines too long) go with the data to its batch, whose input metadata shows
them and whose generation logs one warning per stream.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Callable

from sluicegate.common import config as cfg

from ..checkpoint.wal import ReceivedBlockLog
from ..streaming_scheduler.block_tracker import ReceivedBlockTracker
from ..streaming_scheduler.streaming_listener import (
    ReceiverInfo, StreamingListenerBus, StreamingListenerReceiverError,
    StreamingListenerReceiverStarted, StreamingListenerReceiverStopped)
from .received_blocks import (
    DROPPED_LINES_KEY, INVALID_UTF8_KEY, BlockGenerator, BlockInfo, ReceivedBlock)
from .receiver import Receiver

log = logging.getLogger("sluicegate.streaming.receiver")


class ReceiverSupervisor:
    def __init__(self, receiver: Receiver, stream_id: int, block_interval_s: float, max_rate: int,
                 restart_delay_s: float, on_block: Callable[[ReceivedBlock], None],
                 bus: StreamingListenerBus, last_metadata_of: Callable[[int], object],
                 spread: Callable[[], int] = lambda: 1,
                 on_notes: Callable[[int, dict], None] = lambda stream_id, notes: None,
                 max_line_bytes: int = cfg.get_setting({}, cfg.RECEIVER_MAX_LINE_BYTES)):
        self.receiver = receiver
        self.stream_id = stream_id
        self.name = type(receiver).__name__
        self.restart_delay_s = restart_delay_s
        self.bus = bus
        self.last_metadata_of = last_metadata_of
        self.generator = BlockGenerator(stream_id, block_interval_s, max_rate, on_block, spread,
                                        on_notes)
        self.max_line_bytes = max_line_bytes  # for text receivers: longer lines are dropped
        self.receiver_running = False
        self.restarts = 0
        self._stopped = threading.Event()
        self._restarting = threading.Lock()
        self.last_error = ""

    def _info(self, error_message: str = "", error: str = "", error_time_ms: int = -1) -> ReceiverInfo:
        return ReceiverInfo(self.stream_id, self.name, self.receiver_running, _location="driver",
                            last_error_message=error_message, last_error=error,
                            _executor_id="driver", last_error_time_ms=error_time_ms)

    def start(self) -> None:
        self.receiver._supervisor = self
        self.generator.start()
        self._start_receiver()

    def _start_receiver(self) -> None:
        self.receiver_running = True
        try:
            self.receiver.onStart()
        except Exception as exc:  # noqa: BLE001 - user code: restart it
            self.restart_receiver(f"error starting receiver {self.stream_id} ({self.name})", exc)
            return
        log.info("receiver %s (%s) started", self.stream_id, self.name)
        self.bus.post(StreamingListenerReceiverStarted(self._info()))

    # -- called by the receiver -----------------------------------------------------
    def push_records(self, records: list) -> None:
        self.generator.add_records(records)

    def push_block_now(self, records: list, metadata=None) -> None:
        self.generator.add_block_now(records, metadata)

    def last_stored_metadata(self):
        return self.last_metadata_of(self.stream_id)

    def push_text(self, text: bytes, lines: int, invalid_utf8_lines: int = 0,
                  dropped_lines: int = 0) -> None:
        self.generator.add_text(text, lines, invalid_utf8_lines, dropped_lines)

    def report_error(self, message: str, error: BaseException | None) -> None:
        text = "".join(traceback.format_exception(error)) if error is not None else ""
        self.last_error = message
        log.warning("receiver %s (%s): %s%s", self.stream_id, self.name, message,
                    f": {error!r}" if error is not None else "")
        self.bus.post(StreamingListenerReceiverError(
            self._info(message, text, int(time.time() * 1000))))

    def restart_receiver(self, message: str, error: BaseException | None = None,
                         delay_ms: int | None = None) -> None:
        if self._stopped.is_set() or not self._restarting.acquire(blocking=False):
            return
        self.report_error(f"restarting receiver: {message}", error)
        delay_s = self.restart_delay_s if delay_ms is None else delay_ms / 1000.0

        def restart() -> None:
            try:
                self._stop_receiver_only(f"restarting: {message}")
                if self._stopped.wait(delay_s):
                    return
                self.restarts += 1
                self._start_receiver()
            finally:
                self._restarting.release()

        threading.Thread(target=restart, name=f"receiver-restart-{self.stream_id}", daemon=True).start()

    def stop_receiver(self, message: str, error: BaseException | None = None) -> None:
        """The receiver gives up for good."""
        if error is not None:
            self.report_error(message, error)
        self._stopped.set()
        self._stop_receiver_only(message)

    def _stop_receiver_only(self, message: str) -> None:
        if not self.receiver_running:
            return
        self.receiver_running = False
        try:
            self.receiver.onStop()
        except Exception:  # noqa: BLE001 - user code; keep stopping
            log.exception("receiver %s: onStop failed", self.stream_id)
        log.info("receiver %s stopped: %s", self.stream_id, message)
        self.bus.post(StreamingListenerReceiverStopped(self._info(message)))

    # -- called by the context ---------------------------------------------------------
    def stop(self) -> None:
        """Stop receiving, then cut what is buffered so it reaches a batch."""
        self._stopped.set()
        self._stop_receiver_only("the streaming context is stopping")
        self.generator.stop()


class ReceiverTracker:
    """All receivers of a streaming context, and the blocks they produced.

    With a write-ahead log a block is on disk before the tracker records it
    (and before a reliable ``store(list)`` returns to the receiver). Where a
    block goes besides (the driver's copy, an executor) is ``store_block``,
    which the streaming scheduler sets when it takes the tracker. Receiver
    inputs read it as their ``ReceivedBlocks`` (``blocks_of``, ``forget_batch``).
    """

    def __init__(self, drop_blocks: Callable[[list[str]], None], bus: StreamingListenerBus,
                 block_interval_s: float, max_rate: int, restart_delay_s: float,
                 spread: Callable[[], int] = lambda: 1, conf: dict | None = None):
        self.store_block: Callable[[ReceivedBlock], None] = lambda block: None
        self.spread = spread
        self.drop_blocks = drop_blocks
        self.bus = bus
        self.block_interval_s = block_interval_s
        self.max_rate = max_rate
        self.restart_delay_s = restart_delay_s
        self.max_line_bytes = cfg.get_setting(conf or {}, cfg.RECEIVER_MAX_LINE_BYTES)
        self.blocks = ReceivedBlockTracker()
        self.wal: ReceivedBlockLog | None = None
        self.supervisors: list[ReceiverSupervisor] = []

    def add(self, receiver: Receiver, stream_id: int) -> None:
        self.supervisors.append(ReceiverSupervisor(
            receiver, stream_id, self.block_interval_s, self.max_rate, self.restart_delay_s,
            self._on_block, self.bus, self.blocks.last_metadata.get, self.spread,
            self.blocks.add_notes, self.max_line_bytes))

    def input_metadata(self, batch_ms: int, stream_id: int) -> dict:
        """``StreamInputInfo.metadata()`` of a receiver stream's input to a batch:
        its counts of text that was not clean, if any (each named in one warning)."""
        notes = self.blocks.notes_of(batch_ms, stream_id)
        if notes:
            name = next((str(s.receiver) for s in self.supervisors if s.stream_id == stream_id),
                        f"stream {stream_id}")
            if notes.get(INVALID_UTF8_KEY):
                log.warning("batch %s, input stream %s (%s): %s line(s) held invalid UTF-8 "
                            "(decoded with U+FFFD)", batch_ms, stream_id, name,
                            notes[INVALID_UTF8_KEY])
            if notes.get(DROPPED_LINES_KEY):
                log.warning("batch %s, input stream %s (%s): dropped %s line(s) longer than "
                            "%s bytes (%s)", batch_ms, stream_id, name, notes[DROPPED_LINES_KEY],
                            self.max_line_bytes, cfg.RECEIVER_MAX_LINE_BYTES)
        return notes

    def _on_block(self, block: ReceivedBlock) -> None:
        if self.wal is not None:
            self.wal.write(block.stream_id, block.block_id, block.data, block.num_records,
                           block.metadata)
        self.store_block(block)
        self.blocks.add(block.stream_id, BlockInfo(block.block_id, block.num_records),
                        block.metadata)

    def blocks_of(self, batch_ms: int, stream_id: int) -> list[BlockInfo]:
        """The blocks of stream ``stream_id`` that the batch at ``batch_ms`` claimed."""
        return self.blocks.blocks_of(batch_ms, stream_id)

    def forget_batch(self, batch_ms: int, stream_id: int) -> None:
        """The batch is forgotten: its blocks of the stream go from the driver, the
        executors and the write-ahead log."""
        ids = [info.block_id for info in self.blocks.forget(batch_ms, stream_id)]
        if ids:
            self.drop_blocks(ids)
            if self.wal is not None:
                self.wal.delete(stream_id, ids)

    def reload_from_log(self, restore_block: Callable[[ReceivedBlock], None]) -> int:
        """After recovery: bring every remembered block back from the log, and
        take blocks written after the last checkpoint as not yet claimed."""
        if self.wal is None:
            return 0
        known = self.blocks.known_block_ids()
        for stream_id in self.wal.stream_ids():
            for block_id in self.wal.block_ids(stream_id):
                if block_id in known:
                    continue
                found = self.wal.read(stream_id, block_id)
                if found is not None:
                    self.blocks.add(stream_id, BlockInfo(block_id, found[1]), found[2])
        batches, unallocated, _ = self.blocks.snapshot()
        wanted = [(s, i) for streams in batches.values() for s, infos in streams.items() for i in infos]
        wanted += [(s, i) for s, infos in unallocated.items() for i in infos]
        restored = 0
        for stream_id, info in wanted:
            found = self.wal.read(stream_id, info.block_id)
            if found is None:
                log.error("block %s of stream %s is missing from the write-ahead log",
                          info.block_id, stream_id)
                continue
            restore_block(ReceivedBlock(info.block_id, stream_id, info.num_records, found[0]))
            restored += 1
        return restored

    def start(self) -> None:
        for supervisor in self.supervisors:
            supervisor.start()

    def stop(self) -> None:
        for supervisor in self.supervisors:
            supervisor.stop()
