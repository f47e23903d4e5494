"""TaskContext: what a running task may ask about itself (PySpark's API)."""
from __future__ import annotations

import threading

_current = threading.local()


class TaskContext:
    """Information about the task running the calling code; ``TaskContext.get()``
    returns ``None`` on the driver."""

    def __init__(self, stage_id: int, partition_id: int, attempt: int, task_id: int,
                 executor_id: str):
        self._stage_id = stage_id
        self._partition_id = partition_id
        self._attempt = attempt
        self._task_id = task_id
        self._executor_id = executor_id
        self._local_properties: dict = {}

    @classmethod
    def get(cls) -> "TaskContext | None":
        return getattr(_current, "context", None)

    def stageId(self) -> int:
        return self._stage_id

    def partitionId(self) -> int:
        return self._partition_id

    def attemptNumber(self) -> int:
        return self._attempt

    def taskAttemptId(self) -> int:
        return self._task_id

    def executorId(self) -> str:
        return self._executor_id

    def getLocalProperty(self, key: str):
        return self._local_properties.get(key)


def set_current(context: "TaskContext | None") -> None:
    """The executor marks the task it is running (``None`` when idle)."""
    _current.context = context


# -- only the driver may have a SparkContext ------------------------------------------

CONTEXT_ONLY_VALID_ON_DRIVER = (
    "[CONTEXT_ONLY_VALID_ON_DRIVER] It appears that you are attempting to reference "
    "SparkContext from a broadcast variable, action, or transformation. SparkContext can only "
    "be used on the driver, not in code that runs on workers. For more information, see "
    "SPARK-5063.")
"""PySpark's message when a SparkContext is created where a task runs."""

_executor_process = False


def mark_executor_process() -> None:
    """An executor process says so once at start: all code in it, task threads
    or any other, runs on a worker."""
    global _executor_process
    _executor_process = True


def assert_on_driver() -> None:
    """Raise PySpark's error if the caller runs on an executor, or inside a task."""
    if _executor_process or TaskContext.get() is not None:
        raise RuntimeError(CONTEXT_ONLY_VALID_ON_DRIVER)
