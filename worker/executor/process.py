"""An executor process: registers with one application's driver and runs its
tasks, one at a time (one core; a host runs one executor per core).

Three threads, each owning its own sockets (ZeroMQ sockets are not shared):

* the link thread (``driver_link.DriverLink``) holds the control connection
  to the driver and the block service socket peers fetch from. It registers,
  queues task launches, stores pushed blocks, answers peers, and stops the
  process when the driver is gone (silent past the timeout, or the parent
  process died); what it decides is ``driver_link_state.DriverLinkState``'s;
* the heartbeat thread (``driver_link.HeartbeatLink``) does nothing but
  heartbeat (reporting how long the running task has been going, so a hung
  task shows), on a connection of its own: neither a busy task nor a link
  thread answering peers or waiting for the block store's lock can hold a
  heartbeat back. (A user function that holds the GIL in one C call for
  longer than ``spark.network.timeout`` still can: Python runs no other
  thread meanwhile.)
* the task thread (main) runs tasks and replies on its own connection, on
  which it also asks the driver for blocks it lacks. A launch reaches it
  through a queue from the link thread, so that the link thread never waits
  on a task and a task never waits on the link.
"""
from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import threading
import time
from pathlib import Path

from sluicegate.common import broadcast
from sluicegate.common.constants import (
    EXECUTOR_REGISTRATION_TIMEOUT_S, FETCH_TIMEOUT_S, HEARTBEAT_INTERVAL_S, HEARTBEAT_TIMEOUT_S)
from sluicegate.common.dealer_link import DealerLink
from sluicegate.common.protocol.executor import (
    FAIL_ERROR, FAIL_KILLED, DriverBlock, FetchDriverBlock, LaunchTask, TaskFailed)
from sluicegate.common.transport import Transport, advertised_host

from ..block_store import BlockMissing, BlockStore
from ..shuffle.fetcher import PeerFetcher
from .driver_link import DriverLink, HeartbeatLink
from .functions import FunctionCache
from .task_kill import KillSwitch, TaskKilled
from .task_runner import TaskRunner
from .user_files import FileFetchError, UserFiles

log = logging.getLogger("sluicegate.worker.executor")


