"""``sluicegate driver``: the long-running service of a standalone cluster.

It accepts workers (and notices when they go), runs each submitted job as a
separate process with its own driver, gives each job executors on the
workers' cores (``allocation``), streams each job's output to whoever
submitted it, and answers ``jobs``, ``kill`` and ``status``.

Executors talk to their job's driver directly; the service only decides
where they run and tells a job when one of its executors is gone.
"""
from __future__ import annotations

import collections
import getpass
import itertools
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from sluicegate.common.config import parse_size_bytes
from sluicegate.common.protocol.cluster import (
    ApplicationRegistered, ApplicationStatus, AttachJob, ClusterStatus, ClusterStatusRequest,
    CommandResult, ExecutorExited, ExecutorRemoved, JobAccepted, JobEnded, JobOutput, JobRejected,
    KillExecutor, KillJob, LaunchExecutor, ListJobs, Ping, RegisterApplication, RegisterWorker,
    ServiceHeartbeat, SubmitJob, WorkerHeartbeat, WorkerRefused, WorkerRegistered)
from sluicegate.common.transport import Transport

from .allocation import JobCores, WorkerCores, allocate
from .event_loop import RouterLoop
from .job_process import JobProcess

log = logging.getLogger("sluicegate.service")

OUTPUT_TAIL_BYTES = 1 << 20
KEEP_FINISHED_JOBS = 200
MAX_EXECUTOR_FAILURES = 20
RUNNING, FINISHED, FAILED, KILLED = "RUNNING", "FINISHED", "FAILED", "KILLED"


@dataclass
class ExecutorStats:
    """One executor as its job's driver last reported it."""
    running_tasks: int = 0
    running_task_ms: int = 0   # how long its longest running task has been going
    memory_used: int = 0       # block memory
    rss_bytes: int = 0


@dataclass
class WorkerRecord:
    worker_id: str
    identity: bytes
    host: str
    cores: int
    memory_bytes: int
    pid: int
    registered_s: float
    last_seen_s: float
    executors: dict[str, str] = field(default_factory=dict)  # executor id -> job id
    alive: bool = True
    executor_slots: int = 0     # executors it can run: its cores, and its memory allows

    def describe(self, now: float, stats: dict[str, ExecutorStats]) -> dict:
        """``stats``: what the jobs' drivers report of the executors (by executor id)."""
        mine = [stats[e] for e in self.executors if e in stats]
        return {"worker_id": self.worker_id, "host": self.host, "cores": self.cores,
                "cores_used": len(self.executors), "executor_slots": self.executor_slots,
                "running_tasks": sum(s.running_tasks for s in mine),
                "running_task_ms": max((s.running_task_ms for s in mine), default=0),
                "memory_bytes": self.memory_bytes,
                "memory_used": sum(s.memory_used for s in mine),
                "rss_bytes": sum(s.rss_bytes for s in mine),
                "alive": self.alive, "last_heartbeat_s_ago": round(now - self.last_seen_s, 1),
                "executors": sorted(self.executors)}


@dataclass
class JobRecord:
    job_id: str
    name: str
    script_name: str
    args: list[str]
    cores_wanted: int
    owner: str
    submitted_s: float          # wall clock, like ended_s
    state: str = RUNNING
    process: JobProcess | None = None
    py_files: dict[str, bytes] = field(default_factory=dict)
    app_identity: bytes | None = None
    app_endpoint: str = ""
    executors: list[str] = field(default_factory=list)  # oldest first
    executor_failures: int = 0
    submitters: set[bytes] = field(default_factory=set)
    output: collections.deque = field(default_factory=collections.deque)
    output_bytes: int = 0
    ended_s: float | None = None
    exit_code: int | None = None
    message: str = ""
    kill_requested: bool = False
    executor_stats: dict[str, ExecutorStats] = field(default_factory=dict)
    batches_completed: int = 0   # as its driver reports them (failed ones included)
    batches_failed: int = 0

    def describe(self) -> dict:
        return {"job_id": self.job_id, "name": self.name, "state": self.state, "owner": self.owner,
                "submitted": self.submitted_s, "ended": self.ended_s, "exit_code": self.exit_code,
                "cores_wanted": self.cores_wanted, "executors": list(self.executors),
                "running_tasks": sum(self.executor_stats[e].running_tasks
                                     for e in self.executors if e in self.executor_stats),
                "batches_completed": self.batches_completed,
                "batches_failed": self.batches_failed,
                "driver_endpoint": self.app_endpoint, "message": self.message}


