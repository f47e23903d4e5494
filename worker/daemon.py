"""``sluicegate worker``: a host's agent in a standalone cluster.

It registers the host's cores and memory with the driver service, heartbeats,
and starts an executor process (one core each) whenever the service gives a
job one of its cores; the executor connects to that job's driver directly.
When an executor exits the worker says so; when the service goes quiet the
worker reconnects on a fresh socket with a doubling, capped, jittered wait,
and registers again with the executors it still runs (each connection is a
``_ServiceSession`` on a ``common.dealer_link.DealerLink``). Executors watch this
process, so they never outlive their worker. Told to stop (SIGTERM), the worker
says goodbye to the service (``WorkerLeaving``), which then lists it as stopped
rather than lost.

Each executor's stdout and stderr go to this worker's own output as before,
and also to size-capped, rotated segment files per job and executor
(``logs/<worker id>/<job id>/<executor id>/``), which the service asks for
(``FetchExecutorLogs``) when someone runs ``sluicegate logs --executors``. The
logs of the newest ``KEEP_JOB_LOGS`` jobs are kept.
"""
from __future__ import annotations

import logging
import os
import queue
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import zmq

from sluicegate.common.constants import (
    WORKER_EXECUTOR_STOP_GRACE_S, WORKER_HEARTBEAT_INTERVAL_S, WORKER_HEARTBEAT_TIMEOUT_S,
    WORKER_RECONNECT_MAX_S, WORKER_RECONNECT_MIN_S, WORKER_REGISTER_RETRY_S)
from sluicegate.common.dealer_link import Backoff, DealerLink, Every
from sluicegate.common.protocol.cluster import (
    ExecutorExited, ExecutorLogChunk, ExecutorLogsDone, FetchExecutorLogs, KillExecutor,
    LaunchExecutor, RegisterWorker, ServiceHeartbeat, WorkerHeartbeat, WorkerLeaving,
    WorkerRefused, WorkerRegistered)
from sluicegate.common.segment_files import OutputTail, SegmentWriter, start_of_last_lines
from sluicegate.common.transport import HandshakeWatch, Transport, send

log = logging.getLogger("sluicegate.worker.daemon")

WAITING_AFTER_S = 1.0        # unregistered this long: say that the worker waits, and for what
LEAVING_LINGER_MS = 1000     # time for the goodbye to reach the service
DEFAULT_EXECUTOR_LOG_BYTES = 16 << 20   # per executor and stream
LOG_SEGMENTS = 4
KEEP_JOB_LOGS = 50           # the executors' logs of this many jobs are kept
LOG_CHUNK_BYTES = 256 << 10  # the most of an executor's stream sent in one message
LOG_REPLY_BYTES = 8 << 20    # the most sent per request (the client asks again for more)
STREAMS = ("stdout", "stderr")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


