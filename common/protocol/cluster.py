"""Messages of a standalone cluster: the driver service, its workers, its jobs,
and the command line.

Workers connect to the service, register their cores and start executor
processes when asked; each submitted job runs as its own process with its own
driver, which registers with the service to get executors; ``sluicegate
submit``/``jobs``/``kill``/``status``/``logs`` talk to the service, which asks
the workers for their executors' logs.
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


@wire_record(68)
class WorkerLeaving(WireRecord):
    """A worker that was told to stop (SIGTERM) says goodbye: the service shows it as
    stopped, not lost, and gives its cores' jobs executors elsewhere at once."""
    worker_id: str
    reason: str


@wire_record(69)
class FetchExecutorLogs(WireRecord):
    """The service asks a worker for the logs of a job's executors: for each executor and
    stream in ``offsets`` ([[executor_id, stream, offset], ...]) the bytes from that offset
    on, for the others their last ``tail_lines`` lines (-1: all that is kept). Answered
    with ``ExecutorLogChunk`` messages, then ``ExecutorLogsDone``."""
    request_id: int
    job_id: str
    tail_lines: int
    offsets: list


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
    ui_url: str = ""  # where the job's status pages are ("": none)


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
    supervise: bool = False  # restart the job's driver when it dies (job_supervisor)


@wire_record(81)
class JobAccepted(WireRecord):
    job_id: str


@wire_record(82)
class JobRejected(WireRecord):
    reason: str


@wire_record(83)
class JobOutput(WireRecord):
    """Bytes of a job's output; ``offset`` is where the first one sits in its stream
    (a reader that has less skips the overlap; one with a hole was told of dropped bytes)."""
    job_id: str
    stream: str  # "stdout" or "stderr"
    offset: int
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
    """Stream a job's output to this client from these offsets on (-1: its recent tail),
    then its end. ``submit`` sends it again whenever the service has been quiet, so that
    it re-attaches to a restarted service. Answered with the output, then ``JobEnded``
    (an ended job), ``CommandResult`` (a running one) or ``JobUnknown``."""
    job_id: str
    stdout_offset: int
    stderr_offset: int


@wire_record(91)
class Ping(WireRecord):
    """Is the service there? Answered with CommandResult."""
    nonce: int


@wire_record(92)
class JobUnknown(WireRecord):
    """The answer to ``AttachJob`` for a job this service has no record of."""
    job_id: str
    message: str


@wire_record(93)
class JobLogs(WireRecord):
    """``sluicegate logs``: a job's driver output (stdout and stderr) from these offsets on;
    -1 for a stream: its last ``tail_lines`` lines (-1: all that is kept). Answered with
    ``JobOutput`` (first an empty one per stream at its start offset), then ``JobEnded``
    (an ended job); for a running one ``JobLogsEnd`` once the output there was when asked
    is sent, or with ``follow``: ``CommandResult`` at once, then the output as it comes
    and ``JobEnded``. ``JobUnknown`` for a job the service does not know."""
    job_id: str
    stdout_offset: int
    stderr_offset: int
    tail_lines: int
    follow: bool


@wire_record(94)
class JobLogsEnd(WireRecord):
    """All of a running job's output that there was when ``JobLogs`` asked was sent."""
    job_id: str
    state: str


@wire_record(95)
class ExecutorLogsRequest(WireRecord):
    """``sluicegate logs --executors``: the logs of a job's executors on every live worker.
    ``offsets``: [[worker_id, executor_id, stream, offset], ...] the client has read up to
    (the others start ``tail_lines`` lines from their end, -1: all that is kept). Answered
    with ``ExecutorLogChunk`` messages, then ``ExecutorLogsEnd``."""
    job_id: str
    tail_lines: int
    offsets: list


@wire_record(96)
class ExecutorLogChunk(WireRecord):
    """Bytes of one executor's stdout or stderr; ``offset`` is where the first one sits in
    its stream (above the one asked for when the bytes in between were dropped by the
    worker's size cap). From a worker to the service, and on to the client."""
    request_id: int
    worker_id: str
    executor_id: str
    stream: str
    offset: int
    more: bool  # the worker had more of this stream than it sent: ask again from here
    payload: list = field(default_factory=list)


@wire_record(97)
class ExecutorLogsDone(WireRecord):
    """A worker sent all it had for a ``FetchExecutorLogs`` (``message``: why not, if not)."""
    request_id: int
    worker_id: str
    message: str


@wire_record(98)
class ExecutorLogsEnd(WireRecord):
    """The end of the answer to ``ExecutorLogsRequest``: the job's state (so that a
    follower knows when to stop), and the live workers that did not answer in time."""
    job_id: str
    state: str
    missing_workers: list[str]


@wire_record(99)
class JobStatusPages(WireRecord):
    """Where a running job's status pages are, as its driver reported it: sent to the
    job's ``submit`` (which prints it) once known, and again on re-attaching."""
    job_id: str
    app_name: str
    ui_url: str


# -- live SQL (``sluicegate sql``) ----------------------------------------------------


@wire_record(190)
class SqlQuery(WireRecord):
    """A read-only query over a running job's live tables (``stream.asTable``): from
    ``sluicegate sql`` to the service, which relays it to the job's driver under a
    ``request_id`` of its own. At most ``max_rows`` rows come back; ``show_rows`` > 0 asks
    for the text ``show(show_rows)`` prints too; the job cancels the query after
    ``timeout_s``."""
    request_id: int
    job_id: str
    query: str
    max_rows: int
    show_rows: int
    timeout_s: float


@wire_record(191)
class SqlResult(WireRecord):
    """The answer to ``SqlQuery``. ``ok``: ``payload`` holds one UTF-8 JSON document
    (``columns``, ``rows``, ``truncated``, ``batches``: the batch time each live table
    showed, ``show``). Otherwise ``error`` is the kind (REFUSED, PARSE, ANALYSIS,
    NO_SQL_SESSION, UNKNOWN_JOB, NOT_RUNNING, TIMEOUT, BUSY, FAILED) and ``message`` says
    what went wrong."""
    request_id: int
    ok: bool
    error: str
    message: str
    payload: list = field(default_factory=list)
