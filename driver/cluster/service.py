"""``sluicegate driver``: the long-running service of a standalone cluster.

It accepts workers (and notices when they go), runs each submitted job as a
separate process with its own driver, gives each job executors on the
workers' cores (``allocation``), streams each job's output to whoever
submitted it, and answers ``jobs``, ``kill`` and ``status``.

Executors talk to their job's driver directly; the service only decides
where they run and tells a job when one of its executors is gone.

Jobs outlive the service. A job's output goes to files in its directory and
its exit status is recorded there (``job_process``), so a service started
again on the same work dir adopts the jobs that still run, learns how the
others ended, and takes the executors that workers report when they register
again. A submitter re-attaches with the output offsets it has, so it gets the
rest of the output once, and the job's end; one whose job this service does
not know is told so (``JobUnknown``). ``sluicegate logs`` reads the same files,
and the executors' logs from the workers (``log_relay``).

A job's driver reports where its status pages are; the service tells the
job's ``submit`` (which prints it), and lists and links it while the job runs.
A worker stopped on purpose says goodbye and is listed as stopped, one that
went silent as lost; either leaves the listing after ``worker_retention_s``.
"""
from __future__ import annotations

import fcntl
import itertools
import logging
import os
import shutil
import time
from pathlib import Path

from sluicegate.common.config import parse_size_bytes
from sluicegate.common.constants import (
    ADOPTION_GRACE_S, APP_SILENCE_S, WORKER_HEARTBEAT_INTERVAL_S, WORKER_HEARTBEAT_TIMEOUT_S)
from sluicegate.common.protocol.cluster import (
    ApplicationRegistered, ApplicationStatus, ClusterStatus, ClusterStatusRequest,
    CommandResult, ExecutorRemoved, JobStatusPages, KillExecutor, KillJob, LaunchExecutor,
    ListJobs, Ping, RegisterApplication)
from sluicegate.common.transport import Transport

from .allocation import JobCores, WorkerCores, allocate
from .elastic import ElasticJobs
from .event_loop import RouterLoop
from .job_intake import OUTPUT_SEGMENTS, JobIntake
from .job_keeper import OUTPUT_DIR, write_json_atomically
from .job_process import JobExit, remove_secret
from .job_records import LOST, RUNNING, ExecutorStats, JobRecord, end_state, recover_jobs
from .log_relay import LogRequests
from .loop_events import DescribeJobs, DescribeWorkers, SetJobCores
from .sql_relay import SqlRelay
from .worker_roster import DEFAULT_WORKER_RETENTION_S, WorkerRecord, WorkerRoster

log = logging.getLogger("sluicegate.service")

OUTPUT_POLL_S = 0.05            # how often the job's output files are read for submitters
DEFAULT_JOB_OUTPUT_BYTES = 64 << 20   # per stream; kept in OUTPUT_SEGMENTS files
KEEP_FINISHED_JOBS = 200
MAX_EXECUTOR_FAILURES = 20
EXECUTOR_COUNTER_FILE = "executor-counter"
MAX_UI_URL = 512


