"""The driver service's record of a job, and the jobs it finds on disk after a restart.

A ``JobRecord`` is what the service knows of one job: what was submitted, its
processes (``job_process``), its driver's registration, its executors, who
streams its output, and how it ended. ``recover_jobs`` rebuilds the records
of the jobs an earlier service started on the same work dir, from the files
in their directories: the ones still running come back with their processes,
the others with their exit status (``LOST`` when nothing recorded it).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from .job_keeper import OUTPUT_DIR, STREAMS
from .job_output import OutputTail, start_of_last_lines, stream_end
from .job_process import JobExit, JobProcess, read_job_file, remove_secret
from .job_supervisor import supervision_of

log = logging.getLogger("sluicegate.service")

OUTPUT_TAIL_BYTES = 1 << 20     # what an attach without offsets gets of each stream
RUNNING, FINISHED, FAILED, KILLED = "RUNNING", "FINISHED", "FAILED", "KILLED"
LOST = "LOST"                   # ended, and nothing recorded its exit status


@dataclass
class ExecutorStats:
    """One executor as its job's driver last reported it."""
    running_tasks: int = 0
    running_task_ms: int = 0   # how long its longest running task has been going
    memory_used: int = 0       # block memory
    rss_bytes: int = 0


@dataclass
class Watcher:
    """Someone who reads a job's output: ``submit`` or ``logs --follow`` (``stop_at`` is
    ``None``: until the job ends), or ``logs`` (up to where each stream ended when asked)."""
    tails: dict[str, OutputTail]
    stop_at: dict[str, int] | None = None

    def room(self, stream: str, budget: int) -> int:
        """How many bytes of ``stream`` to read at most now."""
        if self.stop_at is None:
            return budget
        return min(budget, self.stop_at[stream] - self.tails[stream].offset)


@dataclass
class JobRecord:
    """One job as the service knows it (``describe`` is what ``jobs``/``status`` show)."""
    job_id: str
    name: str
    script_name: str
    args: list[str]
    cores_wanted: int
    owner: str
    submitted_s: float          # wall clock, like ended_s
    state: str = RUNNING
    job_dir: Path | None = None   # None: adopted from its driver's registration alone
    process: JobProcess | None = None
    py_files: dict[str, bytes] = field(default_factory=dict)
    app_identity: bytes | None = None
    app_endpoint: str = ""
    last_registered_s: float = 0.0   # monotonic
    launch_after_s: float = 0.0      # monotonic: no executors launched for it before
    executors: list[str] = field(default_factory=list)  # oldest first
    executor_failures: int = 0
    # who streams its output: connection identity -> its readers
    watchers: dict[bytes, Watcher] = field(default_factory=dict)
    ended_s: float | None = None
    exit_code: int | None = None
    message: str = ""
    kill_requested: bool = False
    executor_stats: dict[str, ExecutorStats] = field(default_factory=dict)
    batches_completed: int = 0   # as its driver reports them (failed ones included)
    batches_failed: int = 0
    ui_url: str = ""             # its driver's status pages, as it reports them

    def describe(self) -> dict:
        return {"job_id": self.job_id, "name": self.name, "state": self.state, "owner": self.owner,
                "submitted": self.submitted_s, "ended": self.ended_s, "exit_code": self.exit_code,
                "cores_wanted": self.cores_wanted, "executors": list(self.executors),
                "running_tasks": sum(self.executor_stats[e].running_tasks
                                     for e in self.executors if e in self.executor_stats),
                "batches_completed": self.batches_completed,
                "batches_failed": self.batches_failed,
                "driver_endpoint": self.app_endpoint, "message": self.message,
                # a link to pages that are gone would mislead: only while it runs
                "ui_url": self.ui_url if self.state == RUNNING else "",
                # submit --supervise: how often its driver was restarted (job_supervisor)
                **supervision_of(self.job_dir)}

    def facts(self) -> dict:
        """What was submitted, as ``job.json`` keeps it for a service that starts later."""
        return {"job_id": self.job_id, "name": self.name, "script_name": self.script_name,
                "args": self.args, "cores_wanted": self.cores_wanted, "owner": self.owner,
                "submitted": self.submitted_s, "py_files": sorted(self.py_files)}

    def output_tails(self, stdout_offset: int, stderr_offset: int,
                     tail_lines: int | None = None) -> dict[str, OutputTail]:
        """Readers of its output from these offsets; -1: its last ``tail_lines`` lines
        (``None``: the last ``OUTPUT_TAIL_BYTES``; a negative number: all that is kept)."""
        if self.job_dir is None:
            return {}
        directory = self.job_dir / OUTPUT_DIR
        tails = {}
        for stream, offset in zip(STREAMS, (stdout_offset, stderr_offset)):
            if offset < 0:
                if tail_lines is None:
                    offset = max(0, stream_end(directory, stream) - OUTPUT_TAIL_BYTES)
                elif tail_lines < 0:
                    offset = 0  # (the reader moves on to the oldest byte kept)
                else:
                    offset = start_of_last_lines(directory, stream, tail_lines)
            tails[stream] = OutputTail(directory, stream, offset)
        return tails

    def without_directory(self, work_dir: Path, consequence: str) -> str:
        """Why a request about this job, adopted from before a restart without its
        directory, cannot be served (``consequence``: what this service cannot do)."""
        return (f"job {self.job_id} came back from before a restart without its directory "
                f"in {work_dir}: {consequence}")

    def output_ends(self) -> dict[str, int]:
        """Where each of its output streams ends now."""
        directory = self.job_dir / OUTPUT_DIR if self.job_dir is not None else None
        return {stream: stream_end(directory, stream) if directory else 0 for stream in STREAMS}


