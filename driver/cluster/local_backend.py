"""Local mode: N executor processes on this machine, over the cluster's protocol.

``local[N]`` starts N real executor processes, each with one slot, that
connect to the driver's socket exactly as a remote executor would. Each gets
the application's secret on stdin and watches its parent, so a driver killed
with SIGKILL takes its executors with it within a second or two. An executor
that dies is replaced (under a new id) up to a limit, so a local job survives
a killed worker process.

With streaming dynamic allocation the count moves within ``1..N``: ``add``
starts one more, and an executor the scaler ``retire``s (it drained it first)
exits without being replaced.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger("sluicegate.driver.local")


class LocalBackend:
    def __init__(self, num_executors: int, driver_endpoint: str, secret: bytes, app_dir: Path,
                 memory_limit: str, fetch_timeout_s: float, respawn: bool, max_respawns: int,
                 on_exit: Callable[[str, int], None], executor_env: dict[str, str] | None = None):
        self.num_executors = num_executors
        self.driver_endpoint = driver_endpoint
        self.secret = secret
        self.app_dir = app_dir
        self.memory_limit = memory_limit
        self.fetch_timeout_s = fetch_timeout_s
        self.respawn_enabled = respawn
        self.respawns_left = max_respawns
        self.on_exit = on_exit
        self.executor_env = executor_env or {}
        self.processes: dict[str, subprocess.Popen] = {}
        self.retired: set[str] = set()  # removed on purpose: not replaced when they exit
        self._next_id = 0
        self._lock = threading.Lock()
        self._stopping = False

    def start(self) -> None:
        for _ in range(self.num_executors):
            self._spawn()

    def _spawn(self) -> str:
        with self._lock:
            self._next_id += 1
            executor_id = f"exec-{self._next_id}"
        work_dir = self.app_dir / executor_id
        work_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        # Executors import what the driver script imports: same paths, same cwd.
        env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p)
        env.update(self.executor_env)
        command = [sys.executable, "-m", "sluicegate.worker.executor",
                   "--driver", self.driver_endpoint, "--executor-id", executor_id,
                   "--host", "127.0.0.1", "--work-dir", str(work_dir),
                   "--memory-limit", self.memory_limit, "--parent-pid", str(os.getpid()),
                   "--fetch-timeout", str(self.fetch_timeout_s), "--secret-stdin"]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, env=env)
        process.stdin.write(self.secret + b"\n")
        process.stdin.close()
        with self._lock:
            self.processes[executor_id] = process
        threading.Thread(target=self._watch, args=(executor_id, process),
                         name=f"watch-{executor_id}", daemon=True).start()
        log.info("started executor %s (pid %s)", executor_id, process.pid)
        return executor_id

    def _watch(self, executor_id: str, process: subprocess.Popen) -> None:
        code = process.wait()
        with self._lock:
            self.processes.pop(executor_id, None)
            stopping = self._stopping
        if not stopping:
            self.on_exit(executor_id, code)

    @property
    def max_executors(self) -> int:
        """local[N]'s N: dynamic allocation never runs more."""
        return self.num_executors

    def running(self) -> list[str]:
        """Executors whose processes run and that are not being retired."""
        with self._lock:
            return [e for e, p in self.processes.items()
                    if e not in self.retired and p.poll() is None]

    def add(self) -> str:
        """Start one more executor (dynamic allocation); its id."""
        executor_id = self._spawn()
        log.info("started executor %s (scaling up)", executor_id)
        return executor_id

    def retire(self, executor_id: str, timeout_s: float = 10.0) -> None:
        """The executor is being stopped on purpose: do not replace it when it exits, and
        kill it if it has not exited after ``timeout_s``."""
        with self._lock:
            self.retired.add(executor_id)
            process = self.processes.get(executor_id)
        if process is None:
            return

        def reap():
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("retired executor %s did not stop; killing it", executor_id)
                process.kill()

        threading.Thread(target=reap, name=f"retire-{executor_id}", daemon=True).start()

    def replace(self, executor_id: str, reason: str) -> None:
        """An executor was lost: kill what is left of it and start another (unless it
        was retired on purpose)."""
        with self._lock:
            process = self.processes.get(executor_id)
            stopping = self._stopping
            retired = executor_id in self.retired
        if process is not None and process.poll() is None and not retired:
            process.kill()
        if stopping or not self.respawn_enabled or retired:
            return
        with self._lock:
            if self.respawns_left <= 0:
                log.error("executor %s lost (%s); no replacements left", executor_id, reason)
                return
            self.respawns_left -= 1
        new_id = self._spawn()
        log.warning("executor %s lost (%s); started %s in its place", executor_id, reason, new_id)

    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self.processes.values()]

    def stop(self, timeout_s: float = 5.0) -> None:
        """Wait for executors told to stop; kill any still running after the timeout."""
        with self._lock:
            self._stopping = True
            processes = list(self.processes.values())
        deadline = time.monotonic() + timeout_s
        for process in processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("executor pid %s did not stop in time; killing it", process.pid)
                process.kill()
                process.wait(5)