class ClusterService(WorkerRoster, JobIntake, LogRequests, ElasticJobs, SqlRelay, RouterLoop):
    """The service's state, owned by its loop thread: workers (``worker_roster``), jobs
    (``job_intake``, and their ends here), allocation (``allocation``, ``elastic``), and
    the ``logs`` and ``sql`` relays. Other threads (the status pages) ask it through
    loop events."""

    log = log

    def __init__(self, transport: Transport, host: str, port: int, work_dir: Path,
                 advertise_host: str,
                 heartbeat_interval_s: float = WORKER_HEARTBEAT_INTERVAL_S,
                 heartbeat_timeout_s: float = WORKER_HEARTBEAT_TIMEOUT_S,
                 executor_memory: str = "512m",
                 job_output_bytes: int = DEFAULT_JOB_OUTPUT_BYTES, keep_jobs: bool = False,
                 worker_retention_s: float = DEFAULT_WORKER_RETENTION_S):
        """``job_output_bytes``: how much of each output stream of a job its directory keeps.
        ``keep_jobs``: a stopping service leaves running jobs running (the next one adopts
        them) instead of stopping them. ``worker_retention_s``: how long a lost or stopped
        worker stays listed."""
        self.work_dir = Path(work_dir)
        (self.work_dir / "jobs").mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock_work_dir(self.work_dir)
        try:
            super().__init__("sluicegate-service", transport, host, port, heartbeat_interval_s)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self.transport = transport
        self.host = host
        self.advertise_host = advertise_host
        self.heartbeat_interval_s = heartbeat_interval_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.executor_memory = executor_memory
        self.executor_memory_bytes = max(1, parse_size_bytes(executor_memory))
        self.segment_bytes = max(1 << 16, job_output_bytes // OUTPUT_SEGMENTS)
        self.keep_jobs = keep_jobs
        self.worker_retention_s = worker_retention_s
        self.workers: dict[str, WorkerRecord] = {}
        self._init_log_requests()
        self._init_elastic()  # rebalance and dynamic allocation (elastic.py)
        self.jobs: dict[str, JobRecord] = {}
        self._job_numbers = itertools.count(1)
        self._next_output_s = 0.0
        self._rebalance_at: float | None = None
        self._executor_number = self._read_executor_counter()
        self.events.on({DescribeWorkers: self._describe_workers, DescribeJobs: self._describe_jobs,
                        SetJobCores: self._set_job_cores})
        self._recover_jobs()

    @property
    def master_url(self) -> str:
        return f"sluicegate://{self.advertise_host}:{self.port}"

    # -- for other threads ----------------------------------------------------------
    def describe_workers_now(self, timeout_s: float = 5.0) -> list[dict]:
        """The workers, as ``describe_workers`` lists them (asked of the loop thread)."""
        return self.call(DescribeWorkers(), timeout_s)

    def describe_jobs_now(self, timeout_s: float = 5.0) -> list[dict]:
        """The jobs, as ``sluicegate jobs`` lists them (asked of the loop thread)."""
        return self.call(DescribeJobs(), timeout_s)

    def request_rebalance(self, job_id: str, cores: int,
                          timeout_s: float = 10.0) -> tuple[bool, str]:
        """``rebalance_job`` on the loop thread: whether it was done, and what to say."""
        return self.call(SetJobCores(job_id, cores), timeout_s)

    def _describe_workers(self, event: DescribeWorkers, now: float) -> list[dict]:
        return self.describe_workers(now)

    def _describe_jobs(self, event: DescribeJobs, now: float) -> list[dict]:
        return [job.describe() for job in self.jobs.values()]

    def _set_job_cores(self, event: SetJobCores, now: float) -> tuple[bool, str]:
        return self.rebalance_job(event.job_id, event.cores)

    # -- dispatch -------------------------------------------------------------------
    def handle(self, identity: bytes, message, now: float) -> None:
        handler = self._handlers.get(type(message))
        if handler is None:
            log.warning("unexpected %s from %r", type(message).__name__, identity)
            return
        handler(self, identity, message, now)

    def on_timer(self, now: float) -> None:
        self._watch_workers(now)
        self._end_log_requests(now)
        self._expire_sql_queries(now)
        for job in list(self.jobs.values()):
            self._check_job(job, now)
        if self._rebalance_at is not None and now >= self._rebalance_at:
            self._rebalance_at = None
            self._rebalance()

    def after_pass(self, now: float) -> None:
        if now < self._next_output_s:
            return
        self._next_output_s = now + OUTPUT_POLL_S
        for job in list(self.jobs.values()):
            if job.watchers:
                self._feed_watchers(job)

    # -- allocation -------------------------------------------------------------------
    def _rebalance(self) -> None:
        now = time.monotonic()
        workers = [WorkerCores(w.worker_id, w.executor_slots, len(w.executors))
                   for w in self.workers.values() if w.alive]
        # Only a job whose driver is there (it registered lately) gets executors, and an
        # adopted one only once the workers had time to report the executors it has.
        jobs = [JobCores(j.job_id, self._job_cap(j), list(j.executors))
                for j in self.jobs.values()
                if j.state == RUNNING and j.app_identity is not None
                and now - j.last_registered_s <= APP_SILENCE_S and now >= j.launch_after_s
                and j.executor_failures < MAX_EXECUTOR_FAILURES]
        decision = allocate(workers, jobs)
        for job_id, worker_id in decision.launches:
            self._launch_executor(self.jobs[job_id], self.workers[worker_id])
        for job_id, executor_id in decision.releases:
            self._kill_executor(self.jobs[job_id], executor_id, "making room for another job")
        self._enforce_caps()

    def _launch_executor(self, job: JobRecord, worker: WorkerRecord) -> None:
        executor_id = f"{job.job_id}-exec-{self._next_executor_number()}"
        names = sorted(job.py_files)
        message = LaunchExecutor(job_id=job.job_id, executor_id=executor_id,
                                 driver_endpoint=job.app_endpoint,
                                 memory_limit=self.executor_memory, py_file_names=names,
                                 payload=[job.py_files[n] for n in names])
        if self.send(worker.identity, message):
            worker.executors[executor_id] = job.job_id
            job.executors.append(executor_id)
            log.info("job %s: executor %s on worker %s", job.job_id, executor_id, worker.worker_id)

    def _read_executor_counter(self) -> int:
        try:
            return max(0, int((self.work_dir / EXECUTOR_COUNTER_FILE).read_text()))
        except (OSError, ValueError):
            return 0

    def _next_executor_number(self) -> int:
        """Executor ids stay unique across restarts on one work dir: a job's driver refuses an
        id it has seen (and two live executors under one id would be mistaken for one)."""
        self._executor_number += 1
        try:
            write_json_atomically(self.work_dir / EXECUTOR_COUNTER_FILE, self._executor_number)
        except OSError as exc:
            log.warning("could not record the executor counter: %s", exc)
        return self._executor_number

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
        if job is None:
            # A job from before a service restart whose directory this service does not
            # have (another work dir): known from its driver alone, for as long as it registers.
            job = JobRecord(message.job_id, message.app_name, "", [], message.cores_wanted,
                            "unknown", time.time(), launch_after_s=now + ADOPTION_GRACE_S)
            self._schedule_rebalance(job.launch_after_s)
            self.jobs[job.job_id] = job
            log.info("job %s adopted from its driver's registration", job.job_id)
        elif job.state == LOST:  # it was thought gone, but its driver speaks: it runs
            job.state, job.exit_code, job.message, job.ended_s = RUNNING, None, "", None
        elif job.state != RUNNING:
            return  # a registration sent before the job ended
        job.last_registered_s = now
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
        url = message.ui_url
        if url != job.ui_url and (url == "" or (len(url) <= MAX_UI_URL and url.isprintable()
                                                and url.startswith(("http://", "https://")))):
            job.ui_url = url
            if url:
                log.info("job %s: status pages at %s", job.job_id, url)
                for watcher_identity, watcher in list(job.watchers.items()):
                    if watcher.stop_at is None:
                        self.send(watcher_identity, JobStatusPages(job.job_id, job.name, url))

    # -- jobs ---------------------------------------------------------------------------------
    def _check_job(self, job: JobRecord, now: float) -> None:
        """Has a running job ended? Its keeper's record says so (or the absence of its
        processes); a job known from its driver alone has ended once that goes silent."""
        if job.state != RUNNING:
            return
        if job.process is not None:
            ended = job.process.ended()
            if ended is not None:
                self._job_ended(job, ended)
                return
        elif now - job.last_registered_s > APP_SILENCE_S:
            self._finish_job(job, LOST, -1, "its driver stopped registering, and this service "
                                            "has no record of its process: its exit status is unknown")
            return
        if job.app_identity is not None and now - job.last_registered_s > APP_SILENCE_S:
            log.warning("job %s: its driver has not registered for %.0fs; no executors for it "
                        "until it does", job.job_id, now - job.last_registered_s)
            job.app_identity = None

    def _job_ended(self, job: JobRecord, ended: JobExit) -> None:
        self._finish_job(job, *end_state(job, ended), ended.ended_s)

    def _finish_job(self, job: JobRecord, state: str, code: int, message: str,
                    ended_s: float | None = None) -> None:
        job.state, job.exit_code, job.message = state, code, message
        job.ended_s = ended_s or time.time()
        for executor_id in list(job.executors):
            self._kill_executor(job, executor_id, f"job {job.job_id} ended")
        job.app_identity = None
        job.executor_stats = {}
        if job.job_dir is not None:
            remove_secret(job.job_dir)  # (its keeper does too, unless it was killed)
        log.info("job %s %s%s", job.job_id, state.lower(), f": {message}" if message else "")
        self._feed_watchers(job)
        self._rebalance()

    def _kill(self, identity: bytes, message: KillJob, now: float) -> None:
        job = self.jobs.get(message.job_id)
        if job is None:
            self.send(identity, CommandResult(False, f"no job {message.job_id}"))
            return
        if job.state != RUNNING:
            self.send(identity, CommandResult(False, f"job {job.job_id} already {job.state.lower()}"))
            return
        if job.process is None:
            self.send(identity, CommandResult(False, job.without_directory(
                self.work_dir, "this service cannot signal it")))
            return
        job.kill_requested = True
        job.process.terminate()  # if nothing was there, the next check records its end
        self.send(identity, CommandResult(True, f"killing job {job.job_id}"))

    def _list_jobs(self, identity: bytes, message: ListJobs, now: float) -> None:
        self.send(identity, ClusterStatus([], [j.describe() for j in self.jobs.values()]))

    def _status(self, identity: bytes, message: ClusterStatusRequest, now: float) -> None:
        self.send(identity, ClusterStatus(self.describe_workers(now),
                                          [j.describe() for j in self.jobs.values()]))

    def _ping(self, identity: bytes, message: Ping, now: float) -> None:
        self.send(identity, CommandResult(True, f"pong {message.nonce}"))

    def _forget_old_jobs(self) -> None:
        """Keep the newest ``KEEP_FINISHED_JOBS`` ended jobs; the output files of older ones
        go (so that the disk holds at most that many jobs' capped output), the rest of
        their directories stays."""
        ended = [j for j in self.jobs.values() if j.state != RUNNING]
        for job in sorted(ended, key=lambda j: j.ended_s or 0)[:-KEEP_FINISHED_JOBS]:
            del self.jobs[job.job_id]
            if job.job_dir is not None:
                shutil.rmtree(job.job_dir / OUTPUT_DIR, ignore_errors=True)

    def _schedule_rebalance(self, at_s: float) -> None:
        self._rebalance_at = at_s if self._rebalance_at is None else min(self._rebalance_at, at_s)

    # -- a restart ---------------------------------------------------------------------------
    def _recover_jobs(self) -> None:
        """The jobs an earlier service on this work dir started: the ones still running are
        adopted (their executors come back with their workers' registrations), the others
        are listed as they ended."""
        adopt_until = time.monotonic() + ADOPTION_GRACE_S
        for job in recover_jobs(self.work_dir / "jobs"):
            if job.state == RUNNING:
                job.launch_after_s = adopt_until
                # Its driver registers again within seconds; until then it is not silent.
                job.last_registered_s = time.monotonic()
                log.info("job %s (%s) is still running (pid %s): adopted", job.job_id, job.name,
                         job.process.pid)
            self.jobs[job.job_id] = job
        self._forget_old_jobs()
        if any(j.state == RUNNING for j in self.jobs.values()):
            self._schedule_rebalance(adopt_until)

    def on_shutdown(self) -> None:
        if self.keep_jobs:
            running = [j.job_id for j in self.jobs.values() if j.state == RUNNING]
            if running:
                log.info("leaving %d running jobs to the next service: %s", len(running),
                         ", ".join(running))
            return
        for job in self.jobs.values():
            if job.state == RUNNING and job.process is not None:
                job.kill_requested = True
                job.process.terminate()
        for worker in self.workers.values():
            for executor_id, job_id in list(worker.executors.items()):
                self.send(worker.identity, KillExecutor(job_id, executor_id, "the service is stopping"))

    def run(self) -> None:
        try:
            super().run()
        finally:
            os.close(self._lock_fd)  # another service may use the work dir now

    _handlers = {
        RegisterApplication: _register_application,
        ApplicationStatus: _application_status,
        KillJob: _kill,
        ListJobs: _list_jobs,
        ClusterStatusRequest: _status,
        Ping: _ping,
        **WorkerRoster.worker_handlers,
        **JobIntake.intake_handlers,
        **LogRequests.log_handlers,
        **ElasticJobs.elastic_handlers,
        **SqlRelay.sql_handlers,
    }


class WorkDirInUse(RuntimeError):
    """Another driver service runs on this work dir."""


def _lock_work_dir(work_dir: Path) -> int:
    """Hold the work dir for this service alone: two services adopting the same jobs would
    fight over their executors. The lock goes with the process (a SIGKILL included)."""
    fd = os.open(work_dir / "service.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise WorkDirInUse(f"another sluicegate driver uses the work dir {work_dir}: give this "
                           "one another --work-dir (or port)") from None
    return fd


