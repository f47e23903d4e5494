"""Job groups, job tags, cancellation and the status tracker of a SparkContext.

Local properties belong to the calling thread, as in PySpark: a job group
set in one thread names the jobs that thread starts, and only those. A
thread started with ``InheritableThread`` (``sluicegate.driver.util``) starts
with a copy of its parent's. Every job carries its thread's properties to
the scheduler (cancelling by group or tag) and to its tasks
(``TaskContext.getLocalProperty``).

Cancelling fails the chosen jobs at once -- each action raises
``JobCancelledError`` in the thread that called it, with Spark's text -- and
kills their running tasks on the executors.
"""
from __future__ import annotations

import threading

from ..scheduler.jobs import INTERRUPT_ON_CANCEL, JOB_DESCRIPTION, JOB_GROUP, JOB_TAGS
from ..status.tracker import StatusTracker


class LocalProperties(threading.local):
    """One dict of local properties per thread."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}


class JobControl:
    """Mixin of ``SparkContext``."""

    # -- local properties ------------------------------------------------------------
    def setLocalProperty(self, key: str, value: str | None) -> None:
        """Set a property of the jobs this thread starts (``None`` removes it)."""
        values = self._local_properties.values
        if value is None:
            values.pop(key, None)
        else:
            values[key] = str(value)

    def getLocalProperty(self, key: str) -> str | None:
        """A local property of this thread, or None."""
        return self._local_properties.values.get(key)

    def _job_properties(self) -> dict[str, str]:
        """What a job started now by this thread carries."""
        return dict(self._local_properties.values)

    def _set_thread_properties(self, values: dict[str, str]) -> None:
        """Replace this thread's local properties (``InheritableThread`` does)."""
        self._local_properties.values = dict(values)

    # -- job groups ------------------------------------------------------------------
    def setJobGroup(self, groupId: str, description: str, interruptOnCancel: bool = False) -> None:
        """Put the jobs this thread starts from now on in a group, which
        ``cancelJobGroup`` cancels together. With ``interruptOnCancel`` their
        running tasks are interrupted at once when cancelled (otherwise they get
        ``spark.python.task.killTimeout``, 2 s, to stop by themselves first)."""
        self.setLocalProperty(JOB_GROUP, groupId)
        self.setLocalProperty(JOB_DESCRIPTION, description)
        self.setLocalProperty(INTERRUPT_ON_CANCEL, "true" if interruptOnCancel else "false")

    def setJobDescription(self, value: str | None) -> None:
        """A human-readable description of the jobs this thread starts."""
        self.setLocalProperty(JOB_DESCRIPTION, value)

    def setInterruptOnCancel(self, interruptOnCancel: bool) -> None:
        """Whether cancelling the jobs this thread starts interrupts their tasks at once."""
        self.setLocalProperty(INTERRUPT_ON_CANCEL, "true" if interruptOnCancel else "false")

    def cancelJobGroup(self, groupId: str) -> None:
        """Cancel the active jobs of the group ``groupId`` (see ``setJobGroup``)."""
        self._runtime.cancel("group", groupId)

    def cancelAllJobs(self) -> None:
        """Cancel every job that has been scheduled or is running."""
        self._runtime.cancel("all")

    # -- job tags ---------------------------------------------------------------------
    def addJobTag(self, tag: str) -> None:
        """Tag the jobs this thread starts from now on; ``cancelJobsWithTag`` cancels
        them. A tag cannot be empty or contain ','."""
        tags = self.getJobTags()
        tags.add(_checked_tag(tag))
        self._set_tags(tags)

    def removeJobTag(self, tag: str) -> None:
        """Stop tagging this thread's jobs with ``tag`` (a no-op if it was not added)."""
        tags = self.getJobTags()
        tags.discard(_checked_tag(tag))
        self._set_tags(tags)

    def getJobTags(self) -> set[str]:
        """The tags of the jobs this thread starts."""
        return {t for t in (self.getLocalProperty(JOB_TAGS) or "").split(",") if t}

    def clearJobTags(self) -> None:
        """Remove every tag of this thread."""
        self.setLocalProperty(JOB_TAGS, None)

    def cancelJobsWithTag(self, tag: str) -> None:
        """Cancel the active jobs that carry ``tag`` (see ``addJobTag``)."""
        self._runtime.cancel("tag", _checked_tag(tag))

    def _set_tags(self, tags: set[str]) -> None:
        self.setLocalProperty(JOB_TAGS, ",".join(sorted(tags)) if tags else None)

    # -- status --------------------------------------------------------------------------
    def statusTracker(self) -> StatusTracker:
        """Job and stage progress (PySpark's ``StatusTracker``)."""
        return StatusTracker(self._runtime.dag.progress, self._runtime.endpoint.registry)


def _checked_tag(tag: str) -> str:
    if not isinstance(tag, str):
        raise TypeError(f"a job tag is a str, got {type(tag).__name__}")
    if "," in tag:
        raise ValueError("Spark job tag cannot contain ','.")
    if not tag:
        raise ValueError("Spark job tag cannot be an empty string.")
    return tag
