"""An executor process: registers with one application's driver and runs its
tasks, one at a time (one core; a host runs one executor per core).

Two threads, each owning its own sockets (ZeroMQ sockets are not shared):

* the link thread holds the control connection to the driver and the block
  service socket peers fetch from. It registers, queues task launches,
  stores pushed blocks, answers peers, and stops the process when the driver
  is gone (silent past the timeout, or the parent process died);
* the heartbeat thread does nothing but heartbeat (reporting how long the
  running task has been going, so a hung task shows), on a connection of its
  own: neither a busy task nor a link thread answering peers or waiting for
  the block store's lock can hold a heartbeat back. (A user function that
  holds the GIL in one C call for longer than ``spark.network.timeout`` still
  can: Python runs no other thread meanwhile.)
* the task thread (main) runs tasks and replies on its own connection, on
  which it also asks the driver for blocks it lacks.
"""
from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import psutil
import zmq

from sluicegate.common import broadcast, storage
from sluicegate.common.protocol import ProtocolError
from sluicegate.common.protocol.block_service import FetchBlocks, FetchShuffleSegments
from sluicegate.common.protocol.executor import (
    FAIL_ERROR, FAIL_KILLED, DriverBlock, DriverHeartbeat, DropBlocks, ExecutorHeartbeat,
    ExecutorLost, ExecutorRegistered, FetchDriverBlock, KillTask,
    LaunchTask, PushBlock, RegisterExecutor, RegistrationRefused, StopExecutor, TaskFailed)
from sluicegate.common.transport import Transport, advertised_host, endpoint, recv, send

from ..block_store import BlockMissing, BlockStore
from ..shuffle.block_ids import is_rdd_block_of, is_shuffle_block_of
from ..shuffle.fetcher import PeerFetcher
from ..shuffle import limits as shuffle_limits
from ..shuffle.service import answer_fetch, answer_segments
from .functions import FunctionCache
from .task_kill import KILL_TIMEOUT_KEY, KillSwitch, TaskKilled
from .task_runner import TaskRunner
from .user_files import FileFetchError, UserFiles

log = logging.getLogger("sluicegate.worker.executor")

REGISTER_RETRY_S = 1.0
STOP_GRACE_S = 3.0
BLOCK_SERVICE_SLICE_S = 0.05


class ExecutorProcess:
    def __init__(self, executor_id: str, driver_endpoint: str, secret: bytes | None,
                 host: str, work_dir: Path, memory_limit_bytes: int,
                 parent_pid: int | None = None, registration_timeout_s: float = 60.0,
                 fetch_timeout_s: float = 30.0, advertise_host: str | None = None):
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
        self.heartbeat_interval_s = 0.5
        self.heartbeat_timeout_s = 10.0
        self.running: tuple[int, int, float] | None = None  # task_id, attempt, started
        self.lost_executors: set[str] = set()
        self._work_dir = work_dir
        self.fetch_timeout_s = fetch_timeout_s
        self.kills = KillSwitch(on_stuck=self._give_up_on_task)

    # -- the task thread ------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides when we stop
        self.kills.install()
        link = _DriverLink(self)
        link.start()
        self._heartbeat = _Heartbeat(self)
        self._heartbeat.start()
        task_sock = self.transport.connect(
            zmq.DEALER, self.driver_endpoint, f"{self.executor_id}/task".encode())
        fetcher = PeerFetcher(self.transport, self.fetch_timeout_s,
                              lambda e: e in self.lost_executors)
        block_reader = _DriverBlockReader(self.store, task_sock, self.heartbeat_timeout_s)
        broadcast.install_block_reader(block_reader.read)
        runner = TaskRunner(self.executor_id, self.functions, self.store, fetcher, block_reader.read)
        deadline = time.monotonic() + self.registration_timeout_s
        while not self.registered.wait(0.1):
            if self.stopping.is_set() or time.monotonic() > deadline:
                reason = self.stop_reason or (
                    f"driver {self.driver_endpoint} did not accept registration within "
                    f"{self.registration_timeout_s:.0f}s (wrong secret or protocol version?)")
                log.error("executor %s: %s", self.executor_id, reason)
                self._close(link, task_sock, fetcher)
                return 1
        block_reader.timeout_s = self.heartbeat_timeout_s
        user_files = UserFiles(self._work_dir / "userFiles", task_sock, self.heartbeat_timeout_s)
        try:
            while not self.stopping.is_set():
                try:
                    task = self.tasks.get(timeout=0.2)
                except queue.Empty:
                    continue
                send(task_sock, self._run_task(task, runner, user_files))
        finally:
            self._close(link, task_sock, fetcher)
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
        return TaskFailed(task.task_id, task.attempt, self.executor_id, FAIL_KILLED, "TaskKilled",
                          f"task killed: {reason or 'interrupted'}", "", None, None, None,
                          (time.monotonic() - started) * 1000.0)

    def _execute(self, task: LaunchTask, runner: TaskRunner, user_files: UserFiles):
        try:
            user_files.update(task.files_epoch)
        except FileFetchError as exc:
            return TaskFailed(task.task_id, task.attempt, self.executor_id, FAIL_ERROR,
                              "FileFetchError", str(exc), "", None, None, None, 0.0)
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

    def _close(self, link: "_DriverLink", task_sock: zmq.Socket, fetcher: PeerFetcher) -> None:
        self.stop(self.stop_reason or "closing")
        link.join(timeout=2.0)
        self._heartbeat.join(timeout=2.0)
        fetcher.close()
        task_sock.close(linger=500)  # let the last reply leave
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

    def __init__(self, store: BlockStore, sock: zmq.Socket, timeout_s: float):
        self.store = store
        self.sock = sock
        self.timeout_s = timeout_s
        self._request_ids = iter(range(1, 1 << 62))

    def read(self, block_id: str) -> bytes:
        data = self.store.get_bytes(block_id)
        if data is not None:
            return data
        request_id = next(self._request_ids)
        send(self.sock, FetchDriverBlock(request_id, block_id))
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if not self.sock.poll(100, zmq.POLLIN):
                continue
            try:
                _, reply = recv(self.sock)
            except ProtocolError as exc:
                log.warning("garbage from the driver: %s", exc)
                continue
            if isinstance(reply, DriverBlock) and reply.request_id == request_id:
                if not reply.found:
                    raise BlockMissing(block_id, "is on neither this executor nor the driver")
                data = bytes(reply.payload[0])
                self.store.put_bytes(block_id, data)
                return data
        raise BlockMissing(block_id, f"did not come from the driver within {self.timeout_s:.0f}s")


