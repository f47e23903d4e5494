"""``python -m sluicegate.driver.cluster.receiver_process``: one receiver in a process
of its own (``spark.sluicegate.receiver.isolation=process``), as Spark runs
receivers away from its driver.

The receiver runs under the same ``ReceiverSupervisor`` and ``BlockGenerator``
as in the driver, behind the same ``ReceiverIntake`` (bounded buffer, rate
limit), so ``onStart``/``onStop``/``store``/``restart``/``reportError``/
``isStopped`` and ``lastStoredMetadata`` behave as they do there. What
changes is where its CPU time goes: a receiver storing in a tight loop, or
decoding heavy records, uses this process's interpreter, never the driver's,
so the driver's scheduling loop and heartbeats do not wait for it.

Each block goes to the driver (``StoreBlock``) and the thread that handed it
over waits for the driver's acknowledgement, which comes after the driver
wrote the write-ahead log, kept and pushed the block and recorded it: so a
reliable ``store(list)`` returns only once its block is durable, as in the
driver. One thread owns the socket; the others queue what they send.

Not a user command: the driver starts it with the application's secret on
stdin, and it exits when its parent (the driver) is gone.
"""
from __future__ import annotations

import argparse
import itertools
import logging
import os
import pickle
import sys
import threading
import time

import cloudpickle

from sluicegate.common import constants
from sluicegate.common.dealer_link import DealerLink
from sluicegate.common.protocol.receivers import (
    BlockStored, ReceiverDone, ReceiverFlow, ReceiverNotes, ReceiverReady, ReceiverStatus,
    StartReceiver, StopReceiverProcess, StoreBlock)
from sluicegate.common.transport import Transport

from ..receivers.received_blocks import ReceivedBlock
from ..receivers.supervisor import ReceiverSupervisor
from ..streaming_scheduler.receiver_intake import ReceiverIntake
from ..streaming_scheduler.streaming_listener import (
    StreamingListenerReceiverError, StreamingListenerReceiverStarted,
    StreamingListenerReceiverStopped)

log = logging.getLogger("sluicegate.receiver.process")

ACK_TIMEOUT_S = 60.0
START_TIMEOUT_S = 60.0
# What the receiver's threads post wakes the link at once (and the driver's messages
# wake its poll): this only paces the check that the driver is still there.
POLL_S = 0.1

_EVENTS = {StreamingListenerReceiverStarted: "started", StreamingListenerReceiverError: "error",
           StreamingListenerReceiverStopped: "stopped"}


class _Ack:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
        self.error = ""


