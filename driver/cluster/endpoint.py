"""The driver's event loop: one thread owns the ROUTER socket and the scheduler.

Executors' messages arrive on the ROUTER; other threads (the user's, the
streaming job generator, finalizers) hand work in with ``post``, which
queues a callable and wakes the loop through a pipe. Only this thread
touches the socket, the executor registry and the DAG scheduler, so none of
them needs a lock ("a single logic thread greatly simplifies
synchronization").

Each pass: read what arrived, run posted work, fire timers (heartbeats both
ways, dead-executor detection, scheduler timeouts), then send the kills of
cancelled or failed jobs' tasks and launch whatever tasks fit the free
slots. Executors also ask here for the files the application added
(``FileServer``), on their task connection.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import zmq

from sluicegate.common.protocol.executor import (
    FAIL_ERROR, FAIL_MISSING_FUNCTION, DriverBlock, DriverHeartbeat, DropBlocks,
    ExecutorHeartbeat, ExecutorLost, ExecutorRegistered, FetchDriverBlock, FetchFileChunk,
    FetchFiles, FileChunk, FileList, LaunchTask, PushBlock, RegisterExecutor,
    RegistrationRefused, StopExecutor, TaskFailed, TaskSucceeded)
from sluicegate.common.transport import Transport, send

from ..scheduler.closures import ClosureRegistry
from ..scheduler.dag import DAGScheduler
from ..scheduler.task_set import TaskRun
from .driver_blocks import DriverBlocks
from .event_loop import RouterLoop
from .executors import ExecutorInfo, ExecutorRegistry
from .file_server import FileServer

log = logging.getLogger("sluicegate.driver.endpoint")


@dataclass(frozen=True)
class EndpointSettings:
    heartbeat_interval_s: float
    heartbeat_timeout_s: float
    executor_conf: dict


class DriverEndpoint(RouterLoop):
    log = log

    def __init__(self, transport: Transport, host: str, port: int, settings: EndpointSettings,
                 dag: DAGScheduler, closures: ClosureRegistry, blocks: DriverBlocks,
                 on_executor_lost: Callable[[str, str], None] | None = None,
                 files: FileServer | None = None):
        super().__init__("sluicegate-driver-loop", transport, host, port,
                         settings.heartbeat_interval_s)
        self.settings = settings
        self.dag = dag
        self.closures = closures
        self.blocks = blocks
        self.files = files
        self.registry = ExecutorRegistry()
        self.on_executor_lost = on_executor_lost or (lambda executor_id, reason: None)
        self.on_executor_added: Callable[[ExecutorInfo], None] = lambda info: None
        self._registered = threading.Condition()

    # -- for other threads --------------------------------------------------------
    def wait_for_executors(self, count: int, timeout_s: float) -> int:
        """Block until ``count`` executors are alive (or the timeout); return how many are."""
        deadline = time.monotonic() + timeout_s
        with self._registered:
            while True:
                alive = len(self.registry.alive())
                remaining = deadline - time.monotonic()
                if alive >= count or remaining <= 0 or self._stopped.is_set():
                    return alive
                self._registered.wait(min(remaining, 0.2))

    @property
    def alive(self) -> bool:
        return self.running

    # -- the loop -------------------------------------------------------------------
    def after_pass(self, now: float) -> None:
        for executor_id, kill in self.dag.take_kills():
            self.send(executor_id.encode(), kill)
        self._launch_ready(now)

    def on_unreachable(self, identity: bytes) -> None:
        executor_id = identity.decode(errors="replace").split("/")[0]
        self.executor_lost(executor_id, "its connection is gone")

    def handle(self, identity: bytes, message, now: float) -> None:
        if isinstance(message, TaskSucceeded):
            info = self.registry.touch(message.executor_id, now)
            if info is not None:
                info.running.discard(message.task_id)
                info.tasks_done += 1
            self.dag.task_succeeded(message, now)
        elif isinstance(message, TaskFailed):
            info = self.registry.touch(message.executor_id, now)
            if info is not None:
                info.running.discard(message.task_id)
                info.tasks_failed += 1
                if message.reason == FAIL_MISSING_FUNCTION:
                    info.functions.clear()
            self.dag.task_failed(message, now)
        elif isinstance(message, ExecutorHeartbeat):
            self.registry.heartbeat(message, now)
        elif isinstance(message, FetchDriverBlock):
            self.registry.touch(identity.decode(errors="replace").split("/")[0], now)
            data = self.blocks.get(message.block_id)
            reply = DriverBlock(message.request_id, message.block_id, data is not None,
                                payload=[data] if data is not None else [])
            self.send(identity, reply)
        elif isinstance(message, (FetchFiles, FetchFileChunk)):
            self.registry.touch(identity.decode(errors="replace").split("/")[0], now)
            self.send(identity, self._answer_files(message))
        elif isinstance(message, RegisterExecutor):
            self._register(identity, message, now)
        else:
            log.warning("unexpected %s from %r", type(message).__name__, identity)

    def _register(self, identity: bytes, message: RegisterExecutor, now: float) -> None:
        if identity != message.executor_id.encode():
            log.warning("registration of %s from a different identity %r refused",
                        message.executor_id, identity)
            return
        outcome = self.registry.register(message, now)
        if isinstance(outcome, str):
            self.send(identity, RegistrationRefused(outcome))
            return
        self.send(identity, ExecutorRegistered(
            message.executor_id, self.settings.heartbeat_interval_s,
            self.settings.heartbeat_timeout_s, self.settings.executor_conf))
        for lost in self.registry.executors.values():
            if not lost.alive:
                self.send(identity, ExecutorLost(lost.executor_id))
        self.dag.executor_added(message.executor_id, message.block_address)
        log.info("executor %s registered (pid %s on %s, blocks at %s)", message.executor_id,
                 message.pid, message.host, message.block_address)
        self.on_executor_added(outcome)
        with self._registered:
            self._registered.notify_all()

    def _answer_files(self, message: FetchFiles | FetchFileChunk) -> FileList | FileChunk:
        if isinstance(message, FetchFiles):
            return FileList(message.request_id, self.files.entries() if self.files else [])
        found, total, data = (self.files.chunk(message.name, message.offset, message.length)
                              if self.files else (False, 0, b""))
        return FileChunk(message.request_id, message.name, found, total,
                         payload=[data] if found else [])

    def on_timer(self, now: float) -> None:
        for executor_id in self.registry.silent_since(now, self.settings.heartbeat_timeout_s):
            self.executor_lost(executor_id, f"no heartbeat for {self.settings.heartbeat_timeout_s:.0f}s")
        beat = DriverHeartbeat(int(time.time() * 1000))
        for info in self.registry.alive():
            self.send(info.executor_id.encode(), beat)
        self.dag.tick(now)

    # -- executors ----------------------------------------------------------------------
    def executor_lost(self, executor_id: str, reason: str) -> None:
        """Loop thread: forget an executor and re-run what it held."""
        if not self.registry.mark_lost(executor_id, reason):
            return
        self.dag.executor_lost(executor_id, reason, time.monotonic())
        for info in self.registry.alive():
            self.send(info.executor_id.encode(), ExecutorLost(executor_id))
        self.on_executor_lost(executor_id, reason)
        with self._registered:
            self._registered.notify_all()

    def broadcast(self, message) -> None:
        for info in self.registry.alive():
            self.send(info.executor_id.encode(), message)

    def push_block(self, executor_id: str, block_id: str, data: bytes) -> bool:
        """Loop thread: place an input block on an executor ahead of its task."""
        if self.send(executor_id.encode(), PushBlock(block_id, payload=[data])):
            self.dag.block_locations.add(block_id, executor_id)
            return True
        return False

    def drop_blocks(self, block_ids: list[str] = (), shuffle_ids: list[int] = (),
                    rdd_ids: list[int] = ()) -> None:
        self.broadcast(DropBlocks(list(block_ids), list(shuffle_ids), list(rdd_ids)))

    # -- launching ------------------------------------------------------------------------
    def _launch_ready(self, now: float) -> None:
        for run in self.dag.assign(self.registry.free_slots(), now):
            self._launch(run)

    def _launch(self, run: TaskRun) -> None:
        info = self.registry.get(run.executor_id)
        task = run.task
        function_ids, payload = [], []
        for function_id in task.function_ids:
            if function_id not in info.functions:
                function_ids.append(function_id)
                payload.append(self.closures.data(function_id))
        block_ids = []
        for block_id in task.input_block_ids:
            if not self.dag.block_locations.has(block_id, run.executor_id):
                data = self.blocks.get(block_id)
                if data is not None:
                    block_ids.append(block_id)
                    payload.append(data)
        message = LaunchTask(run.tid, run.attempt, task.job_id, task.stage_id, task.partition,
                             task.plan, task.sink, self.dag.shuffle_locations(task),
                             function_ids, block_ids,
                             files_epoch=self.files.epoch if self.files else 0,
                             properties=task.properties, payload=payload)
        info.running.add(run.tid)
        try:
            sent = self.send(run.executor_id.encode(), message)
        except Exception as exc:  # noqa: BLE001 - e.g. a value msgpack cannot carry in the plan
            info.running.discard(run.tid)
            self.dag.task_failed(TaskFailed(
                run.tid, run.attempt, run.executor_id, FAIL_ERROR, type(exc).__name__,
                f"the task could not be sent to its executor: {exc}", "", None, None, None, 0.0),
                time.monotonic())
            return
        if not sent:
            return
        info.functions.update(function_ids)
        for block_id in block_ids:
            self.dag.block_locations.add(block_id, run.executor_id)

    # -- shutdown ---------------------------------------------------------------------------
    def on_shutdown(self) -> None:
        for info in self.registry.alive():
            try:
                send(self.router, StopExecutor("the application is stopping"),
                     identity=info.executor_id.encode())
            except zmq.ZMQError:
                pass
        with self._registered:
            self._registered.notify_all()