class _DriverLink(threading.Thread):
    """The control connection and the block service, on one polling thread."""

    def __init__(self, executor: ExecutorProcess):
        super().__init__(name=f"driver-link-{executor.executor_id}", daemon=True)
        self.ex = executor
        transport = executor.transport
        self.control = transport.connect(zmq.DEALER, executor.driver_endpoint,
                                         executor.executor_id.encode())
        self.block_service, port = transport.bind(zmq.ROUTER, executor.host)
        self.block_address = endpoint(executor.advertise_host, port)
        self.last_driver_message = time.monotonic()

    def run(self) -> None:
        ex = self.ex
        poller = zmq.Poller()
        poller.register(self.control, zmq.POLLIN)
        poller.register(self.block_service, zmq.POLLIN)
        next_register = 0.0
        next_heartbeat = 0.0
        try:
            while not ex.stopping.is_set():
                now = time.monotonic()
                if not ex.registered.is_set() and now >= next_register:
                    send(self.control, self._registration())
                    next_register = now + REGISTER_RETRY_S
                if ex.registered.is_set() and now >= next_heartbeat:
                    next_heartbeat = now + ex.heartbeat_interval_s  # sent by _Heartbeat
                    self._check_driver_alive(now)
                ex.kills.tick(now)
                for sock, _ in poller.poll(int(min(ex.heartbeat_interval_s, 0.2) * 1000)):
                    if sock is self.control:
                        self._drain_control()
                    else:
                        self._drain_block_requests()
        except Exception:  # noqa: BLE001 - the link dying must stop the process, loudly
            log.exception("executor %s: driver link failed", ex.executor_id)
            ex.stop("driver link failed")
        finally:
            self.control.close(linger=200)
            self.block_service.close(0)
            self._enforce_stop()

    def _registration(self) -> RegisterExecutor:
        return RegisterExecutor(self.ex.executor_id, socket.gethostname(), self.block_address, 1,
                                psutil.virtual_memory().total, os.getpid())

    def _check_driver_alive(self, now: float) -> None:
        ex = self.ex
        self._drain_control()  # what waited while this thread was busy counts
        if ex.parent_pid is not None and os.getppid() != ex.parent_pid:
            ex.stop("the driver process is gone")
        elif now - self.last_driver_message > ex.heartbeat_timeout_s:
            ex.stop(f"no word from the driver for {ex.heartbeat_timeout_s:.0f}s")

    def _drain_control(self) -> None:
        while self.control.poll(0, zmq.POLLIN):
            try:
                _, message = recv(self.control)
            except ProtocolError as exc:
                log.warning("executor %s: dropped a malformed message from the driver: %s",
                            self.ex.executor_id, exc)
                continue
            self.last_driver_message = time.monotonic()
            self._handle(message)

    def _handle(self, message) -> None:
        ex = self.ex
        if isinstance(message, LaunchTask):
            ex.tasks.put(message)
        elif isinstance(message, KillTask):
            ex.kills.request(message.task_id, message.reason, message.interrupt, time.monotonic())
        elif isinstance(message, PushBlock):
            ex.store.put_bytes(message.block_id, bytes(message.payload[0]))
        elif isinstance(message, DriverHeartbeat):
            pass
        elif isinstance(message, DropBlocks):
            doomed = set(message.block_ids)
            ex.store.remove_where(
                lambda b: b in doomed
                or any(is_shuffle_block_of(b, s) for s in message.shuffle_ids)
                or any(is_rdd_block_of(b, r) for r in message.rdd_ids))
        elif isinstance(message, ExecutorRegistered):
            ex.heartbeat_interval_s = message.heartbeat_interval_s
            ex.heartbeat_timeout_s = message.heartbeat_timeout_s
            storage.configure(message.conf)  # file system options for s3:// & co.
            try:
                shuffle_limits.configure(message.conf)
            except ValueError as exc:
                log.error("executor %s: %s; keeping the default shuffle limits",
                          ex.executor_id, exc)
            if isinstance(message.conf.get(KILL_TIMEOUT_KEY), (int, float)):
                ex.kills.timeout_s = float(message.conf[KILL_TIMEOUT_KEY])
            ex.registered.set()
        elif isinstance(message, ExecutorLost):
            ex.lost_executors.add(message.executor_id)
        elif isinstance(message, StopExecutor):
            ex.stop(message.reason)
        elif isinstance(message, RegistrationRefused):
            ex.stop(f"driver refused registration: {message.reason}")
        else:
            log.warning("executor %s: unexpected %s from the driver", ex.executor_id,
                        type(message).__name__)

    def _drain_block_requests(self) -> None:
        # A slice at a time: peers asking without pause must not keep the
        # driver's messages (and the check that the driver is alive) waiting.
        until = time.monotonic() + BLOCK_SERVICE_SLICE_S
        while self.block_service.poll(0, zmq.POLLIN) and time.monotonic() < until:
            try:
                peer, request = recv(self.block_service, routed=True)
            except ProtocolError as exc:
                log.warning("executor %s: dropped a malformed block request: %s",
                            self.ex.executor_id, exc)
                continue
            if isinstance(request, FetchShuffleSegments):
                reply = answer_segments(request, self.ex.store)
            elif isinstance(request, FetchBlocks):
                reply = answer_fetch(request, self.ex.store)
            else:
                continue
            try:
                send(self.block_service, reply, identity=peer)
            except zmq.ZMQError as exc:
                log.info("could not answer a peer (gone?): %s", exc)

    def _enforce_stop(self) -> None:
        """If the task thread is stuck in user code, do not outlive the driver."""
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline:
            if self.ex.running is None:
                return
            time.sleep(0.05)
        log.warning("executor %s: task still running %.0fs after stop (%s); exiting",
                    self.ex.executor_id, STOP_GRACE_S, self.ex.stop_reason)
        os._exit(0)


