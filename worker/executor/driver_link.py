"""The executor's two links to its driver, each on a thread of its own.

``DriverLink`` (the link thread) is a ``DealerLink`` on the control
connection that also serves the block service's ROUTER peers fetch from. Its
decisions are ``DriverLinkState``'s (``driver_link_state``); this module only
carries them out: it queues task launches for the task thread, hands kills to
the ``KillSwitch``, stores and drops blocks, applies the driver's settings,
answers peers, and stops the process when the driver is gone.

``HeartbeatLink`` (the heartbeat thread) only heartbeats, on a connection of
its own, so that neither a busy task nor a link thread answering peers or
waiting for the block store's lock can hold a heartbeat back.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING

import psutil
import zmq

from sluicegate.common import storage
from sluicegate.common.constants import EXECUTOR_STOP_GRACE_S
from sluicegate.common.dealer_link import DealerLink
from sluicegate.common.protocol import ProtocolError
from sluicegate.common.protocol.block_service import FetchBlocks, FetchShuffleSegments
from sluicegate.common.protocol.executor import (
    ExecutorHeartbeat, KillTask, LaunchTask, PushBlock, RegisterExecutor)
from sluicegate.common.transport import endpoint, recv, send

from ..shuffle import limits as shuffle_limits
from ..shuffle.service import answer_fetch, answer_segments
from .driver_link_state import (
    CHECK_LIVENESS, Configure, DriverLinkState, Stop, blocks_dropped_by)

if TYPE_CHECKING:
    from .process import ExecutorProcess

log = logging.getLogger("sluicegate.worker.executor")

# The longest the link thread answers peers in one go: peers asking without pause
# must not keep the driver's messages (and the check that it is alive) waiting.
BLOCK_SERVICE_SLICE_S = 0.05


class DriverLink(threading.Thread):
    """The control connection and the block service, on one polling thread."""

    def __init__(self, executor: "ExecutorProcess"):
        super().__init__(name=f"driver-link-{executor.executor_id}", daemon=True)
        self.ex = executor
        self.block_service, port = executor.transport.bind(zmq.ROUTER, executor.host)
        self.block_address = endpoint(executor.advertise_host, port)
        self.state = DriverLinkState(self._registration(), time.monotonic())
        self.link = DealerLink(executor.transport, executor.driver_endpoint,
                               executor.executor_id.encode(), self._receive, tick=self._tick,
                               poll_s=self.state.poll_s, peer="the driver", logger=log)
        self.link.watch(self.block_service, self._drain_block_requests)

    def run(self) -> None:
        ex = self.ex
        try:
            self.link.serve(ex.stopping)
        except Exception:  # noqa: BLE001 - the link dying must stop the process, loudly
            log.exception("executor %s: driver link failed", ex.executor_id)
            ex.stop("driver link failed")
        finally:
            self.link.close(linger_ms=200)
            self.block_service.close(0)
            self._enforce_stop()

    def _registration(self) -> RegisterExecutor:
        ex = self.ex
        return RegisterExecutor(executor_id=ex.executor_id, host=socket.gethostname(),
                                block_address=self.block_address, cores=1,
                                memory_bytes=psutil.virtual_memory().total, pid=os.getpid())

    # -- carrying out the state's instructions ------------------------------------------
    def _receive(self, message, now: float) -> None:
        instruction = self.state.receive(message, now)
        if instruction is message:  # the task path: no wrapper, one type test
            ex = self.ex
            kind = type(message)
            if kind is LaunchTask:
                ex.tasks.put(message)
            elif kind is PushBlock:
                ex.store.put_bytes(message.block_id, bytes(message.payload[0]))
            elif kind is KillTask:
                ex.kills.request(message.task_id, message.reason, message.interrupt, now)
            else:
                ex.store.remove_where(blocks_dropped_by(message))
        elif instruction is not None:
            self._carry_out(instruction)

    def _tick(self, now: float) -> None:
        ex = self.ex
        instruction = self.state.tick(now)
        if instruction is CHECK_LIVENESS:
            self.link.drain()  # what waited while this thread was busy counts
            parent_alive = ex.parent_pid is None or os.getppid() == ex.parent_pid
            self._carry_out(self.state.judge(now, parent_alive))
        elif instruction is not None:
            self.link.send(instruction)  # the registration, again
        ex.kills.tick(now)

    def _carry_out(self, instruction) -> None:
        ex = self.ex
        if isinstance(instruction, Stop):
            ex.stop(instruction.reason)
        elif isinstance(instruction, Configure):
            self._configure(instruction)
        elif instruction is not None:  # Unexpected
            log.warning("executor %s: unexpected %s from the driver", ex.executor_id,
                        instruction.kind)

    def _configure(self, settings: Configure) -> None:
        ex, state = self.ex, self.state
        ex.heartbeat_interval_s = state.heartbeat_interval_s
        ex.heartbeat_timeout_s = state.heartbeat_timeout_s
        self.link.poll_s = state.poll_s
        storage.configure(settings.conf)  # file system options for s3:// & co.
        try:
            shuffle_limits.configure(settings.conf)
        except ValueError as exc:
            log.error("executor %s: %s; keeping the default shuffle limits", ex.executor_id, exc)
        if settings.kill_timeout_s is not None:
            ex.kills.timeout_s = settings.kill_timeout_s
        ex.registered.set()

    # -- the block service ----------------------------------------------------------------
    def _drain_block_requests(self) -> None:
        until = time.monotonic() + BLOCK_SERVICE_SLICE_S
        service, store = self.block_service, self.ex.store
        while service.poll(0, zmq.POLLIN) and time.monotonic() < until:
            try:
                peer, request = recv(service, routed=True)
            except ProtocolError as exc:
                log.warning("executor %s: dropped a malformed block request: %s",
                            self.ex.executor_id, exc)
                continue
            if isinstance(request, FetchShuffleSegments):
                reply = answer_segments(request, store)
            elif isinstance(request, FetchBlocks):
                reply = answer_fetch(request, store)
            else:
                continue
            try:
                send(service, reply, identity=peer)
            except zmq.ZMQError as exc:
                log.info("could not answer a peer (gone?): %s", exc)

    def _enforce_stop(self) -> None:
        """If the task thread is stuck in user code, do not outlive the driver."""
        deadline = time.monotonic() + EXECUTOR_STOP_GRACE_S
        while time.monotonic() < deadline:
            if self.ex.running is None:
                return
            time.sleep(0.05)
        log.warning("executor %s: task still running %.0fs after stop (%s); exiting",
                    self.ex.executor_id, EXECUTOR_STOP_GRACE_S, self.ex.stop_reason)
        os._exit(0)


class HeartbeatLink(threading.Thread):
    """Heartbeats to the driver, from their own thread and connection.

    Started with the process, it beats from registration until the process
    stops (``ExecutorProcess.stop`` wakes it). The driver takes a heartbeat
    from any of the executor's connections (by the executor id inside it).
    """

    def __init__(self, executor: "ExecutorProcess"):
        super().__init__(name=f"heartbeat-{executor.executor_id}", daemon=True)
        self.ex = executor
        # Polls every 0.1 s until registered, then once per heartbeat interval.
        self.link = DealerLink(executor.transport, executor.driver_endpoint,
                               f"{executor.executor_id}/heartbeat".encode(), tick=self._tick,
                               poll_s=0.1, outbox=True, peer="the driver", logger=log)
        self._process = psutil.Process()

    def run(self) -> None:
        try:
            self.link.serve(self.ex.stopping)
        except Exception:  # noqa: BLE001 - without heartbeats the driver drops us: say why
            log.exception("executor %s: heartbeat thread failed", self.ex.executor_id)
        finally:
            self.link.close(linger_ms=0)

    def wake(self) -> None:
        self.link.wake()

    def _tick(self, now: float) -> None:
        ex = self.ex
        if not ex.registered.is_set():
            return
        # Not sent when the driver is not reading: the link thread judges whether it is gone.
        self.link.send(self._heartbeat(now), wait=False)
        self.link.poll_s = ex.heartbeat_interval_s

    def _heartbeat(self, now: float) -> ExecutorHeartbeat:
        running = []
        current = self.ex.running
        if current is not None:
            running.append([current[0], current[1], int((now - current[2]) * 1000)])
        store = self.ex.store
        return ExecutorHeartbeat(self.ex.executor_id, running, store.memory_bytes,
                                 store.disk_bytes, self._process.memory_info().rss)
