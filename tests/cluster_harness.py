"""Real standalone clusters for tests: ``sluicegate driver`` + workers + CLI calls.

``LocalCluster`` starts the console script's ``driver`` and ``worker``
commands as separate processes (each in its own process group) with
``SLUICEGATE_HOME`` pointing at a temporary directory, runs ``submit``,
``jobs``, ``status`` and ``kill`` against them, and on ``close`` stops every
process it started together with everything they started (job processes,
executors) -- descendants are collected before anything is signalled, so a
job process re-parented to init after its service died is still found.

``TextServer`` is a TCP server thread that sends every connection a known
list of lines (optionally spread over time) and then keeps it open.
``parse_pprint`` reads the batches ``DStream.pprint`` printed.
"""
from __future__ import annotations

import ast
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
from waiting import wait_until as _wait_until

REPO = Path(__file__).resolve().parent.parent
SLUICEGATE = str(Path(sys.executable).with_name("sluicegate"))
EXAMPLES = REPO / "examples"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout_s: float, interval_s: float = 0.2, what: str = "condition"):
    """Poll until truthy (errors from the predicate count as "not yet")."""
    return _wait_until(predicate, timeout_s, what, interval_s, tolerate=(Exception,))


# -- processes ------------------------------------------------------------------------

def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def kill_tree(processes: list[psutil.Process], grace_s: float = 5.0) -> None:
    """SIGTERM ``processes``, SIGKILL whatever is left after ``grace_s``."""
    alive = []
    for proc in processes:
        try:
            proc.terminate()
            alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    _, left = psutil.wait_procs(alive, timeout=grace_s)
    for proc in left:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(left, timeout=5)


