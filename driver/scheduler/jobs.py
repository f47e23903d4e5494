"""A job: one action's run over some partitions of an RDD, and how it ended."""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..rdd.base import RDD


class JobFailedError(Exception):
    """A job was aborted; the message carries the task's error and the
    executor-side traceback (as PySpark's ``Py4JJavaError`` text does)."""

    def __init__(self, message: str, *, error_type: str = "", error_message: str = "",
                 worker_traceback: str = "", stage_id: int | None = None,
                 partition: int | None = None, executor_id: str | None = None):
        super().__init__(message)
        self.error_type = error_type
        self.error_message = error_message
        self.worker_traceback = worker_traceback
        self.stage_id = stage_id
        self.partition = partition
        self.executor_id = executor_id


class Job:
    """The partitions of ``rdd`` an action needs, and their result batches."""

    def __init__(self, job_id: int, rdd: "RDD", partitions: list[int], description: str = ""):
        self.id = job_id
        self.rdd = rdd
        self.partitions = partitions
        self.description = description
        self.results: dict[int, bytes] = {}
        self.error: BaseException | None = None
        self.submitted_s = time.time()
        self.finished_s: float | None = None
        self.stage_ids: list[int] = []
        self._done = threading.Event()

    def finish(self, error: BaseException | None = None) -> None:
        if self._done.is_set():
            return
        self.error = error
        self.finished_s = time.time()
        self._done.set()

    def wait(self, timeout_s: float) -> bool:
        return self._done.wait(timeout_s)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def succeeded(self) -> bool:
        return self.done and self.error is None