def end_state(job: JobRecord, ended: JobExit) -> tuple[str, int, str]:
    """The state, exit code and message of a job that ended this way."""
    code = ended.exit_code
    if code is None:
        return LOST, -1, ("its exit status is unknown: the process that keeps it ended "
                          "without recording it")
    if job.kill_requested or ended.stop_requested:
        return KILLED, code, "killed on request"
    if code == 0:
        return FINISHED, code, ""
    return FAILED, code, (f"exited with code {code}" if code > 0 else f"killed by signal {-code}")


def read_py_files(job_dir: Path, names) -> dict[str, bytes]:
    """An adopted job's extra files, for the executors started for it from now on."""
    files = {}
    for name in names if isinstance(names, list) else []:
        path = job_dir / Path(str(name)).name
        try:
            files[path.name] = path.read_bytes()
        except OSError as exc:
            log.warning("job %s: its file %s is gone (%s)", job_dir.name, path.name, exc)
    return files


def recover_jobs(jobs_dir: Path) -> list[JobRecord]:
    """The jobs whose directories are in ``jobs_dir``: running ones with their processes
    adopted, ended ones with how they ended (and their copy of the secret removed)."""
    records = []
    for job_dir in sorted(p for p in jobs_dir.iterdir() if p.is_dir()):
        facts = read_job_file(job_dir)
        job = _record_from_facts(job_dir, facts) if facts is not None else None
        if job is None:
            # Not a job this version started (or a broken record): nothing can tell whether
            # it runs, but no job from before a restart reads its copy of the secret again.
            remove_secret(job_dir)
            continue
        process = JobProcess.adopt(job.job_id, job_dir)
        ended = process.ended()
        if ended is None:
            job.process = process
            job.py_files = read_py_files(job_dir, facts.get("py_files"))
        else:
            job.state, job.exit_code, job.message = end_state(job, ended)
            job.ended_s = ended.ended_s
            remove_secret(job_dir)  # (its keeper does, unless it was killed)
        records.append(job)
    return records


def _record_from_facts(job_dir: Path, facts: dict) -> JobRecord | None:
    try:
        if facts.get("job_id") != job_dir.name:
            raise ValueError(f"it names job {facts.get('job_id')!r}")
        args = facts.get("args", [])
        if not isinstance(args, list):
            raise ValueError("its args are not a list")
        return JobRecord(job_dir.name, str(facts.get("name", job_dir.name)),
                         str(facts.get("script_name", "")), [str(a) for a in args],
                         int(facts.get("cores_wanted", 0) or 0), str(facts.get("owner", "unknown")),
                         float(facts.get("submitted", 0) or 0), job_dir=job_dir)
    except (TypeError, ValueError) as exc:
        log.warning("skipping %s: its job.json is not one this service wrote (%s)", job_dir, exc)
        return None
