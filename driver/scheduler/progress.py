"""Job and stage progress as PySpark's ``StatusTracker`` reports it.

The DAG scheduler (on the driver loop thread) tells this record of every
job, stage attempt and task launch and end; the user's threads read it
through ``StatusTracker``. Only recent jobs and stages are kept (Spark's
``spark.ui.retainedJobs``/``retainedStages``, 1000 each), so a long stream
does not grow it.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

RETAINED_JOBS = 1000
RETAINED_STAGES = 1000

RUNNING, SUCCEEDED, FAILED, UNKNOWN = "RUNNING", "SUCCEEDED", "FAILED", "UNKNOWN"


@dataclass
class JobRecord:
    job_id: int
    group: str | None
    stage_ids: list[int]  # the job's own list: grows as its stages are found
    status: str = RUNNING


@dataclass
class StageRecord:
    stage_id: int
    attempt: int
    name: str
    num_tasks: int
    active: int = 0
    completed: int = 0
    failed: int = 0
    running: bool = True
    job_ids: set[int] = field(default_factory=set)


class JobProgress:
    def __init__(self, retained_jobs: int = RETAINED_JOBS, retained_stages: int = RETAINED_STAGES):
        self._lock = threading.Lock()
        self._retained_jobs = retained_jobs
        self._retained_stages = retained_stages
        self._jobs: OrderedDict[int, JobRecord] = OrderedDict()
        self._stages: OrderedDict[int, StageRecord] = OrderedDict()

    # -- from the scheduler ------------------------------------------------------------
    def job_submitted(self, job_id: int, group: str | None, stage_ids: list[int]) -> None:
        with self._lock:
            self._jobs[job_id] = JobRecord(job_id, group, stage_ids)
            while len(self._jobs) > self._retained_jobs:
                self._jobs.popitem(last=False)

    def job_ended(self, job_id: int, failed: bool) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                job.status = FAILED if failed else SUCCEEDED

    def stage_submitted(self, stage_id: int, attempt: int, name: str, num_tasks: int,
                        job_ids: set[int]) -> None:
        with self._lock:
            self._stages.pop(stage_id, None)  # the latest attempt is the one reported
            self._stages[stage_id] = StageRecord(stage_id, attempt, name, num_tasks,
                                                 job_ids=set(job_ids))
            while len(self._stages) > self._retained_stages:
                self._stages.popitem(last=False)

    def stage_ended(self, stage_id: int, attempt: int) -> None:
        with self._lock:
            stage = self._stage(stage_id, attempt)
            if stage is not None:
                stage.running = False

    def task_launched(self, stage_id: int, attempt: int) -> None:
        with self._lock:
            stage = self._stage(stage_id, attempt)
            if stage is not None:
                stage.active += 1

    def task_ended(self, stage_id: int, attempt: int, succeeded: bool, killed: bool = False) -> None:
        with self._lock:
            stage = self._stage(stage_id, attempt)
            if stage is not None:
                stage.active = max(0, stage.active - 1)
                if succeeded:
                    stage.completed += 1
                elif not killed:  # a killed task is neither (Spark's numKilledTasks)
                    stage.failed += 1

    def _stage(self, stage_id: int, attempt: int) -> StageRecord | None:
        stage = self._stages.get(stage_id)
        return stage if stage is not None and stage.attempt == attempt else None

    # -- for StatusTracker (any thread) ------------------------------------------------------
    def job_ids_for_group(self, group: str | None) -> list[int]:
        with self._lock:
            return [j.job_id for j in self._jobs.values() if j.group == group]

    def active_job_ids(self) -> list[int]:
        with self._lock:
            return sorted(j.job_id for j in self._jobs.values() if j.status == RUNNING)

    def active_stage_ids(self) -> list[int]:
        with self._lock:
            return sorted(s.stage_id for s in self._stages.values() if s.running)

    def job(self, job_id: int) -> tuple[int, list[int], str] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else (job.job_id, list(job.stage_ids), job.status)

    def stage(self, stage_id: int) -> tuple[int, int, str, int, int, int, int] | None:
        with self._lock:
            s = self._stages.get(stage_id)
            if s is None:
                return None
            return (s.stage_id, s.attempt, s.name, s.num_tasks, s.active, s.completed, s.failed)
