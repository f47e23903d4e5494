"""Running receivers: start, restart after failures, stop; and where their blocks go.

Each receiver runs under a ``ReceiverSupervisor`` in the driver. A receiver
whose ``onStart`` raises, or that asks to ``restart``, is stopped, and started
again after the restart delay. The ``ReceiverTracker`` owns the supervisors
and hands every cut block on: kept by the driver (so no executor loss can
lose it), pushed to an executor ahead of its batch, and recorded for the next
batch to claim.
"""
from __future__ import annotations

import logging
import threading
import traceback
from typing import Callable

from ..scheduler.streaming_listener import (
    ReceiverInfo, StreamingListenerBus, StreamingListenerReceiverError,
    StreamingListenerReceiverStarted, StreamingListenerReceiverStopped)
from .blocks import BlockGenerator, BlockInfo, ReceivedBlock, ReceivedBlockTracker
from .receiver import Receiver

log = logging.getLogger("sluicegate.streaming.receiver")


class ReceiverSupervisor:
    def __init__(self, receiver: Receiver, stream_id: int, block_interval_s: float, max_rate: int,
                 restart_delay_s: float, on_block: Callable[[ReceivedBlock], None],
                 bus: StreamingListenerBus):
        self.receiver = receiver
        self.stream_id = stream_id
        self.name = type(receiver).__name__
        self.restart_delay_s = restart_delay_s
        self.bus = bus
        self.generator = BlockGenerator(stream_id, block_interval_s, max_rate, on_block)
        self.receiver_running = False
        self.restarts = 0
        self._stopped = threading.Event()
        self._restarting = threading.Lock()
        self.last_error = ""

    def _info(self, error_message: str = "", error: str = "") -> ReceiverInfo:
        return ReceiverInfo(self.stream_id, self.name, self.receiver_running, "driver",
                            error_message, error)

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

    def push_text(self, text: bytes, lines: int) -> None:
        self.generator.add_text(text, lines)

    def report_error(self, message: str, error: BaseException | None) -> None:
        text = "".join(traceback.format_exception(error)) if error is not None else ""
        self.last_error = message
        log.warning("receiver %s (%s): %s%s", self.stream_id, self.name, message,
                    f": {error!r}" if error is not None else "")
        self.bus.post(StreamingListenerReceiverError(self._info(message, text)))

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
    """All receivers of a streaming context, and the blocks they produced."""

    def __init__(self, store_block: Callable[[ReceivedBlock], None], bus: StreamingListenerBus,
                 block_interval_s: float, max_rate: int, restart_delay_s: float):
        self.store_block = store_block
        self.bus = bus
        self.block_interval_s = block_interval_s
        self.max_rate = max_rate
        self.restart_delay_s = restart_delay_s
        self.blocks = ReceivedBlockTracker()
        self.supervisors: list[ReceiverSupervisor] = []

    def add(self, receiver: Receiver, stream_id: int) -> None:
        self.supervisors.append(ReceiverSupervisor(
            receiver, stream_id, self.block_interval_s, self.max_rate, self.restart_delay_s,
            self._on_block, self.bus))

    def _on_block(self, block: ReceivedBlock) -> None:
        self.store_block(block)
        self.blocks.add(block.stream_id, BlockInfo(block.block_id, block.num_records))

    def start(self) -> None:
        for supervisor in self.supervisors:
            supervisor.start()

    def stop(self) -> None:
        for supervisor in self.supervisors:
            supervisor.stop()
