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


class JobCancelledError(JobFailedError):
    """A job was cancelled (``cancelJobGroup``, ``cancelJobsWithTag``,
    ``cancelAllJobs``, Ctrl-C); raised in the thread that ran the action, with
    Spark's text (``Job 3 cancelled part of cancelled job group nightly``)."""


class Job:
    """The partitions of ``rdd`` an action needs, and their result batches."""

    def __init__(self, job_id: int, rdd: "RDD", partitions: list[int], description: str = "",
                 properties: dict[str, str] | None = None, name: str = ""):
        self.id = job_id
        self.rdd = rdd
        self.partitions = partitions
        self.description = description
        # The submitting thread's local properties (job group, tags, interruptOnCancel).
        self.properties: dict[str, str] = dict(properties or {})
        self.name = name or description or repr(rdd)  # e.g. "collect at job.py:12"
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

    @property
    def group(self) -> str | None:
        return self.properties.get(JOB_GROUP)

    @property
    def tags(self) -> set[str]:
        return {t for t in self.properties.get(JOB_TAGS, "").split(",") if t}

    @property
    def interrupt_on_cancel(self) -> bool:
        return self.properties.get(INTERRUPT_ON_CANCEL, "false").lower() == "true"


# Spark's names of the local properties a job carries.
JOB_GROUP = "spark.jobGroup.id"
JOB_DESCRIPTION = "spark.job.description"
JOB_TAGS = "spark.job.tags"
INTERRUPT_ON_CANCEL = "spark.job.interruptOnCancel"
