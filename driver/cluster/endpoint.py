"""The driver's event loop: one thread owns the ROUTER socket and the scheduler.

Executors' messages arrive on the ROUTER; other threads (the user's, the
streaming job generator, finalizers) hand work in as typed events
(``loop_events``) with ``post``, which queues the event and wakes the loop
through a pipe. Only this thread touches the socket, the executor registry
and the DAG scheduler, so none of them needs a lock ("a single logic thread
greatly simplifies synchronization").

This module is the thin part that does I/O: what to send, and what the
executors' messages mean, is decided by the socket-free ``ExecutorFleet``
(executor_fleet.py) and the ``DAGScheduler``. Each pass: read what arrived,
run the posted events, fire timers (heartbeats both ways, dead-executor
detection, scheduler timeouts), then send the kills of cancelled or failed
jobs' tasks and launch whatever tasks fit the free slots. Executors also ask
here for the files the application added (``FileServer``), on their task
connection.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable

import zmq

from sluicegate.common.transport import Transport, send

from ..scheduler.closures import ClosureRegistry
from ..scheduler.dag import DAGScheduler
from ..scheduler.task_set import TaskRun
from .driver_blocks import DriverBlocks
from .event_loop import RouterLoop
from .executor_fleet import ExecutorFleet, FleetSettings, Outgoing, executor_of
from .executors import ExecutorInfo, ExecutorRegistry
from .file_server import FileServer
from .loop_events import (
    AllJobsCancelled, BlocksHeld, DescribeExecutors, JobCancelled, JobGroupCancelled,
    JobSubmitted, JobTagCancelled, PushInputBlock, RemoveBlocks, RemoveExecutor, RemoveRdd,
    RemoveShuffle)

log = logging.getLogger("sluicegate.driver.endpoint")


class DriverEndpoint(RouterLoop):
    log = log

    def __init__(self, transport: Transport, host: str, port: int, settings: FleetSettings,
                 dag: DAGScheduler, closures: ClosureRegistry, blocks: DriverBlocks,
                 on_executor_lost: Callable[[str, str], None] | None = None,
                 files: FileServer | None = None):
        super().__init__("sluicegate-driver-loop", transport, host, port,
                         settings.heartbeat_interval_s)
        self.dag = dag
        self.on_executor_lost = on_executor_lost or (lambda executor_id, reason: None)
        self._registered = threading.Condition()
        self.fleet = ExecutorFleet(settings, dag, closures, blocks, files,
                                   on_added=self._executor_added, on_lost=self._executor_lost)
        self.events.on({
            JobSubmitted: self._submit_job,
            JobCancelled: self._cancel_job,
            JobGroupCancelled: self._cancel_job_group,
            JobTagCancelled: self._cancel_jobs_with_tag,
            AllJobsCancelled: self._cancel_all_jobs,
            PushInputBlock: self._push_input,
            RemoveBlocks: self._remove_blocks,
            RemoveRdd: self._remove_rdd,
            RemoveShuffle: self._remove_shuffle,
            RemoveExecutor: self._remove_executor,
            DescribeExecutors: self._describe_executors,
            BlocksHeld: self._blocks_held,
        })

    @property
    def registry(self) -> ExecutorRegistry:
        """The executors (written on the loop thread; other threads read copies)."""
        return self.fleet.registry

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

    def describe_executors(self, timeout_s: float = 5.0) -> list[dict]:
        """Every executor, as the status pages list it (asked of the loop thread)."""
        return self.call(DescribeExecutors(), timeout_s)

    # -- executors' messages and time ------------------------------------------------
    def handle(self, identity: bytes, message, now: float) -> None:
        for to, reply in self.fleet.receive(identity, message, now):
            self.send(to, reply)

    def on_timer(self, now: float) -> None:
        self._send_all(self.fleet.tick(now, int(time.time() * 1000)))

    def on_unreachable(self, identity: bytes) -> None:
        self.remove_executor(executor_of(identity), "its connection is gone", time.monotonic())

    def after_pass(self, now: float) -> None:
        fleet = self.fleet
        for to, kill in fleet.kills():
            self.send(to, kill)
        for run in fleet.assign(now):
            self._launch(run)

    def _launch(self, run: TaskRun) -> None:
        to, message = self.fleet.launch(run)
        try:
            sent = self.send(to, message)
        except Exception as exc:  # noqa: BLE001 - e.g. a value msgpack cannot carry in the plan
            self.fleet.launch_failed(run, exc, time.monotonic())
            return
        if sent:
            self.fleet.launched(run, message)

    def _send_all(self, outgoing: Iterable[Outgoing]) -> None:
        for to, message in outgoing:
            self.send(to, message)

    # -- executors ----------------------------------------------------------------------
    def remove_executor(self, executor_id: str, reason: str, now: float) -> None:
        """Loop thread: forget an executor and re-run what it held."""
        self._send_all(self.fleet.lose(executor_id, reason, now))

    def _executor_added(self, info: ExecutorInfo) -> None:
        with self._registered:
            self._registered.notify_all()

    def _executor_lost(self, executor_id: str, reason: str) -> None:
        self.on_executor_lost(executor_id, reason)
        with self._registered:
            self._registered.notify_all()

    # -- events --------------------------------------------------------------------------
    def _submit_job(self, event: JobSubmitted, now: float) -> None:
        self.dag.submit_job(event.job, now)

    def _cancel_job(self, event: JobCancelled, now: float) -> None:
        self.dag.cancel_job(event.job_id, event.reason)

    def _cancel_job_group(self, event: JobGroupCancelled, now: float) -> list[int]:
        return self.dag.cancel_job_group(event.group_id)

    def _cancel_jobs_with_tag(self, event: JobTagCancelled, now: float) -> list[int]:
        return self.dag.cancel_jobs_with_tag(event.tag)

    def _cancel_all_jobs(self, event: AllJobsCancelled, now: float) -> list[int]:
        return self.dag.cancel_all_jobs()

    def _push_input(self, event: PushInputBlock, now: float) -> None:
        push = self.fleet.push_input(event.block_id, event.data)
        if push is not None and self.send(*push):
            self.fleet.pushed(executor_of(push[0]), event.block_id)

    def _remove_blocks(self, event: RemoveBlocks, now: float) -> None:
        self._send_all(self.fleet.remove_blocks(event.block_ids))

    def _remove_rdd(self, event: RemoveRdd, now: float) -> None:
        self._send_all(self.fleet.remove_rdd(event.rdd_id))

    def _remove_shuffle(self, event: RemoveShuffle, now: float) -> None:
        self._send_all(self.fleet.remove_shuffle(event.shuffle_id))

    def _remove_executor(self, event: RemoveExecutor, now: float) -> None:
        self.remove_executor(event.executor_id, event.reason, now)

    def _describe_executors(self, event: DescribeExecutors, now: float) -> list[dict]:
        return self.fleet.describe(now)

    def _blocks_held(self, event: BlocksHeld, now: float) -> list[bool]:
        return self.fleet.blocks_held(event.block_ids)

    # -- shutdown ---------------------------------------------------------------------------
    def on_shutdown(self) -> None:
        for to, stop in self.fleet.stop_all("the application is stopping"):
            try:
                send(self.router, stop, identity=to)  # not self.send: nobody is told of losses now
            except zmq.ZMQError:
                pass
        with self._registered:
            self._registered.notify_all()
