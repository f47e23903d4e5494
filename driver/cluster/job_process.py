"""A submitted job's processes, as the driver service sees them.

The service starts each job's script through a keeper (``job_keeper``) in a
session of its own: the keeper runs the job's interpreter, writes its stdout
and stderr to files in the job's directory and records its exit status there.
A job that fails to parse, raises, calls ``sys.exit`` or crashes the
interpreter ends only itself, and a job does not need the service once it
runs: it outlives a crash or restart of the service.

Everything the service needs to know about a job is in its directory, so a
service that starts later finds the same facts (``adopt``): ``job.json``
(what was submitted), ``started.json`` (the keeper's and the job's pids with
their create times), ``exit.json`` (how it ended). A pid counts as the same
process only while it exists with the create time recorded at start (a reused
pid has another) and is not a zombie.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from . import job_keeper, job_supervisor
from .job_keeper import EXIT_FILE, SECRET_FILE, STARTED_FILE, write_json_atomically

log = logging.getLogger("sluicegate.service.jobs")

KEEPER = Path(job_keeper.__file__)
SUPERVISOR = Path(job_supervisor.__file__)
JOB_FILE = "job.json"
KEEPER_LOG = "keeper.log"


@dataclass(frozen=True)
class JobExit:
    """How a job ended. ``exit_code`` is ``None`` when nothing recorded it (its keeper
    was killed too); a negative code is the signal that ended it."""
    exit_code: int | None
    ended_s: float          # wall clock
    stop_requested: bool


def write_job_file(job_dir: Path, facts: dict) -> None:
    write_json_atomically(job_dir / JOB_FILE, facts)


def read_job_file(job_dir: Path) -> dict | None:
    """What was submitted (``None`` for a directory that holds no job)."""
    return _read_json(job_dir / JOB_FILE)


def remove_secret(job_dir: Path) -> None:
    try:
        os.unlink(job_dir / SECRET_FILE)
    except FileNotFoundError:
        pass


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _same_process(pid, started) -> bool:
    """Whether ``pid`` still is the process created at ``started`` and has not ended."""
    if not isinstance(pid, int) or not isinstance(started, (int, float)) or pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - started) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


class JobProcess:
    """One job's keeper and interpreter: started here, or adopted from its directory."""

    def __init__(self, job_id: str, job_dir: Path, keeper: subprocess.Popen | None = None):
        self.job_id = job_id
        self.job_dir = Path(job_dir)
        self._keeper = keeper       # our child (None when adopted)
        self._started: dict | None = None

    @classmethod
    def start(cls, job_id: str, job_dir: Path, script: Path, args: list[str], env: dict[str, str],
              segment_bytes: int, segments: int, stop_grace_s: float = 10.0,
              supervise: bool = False) -> "JobProcess":
        """Start ``python -u script args`` in ``job_dir`` under a keeper of its own
        (``supervise``: under a ``job_supervisor`` too, which restarts it when it dies)."""
        job = [sys.executable, "-u", str(script), *args]
        if supervise:
            job = [sys.executable, "-I", str(SUPERVISOR), "--job-dir", str(job_dir), "--", *job]
        command = [sys.executable, "-I", str(KEEPER), "--job-dir", str(job_dir),
                   "--segment-bytes", str(segment_bytes), "--segments", str(segments),
                   "--stop-grace-s", str(stop_grace_s), "--", *job]
        with open(job_dir / KEEPER_LOG, "ab") as keeper_log:
            keeper = subprocess.Popen(command, cwd=job_dir, env=env, stdin=subprocess.DEVNULL,
                                      stdout=keeper_log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        return cls(job_id, job_dir, keeper)

    @classmethod
    def adopt(cls, job_id: str, job_dir: Path) -> "JobProcess":
        """A job started by an earlier service."""
        return cls(job_id, job_dir)

    @property
    def pid(self) -> int | None:
        """The job's own process (its interpreter), once its keeper has started it."""
        started = self._started_facts()
        return started.get("job_pid") if started else None

    def _started_facts(self) -> dict | None:
        if self._started is None:
            self._started = _read_json(self.job_dir / STARTED_FILE)
        return self._started

    def _alive(self, role: str) -> bool:
        started = self._started_facts()
        return bool(started) and _same_process(started.get(f"{role}_pid"),
                                               started.get(f"{role}_started"))

    def _exit_file(self) -> JobExit | None:
        facts = _read_json(self.job_dir / EXIT_FILE)
        if facts is None or not isinstance(facts.get("exit_code"), int):
            return None
        ended = facts.get("ended")
        return JobExit(facts["exit_code"], float(ended) if isinstance(ended, (int, float)) else time.time(),
                       bool(facts.get("stop_requested")))

    def ended(self) -> JobExit | None:
        """How the job ended, or ``None`` while it runs."""
        if self._keeper is not None:
            # Our own child: it ends right after writing its record, and waiting for that
            # (``poll`` reaps it) leaves no zombie behind.
            if self._keeper.poll() is None:
                return None
            recorded = self._exit_file()
            if recorded is not None:
                return recorded
        else:
            recorded = self._exit_file()
            if recorded is not None:
                return recorded
            if self._alive("keeper"):
                return None
        if self._alive("job"):  # its keeper was killed, the job not (yet)
            return None
        return JobExit(None, time.time(), False)

    def terminate(self) -> bool:
        """Ask the job to stop: SIGTERM to its keeper, which passes it on to the job's
        process group and follows with SIGKILL after its grace time. Whether anything
        was there to signal."""
        if self._keeper is not None and self._keeper.poll() is None:
            target, group = self._keeper.pid, False
        elif self._alive("keeper"):
            target, group = self._started["keeper_pid"], False
        elif self._alive("job"):  # no keeper left: signal the job's group ourselves
            target, group = self._started["job_pid"], True
        else:
            return False
        try:
            if group:
                os.killpg(target, signal.SIGTERM)
            else:
                os.kill(target, signal.SIGTERM)
        except (ProcessLookupError, PermissionError) as exc:
            log.warning("job %s: could not signal pid %s: %s", self.job_id, target, exc)
            return False
        return True