class ReceiverHost:
    """The receiver process: a socket to the driver, and the receiver's supervisor."""

    def __init__(self, driver_endpoint: str, stream_id: int, secret: bytes | None,
                 parent_pid: int | None):
        self.stream_id = stream_id
        self.parent_pid = parent_pid
        self.transport = Transport(secret)
        self.link = DealerLink(self.transport, driver_endpoint,
                               f"receiver-{stream_id}-{os.getpid()}".encode(), self.handle,
                               tick=self._tick, poll_s=POLL_S, outbox=True, peer="the driver",
                               logger=log)
        self.acks: dict[int, _Ack] = {}
        self.seqs = itertools.count(1)
        self.spread = 1
        self.last_metadata = None
        self.supervisor: ReceiverSupervisor | None = None
        self.intake: ReceiverIntake | None = None
        self.finished = threading.Event()
        self.exit_code = 0
        self._started = 0.0  # monotonic, when ``run`` began
        self._lock = threading.Lock()

    # -- what the supervisor calls (any thread) ---------------------------------------------
    def post(self, event) -> None:
        """The supervisor's listener bus: lifecycle events go to the driver's."""
        info = event.receiverInfo()
        self.link.post(ReceiverStatus(
            stream_id=self.stream_id, event=_EVENTS[type(event)], active=info.active(),
            message=info.lastErrorMessage(), error=info.lastError(),
            time_ms=info.lastErrorTime()))

    def on_notes(self, stream_id: int, notes: dict) -> None:
        self.link.post(ReceiverNotes(stream_id, dict(notes)))

    def on_block(self, block: ReceivedBlock) -> None:
        """Hand a block to the driver and wait until it is stored there."""
        seq = next(self.seqs)
        ack = _Ack()
        with self._lock:
            self.acks[seq] = ack
        if self.intake is not None:
            self.intake.block_stored(block.block_id, len(block.data), block.num_records)
        self.link.post(StoreBlock(self.stream_id, seq, block.block_id, block.num_records,
                                  payload=[block.data, pickle.dumps(block.metadata)]))
        try:
            if not ack.done.wait(ACK_TIMEOUT_S):
                raise RuntimeError(f"the driver did not store block {block.block_id} within "
                                   f"{ACK_TIMEOUT_S:.0f}s")
        finally:
            with self._lock:
                self.acks.pop(seq, None)
        if not ack.ok:
            raise RuntimeError(f"the driver could not store block {block.block_id}: {ack.error}")
        if block.metadata is not None:
            self.last_metadata = block.metadata

    # -- the socket's thread -------------------------------------------------------------------
    def run(self) -> int:
        self.link.open()
        self.link.send(ReceiverReady(self.stream_id, os.getpid()))
        self._started = time.monotonic()
        try:
            self.link.serve(self.finished)
            if self.exit_code:
                return self.exit_code
            self.link.send_posted()  # the last words (ReceiverDone)
            time.sleep(0.2)  # let them leave before the socket closes
            return 0
        finally:
            self.link.close()
            self.transport.close()

    def _tick(self, now: float) -> None:
        """End the loop (exit code 1) when the driver is gone, or never started us."""
        if self.parent_pid is not None and not _alive(self.parent_pid):
            log.warning("the driver is gone; receiver %s exits", self.stream_id)
        elif self.supervisor is None and now - self._started > START_TIMEOUT_S:
            log.error("the driver did not start receiver %s", self.stream_id)
        else:
            return
        self.exit_code = 1
        self.finished.set()

    def handle(self, message, now: float) -> None:
        if isinstance(message, BlockStored):
            self.spread = max(1, message.spread)
            with self._lock:
                ack = self.acks.get(message.seq)
            if ack is not None:
                ack.ok, ack.error = message.ok, message.error
                ack.done.set()
        elif isinstance(message, ReceiverFlow):
            if self.intake is not None:
                if message.rate > 0:
                    self.intake.set_rate(message.rate)
                if message.released:
                    self.intake.release(message.released)
        elif isinstance(message, StartReceiver):
            self.start(message)
        elif isinstance(message, StopReceiverProcess):
            threading.Thread(target=self.stop, args=(message.reason,), name="receiver-stop",
                             daemon=True).start()

    def start(self, message: StartReceiver) -> None:
        if self.supervisor is not None:
            return
        receiver = cloudpickle.loads(message.payload[0])  # our own driver's bytes (CURVE)
        self.last_metadata = pickle.loads(message.payload[1])
        self.spread = max(1, message.spread)
        supervisor = ReceiverSupervisor(
            receiver, self.stream_id, message.block_interval_s, int(message.max_rate),
            message.restart_delay_s, self.on_block, self,
            lambda stream_id: self.last_metadata, lambda: self.spread, self.on_notes,
            message.max_line_bytes)
        intake = ReceiverIntake(self.stream_id, message.max_rate, message.max_buffer_bytes,
                                message.burst_s, supervisor.generator.buffered)
        if message.rate > 0:
            intake.set_rate(message.rate)
        for entry in message.held:
            if isinstance(entry, list) and len(entry) == 2:
                intake.block_stored(str(entry[0]), int(entry[1]), 0)
        supervisor.generator.limiter = intake
        self.intake, self.supervisor = intake, supervisor
        threading.Thread(target=supervisor.start, name=f"receiver-{self.stream_id}-start",
                         daemon=True).start()

    def stop(self, reason: str) -> None:
        """Stop receiving; the last cut's blocks reach the driver before ``ReceiverDone``."""
        if self.supervisor is not None:
            try:
                self.supervisor.stop()
            except Exception:  # noqa: BLE001 - user code in onStop; still say done
                log.exception("stopping receiver %s", self.stream_id)
        self.link.post(ReceiverDone(self.stream_id))
        self.finished.set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return os.getppid() == pid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sluicegate.driver.cluster.receiver_process")
    parser.add_argument("--driver", required=True, help="the link's endpoint, tcp://HOST:PORT")
    parser.add_argument("--stream-id", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--secret-stdin", action="store_true")
    parser.add_argument("--log-level", default=os.environ.get(constants.ENV_LOG_LEVEL, "WARNING"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s [receiver {args.stream_id}] %(message)s")
    secret = (sys.stdin.buffer.readline().strip() or None) if args.secret_stdin else None
    return ReceiverHost(args.driver, args.stream_id, secret, args.parent_pid).run()


if __name__ == "__main__":
    sys.exit(main())