class _Heartbeat(threading.Thread):
    """Heartbeats to the driver, from their own thread and connection.

    Started with the process, it beats from registration until the process
    stops. The driver takes a heartbeat from any of the executor's
    connections (by the executor id inside it).
    """

    def __init__(self, executor: ExecutorProcess):
        super().__init__(name=f"heartbeat-{executor.executor_id}", daemon=True)
        self.ex = executor
        self.sock = executor.transport.connect(zmq.DEALER, executor.driver_endpoint,
                                               f"{executor.executor_id}/heartbeat".encode())
        self._process = psutil.Process()

    def run(self) -> None:
        ex = self.ex
        try:
            while not ex.registered.wait(0.1):
                if ex.stopping.is_set():
                    return
            while not ex.stopping.is_set():
                try:
                    send(self.sock, self._heartbeat(), flags=zmq.NOBLOCK)
                except zmq.Again:
                    pass  # the driver is not reading: the link thread judges whether it is gone
                ex.stopping.wait(ex.heartbeat_interval_s)
        except Exception:  # noqa: BLE001 - without heartbeats the driver drops us: say why
            log.exception("executor %s: heartbeat thread failed", ex.executor_id)
        finally:
            self.sock.close(linger=0)

    def _heartbeat(self) -> ExecutorHeartbeat:
        running = []
        current = self.ex.running
        if current is not None:
            running.append([current[0], current[1], int((time.monotonic() - current[2]) * 1000)])
        return ExecutorHeartbeat(self.ex.executor_id, running, self.ex.store.memory_bytes,
                                 self.ex.store.disk_bytes, self._process.memory_info().rss)
