"""``StatusTracker``: job and stage progress as PySpark reports it
(``pyspark.status``): ``sc.statusTracker().getJobInfo(job_id)`` and the like.

Weakly consistent, as Spark's: a job's stage ids may be known before its
stages are, and only recent jobs and stages are kept (1000 of each).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from ..cluster.executors import ExecutorRegistry
    from ..scheduler.progress import JobProgress


class SparkJobInfo(NamedTuple):
    """A job: its id, its stages' ids, and RUNNING, SUCCEEDED, FAILED or UNKNOWN."""
    jobId: int
    stageIds: list
    status: str


class SparkStageInfo(NamedTuple):
    """The latest attempt of a stage and its task counts."""
    stageId: int
    currentAttemptId: int
    name: str
    numTasks: int
    numActiveTasks: int
    numCompletedTasks: int
    numFailedTasks: int


class SparkExecutorInfo(NamedTuple):
    """An executor (its block service's address), its cache and running tasks."""
    host: str
    port: int
    cacheSize: int
    numRunningTasks: int
    usedOnHeapStorageMemory: int
    usedOffHeapStorageMemory: int
    totalOnHeapStorageMemory: int
    totalOffHeapStorageMemory: int


class StatusTracker:
    """Low-level status of the application's jobs and stages."""

    def __init__(self, progress: "JobProgress", executors: "ExecutorRegistry"):
        self._progress = progress
        self._executors = executors

    def getJobIdsForGroup(self, jobGroup: str | None = None) -> list[int]:
        """The known jobs of ``jobGroup`` (running, failed or done); with None, the
        jobs started outside any job group."""
        return self._progress.job_ids_for_group(jobGroup)

    def getActiveStageIds(self) -> list[int]:
        """The ids of the stages that are running, in order."""
        return self._progress.active_stage_ids()

    def getActiveJobsIds(self) -> list[int]:
        """The ids of the jobs that are running, in order."""
        return self._progress.active_job_ids()

    def getJobInfo(self, jobId: int) -> SparkJobInfo | None:
        """The job's ``SparkJobInfo``, or None if it is unknown or forgotten."""
        found = self._progress.job(jobId)
        return None if found is None else SparkJobInfo(*found)

    def getStageInfo(self, stageId: int) -> SparkStageInfo | None:
        """The stage's ``SparkStageInfo``, or None if it is unknown or forgotten."""
        found = self._progress.stage(stageId)
        return None if found is None else SparkStageInfo(*found)

    def getExecutorInfos(self) -> list[SparkExecutorInfo]:
        """The live executors (storage memory: their blocks in memory)."""
        infos = []
        for executor in self._executors.alive():
            host, _, port = executor.block_address.removeprefix("tcp://").rpartition(":")
            infos.append(SparkExecutorInfo(host, int(port) if port.isdigit() else 0,
                                           executor.memory_used, len(executor.running),
                                           executor.memory_used, 0, 0, 0))
        return infos
