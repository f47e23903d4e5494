"""Messages of a standalone cluster: the driver service, its workers, its jobs,
and the command line.

Workers connect to the service, register their cores and start executor
processes when asked; each submitted job runs as its own process with its own
driver, which registers with the service to get executors; ``sluicegate
submit``/``jobs``/``kill``/``status`` talk to the service.
"""
from __future__ import annotations

from dataclasses import field

from .records import WireRecord, wire_record

# -- workers -------------------------------------------------------------------


@wire_record(60)
class RegisterWorker(WireRecord):
    worker_id: str
    host: str
    cores: int
    memory_bytes: int
    pid: int
    executors: list  # [[job_id, executor_id], ...] still running (after a service restart)


@wire_record(61)
class WorkerRegistered(WireRecord):
    worker_id: str
    heartbeat_interval_s: float
    heartbeat_timeout_s: float


@wire_record(62)
class WorkerRefused(WireRecord):
    reason: str


@wire_record(63)
class WorkerHeartbeat(WireRecord):
    worker_id: str
    executors: list  # [[job_id, executor_id, pid], ...]


@wire_record(64)
class ServiceHeartbeat(WireRecord):
    sent_at_ms: int


@wire_record(65)
class LaunchExecutor(WireRecord):
    """Start an executor for a job; ``payload`` holds the job's extra Python files."""
    job_id: str
    executor_id: str
    driver_endpoint: str
    memory_limit: str
    py_file_names: list[str]
    payload: list = field(default_factory=list)


@wire_record(66)
class KillExecutor(WireRecord):
    job_id: str
    executor_id: str
    reason: str


@wire_record(67)
class ExecutorExited(WireRecord):
    worker_id: str
    job_id: str
    executor_id: str
    exit_code: int


# -- a job's driver process --------------------------------------------------------


@wire_record(70)
class RegisterApplication(WireRecord):
    job_id: str
    app_name: str
    driver_endpoint: str
    cores_wanted: int  # 0: as many as the cluster will give


@wire_record(71)
class ApplicationRegistered(WireRecord):
    job_id: str
    executors_planned: int  # how many executors are being started for it now


@wire_record(72)
class ExecutorRemoved(WireRecord):
    """An executor of this application is gone (its worker said so)."""
    executor_id: str
    reason: str


@wire_record(73)
class ApplicationStatus(WireRecord):
    """What a job's driver reports to the service every second: its executors'
    running tasks and memory (from their heartbeats) and its streaming batches."""
    job_id: str
    # [[executor_id, running_tasks, longest_running_task_ms, block_memory_used, rss_bytes], ...]
    executors: list
    batches_completed: int
    batches_failed: int


# -- the command line ---------------------------------------------------------------


@wire_record(80)
class SubmitJob(WireRecord):
    """``payload``: the script, then each extra Python file, in name order."""
    name: str
    script_name: str
    args: list[str]
    cores: int
    py_file_names: list[str]
    detach: bool
    quiet: bool
    payload: list = field(default_factory=list)


@wire_record(81)
class JobAccepted(WireRecord):
    job_id: str


@wire_record(82)
class JobRejected(WireRecord):
    reason: str


@wire_record(83)
class JobOutput(WireRecord):
    job_id: str
    stream: str  # "stdout" or "stderr"
    payload: list = field(default_factory=list)


@wire_record(84)
class JobEnded(WireRecord):
    job_id: str
    state: str
    exit_code: int
    message: str


@wire_record(85)
class KillJob(WireRecord):
    job_id: str


@wire_record(86)
class ListJobs(WireRecord):
    pass


@wire_record(87)
class ClusterStatusRequest(WireRecord):
    pass


@wire_record(88)
class ClusterStatus(WireRecord):
    workers: list  # dicts
    jobs: list     # dicts


@wire_record(89)
class CommandResult(WireRecord):
    ok: bool
    message: str


@wire_record(90)
class AttachJob(WireRecord):
    """Stream a running job's output to this client (what ``submit`` does after submitting)."""
    job_id: str


@wire_record(91)
class Ping(WireRecord):
    """Is the service there? Answered with CommandResult."""
    nonce: int