class ClusterService(RouterLoop):
    log = log

    def __init__(self, transport: Transport, host: str, port: int, work_dir: Path,
                 advertise_host: str, heartbeat_interval_s: float = 1.0,
                 heartbeat_timeout_s: float = 10.0, executor_memory: str = "512m"):
        super().__init__("sluicegate-service", transport, host, port, heartbeat_interval_s)
        self.transport = transport
        self.host = host
        self.advertise_host = advertise_host
        self.work_dir = Path(work_dir)
        self.heartbeat_interval_s = heartbeat_interval_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.executor_memory = executor_memory
        self.executor_memory_bytes = max(1, parse_size_bytes(executor_memory))
        self.workers: dict[str, WorkerRecord] = {}
        self.jobs: dict[str, JobRecord] = {}
        self._job_numbers = itertools.count(1)
        self._executor_numbers = itertools.count(1)
        (self.work_dir / "jobs").mkdir(parents=True, exist_ok=True)

    @property
    def master_url(self) -> str:
        return f"sluicegate://{self.advertise_host}:{self.port}"

    # -- dispatch -------------------------------------------------------------------
    def handle(self, identity: bytes, message, now: float) -> None:
        handler = self._handlers.get(type(message))
        if handler is None:
            log.warning("unexpected %s from %r", type(message).__name__, identity)
            return
        handler(self, identity, message, now)

    # -- workers ---------------------------------------------------------------------
    def _register_worker(self, identity: bytes, message: RegisterWorker, now: float) -> None:
        if identity != message.worker_id.encode():
            self.send(identity, WorkerRefused("the worker id must be the connection identity"))
            return
        known = self.workers.get(message.worker_id)
        record = WorkerRecord(message.worker_id, identity, message.host, max(1, message.cores),
                              message.memory_bytes, message.pid, now, now)
        record.executor_slots = min(record.cores,
                                    max(0, message.memory_bytes) // self.executor_memory_bytes)
        for job_id, executor_id in message.executors:
            record.executors[executor_id] = job_id
        if known is not None and known.alive:
            log.info("worker %s registered again", message.worker_id)
        self.workers[message.worker_id] = record
        self.send(identity, WorkerRegistered(message.worker_id, self.heartbeat_interval_s,
                                             self.heartbeat_timeout_s))
        log.info("worker %s registered: %d cores, %s MB on %s", message.worker_id, message.cores,
                 message.memory_bytes >> 20, message.host)
        if record.executor_slots < record.cores:
            log.warning("worker %s runs at most %d executors: its %d MB hold %d of %s each "
                        "(--executor-memory)", message.worker_id, record.executor_slots,
                        message.memory_bytes >> 20, record.executor_slots, self.executor_memory)
        self._rebalance()

    def _worker_heartbeat(self, identity: bytes, message: WorkerHeartbeat, now: float) -> None:
        worker = self.workers.get(message.worker_id)
        if worker is None or not worker.alive:
            # A worker the service does not know (after a restart): ask it to register.
            self.send(identity, WorkerRefused("unknown worker: register again"))
            return
        worker.last_seen_s = now

    def _executor_exited(self, identity: bytes, message: ExecutorExited, now: float) -> None:
        worker = self.workers.get(message.worker_id)
        if worker is not None:
            worker.executors.pop(message.executor_id, None)
            worker.last_seen_s = now
        job = self.jobs.get(message.job_id)
        if job is not None and message.executor_id in job.executors:
            job.executors.remove(message.executor_id)
            if job.state == RUNNING and message.exit_code != 0:
                job.executor_failures += 1
            self._tell_app(job, ExecutorRemoved(
                message.executor_id, f"its process exited with code {message.exit_code}"))
        self._rebalance()

    def _worker_lost(self, worker: WorkerRecord, reason: str) -> None:
        if not worker.alive:
            return
        worker.alive = False
        log.warning("worker %s lost: %s", worker.worker_id, reason)
        for executor_id, job_id in list(worker.executors.items()):
            job = self.jobs.get(job_id)
            if job is not None and executor_id in job.executors:
                job.executors.remove(executor_id)
                self._tell_app(job, ExecutorRemoved(executor_id, f"worker {worker.worker_id} lost"))
        worker.executors.clear()
        self._rebalance()

    def on_unreachable(self, identity: bytes) -> None:
        worker = self.workers.get(identity.decode(errors="replace"))
        if worker is not None:
            self._worker_lost(worker, "its connection is gone")

    def on_timer(self, now: float) -> None:
        beat = ServiceHeartbeat(int(time.time() * 1000))
        for worker in list(self.workers.values()):
            if not worker.alive:
                continue
            if now - worker.last_seen_s > self.heartbeat_timeout_s:
                self._worker_lost(worker, f"no heartbeat for {self.heartbeat_timeout_s:.0f}s")
            else:
                self.send(worker.identity, beat)

    # -- allocation -------------------------------------------------------------------
    def _rebalance(self) -> None:
        workers = [WorkerCores(w.worker_id, w.executor_slots, len(w.executors))
                   for w in self.workers.values() if w.alive]
        jobs = [JobCores(j.job_id, j.cores_wanted, list(j.executors))
                for j in self.jobs.values()
                if j.state == RUNNING and j.app_identity is not None
                and j.executor_failures < MAX_EXECUTOR_FAILURES]
        decision = allocate(workers, jobs)
        for job_id, worker_id in decision.launches:
            self._launch_executor(self.jobs[job_id], self.workers[worker_id])
        for job_id, executor_id in decision.releases:
            self._kill_executor(self.jobs[job_id], executor_id, "making room for another job")

    def _launch_executor(self, job: JobRecord, worker: WorkerRecord) -> None:
        executor_id = f"{job.job_id}-exec-{next(self._executor_numbers)}"
        names = sorted(job.py_files)
        message = LaunchExecutor(job.job_id, executor_id, job.app_endpoint, self.executor_memory,
                                 names, payload=[job.py_files[n] for n in names])
        if self.send(worker.identity, message):
            worker.executors[executor_id] = job.job_id
            job.executors.append(executor_id)
            log.info("job %s: executor %s on worker %s", job.job_id, executor_id, worker.worker_id)

    def _kill_executor(self, job: JobRecord, executor_id: str, reason: str) -> None:
        for worker in self.workers.values():
            if worker.executors.pop(executor_id, None) is not None:
                self.send(worker.identity, KillExecutor(job.job_id, executor_id, reason))
        if executor_id in job.executors:
            job.executors.remove(executor_id)
            self._tell_app(job, ExecutorRemoved(executor_id, reason))

    def _tell_app(self, job: JobRecord, message) -> None:
        if job.app_identity is not None:
            self.send(job.app_identity, message)

    # -- applications (a job's driver) ---------------------------------------------------
    def _register_application(self, identity: bytes, message: RegisterApplication, now: float) -> None:
        job = self.jobs.get(message.job_id)
        if job is None:  # a job from before a service restart: adopt it
            job = JobRecord(message.job_id, message.app_name, "", [], message.cores_wanted,
                            "unknown", time.time())
            self.jobs[job.job_id] = job
        first = job.app_identity is None
        job.app_identity = identity
        job.app_endpoint = message.driver_endpoint
        if message.cores_wanted:
            job.cores_wanted = message.cores_wanted if not job.cores_wanted else \
                min(job.cores_wanted, message.cores_wanted)
        before = len(job.executors)
        if first:
            for worker in self.workers.values():  # executors that survived a service restart
                job.executors.extend(e for e, j in worker.executors.items()
                                     if j == job.job_id and e not in job.executors)
            self._rebalance()
            log.info("job %s: driver at %s", job.job_id, message.driver_endpoint)
        self.send(identity, ApplicationRegistered(job.job_id, len(job.executors) - before
                                                  if first else 0))

    def _application_status(self, identity: bytes, message: ApplicationStatus, now: float) -> None:
        job = self.jobs.get(message.job_id)
        if job is None or job.app_identity != identity or job.state != RUNNING:
            return  # only a job's own driver reports on it
        stats = {}
        for row in message.executors[:10_000]:
            if (isinstance(row, list) and len(row) == 5 and isinstance(row[0], str)
                    and row[0] in job.executors
                    and all(isinstance(v, int) and v >= 0 for v in row[1:])):
                stats[row[0]] = ExecutorStats(*row[1:])
        job.executor_stats = stats
        job.batches_completed = max(0, message.batches_completed)
        job.batches_failed = max(0, message.batches_failed)

    def executor_stats(self) -> dict[str, ExecutorStats]:
        """Every running job's executors, as their drivers last reported them."""
        stats: dict[str, ExecutorStats] = {}
        for job in self.jobs.values():
            if job.state == RUNNING:
                stats.update(job.executor_stats)
        return stats

    def describe_workers(self, now: float) -> list[dict]:
        stats = self.executor_stats()
        return [w.describe(now, stats) for w in self.workers.values()]

    # -- jobs ---------------------------------------------------------------------------------
    def _submit(self, identity: bytes, message: SubmitJob, now: float) -> None:
        if not message.payload or len(message.payload) != 1 + len(message.py_file_names):
            self.send(identity, JobRejected("the script and its files did not all arrive"))
            return
        job_id = self._new_job_id()
        job_dir = self.work_dir / "jobs" / job_id
        try:
            job_dir.mkdir(parents=True)
            script = job_dir / Path(message.script_name).name
            script.write_bytes(bytes(message.payload[0]))
            py_files = {}
            for name, data in zip(message.py_file_names, message.payload[1:]):
                py_files[Path(name).name] = bytes(data)
                (job_dir / Path(name).name).write_bytes(bytes(data))
            secret_file = job_dir / ".secret"
            fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(self.transport.secret or b"")
        except OSError as exc:
            shutil.rmtree(job_dir, ignore_errors=True)
            self.send(identity, JobRejected(f"could not store the job: {exc}"))
            return
        job = JobRecord(job_id, message.name or script.stem, script.name, list(message.args),
                        max(0, message.cores), _owner(), time.time(), py_files=py_files)
        if not message.detach:
            job.submitters.add(identity)
        env = dict(os.environ)
        python_path = [str(job_dir)] + [str(job_dir / n) for n in py_files if n.endswith((".zip", ".egg"))]
        env.update({
            "SLUICEGATE_MASTER": self.master_url,
            "SLUICEGATE_JOB_ID": job_id,
            "SLUICEGATE_APP_NAME": job.name,
            "SLUICEGATE_CORES": str(job.cores_wanted),
            "SLUICEGATE_SECRET_FILE": str(secret_file),
            "SLUICEGATE_BIND_HOST": self.host if self.host not in ("0.0.0.0", "*", "") else self.advertise_host,
            "PYTHONPATH": os.pathsep.join(python_path + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "PYTHONUNBUFFERED": "1",
        })
        if message.quiet:
            env["SLUICEGATE_QUIET"] = "1"
        job.process = JobProcess(job_id, job_dir, script, job.args, env,
                                 on_output=lambda j, s, d: self.post(lambda: self._job_output(j, s, d)),
                                 on_exit=lambda j, c: self.post(lambda: self._job_exited(j, c)))
        self.jobs[job_id] = job
        try:
            job.process.start()
        except OSError as exc:
            self._finish_job(job, FAILED, -1, f"could not start the job: {exc}")
            self.send(identity, JobRejected(job.message))
            return
        self.send(identity, JobAccepted(job_id))
        log.info("job %s (%s) started: pid %s", job_id, job.name, job.process.pid)
        self._forget_old_jobs()

    def _new_job_id(self) -> str:
        """The next free job id. After a restart on the same work dir the old jobs' dirs
        are still there, and jobs that outlived the old service may register again."""
        while True:
            job_id = f"job-{next(self._job_numbers):04d}"
            if job_id not in self.jobs and not (self.work_dir / "jobs" / job_id).exists():
                return job_id

    def _attach(self, identity: bytes, message: AttachJob, now: float) -> None:
        job = self.jobs.get(message.job_id)
        if job is None:
            self.send(identity, CommandResult(False, f"no job {message.job_id}"))
            return
        for stream, data in job.output:
            self.send(identity, JobOutput(job.job_id, stream, payload=[data]))
        if job.state == RUNNING:
            job.submitters.add(identity)
        else:
            self.send(identity, JobEnded(job.job_id, job.state, job.exit_code or 0, job.message))

    def _job_output(self, job_id: str, stream: str, data: bytes) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            return
        job.output.append((stream, data))
        job.output_bytes += len(data)
        while job.output_bytes > OUTPUT_TAIL_BYTES and len(job.output) > 1:
            job.output_bytes -= len(job.output.popleft()[1])
        for identity in list(job.submitters):
            if not self.send(identity, JobOutput(job_id, stream, payload=[data])):
                job.submitters.discard(identity)

    def _job_exited(self, job_id: str, code: int) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            return
        if job.kill_requested:
            self._finish_job(job, KILLED, code, "killed on request")
        elif code == 0:
            self._finish_job(job, FINISHED, code, "")
        else:
            reason = f"exited with code {code}" if code > 0 else f"killed by signal {-code}"
            self._finish_job(job, FAILED, code, reason)

    def _finish_job(self, job: JobRecord, state: str, code: int, message: str) -> None:
        job.state, job.exit_code, job.message, job.ended_s = state, code, message, time.time()
        for executor_id in list(job.executors):
            self._kill_executor(job, executor_id, f"job {job.job_id} ended")
        job.app_identity = None
        job.executor_stats = {}
        for identity in job.submitters:
            self.send(identity, JobEnded(job.job_id, state, code, message))
        job.submitters.clear()
        log.info("job %s %s%s", job.job_id, state.lower(), f": {message}" if message else "")
        self._rebalance()

    def _kill(self, identity: bytes, message: KillJob, now: float) -> None:
        job = self.jobs.get(message.job_id)
        if job is None:
            self.send(identity, CommandResult(False, f"no job {message.job_id}"))
            return
        if job.state != RUNNING:
            self.send(identity, CommandResult(False, f"job {job.job_id} already {job.state.lower()}"))
            return
        job.kill_requested = True
        if job.process is not None:
            job.process.terminate()
        else:
            self._finish_job(job, KILLED, -15, "killed on request")
        self.send(identity, CommandResult(True, f"killing job {job.job_id}"))

    def _list_jobs(self, identity: bytes, message: ListJobs, now: float) -> None:
        self.send(identity, ClusterStatus([], [j.describe() for j in self.jobs.values()]))

    def _status(self, identity: bytes, message: ClusterStatusRequest, now: float) -> None:
        self.send(identity, ClusterStatus(self.describe_workers(now),
                                          [j.describe() for j in self.jobs.values()]))

    def _ping(self, identity: bytes, message: Ping, now: float) -> None:
        self.send(identity, CommandResult(True, f"pong {message.nonce}"))

    def _forget_old_jobs(self) -> None:
        ended = [j for j in self.jobs.values() if j.state != RUNNING]
        for job in sorted(ended, key=lambda j: j.ended_s or 0)[:-KEEP_FINISHED_JOBS]:
            del self.jobs[job.job_id]

    def on_shutdown(self) -> None:
        for job in self.jobs.values():
            if job.state == RUNNING and job.process is not None:
                job.kill_requested = True
                job.process.terminate(grace_s=5.0)
        for worker in self.workers.values():
            for executor_id, job_id in list(worker.executors.items()):
                self.send(worker.identity, KillExecutor(job_id, executor_id, "the service is stopping"))

    _handlers = {
        RegisterWorker: _register_worker,
        WorkerHeartbeat: _worker_heartbeat,
        ExecutorExited: _executor_exited,
        RegisterApplication: _register_application,
        ApplicationStatus: _application_status,
        SubmitJob: _submit,
        AttachJob: _attach,
        KillJob: _kill,
        ListJobs: _list_jobs,
        ClusterStatusRequest: _status,
        Ping: _ping,
    }


def _owner() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not an error
        return "unknown"
