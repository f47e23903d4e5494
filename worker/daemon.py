"""``sluicegate worker``: a host's agent in a standalone cluster.

It registers the host's cores and memory with the driver service, heartbeats,
and starts an executor process (one core each) whenever the service gives a
job one of its cores; the executor connects to that job's driver directly.
When an executor exits the worker says so; when the service goes quiet the
worker reconnects on a fresh socket with a doubling, capped, jittered wait,
and registers again with the executors it still runs. Executors watch this
process, so they never outlive their worker.
"""
from __future__ import annotations

import logging
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import zmq

from sluicegate.common.protocol import ProtocolError
from sluicegate.common.protocol.cluster import (
    ExecutorExited, KillExecutor, LaunchExecutor, RegisterWorker, ServiceHeartbeat,
    WorkerHeartbeat, WorkerRefused, WorkerRegistered)
from sluicegate.common.transport import HandshakeWatch, Transport, recv, send

log = logging.getLogger("sluicegate.worker.daemon")

RECONNECT_MIN_S = 0.25
RECONNECT_MAX_S = 8.0
EXECUTOR_STOP_GRACE_S = 5.0


class WorkerDaemon:
    def __init__(self, service_endpoint: str, secret: bytes | None, cores: int, memory_bytes: int,
                 work_dir: Path, host: str, advertise_host: str, worker_id: str | None = None,
                 log_file: str | None = None):
        self.service_endpoint = service_endpoint
        self.secret = secret
        self.cores = cores
        self.memory_bytes = memory_bytes
        self.host = host
        self.advertise_host = advertise_host
        self.log_file = log_file  # executors' output goes here too (default: our stderr)
        self.worker_id = worker_id or f"worker-{socket.gethostname()}-{os.getpid()}"
        self.work_dir = Path(work_dir) / self.worker_id  # ours alone: removed on stop
        self.transport = Transport(secret)
        self.executors: dict[str, tuple[str, subprocess.Popen]] = {}  # id -> (job id, process)
        self.exits: queue.SimpleQueue = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.heartbeat_interval_s = 1.0
        self.heartbeat_timeout_s = 10.0

    # -- main loop ---------------------------------------------------------------------
    def run(self) -> int:
        backoff = RECONNECT_MIN_S
        try:
            while not self.stopping.is_set():
                registered = self._session()
                if self.stopping.is_set():
                    break
                backoff = RECONNECT_MIN_S if registered else min(backoff * 2, RECONNECT_MAX_S)
                wait = backoff * random.uniform(0.5, 1.5)
                log.warning("lost the driver service at %s; reconnecting in %.1fs",
                            self.service_endpoint, wait)
                self.stopping.wait(wait)
        finally:
            self._stop_all_executors()
            self.transport.close()
        return 0

    def stop(self) -> None:
        self.stopping.set()

    def _session(self) -> bool:
        """One connection to the service; returns whether it ever registered."""
        sock = self.transport.connect(zmq.DEALER, self.service_endpoint, self.worker_id.encode())
        handshakes = HandshakeWatch(sock)
        refusal_logged = False
        registered = False
        last_heard = time.monotonic()
        next_register = 0.0
        next_heartbeat = 0.0
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                if not registered and now >= next_register:
                    send(sock, RegisterWorker(self.worker_id, self.advertise_host, self.cores,
                                              self.memory_bytes, os.getpid(),
                                              [[j, e] for e, (j, _) in self.executors.items()]))
                    next_register = now + 1.0
                if registered and now >= next_heartbeat:
                    send(sock, WorkerHeartbeat(self.worker_id, self._executor_report()))
                    next_heartbeat = now + self.heartbeat_interval_s
                self._report_exits(sock)
                if not refusal_logged and handshakes.refused:
                    log.error("the driver service at %s refused the connection: it does not use "
                              "this worker's secret (check --secret-file)", self.service_endpoint)
                    refusal_logged = True
                if now - last_heard > self.heartbeat_timeout_s:
                    return registered
                if not sock.poll(100, zmq.POLLIN):
                    continue
                try:
                    _, message = recv(sock)
                except ProtocolError as exc:
                    log.warning("dropped a malformed message from the service: %s", exc)
                    continue
                last_heard = time.monotonic()
                self._handle(message)
                if isinstance(message, WorkerRegistered):
                    registered = True
                elif isinstance(message, WorkerRefused):
                    registered = False
                    next_register = 0.0
        finally:
            handshakes.close()
            sock.close(linger=200)
        return registered

    def _handle(self, message) -> None:
        if isinstance(message, WorkerRegistered):
            self.heartbeat_interval_s = message.heartbeat_interval_s
            self.heartbeat_timeout_s = message.heartbeat_timeout_s
            log.info("registered with %s as %s (%d cores)", self.service_endpoint,
                     self.worker_id, self.cores)
        elif isinstance(message, WorkerRefused):
            log.warning("the service refused us: %s", message.reason)
        elif isinstance(message, LaunchExecutor):
            self._launch(message)
        elif isinstance(message, KillExecutor):
            self._kill(message.executor_id, message.reason)
        elif not isinstance(message, ServiceHeartbeat):
            log.warning("unexpected %s from the service", type(message).__name__)

    def _executor_report(self) -> list:
        return [[job_id, executor_id, process.pid]
                for executor_id, (job_id, process) in self.executors.items()]

    # -- executors ------------------------------------------------------------------------
    def _launch(self, message: LaunchExecutor) -> None:
        executor_dir = self.work_dir / message.job_id / message.executor_id
        files_dir = self.work_dir / message.job_id / "files"
        try:
            files_dir.mkdir(parents=True, exist_ok=True)
            for name, data in zip(message.py_file_names, message.payload):
                _write_once(files_dir / Path(name).name, bytes(data))
            executor_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.error("cannot prepare executor %s: %s", message.executor_id, exc)
            self.exits.put((message.job_id, message.executor_id, -1))
            return
        env = dict(os.environ)
        extra = [str(files_dir)] + [str(files_dir / Path(n).name) for n in message.py_file_names
                                    if n.endswith((".zip", ".egg"))]
        env["PYTHONPATH"] = os.pathsep.join(extra + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        command = [sys.executable, "-m", "sluicegate.worker.executor",
                   "--driver", message.driver_endpoint, "--executor-id", message.executor_id,
                   "--host", self.host, "--advertise-host", self.advertise_host,
                   "--work-dir", str(executor_dir),
                   "--memory-limit", message.memory_limit, "--parent-pid", str(os.getpid()),
                   "--secret-stdin"]
        output = None
        try:
            output = open(self.log_file, "ab") if self.log_file else None
            process = subprocess.Popen(command, stdin=subprocess.PIPE, cwd=executor_dir, env=env,
                                       stdout=output, stderr=output)
        except OSError as exc:
            log.error("cannot start executor %s: %s", message.executor_id, exc)
            self.exits.put((message.job_id, message.executor_id, -1))
            return
        finally:
            if output is not None:
                output.close()
        process.stdin.write((self.secret or b"") + b"\n")
        process.stdin.close()
        self.executors[message.executor_id] = (message.job_id, process)
        threading.Thread(target=self._watch, args=(message.job_id, message.executor_id, process),
                         name=f"watch-{message.executor_id}", daemon=True).start()
        log.info("started executor %s for job %s (pid %s)", message.executor_id, message.job_id,
                 process.pid)

    def _watch(self, job_id: str, executor_id: str, process: subprocess.Popen) -> None:
        self.exits.put((job_id, executor_id, process.wait()))

    def _report_exits(self, sock: zmq.Socket) -> None:
        while True:
            try:
                job_id, executor_id, code = self.exits.get_nowait()
            except queue.Empty:
                return
            self.executors.pop(executor_id, None)
            shutil.rmtree(self.work_dir / job_id / executor_id, ignore_errors=True)
            send(sock, ExecutorExited(self.worker_id, job_id, executor_id, code))

    def _kill(self, executor_id: str, reason: str) -> None:
        found = self.executors.get(executor_id)
        if found is None:
            return
        log.info("stopping executor %s: %s", executor_id, reason)
        process = found[1]
        process.terminate()
        timer = threading.Timer(EXECUTOR_STOP_GRACE_S,
                                lambda: process.kill() if process.poll() is None else None)
        timer.daemon = True
        timer.start()

    def _stop_all_executors(self) -> None:
        processes = [p for _, p in self.executors.values() if p.poll() is None]
        for process in processes:
            process.terminate()
        deadline = time.monotonic() + EXECUTOR_STOP_GRACE_S
        for process in processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        shutil.rmtree(self.work_dir, ignore_errors=True)


def _write_once(path: Path, data: bytes) -> None:
    """Write a job's file for its executors, never touching a copy already in place:
    an executor of the same job may be importing from it (a zip on its path that is
    rewritten under it, even with the same bytes, can make its imports fail)."""
    try:
        if path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_bytes(data)
    os.replace(staging, path)  # whole or not at all, for whoever reads it


def install_stop_signals(daemon: WorkerDaemon) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: daemon.stop())
