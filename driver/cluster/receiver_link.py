"""The driver's side of a receiver that runs in a process of its own
(``spark.sluicegate.receiver.isolation=process``).

``RemoteReceiverSupervisor`` stands where a ``ReceiverSupervisor`` stands in
the ``ReceiverTracker`` (``start``, ``stop``, ``stream_id``). It binds a
loopback ROUTER (authenticated with the application's secret), starts
``receiver_process`` with the secret on stdin, sends it the pickled receiver
and its settings, and then serves it on one thread: each ``StoreBlock`` goes
through the tracker's usual path (write-ahead log, driver copy and push,
record) and is acknowledged after it; listener events go to the bus; the
backpressure rate and the released blocks go back (``ReceiverFlow``).

The driver spends one message per block on a receiver, however many
records the block holds and however hard the receiver's own code works. A
receiver process that dies (a crash, ``os._exit`` in user code, SIGKILL) is
reported as a receiver error and started again after the restart delay,
from the metadata of its last stored block; ``stop`` lets the receiver stop
and cut its last blocks, and waits until they are stored.
"""
from __future__ import annotations

import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
from typing import Callable

import cloudpickle
import zmq

from sluicegate.common.protocol import ProtocolError
from sluicegate.common.protocol.receivers import (
    BlockStored, ReceiverDone, ReceiverFlow, ReceiverNotes, ReceiverReady, ReceiverStatus,
    StartReceiver, StopReceiverProcess, StoreBlock)
from sluicegate.common.transport import endpoint, recv, send

from ..receivers.received_blocks import ReceivedBlock
from ..streaming_scheduler.receiver_intake import ReceiverIntake
from ..streaming_scheduler.streaming_listener import (
    ReceiverInfo, StreamingListenerReceiverError, StreamingListenerReceiverStarted,
    StreamingListenerReceiverStopped)

log = logging.getLogger("sluicegate.streaming.receiver")

POLL_MS = 20
STOP_TIMEOUT_S = 30.0
_EVENTS = {"started": StreamingListenerReceiverStarted, "error": StreamingListenerReceiverError,
           "stopped": StreamingListenerReceiverStopped}


class NotPicklableReceiver(ValueError):
    """A receiver that cannot run in a process of its own."""


class _ForwardingIntake(ReceiverIntake):
    """The driver's account of a remote receiver's buffer; the rate and the released
    blocks also go to the process, whose own intake makes store() wait."""

    def __init__(self, *args, tell: Callable[[ReceiverFlow], None], **kwargs):
        super().__init__(*args, **kwargs)
        self.tell = tell

    def set_rate(self, rate: float | None) -> float:
        before = self.rate
        now = super().set_rate(rate)
        if now != before:
            self.tell(ReceiverFlow(now, []))
        return now

    def release(self, block_ids) -> None:
        block_ids = [b for b in block_ids if b in self._blocks]
        super().release(block_ids)
        if block_ids:
            self.tell(ReceiverFlow(0.0, block_ids))