def executor_pids_of(pid: int) -> list[int]:
    """Executor processes below ``pid`` (a worker daemon)."""
    found = []
    for proc in descendants(pid):
        try:
            if "sluicegate.worker.executor" in " ".join(proc.cmdline()):
                found.append(proc.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def listening_ports(pid: int) -> list[int]:
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.NoSuchProcess:
        return []
    return sorted({c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN})


# -- a text source ----------------------------------------------------------------------

class TextServer:
    """Sends each connection ``lines`` (``spread_s`` seconds apart in total), then idles."""

    def __init__(self, lines: list[str], spread_s: float = 0.0, host: str = "127.0.0.1"):
        self.lines = lines
        self.spread_s = spread_s
        self.sock = socket.create_server((host, 0))
        self.sock.settimeout(0.2)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.sent = 0
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._clients: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, name="text-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.connections += 1
            self._clients.append(conn)
            threading.Thread(target=self._send, args=(conn,), daemon=True).start()

    def _send(self, conn: socket.socket) -> None:
        pause = self.spread_s / max(1, len(self.lines))
        chunk = max(1, len(self.lines) // 50) if pause else len(self.lines)
        try:
            for start in range(0, len(self.lines), chunk):
                part = self.lines[start:start + chunk]
                conn.sendall("".join(line + "\n" for line in part).encode())
                self.sent += len(part)
                if pause and self._stop.wait(pause * len(part)):
                    return
        except OSError:
            return
        self.finished.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self._clients:
            try:
                conn.close()
            except OSError:
                pass
        self.sock.close()


# -- pprint output ------------------------------------------------------------------------

def parse_pprint(text: str) -> list[list]:
    """The records of every batch ``pprint`` printed in ``text`` (``...`` lines kept)."""
    batches: list[list] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if (lines[i].startswith("-------") and i + 2 < len(lines)
                and lines[i + 1].startswith("Time: ") and lines[i + 2].startswith("-------")):
            records = []
            i += 3
            while i < len(lines) and lines[i].strip() and not lines[i].startswith("-------"):
                records.append("..." if lines[i] == "..." else ast.literal_eval(lines[i]))
                i += 1
            batches.append(records)
        else:
            i += 1
    return batches


def summed_counts(text: str) -> dict:
    totals: dict = {}
    for batch in parse_pprint(text):
        assert "..." not in batch, "a batch had more keys than pprint shows"
        for key, count in batch:
            totals[key] = totals.get(key, 0) + count
    return totals


# -- the cluster -----------------------------------------------------------------------------

class LocalCluster:
    """A driver service and workers on this machine, driven through the CLI."""

    def __init__(self, base: Path, secret_file: Path | None = None, host: str = "127.0.0.1",
                 netns: dict[str, str] | None = None):
        """``netns``: the network namespace each role runs in ("driver", a worker id;
        the command line runs in the driver's), for clusters spanning "hosts"."""
        self.netns = netns or {}
        self.base = Path(base)
        self.home = self.base / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs = self.base / "logs"
        self.logs.mkdir(exist_ok=True)
        self.secret_file = secret_file
        self.host = host
        self.port = 0
        self.driver: subprocess.Popen | None = None
        self.workers: dict[str, subprocess.Popen] = {}
        self._others: list[subprocess.Popen] = []
        self.adopted: list[psutil.Process] = []  # e.g. executors of a worker killed on purpose
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("SLUICEGATE_", "PYTEST_"))}
        self.env.update({"SLUICEGATE_HOME": str(self.home), "PYTHONUNBUFFERED": "1"})

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def secret(self) -> bytes:
        path = self.secret_file or self.home / "secret"
        return path.read_bytes().strip()

    def _secret_args(self) -> list[str]:
        return ["--secret-file", str(self.secret_file)] if self.secret_file else []

    def _in(self, role: str) -> list[str]:
        namespace = self.netns.get(role)
        return ["ip", "netns", "exec", namespace] if namespace else []

    def _spawn(self, args: list[str], log_name: str, role: str, **popen) -> subprocess.Popen:
        log = open(self.logs / log_name, "ab")
        try:
            return subprocess.Popen([*self._in(role), SLUICEGATE, *args], env=self.env,
                                    stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    **popen)
        finally:
            log.close()

    def log_text(self, name: str) -> str:
        path = self.logs / name
        return path.read_text(errors="replace") if path.exists() else ""

    def ui_url(self, timeout_s: float = 30.0) -> str:
        """The service's status page address, from the line it logs when it serves them."""
        found = wait_until(lambda: re.search(r"status pages at (http://\S+)",
                                             self.log_text("driver.log")),
                           timeout_s, what="the service's status page line")
        return found.group(1)

    # -- services ----------------------------------------------------------------------
    def start_driver(self, timeout_s: float = 30.0, extra: list[str] = (),
                     port: int | None = None) -> "LocalCluster":
        """Start ``sluicegate driver`` (on ``port``, e.g. the old one after a crash, or a
        free one) and wait until it answers."""
        for attempt in range(5):
            if port is not None:
                self.port = port
                if attempt:
                    time.sleep(1.0)  # the old socket may linger a moment
            else:
                self.port = random.randrange(20000, 60000) if self.netns else free_port(self.host)
            self.driver = self._spawn(["driver", "--host", self.host, "--port", str(self.port),
                                       "--work-dir", str(self.base / "driver-work"),
                                       *self._secret_args(), *extra], "driver.log", "driver")
            try:
                wait_until(lambda: self.driver.poll() is not None or self.ping(),
                           timeout_s, what="the driver service")
            except AssertionError:
                raise AssertionError("driver did not start:\n" + self.log_text("driver.log"))
            if self.driver.poll() is None:
                return self
            if "Address already in use" not in self.log_text("driver.log"):
                break
        raise AssertionError("driver exited:\n" + self.log_text("driver.log"))

    def crash_driver(self) -> None:
        """SIGKILL the driver service. Its job processes (own sessions) survive it; they
        are adopted here so that ``close`` still stops them."""
        self.adopted.extend(descendants(self.driver.pid))
        self.driver.send_signal(signal.SIGKILL)
        self.driver.wait(30)

    def stop_driver(self, timeout_s: float = 30.0) -> int:
        """SIGTERM the driver service and wait for it to end; its exit code. Job processes
        it leaves running are adopted here, as in ``crash_driver``."""
        self.adopted.extend(descendants(self.driver.pid))
        self.driver.send_signal(signal.SIGTERM)
        return self.driver.wait(timeout_s)

    def ping(self) -> bool:
        if not self.secret_file and not (self.home / "secret").exists():
            return False
        return bool(self.poll())

    def start_worker(self, worker_id: str, cores: int = 2, wait: bool = True,
                     extra: list[str] = ()) -> subprocess.Popen:
        proc = self._spawn(["worker", "--driver", self.address, "--cores", str(cores),
                            "--worker-id", worker_id, "--work-dir", str(self.base / "worker-work"),
                            *self._secret_args(), *extra], f"{worker_id}.log", worker_id)
        self.workers[worker_id] = proc
        if wait:
            wait_until(lambda: proc.poll() is not None or self.worker_alive(worker_id), 30,
                       what=f"worker {worker_id} to register")
            assert proc.poll() is None, self.log_text(f"{worker_id}.log")
        return proc

    def worker_alive(self, worker_id: str) -> bool:
        return any(w["worker_id"] == worker_id and w["alive"] for w in self.poll()["workers"])

    def poll(self) -> dict:
        """What ``status --json`` says, asked in-process (cheap enough to poll)."""
        if self.netns:  # the driver is only reachable from its namespace
            return self.status()
        from sluicegate.common.protocol.cluster import ClusterStatusRequest
        from sluicegate.driver.cluster.client import ServiceClient

        client = ServiceClient(self.address, self.secret)
        try:
            answer = client.request(ClusterStatusRequest(), timeout_s=15)
        finally:
            client.close()
        return {"workers": answer.workers, "jobs": answer.jobs}

    def polled_job(self, job_id: str) -> dict:
        return next(j for j in self.poll()["jobs"] if j["job_id"] == job_id)

    def executor_pids(self, worker_id: str | None = None, job_id: str | None = None) -> list[int]:
        """Executor processes of one or all workers (of one job, or all)."""
        pids = []
        for wid, proc in self.workers.items():
            if worker_id is not None and wid != worker_id:
                continue
            for pid in executor_pids_of(proc.pid):
                try:
                    line = " ".join(psutil.Process(pid).cmdline())
                except psutil.NoSuchProcess:
                    continue
                if job_id is None or f"--executor-id {job_id}-exec-" in line:
                    pids.append(pid)
        return pids

    # -- the command line ---------------------------------------------------------------
    def cli(self, *args: str, timeout_s: float = 30.0, with_driver: bool = True,
            env: dict | None = None) -> subprocess.CompletedProcess:
        command = [*self._in("driver"), SLUICEGATE, args[0]]
        if with_driver:
            command += ["--driver", self.address, *self._secret_args()]
        command += list(args[1:])
        return subprocess.run(command, env=env or self.env, capture_output=True, text=True,
                              timeout=timeout_s, stdin=subprocess.DEVNULL)

    def status(self) -> dict:
        done = self.cli("status", "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def jobs(self) -> list[dict]:
        done = self.cli("jobs", "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def job(self, job_id: str) -> dict:
        return next(j for j in self.jobs() if j["job_id"] == job_id)

    def submit(self, script: Path | str, *args: str, options: list[str] = (),
               timeout_s: float = 90.0) -> subprocess.CompletedProcess:
        return self.cli("submit", *options, str(script), *args, timeout_s=timeout_s)

    def submit_async(self, script: Path | str, *args: str, options: list[str] = (),
                     name: str = "submit") -> "Submission":
        command = [*self._in("driver"), SLUICEGATE, "submit", "--driver", self.address,
                   *self._secret_args(),
                   *options, str(script), *args]
        proc = subprocess.Popen(command, env=self.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        self._others.append(proc)
        return Submission(proc)

    # -- teardown --------------------------------------------------------------------------
    def all_processes(self) -> list[psutil.Process]:
        """Every live process this cluster started, directly or not."""
        roots = [p for p in [self.driver, *self.workers.values(), *self._others] if p is not None]
        found = {proc.pid: proc for proc in self.adopted if proc.is_running()}
        for root in roots:
            if root.poll() is None:  # (an exited root's pid may belong to another process now)
                try:
                    found[root.pid] = psutil.Process(root.pid)
                except psutil.NoSuchProcess:
                    pass
                found.update((d.pid, d) for d in descendants(root.pid))
        return list(found.values())

    def close(self) -> None:
        found = self.all_processes()
        # The services first (they stop their jobs and executors), then the rest.
        roots = [p for p in [self.driver, *self.workers.values()] if p is not None]
        for proc in roots:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in roots:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        kill_tree(found, grace_s=3)
        for proc in [*roots, *self._others]:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


class Submission:
    """A ``sluicegate submit`` running in the background; its output read as it comes."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self._out: list[bytes] = []
        self._err: list[bytes] = []
        self._readers = [threading.Thread(target=self._read, args=(proc.stdout, self._out), daemon=True),
                         threading.Thread(target=self._read, args=(proc.stderr, self._err), daemon=True)]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(pipe, into: list[bytes]) -> None:
        for chunk in iter(lambda: pipe.read1(65536), b""):
            into.append(chunk)

    @property
    def stdout(self) -> str:
        return b"".join(self._out).decode(errors="replace")

    @property
    def stderr(self) -> str:
        return b"".join(self._err).decode(errors="replace")

    def job_id(self, timeout_s: float = 30.0) -> str:
        def found():
            for line in self.stderr.splitlines():
                if line.startswith("submitted "):
                    return line.split()[1]
            assert self.proc.poll() is None, f"submit exited early: {self.stderr}"
            return None
        return wait_until(found, timeout_s, what="the job id")

    def interrupt(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def wait(self, timeout_s: float = 60.0) -> int:
        code = self.proc.wait(timeout_s)
        for reader in self._readers:
            reader.join(5)
        return code
