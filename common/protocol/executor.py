"""Messages between an application's driver and its executors.

Executors connect a DEALER to the driver's ROUTER, register, and heartbeat;
the driver launches tasks and hears back one ``TaskSucceeded`` or
``TaskFailed`` per launch. Any message counts as a heartbeat both ways.
"""
from __future__ import annotations

from dataclasses import field

from .plan import PlanNode, Sink
from .records import WireRecord, wire_record


@wire_record(1)
class RegisterExecutor(WireRecord):
    executor_id: str
    host: str
    block_address: str  # where peers fetch this executor's blocks
    cores: int
    memory_bytes: int
    pid: int


@wire_record(2)
class ExecutorRegistered(WireRecord):
    executor_id: str
    heartbeat_interval_s: float
    heartbeat_timeout_s: float
    conf: dict


@wire_record(3)
class RegistrationRefused(WireRecord):
    reason: str


@wire_record(4)
class ExecutorHeartbeat(WireRecord):
    executor_id: str
    running_tasks: list  # [[task_id, attempt, elapsed_ms], ...]: a hung task shows here
    memory_bytes_used: int
    disk_bytes_used: int
    rss_bytes: int


@wire_record(5)
class DriverHeartbeat(WireRecord):
    sent_at_ms: int


@wire_record(6)
class LaunchTask(WireRecord):
    """Run ``plan`` for one partition and apply ``sink``.

    ``payload`` holds the closures the executor lacks (``function_ids`` order)
    followed by attached blocks (``block_ids`` order).
    """
    task_id: int
    attempt: int
    job_id: int
    stage_id: int
    partition: int
    plan: PlanNode
    sink: Sink
    shuffle_locations: dict  # shuffle_id -> [[map_id, executor_id, block_address], ...]
    function_ids: list[int]
    block_ids: list[str]
    # How many files the application had added (addFile/addPyFile/addArchive) when the
    # task was launched: an executor that installed fewer asks for the rest first.
    files_epoch: int = 0
    # The submitting thread's local properties (setLocalProperty, setJobGroup, job tags),
    # as TaskContext.getLocalProperty sees them.
    properties: dict = field(default_factory=dict)
    payload: list = field(default_factory=list)


@wire_record(7)
class TaskSucceeded(WireRecord):
    """``payload``: the result batch (collect sinks), then accumulator updates if any."""
    task_id: int
    attempt: int
    executor_id: str
    duration_ms: float
    records_in: int   # read by the task's sources (blocks, files, shuffle, cache)
    records_out: int  # sent back, or written to shuffle blocks
    shuffle_read_bytes: int
    shuffle_write_bytes: int
    map_block_sizes: list[int] | None
    cached_blocks: list[str]
    has_result: bool
    has_accumulators: bool
    payload: list = field(default_factory=list)


# Reasons a task can fail, as TaskFailed.reason.
FAIL_ERROR = "error"                      # the user's code raised
FAIL_FETCH = "fetch_failed"               # a shuffle block could not be fetched
FAIL_MISSING_FUNCTION = "missing_function"  # executor evicted a closure: resend
FAIL_BLOCK_MISSING = "block_missing"      # an input block is gone
FAIL_KILLED = "killed"                    # the driver killed it (its job was cancelled)


@wire_record(8)
class TaskFailed(WireRecord):
    task_id: int
    attempt: int
    executor_id: str
    reason: str
    error_type: str
    message: str
    traceback: str
    shuffle_id: int | None
    map_id: int | None
    peer_executor: str | None
    duration_ms: float
    block_id: str | None = None  # the block that was missing (FAIL_BLOCK_MISSING)


@wire_record(9)
class FetchDriverBlock(WireRecord):
    request_id: int
    block_id: str


@wire_record(10)
class DriverBlock(WireRecord):
    request_id: int
    block_id: str
    found: bool
    payload: list = field(default_factory=list)


@wire_record(11)
class PushBlock(WireRecord):
    """An input block, pushed as soon as it is cut so it waits on the executor."""
    block_id: str
    payload: list = field(default_factory=list)


@wire_record(12)
class DropBlocks(WireRecord):
    block_ids: list[str]
    shuffle_ids: list[int]
    rdd_ids: list[int]


@wire_record(13)
class StopExecutor(WireRecord):
    reason: str


@wire_record(14)
class ExecutorLost(WireRecord):
    """A peer died: stop waiting on fetches from it."""
    executor_id: str


@wire_record(15)
class KillTask(WireRecord):
    """Stop a running (or queued) task: its job was cancelled or failed.

    With ``interrupt`` the task is interrupted at once; without, it gets the
    kill timeout to end by itself first. Either way it ends with a
    ``TaskFailed`` of reason ``killed``.
    """
    task_id: int
    reason: str
    interrupt: bool


@wire_record(16)
class FetchFiles(WireRecord):
    """An executor asks which files the application has added (on its task socket)."""
    request_id: int


@wire_record(17)
class FileList(WireRecord):
    """Every file added so far, in the order added.

    ``entries``: ``[[name, kind, size, python_path], ...]``; ``kind`` is ``file``,
    ``directory`` (shipped as a tar) or an archive format (``zip``, ``tar``,
    ``tar.gz``, or ``copy`` for one that is not unpacked); ``python_path`` says the
    installed file goes on ``sys.path`` (a .zip/.egg/.jar from addPyFile).
    """
    request_id: int
    entries: list


@wire_record(18)
class FetchFileChunk(WireRecord):
    request_id: int
    name: str
    offset: int
    length: int


@wire_record(19)
class FileChunk(WireRecord):
    """``payload``: the bytes from ``offset`` (shorter at the end of the file)."""
    request_id: int
    name: str
    found: bool
    total_size: int
    payload: list = field(default_factory=list)