class ExecutorProcess:
    """One executor: its block store, closure cache and kill switch, and the
    three threads that serve them (see the module's docstring)."""

    def __init__(self, executor_id: str, driver_endpoint: str, secret: bytes | None,
                 host: str, work_dir: Path, memory_limit_bytes: int,
                 parent_pid: int | None = None,
                 registration_timeout_s: float = EXECUTOR_REGISTRATION_TIMEOUT_S,
                 fetch_timeout_s: float = FETCH_TIMEOUT_S, advertise_host: str | None = None):
        self.executor_id = executor_id
        self.driver_endpoint = driver_endpoint
        self.host = host
        self.advertise_host = advertise_host or advertised_host(host)
        self.parent_pid = parent_pid
        self.registration_timeout_s = registration_timeout_s
        self.transport = Transport(secret)
        self.store = BlockStore(work_dir, memory_limit_bytes)
        self.functions = FunctionCache()
        self.tasks: queue.SimpleQueue = queue.SimpleQueue()
        self.registered = threading.Event()
        self.stopping = threading.Event()
        self.stop_reason = ""
        # The driver's, once registered (set by the link thread, read by the others).
        self.heartbeat_interval_s = HEARTBEAT_INTERVAL_S
        self.heartbeat_timeout_s = HEARTBEAT_TIMEOUT_S
        self.running: tuple[int, int, float] | None = None  # task_id, attempt, started
        self._heartbeat: HeartbeatLink | None = None
        self._work_dir = work_dir
        self.fetch_timeout_s = fetch_timeout_s
        self.kills = KillSwitch(on_stuck=self._give_up_on_task)

    # -- the task thread ------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides when we stop
        self.kills.install()
        link = DriverLink(self)
        link.start()
        self._heartbeat = HeartbeatLink(self)
        self._heartbeat.start()
        task_link = DealerLink(self.transport, self.driver_endpoint,
                               f"{self.executor_id}/task".encode(), peer="the driver", logger=log)
        task_link.open()
        fetcher = PeerFetcher(self.transport, self.fetch_timeout_s,
                              link.state.lost_executors.__contains__)
        block_reader = _DriverBlockReader(self.store, task_link, self.heartbeat_timeout_s)
        broadcast.install_block_reader(block_reader.read)
        runner = TaskRunner(self.executor_id, self.functions, self.store, fetcher, block_reader.read)
        deadline = time.monotonic() + self.registration_timeout_s
        while not self.registered.wait(0.1):
            if self.stopping.is_set() or time.monotonic() > deadline:
                reason = self.stop_reason or (
                    f"driver {self.driver_endpoint} did not accept registration within "
                    f"{self.registration_timeout_s:.0f}s (wrong secret or protocol version?)")
                log.error("executor %s: %s", self.executor_id, reason)
                self._close(link, task_link, fetcher)
                return 1
        block_reader.timeout_s = self.heartbeat_timeout_s
        user_files = UserFiles(self._work_dir / "userFiles", task_link, self.heartbeat_timeout_s)
        try:
            while not self.stopping.is_set():
                try:
                    task = self.tasks.get(timeout=0.2)
                except queue.Empty:
                    continue
                task_link.send(self._run_task(task, runner, user_files))
        finally:
            self._close(link, task_link, fetcher)
        log.info("executor %s stopped: %s", self.executor_id, self.stop_reason)
        return 0

    def _run_task(self, task: LaunchTask, runner: TaskRunner, user_files: UserFiles):
        """Run one task (after fetching the files it may need); a task the driver
        killed replies ``killed`` whatever else became of it."""
        started = time.monotonic()
        reason = self.kills.starting(task.task_id)
        if reason is None:
            self.running = (task.task_id, task.attempt, started)
            reply = None
            try:
                try:
                    self.kills.enter(task.task_id)
                    reply = self._execute(task, runner, user_files)
                finally:
                    self.kills.leave()
            except TaskKilled:  # raised between the task's code and leave(): see task_kill
                pass
            self.running = None
            reason = self.kills.finished(task.task_id)
            if reason is None and reply is not None:
                return reply
        return TaskFailed(task_id=task.task_id, attempt=task.attempt,
                          executor_id=self.executor_id, reason=FAIL_KILLED,
                          error_type="TaskKilled", message=f"task killed: {reason or 'interrupted'}",
                          traceback="", shuffle_id=None, map_id=None, peer_executor=None,
                          duration_ms=(time.monotonic() - started) * 1000.0)

    def _execute(self, task: LaunchTask, runner: TaskRunner, user_files: UserFiles):
        try:
            user_files.update(task.files_epoch)
        except FileFetchError as exc:
            return TaskFailed(task_id=task.task_id, attempt=task.attempt,
                              executor_id=self.executor_id, reason=FAIL_ERROR,
                              error_type="FileFetchError", message=str(exc), traceback="",
                              shuffle_id=None, map_id=None, peer_executor=None, duration_ms=0.0)
        return runner.run(task)

    def _give_up_on_task(self, why: str) -> None:
        """Link thread: a killed task would not stop. The process goes; the driver
        counts the executor lost and starts another."""
        log.error("executor %s: %s; exiting", self.executor_id, why)
        os._exit(3)

    def stop(self, reason: str) -> None:
        if not self.stopping.is_set():
            self.stop_reason = reason
            self.stopping.set()
            if self._heartbeat is not None:
                self._heartbeat.wake()  # it waits a whole heartbeat interval otherwise

    def _close(self, link: DriverLink, task_link: DealerLink, fetcher: PeerFetcher) -> None:
        self.stop(self.stop_reason or "closing")
        link.join(timeout=2.0)
        self._heartbeat.join(timeout=2.0)
        fetcher.close()
        task_link.close(linger_ms=500)  # let the last reply leave
        self.store.clear()
        self.transport.close()
        self._remove_work_dir()

    def _remove_work_dir(self) -> None:
        """Our scratch space goes with us; the last executor of a local application
        also removes the application's directory, in case its driver was killed."""
        shutil.rmtree(self._work_dir, ignore_errors=True)
        if self.parent_pid is not None:
            try:
                self._work_dir.parent.rmdir()  # only succeeds once it is empty
            except OSError:
                pass


class _DriverBlockReader:
    """A block from the local store, else asked of the driver and kept."""

    def __init__(self, store: BlockStore, link: DealerLink, timeout_s: float):
        self.store = store
        self.link = link
        self.timeout_s = timeout_s
        self._request_ids = iter(range(1, 1 << 62))

    def read(self, block_id: str) -> bytes:
        data = self.store.get_bytes(block_id)
        if data is not None:
            return data
        reply = self.link.ask(FetchDriverBlock(next(self._request_ids), block_id), DriverBlock,
                              self.timeout_s)
        if reply is None:
            raise BlockMissing(block_id,
                               f"did not come from the driver within {self.timeout_s:.0f}s")
        if not reply.found:
            raise BlockMissing(block_id, "is on neither this executor nor the driver")
        data = bytes(reply.payload[0])
        self.store.put_bytes(block_id, data)
        return data
