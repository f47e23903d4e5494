"""A submitted job: its script, run in an interpreter of its own.

The driver service starts each job as a separate process in its own session,
so a job that fails to parse, raises, calls ``sys.exit`` or crashes the
interpreter ends only itself. Its stdout and stderr are read as they come
and handed to the service, which streams them to the submitter.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

log = logging.getLogger("sluicegate.service.jobs")

CHUNK_BYTES = 1 << 16


class JobProcess:
    def __init__(self, job_id: str, job_dir: Path, script: Path, args: list[str],
                 env: dict[str, str], on_output: Callable[[str, str, bytes], None],
                 on_exit: Callable[[str, int], None]):
        self.job_id = job_id
        self.job_dir = job_dir
        self.script = script
        self.args = args
        self.env = env
        self.on_output = on_output
        self.on_exit = on_exit
        self.process: subprocess.Popen | None = None
        self._pumps: list[threading.Thread] = []

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(self.script), *self.args], cwd=self.job_dir, env=self.env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
        for name, pipe in (("stdout", self.process.stdout), ("stderr", self.process.stderr)):
            pump = threading.Thread(target=self._pump, args=(name, pipe),
                                    name=f"job-{self.job_id}-{name}", daemon=True)
            pump.start()
            self._pumps.append(pump)
        threading.Thread(target=self._wait, name=f"job-{self.job_id}-wait", daemon=True).start()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _pump(self, name: str, pipe) -> None:
        fd = pipe.fileno()
        while True:
            try:
                chunk = os.read(fd, CHUNK_BYTES)
            except OSError:
                break
            if not chunk:
                break
            self.on_output(self.job_id, name, chunk)
        pipe.close()

    def _wait(self) -> None:
        code = self.process.wait()
        for pump in self._pumps:  # all output reaches the submitter before the end
            pump.join(5.0)
        self.on_exit(self.job_id, code)

    def terminate(self, grace_s: float = 10.0) -> None:
        """SIGTERM the job's process group; SIGKILL it if still there after ``grace_s``."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return

        def escalate() -> None:
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                log.warning("job %s ignored SIGTERM for %.0fs; killing it", self.job_id, grace_s)
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

        threading.Thread(target=escalate, name=f"job-{self.job_id}-kill", daemon=True).start()
