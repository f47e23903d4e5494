"""An application's executors as a state machine: no sockets, no threads, no clock.

``ExecutorFleet`` takes what happens -- an executor's message, a timer
tick, a loss, a task the scheduler placed -- with the time it happened, and
returns the messages to send as ``(identity, message)`` pairs; the
``DriverEndpoint`` (endpoint.py) does the sending on its ROUTER. It owns the
``ExecutorRegistry`` and drives the DAG scheduler with what executors report.

- Registration: an executor registers under its connection identity; it is
  told its heartbeat timings and every executor already lost (whose blocks
  it must not fetch). An id once lost is refused for good.
- Heartbeats both ways: every message from an executor counts as one; each
  tick sends ``DriverHeartbeat`` to the live ones, and one silent for longer
  than the timeout is lost.
- Loss: the scheduler re-runs what it held, and the others are told
  (``ExecutorLost``).
- Launch: a ``LaunchTask`` carries only the closures and driver blocks its
  executor does not hold yet; what a delivered launch shipped is recorded
  (``launched``), so nothing is shipped twice.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Callable, Iterable

from sluicegate.common.protocol.executor import (
    FAIL_ERROR, FAIL_MISSING_FUNCTION, DriverBlock, DriverHeartbeat, DropBlocks,
    ExecutorHeartbeat, ExecutorLost, ExecutorRegistered, FetchDriverBlock, FetchFileChunk,
    FetchFiles, FileChunk, FileList, LaunchTask, PushBlock, RegisterExecutor,
    RegistrationRefused, StopExecutor, TaskFailed, TaskSucceeded)

from ..scheduler.closures import ClosureRegistry
from ..scheduler.dag import DAGScheduler
from ..scheduler.task_set import TaskRun
from .driver_blocks import DriverBlocks
from .executors import ExecutorInfo, ExecutorRegistry
from .file_server import FileServer

log = logging.getLogger("sluicegate.driver.endpoint")

Outgoing = tuple[bytes, object]  # (the executor's connection identity, a message)
NOTHING: tuple = ()  # no message to send (shared: the task path allocates nothing)


@dataclass(frozen=True)
class FleetSettings:
    heartbeat_interval_s: float
    heartbeat_timeout_s: float
    executor_conf: dict  # what ExecutorRegistered carries to each executor


def executor_of(identity: bytes) -> str:
    """The executor id of a connection identity (a task connection adds ``/...``)."""
    return identity.decode(errors="replace").split("/")[0]


class ExecutorFleet:
    def __init__(self, settings: FleetSettings, dag: DAGScheduler, closures: ClosureRegistry,
                 blocks: DriverBlocks, files: FileServer | None = None,
                 on_added: Callable[[ExecutorInfo], None] | None = None,
                 on_lost: Callable[[str, str], None] | None = None):
        """``on_added(info)`` / ``on_lost(executor_id, reason)``: told of each executor
        that registered / was lost, after the scheduler was."""
        self.settings = settings
        self.dag = dag
        self.closures = closures
        self.blocks = blocks
        self.files = files
        self.registry = ExecutorRegistry()
        self.on_added = on_added or (lambda info: None)
        self.on_lost = on_lost or (lambda executor_id, reason: None)
        self._push_turns = itertools.count(0)

    # -- executors' messages ------------------------------------------------------------
    def receive(self, identity: bytes, message, now: float) -> Iterable[Outgoing]:
        """An executor's message: what to answer."""
        handler = self._receivers.get(type(message))
        if handler is None:
            log.warning("unexpected %s from %r", type(message).__name__, identity)
            return NOTHING
        return handler(self, identity, message, now)

    def _task_succeeded(self, identity: bytes, message: TaskSucceeded, now: float):
        info = self.registry.touch(message.executor_id, now)
        if info is not None:
            info.running.discard(message.task_id)
            info.tasks_done += 1
        self.dag.task_succeeded(message, now)
        return NOTHING

    def _task_failed(self, identity: bytes, message: TaskFailed, now: float):
        info = self.registry.touch(message.executor_id, now)
        if info is not None:
            info.running.discard(message.task_id)
            info.tasks_failed += 1
            if message.reason == FAIL_MISSING_FUNCTION:
                info.functions.clear()  # it lost its closure cache: ship them again
        self.dag.task_failed(message, now)
        return NOTHING

    def _heartbeat(self, identity: bytes, message: ExecutorHeartbeat, now: float):
        self.registry.heartbeat(message, now)
        return NOTHING

    def _driver_block(self, identity: bytes, message: FetchDriverBlock, now: float):
        self.registry.touch(executor_of(identity), now)
        data = self.blocks.get(message.block_id)
        return [(identity, DriverBlock(message.request_id, message.block_id, data is not None,
                                       payload=[data] if data is not None else []))]

    def _file_list(self, identity: bytes, message: FetchFiles, now: float):
        self.registry.touch(executor_of(identity), now)
        return [(identity, FileList(message.request_id,
                                    self.files.entries() if self.files else []))]

    def _file_chunk(self, identity: bytes, message: FetchFileChunk, now: float):
        self.registry.touch(executor_of(identity), now)
        found, total, data = (self.files.chunk(message.name, message.offset, message.length)
                              if self.files else (False, 0, b""))
        return [(identity, FileChunk(message.request_id, message.name, found, total,
                                     payload=[data] if found else []))]

    def _register(self, identity: bytes, message: RegisterExecutor, now: float):
        if identity != message.executor_id.encode():
            log.warning("registration of %s from a different identity %r refused",
                        message.executor_id, identity)
            return NOTHING
        outcome = self.registry.register(message, now)
        if isinstance(outcome, str):
            return [(identity, RegistrationRefused(outcome))]
        replies: list[Outgoing] = [(identity, ExecutorRegistered(
            message.executor_id, self.settings.heartbeat_interval_s,
            self.settings.heartbeat_timeout_s, self.settings.executor_conf))]
        # the lost ones: their blocks are gone, so the newcomer must not fetch from them
        replies.extend((identity, ExecutorLost(lost.executor_id))
                       for lost in self.registry.executors.values() if not lost.alive)
        self.dag.executor_added(message.executor_id, message.block_address)
        log.info("executor %s registered (pid %s on %s, blocks at %s)", message.executor_id,
                 message.pid, message.host, message.block_address)
        self.on_added(outcome)
        return replies

    _receivers = {
        TaskSucceeded: _task_succeeded,
        TaskFailed: _task_failed,
        ExecutorHeartbeat: _heartbeat,
        FetchDriverBlock: _driver_block,
        FetchFiles: _file_list,
        FetchFileChunk: _file_chunk,
        RegisterExecutor: _register,
    }

    # -- time and loss ----------------------------------------------------------------------
    def tick(self, now: float, wall_ms: int) -> list[Outgoing]:
        """Every heartbeat interval: lose the silent executors, beat to the others, and let
        the scheduler time out what waits on executors. ``wall_ms``: the wall clock."""
        outgoing: list[Outgoing] = []
        timeout_s = self.settings.heartbeat_timeout_s
        for executor_id in self.registry.silent_since(now, timeout_s):
            outgoing.extend(self.lose(executor_id, f"no heartbeat for {timeout_s:.0f}s", now))
        beat = DriverHeartbeat(wall_ms)
        outgoing.extend((info.executor_id.encode(), beat) for info in self.registry.alive())
        self.dag.tick(now)
        return outgoing

    def lose(self, executor_id: str, reason: str, now: float) -> list[Outgoing]:
        """Forget a live executor for good and re-run what it held (nothing if it was not
        alive): the others are told."""
        if not self.registry.mark_lost(executor_id, reason):
            return []
        self.dag.executor_lost(executor_id, reason, now)
        self.on_lost(executor_id, reason)
        return self.broadcast(ExecutorLost(executor_id))

    def broadcast(self, message) -> list[Outgoing]:
        return [(info.executor_id.encode(), message) for info in self.registry.alive()]

    def stop_all(self, reason: str) -> list[Outgoing]:
        """The application is stopping: every live executor is told to exit."""
        return self.broadcast(StopExecutor(reason))

    # -- launching ---------------------------------------------------------------------------
    def kills(self) -> list[Outgoing]:
        """The ``KillTask`` messages of cancelled or failed jobs' tasks, once each."""
        kills = self.dag.take_kills()
        return [(executor_id.encode(), kill) for executor_id, kill in kills] if kills else kills

    def assign(self, now: float) -> list[TaskRun]:
        """Place whatever tasks fit the free slots."""
        return self.dag.assign(self.registry.free_slots(), now)

    def launch(self, run: TaskRun) -> Outgoing:
        """The ``LaunchTask`` of a placed task, with the closures and driver blocks its
        executor lacks; the task counts as running there from now on."""
        info = self.registry.executors[run.executor_id]
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
        message = LaunchTask(
            task_id=run.tid, attempt=run.attempt, job_id=task.job_id, stage_id=task.stage_id,
            partition=task.partition, plan=task.plan, sink=task.sink,
            shuffle_locations=self.dag.shuffle_locations(task), function_ids=function_ids,
            block_ids=block_ids, files_epoch=self.files.epoch if self.files else 0,
            properties=task.properties, payload=payload)
        info.running.add(run.tid)
        return run.executor_id.encode(), message

    def launched(self, run: TaskRun, message: LaunchTask) -> None:
        """The launch was delivered: its executor holds what it shipped."""
        info = self.registry.executors[run.executor_id]
        info.functions.update(message.function_ids)
        for block_id in message.block_ids:
            self.dag.block_locations.add(block_id, run.executor_id)

    def launch_failed(self, run: TaskRun, error: Exception, now: float) -> None:
        """The launch could not be encoded (e.g. a value msgpack cannot carry in the plan):
        the task fails, as if its executor had reported it."""
        self.registry.executors[run.executor_id].running.discard(run.tid)
        self.dag.task_failed(TaskFailed(
            task_id=run.tid, attempt=run.attempt, executor_id=run.executor_id,
            reason=FAIL_ERROR, error_type=type(error).__name__,
            message=f"the task could not be sent to its executor: {error}", traceback="",
            shuffle_id=None, map_id=None, peer_executor=None, duration_ms=0.0), now)

    # -- blocks ------------------------------------------------------------------------------
    def push_input(self, block_id: str, data: bytes) -> Outgoing | None:
        """Where a received input block goes ahead of its batch: the live executors take
        turns (None: there is none)."""
        alive = self.registry.alive()
        if not alive:
            return None
        target = alive[next(self._push_turns) % len(alive)]
        return target.executor_id.encode(), PushBlock(block_id, payload=[data])

    def pushed(self, executor_id: str, block_id: str) -> None:
        """The pushed block was delivered."""
        self.dag.block_locations.add(block_id, executor_id)

    def remove_blocks(self, block_ids: Iterable[str]) -> list[Outgoing]:
        block_ids = list(block_ids)
        doomed = set(block_ids)
        self.dag.block_locations.remove_where(doomed.__contains__)
        return self.broadcast(DropBlocks(block_ids, [], []))

    def remove_rdd(self, rdd_id: int) -> list[Outgoing]:
        prefix = f"rdd_{rdd_id}_"
        self.dag.block_locations.remove_where(lambda block_id: block_id.startswith(prefix))
        return self.broadcast(DropBlocks([], [], [rdd_id]))

    def remove_shuffle(self, shuffle_id: int) -> list[Outgoing]:
        self.dag.drop_shuffle(shuffle_id)
        return self.broadcast(DropBlocks([], [shuffle_id], []))

    # -- queries -----------------------------------------------------------------------------
    def blocks_held(self, block_ids: Iterable[str]) -> list[bool]:
        """For each block: does some executor hold it?"""
        return [bool(self.dag.block_locations.holders(b)) for b in block_ids]

    def describe(self, now: float) -> list[dict]:
        """Every executor, lost ones included, as the status pages list them."""
        return [info.describe(now) for info in self.registry.executors.values()]