class WorkerDaemon:
    """The worker: its executors, their logs, and its sessions with the service."""

    def __init__(self, service_endpoint: str, secret: bytes | None, cores: int, memory_bytes: int,
                 work_dir: Path, host: str, advertise_host: str, worker_id: str | None = None,
                 log_file: str | None = None, executor_log_bytes: int = DEFAULT_EXECUTOR_LOG_BYTES):
        """``executor_log_bytes``: how much of each executor's stdout and of its stderr is
        kept for ``sluicegate logs --executors`` (the oldest goes first)."""
        self.service_endpoint = service_endpoint
        self.driver_address = service_endpoint.split("://", 1)[-1]
        self.secret = secret
        self.cores = cores
        self.memory_bytes = memory_bytes
        self.host = host
        self.advertise_host = advertise_host
        self.log_file = log_file  # executors' output goes here too (default: our stderr)
        self.worker_id = worker_id or f"worker-{socket.gethostname()}-{os.getpid()}"
        self.work_dir = Path(work_dir) / self.worker_id  # ours alone: removed on stop
        # The executors' logs outlive a restart of a worker with a stable --worker-id (the
        # service asks for them by worker id); a generated id is never asked for again.
        self.logs_dir = Path(work_dir) / "logs" / self.worker_id
        self._keep_logs = worker_id is not None
        self.log_segment_bytes = max(1 << 12, executor_log_bytes // LOG_SEGMENTS)
        # Where the executors' output also goes: our log file, or our own stdout/stderr.
        self._tee = _TeeTargets(log_file)
        self.transport = Transport(secret)
        self.executors: dict[str, tuple[str, subprocess.Popen]] = {}  # id -> (job id, process)
        self.exits: queue.SimpleQueue = queue.SimpleQueue()
        self.stopping = threading.Event()
        # The service's, once registered (kept for the next session's silence).
        self.heartbeat_interval_s = WORKER_HEARTBEAT_INTERVAL_S
        self.heartbeat_timeout_s = WORKER_HEARTBEAT_TIMEOUT_S
        self.stop_reason = "told to stop"

    # -- main loop ---------------------------------------------------------------------
    def run(self) -> int:
        backoff = Backoff(WORKER_RECONNECT_MIN_S, WORKER_RECONNECT_MAX_S)
        try:
            while not self.stopping.is_set():
                registered = _ServiceSession(self).run()
                if self.stopping.is_set():
                    break
                wait = backoff.next_wait(connected=registered)
                if registered:
                    log.warning("lost the driver service at %s; reconnecting in %.1fs",
                                self.service_endpoint, wait)
                else:  # it never answered: still waiting, not lost
                    log.info("still waiting for the driver at %s; reconnecting in %.1fs",
                             self.driver_address, wait)
                self.stopping.wait(wait)
        finally:
            running = sum(p.poll() is None for _, p in self.executors.values())
            if running:
                log.info("stopping %d executors", running)
            self._stop_all_executors()
            self.transport.close()
        return 0

    def stop(self, reason: str | None = None) -> None:
        if reason:
            self.stop_reason = reason
        self.stopping.set()

    def _say_waiting(self) -> None:
        """The driver has not answered yet: say so, and what a connection attempt finds."""
        host, _, port = self.driver_address.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
                why = "it accepts connections but has not answered yet"
        except OSError as exc:
            why = (exc.strerror or str(exc) or type(exc).__name__).lower()
        except ValueError:
            why = "not a HOST:PORT"
        log.warning("waiting for the driver at %s (%s); retrying", self.driver_address, why)

    def _handle(self, message, sock: zmq.Socket) -> None:
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
        elif isinstance(message, FetchExecutorLogs):
            self._send_executor_logs(sock, message)
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
        env["PYTHONUNBUFFERED"] = "1"  # what tasks print reaches the executor's log as it comes
        command = [sys.executable, "-m", "sluicegate.worker.executor",
                   "--driver", message.driver_endpoint, "--executor-id", message.executor_id,
                   "--host", self.host, "--advertise-host", self.advertise_host,
                   "--work-dir", str(executor_dir),
                   "--memory-limit", message.memory_limit, "--parent-pid", str(os.getpid()),
                   "--secret-stdin"]
        writers = self._executor_log_writers(message.job_id, message.executor_id)
        try:
            process = subprocess.Popen(command, stdin=subprocess.PIPE, cwd=executor_dir, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            log.error("cannot start executor %s: %s", message.executor_id, exc)
            for writer in writers.values():
                writer.close()
            self.exits.put((message.job_id, message.executor_id, -1))
            return
        process.stdin.write((self.secret or b"") + b"\n")
        process.stdin.close()
        self.executors[message.executor_id] = (message.job_id, process)
        threading.Thread(target=_pump_output, args=(process, writers, self._tee),
                         name=f"output-{message.executor_id}", daemon=True).start()
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
        timer = threading.Timer(WORKER_EXECUTOR_STOP_GRACE_S,
                                lambda: process.kill() if process.poll() is None else None)
        timer.daemon = True
        timer.start()

    # -- executors' logs ------------------------------------------------------------------
    def _executor_log_writers(self, job_id: str, executor_id: str) -> dict[str, SegmentWriter]:
        """Capped files for a new executor's output. If they cannot be made, the executor
        runs regardless: its output then only reaches this worker's own."""
        directory = self.logs_dir / job_id / executor_id
        try:
            fresh_job = not (self.logs_dir / job_id).exists()
            directory.mkdir(parents=True, exist_ok=True)
            if fresh_job:
                self._prune_job_logs(keep=job_id)
        except OSError as exc:
            log.warning("no log files for executor %s: %s", executor_id, exc)
        return {stream: SegmentWriter(directory, stream, self.log_segment_bytes, LOG_SEGMENTS)
                for stream in STREAMS}

    def _prune_job_logs(self, keep: str) -> None:
        """Keep the logs of the newest ``KEEP_JOB_LOGS`` jobs (and of every job that still
        runs an executor here)."""
        running = {job_id for job_id, _ in self.executors.values()} | {keep}
        try:
            jobs = [p for p in self.logs_dir.iterdir() if p.is_dir() and p.name not in running]
        except OSError:
            return
        jobs.sort(key=lambda p: p.stat().st_mtime)
        for old in jobs[:max(0, len(jobs) + len(running) - KEEP_JOB_LOGS)]:
            shutil.rmtree(old, ignore_errors=True)

    def _send_executor_logs(self, sock: zmq.Socket, message: FetchExecutorLogs) -> None:
        """What this worker keeps of a job's executors' output, from the offsets asked for
        (a bounded amount: the client asks again where a chunk says there is more)."""
        error = ""
        try:
            if not _PLAIN_NAME.fullmatch(message.job_id):
                raise ValueError(f"not a job id: {message.job_id!r}")
            known = {}
            for row in message.offsets[:10_000]:
                if (isinstance(row, list) and len(row) == 3 and isinstance(row[0], str)
                        and row[1] in STREAMS and isinstance(row[2], int) and row[2] >= 0):
                    known[(row[0], row[1])] = row[2]
            job_dir = self.logs_dir / message.job_id
            executors = sorted((p.name for p in job_dir.iterdir() if p.is_dir()),
                               key=_executor_order) if job_dir.is_dir() else []
            budget = LOG_REPLY_BYTES
            for executor_id in executors:
                for stream in STREAMS:
                    directory = job_dir / executor_id
                    offset = known.get((executor_id, stream))
                    asked = offset is not None
                    if offset is None:
                        offset = (0 if message.tail_lines < 0
                                  else start_of_last_lines(directory, stream, message.tail_lines))
                    tail = OutputTail(directory, stream, offset)
                    chunk = tail.read(min(LOG_CHUNK_BYTES, budget))
                    if chunk is None and asked:
                        continue
                    if chunk is None:  # nothing yet: where the stream starts, for next time
                        chunk = (tail.offset, b"")
                    while chunk is not None:
                        start, data = chunk
                        budget -= len(data)
                        following = tail.read(min(LOG_CHUNK_BYTES, budget))
                        more = following is not None or (budget <= 0 and tail.read(1) is not None)
                        send(sock, ExecutorLogChunk(
                            request_id=message.request_id, worker_id=self.worker_id,
                            executor_id=executor_id, stream=stream, offset=start, more=more,
                            payload=[data]))
                        chunk = following
        except (OSError, ValueError) as exc:
            error = str(exc)
        send(sock, ExecutorLogsDone(message.request_id, self.worker_id, error))

    def _stop_all_executors(self) -> None:
        processes = [p for _, p in self.executors.values() if p.poll() is None]
        for process in processes:
            process.terminate()
        deadline = time.monotonic() + WORKER_EXECUTOR_STOP_GRACE_S
        for process in processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        shutil.rmtree(self.work_dir, ignore_errors=True)
        if not self._keep_logs:
            shutil.rmtree(self.logs_dir, ignore_errors=True)


class _ServiceSession:
    """One connection to the service, on a fresh ``DealerLink``: registers (again
    every second until answered), heartbeats, reports executors' exits, and
    ends when the service has been silent past the heartbeat timeout (for the
    daemon to reconnect) or the daemon stops (saying goodbye)."""

    def __init__(self, daemon: WorkerDaemon):
        self.daemon = daemon
        self.link = DealerLink(daemon.transport, daemon.service_endpoint,
                               daemon.worker_id.encode(), self._receive, tick=self._tick,
                               poll_s=0.1, silence_s=daemon.heartbeat_timeout_s,
                               peer="the service", logger=log)
        self.registered = False
        self.started = time.monotonic()
        self.waiting_said = False
        self.refusal_logged = False
        self.register = Every(WORKER_REGISTER_RETRY_S)
        self.heartbeat = Every(daemon.heartbeat_interval_s)
        self.handshakes: HandshakeWatch | None = None

    def run(self) -> bool:
        """Serve the connection until it ends; whether it ever registered."""
        daemon = self.daemon
        self.handshakes = HandshakeWatch(self.link.open())
        try:
            if self.link.serve(daemon.stopping) and self.registered:
                log.info("%s: leaving the driver service at %s", daemon.stop_reason,
                         daemon.driver_address)
                self.link.send(WorkerLeaving(daemon.worker_id,
                                             f"{daemon.stop_reason}: the worker is leaving"))
        finally:
            self.handshakes.close()
            # The goodbye must get out before the socket goes; nothing else is pending.
            self.link.close(linger_ms=LEAVING_LINGER_MS if daemon.stopping.is_set() else 200)
        return self.registered

    def _tick(self, now: float) -> None:
        daemon = self.daemon
        if not self.registered:
            if not self.waiting_said and now - self.started >= WAITING_AFTER_S:
                self.waiting_said = True
                daemon._say_waiting()
            if self.register.due(now):
                self.link.send(RegisterWorker(
                    worker_id=daemon.worker_id, host=daemon.advertise_host, cores=daemon.cores,
                    memory_bytes=daemon.memory_bytes, pid=os.getpid(),
                    executors=[[j, e] for e, (j, _) in daemon.executors.items()]))
        elif self.heartbeat.due(now):
            self.link.send(WorkerHeartbeat(daemon.worker_id, daemon._executor_report()))
        daemon._report_exits(self.link.sock)
        if not self.refusal_logged and self.handshakes.refused:
            log.error("the driver service at %s refused the connection: it does not use "
                      "this worker's secret (check --secret-file)", daemon.service_endpoint)
            self.refusal_logged = True

    def _receive(self, message, now: float) -> None:
        daemon = self.daemon
        daemon._handle(message, self.link.sock)
        if isinstance(message, WorkerRegistered):
            self.registered = True
            self.link.silence_s = daemon.heartbeat_timeout_s
            self.heartbeat.interval_s = daemon.heartbeat_interval_s
        elif isinstance(message, WorkerRefused):
            self.registered = False
            self.register.make_due()


class _TeeTargets:
    """Where the executors' output goes besides their log files: the worker's log file,
    or the worker's own stdout and stderr (as when they wrote there themselves)."""

    def __init__(self, log_file: str | None):
        self._file_fd = None
        if log_file:
            try:
                self._file_fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as exc:
                log.warning("executors' output will not reach %s: %s", log_file, exc)

    def write(self, stream: str, data: bytes) -> None:
        # (The log file stays open for as long as the process lives: pump threads may
        # still write when the worker stops.)
        fd = self._file_fd if self._file_fd is not None else (1 if stream == "stdout" else 2)
        try:
            os.write(fd, data)
        except OSError:
            pass  # (our own output gone, e.g. a closed terminal: the log files still have it)


def _pump_output(process: subprocess.Popen, writers: dict[str, SegmentWriter],
                 tee: _TeeTargets) -> None:
    """Copy an executor's stdout and stderr to its log files and to the worker's output
    until both are closed (the executor and whatever it started are gone)."""
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ, "stdout")
    selector.register(process.stderr, selectors.EVENT_READ, "stderr")
    try:
        while selector.get_map():
            for key, _ in selector.select():
                try:
                    data = os.read(key.fd, 1 << 16)
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(key.fileobj)
                    key.fileobj.close()
                    continue
                writers[key.data].write(data)
                tee.write(key.data, data)
    finally:
        selector.close()
        for writer in writers.values():
            writer.close()


def _executor_order(executor_id: str):
    """``job-0001-exec-9`` before ``job-0001-exec-10``."""
    head, _, number = executor_id.rpartition("-")
    return (head, int(number)) if number.isdigit() else (executor_id, -1)


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
        signal.signal(signum, lambda number, _: daemon.stop(
            f"received {signal.Signals(number).name}"))