class RemoteReceiverSupervisor:
    """A receiver in its own process, driven from here (see the module docstring)."""

    def __init__(self, local, transport, secret: bytes | None, spread: Callable[[], int]):
        """``local``: the in-driver ``ReceiverSupervisor`` this one replaces (its receiver,
        settings and callbacks are taken over; it never starts)."""
        self.local = local
        self.receiver = local.receiver
        self.stream_id = local.stream_id
        self.name = local.name
        self.restart_delay_s = local.restart_delay_s
        self.bus = local.bus
        self.on_block = local.generator.on_block
        self.on_notes = local.generator.on_notes
        self.last_metadata_of = local.last_metadata_of
        self.block_interval_s = local.generator.interval_s
        self.max_line_bytes = local.max_line_bytes
        self.spread = spread
        self.transport = transport
        self.secret = secret
        try:
            self.receiver_bytes = cloudpickle.dumps(self.receiver)
        except Exception as exc:  # noqa: BLE001 - say which receiver and why
            raise NotPicklableReceiver(
                f"receiver {self.stream_id} ({self.name}) cannot run in a process of its own "
                f"(spark.sluicegate.receiver.isolation=process): it does not pickle: "
                f"{type(exc).__name__}: {exc}") from exc
        self.intake: _ForwardingIntake | None = None
        self.outbox: queue.SimpleQueue = queue.SimpleQueue()
        self.process: subprocess.Popen | None = None
        self.peer: bytes | None = None
        self.pid: int | None = None
        self.restarts = 0
        self.receiver_running = False
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.sock = None
        self.port = 0

    # -- flow control's hook -----------------------------------------------------------------
    def make_intake(self, max_rate: float, max_buffer_bytes: int, burst_s: float) -> ReceiverIntake:
        self.intake = _ForwardingIntake(self.stream_id, max_rate, max_buffer_bytes, burst_s,
                                        tell=self.outbox.put)
        return self.intake

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.sock, self.port = self.transport.bind(zmq.ROUTER, "127.0.0.1")
        self._spawn()
        self._thread = threading.Thread(target=self._serve, name=f"receiver-link-{self.stream_id}",
                                        daemon=True)
        self._thread.start()

    def _spawn(self) -> None:
        env = dict(os.environ)
        # The receiver's class is the job's: the same import paths as the driver's.
        env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p)
        command = [sys.executable, "-m", "sluicegate.driver.cluster.receiver_process",
                   "--driver", endpoint("127.0.0.1", self.port), "--stream-id",
                   str(self.stream_id), "--parent-pid", str(os.getpid()), "--secret-stdin"]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, env=env)
        self.process.stdin.write((self.secret or b"") + b"\n")
        self.process.stdin.close()
        self.peer = None
        log.info("receiver %s (%s) runs in process %s", self.stream_id, self.name,
                 self.process.pid)

    def stop(self) -> None:
        """Stop the receiver; return once its last blocks are stored (or the timeout)."""
        self._stopping.set()
        if self.process is not None and self.process.poll() is None and self.peer is not None:
            self.outbox.put(StopReceiverProcess("the streaming context is stopping"))
            if not self._done.wait(STOP_TIMEOUT_S):
                log.warning("receiver %s did not stop within %.0fs", self.stream_id, STOP_TIMEOUT_S)
        self._done.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.process is not None:
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None

    # -- the link's thread -------------------------------------------------------------------
    def _serve(self) -> None:
        restart_at: float | None = None
        while not self._done.is_set():
            if self.peer is not None:
                while True:
                    try:
                        send(self.sock, self.outbox.get_nowait(), identity=self.peer)
                    except queue.Empty:
                        break
                    except zmq.ZMQError:
                        break
            if self.process is not None and self.process.poll() is not None:
                if self._stopping.is_set():
                    self._done.set()
                    break
                if restart_at is None:
                    code = self.process.returncode
                    self._report(f"receiver process {self.process.pid} ended with code {code}; "
                                 f"restarting in {self.restart_delay_s:g}s")
                    self.receiver_running = False
                    restart_at = time.monotonic() + self.restart_delay_s
                elif time.monotonic() >= restart_at:
                    restart_at = None
                    self.restarts += 1
                    self._spawn()
            if not self.sock.poll(POLL_MS, zmq.POLLIN):
                continue
            try:
                identity, message = recv(self.sock, routed=True)
            except ProtocolError as exc:
                log.warning("dropped a malformed message from receiver %s: %s", self.stream_id, exc)
                continue
            try:
                self._handle(identity, message)
            except Exception:  # noqa: BLE001 - one message must not stop the link
                log.exception("receiver %s: could not handle %s", self.stream_id,
                              type(message).__name__)

    def _handle(self, identity: bytes, message) -> None:
        if isinstance(message, ReceiverReady):
            if self.process is None or message.pid != self.process.pid:
                return  # a process from before a restart
            self.peer, self.pid = identity, message.pid
            rate = self.intake.rate if self.intake is not None else 0.0
            max_rate = self.intake.max_rate if self.intake is not None else 0.0
            buffer = self.intake.max_buffer_bytes if self.intake is not None else 1 << 40
            burst = self.intake.burst_s if self.intake is not None else 1.0
            # A restarted process counts the blocks its predecessor stored that no batch
            # has finished with: its buffer's bound holds across restarts.
            held = [[b, n] for b, n in list(self.intake._blocks.items())] \
                if self.intake is not None else []
            send(self.sock, StartReceiver(
                stream_id=self.stream_id, block_interval_s=self.block_interval_s,
                max_rate=max_rate, rate=rate, restart_delay_s=self.restart_delay_s,
                max_line_bytes=self.max_line_bytes, max_buffer_bytes=buffer, burst_s=burst,
                spread=max(1, self.spread()), held=held,
                payload=[self.receiver_bytes,
                         pickle.dumps(self.last_metadata_of(self.stream_id))]), identity=identity)
        elif identity != self.peer:
            return
        elif isinstance(message, StoreBlock):
            self._store(message)
        elif isinstance(message, ReceiverNotes):
            self.on_notes(message.stream_id, {str(k): int(v) for k, v in message.notes.items()})
        elif isinstance(message, ReceiverStatus):
            self.receiver_running = message.active
            info = ReceiverInfo(self.stream_id, self.name, message.active,
                                _location=f"receiver process {self.pid}",
                                last_error_message=message.message, last_error=message.error,
                                _executor_id="driver", last_error_time_ms=message.time_ms)
            self.bus.post(_EVENTS.get(message.event, StreamingListenerReceiverError)(info))
        elif isinstance(message, ReceiverDone):
            self._done.set()

    def _store(self, message: StoreBlock) -> None:
        if len(message.payload) != 2:
            send(self.sock, BlockStored(message.seq, False, "a block needs two frames",
                                        max(1, self.spread())), identity=self.peer)
            return
        block = ReceivedBlock(message.block_id, self.stream_id, message.num_records,
                              bytes(message.payload[0]), pickle.loads(message.payload[1]))
        try:
            self.on_block(block)  # the write-ahead log, the driver's copy and push, the record
            reply = BlockStored(message.seq, True, "", max(1, self.spread()))
        except Exception as exc:  # noqa: BLE001 - the receiver's store() raises it
            log.exception("receiver %s: block %s could not be stored", self.stream_id,
                          block.block_id)
            reply = BlockStored(message.seq, False, f"{type(exc).__name__}: {exc}",
                                max(1, self.spread()))
        send(self.sock, reply, identity=self.peer)

    def _report(self, message: str) -> None:
        log.warning("receiver %s (%s): %s", self.stream_id, self.name, message)
        info = ReceiverInfo(self.stream_id, self.name, False, _location=f"receiver process {self.pid}",
                            last_error_message=message, _executor_id="driver",
                            last_error_time_ms=int(time.time() * 1000))
        self.bus.post(StreamingListenerReceiverError(info))
