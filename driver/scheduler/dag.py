"""The DAG scheduler: jobs -> stages -> task sets, and every way they end.

It owns which stages run, wait or are done; it reacts to task results,
task failures and executor loss; it never touches a socket. The driver's
event loop calls it and carries out the launches ``assign`` returns, so the
logic is tested by calling these methods directly.

Failure rules (Spark's):
* a task whose code raises is retried up to ``max_failures`` times, then its
  stage is aborted and every job needing it fails with the last error;
* a task that cannot fetch shuffle output marks that output lost; the map
  stage recomputes the missing partitions, then the stage runs again (at
  most ``max_stage_attempts`` times in a row);
* a lost executor takes its map outputs and cached blocks with it; its
  running tasks count one failure each and run elsewhere;
* with no live executor for ``no_executor_timeout_s`` while tasks wait,
  the waiting jobs fail instead of hanging;
* a job that ends without succeeding (failed, or cancelled by group, tag or
  all at once) has the running tasks of the stages no other job needs
  killed on their executors: ``take_kills`` hands the loop the ``KillTask``s
  to send.
"""
from __future__ import annotations

import itertools
import logging
from typing import Callable

from sluicegate.common.protocol import plan as p
from sluicegate.common.protocol.executor import (
    FAIL_BLOCK_MISSING, FAIL_FETCH, FAIL_KILLED, FAIL_MISSING_FUNCTION, KillTask, TaskFailed,
    TaskSucceeded)

from ..rdd.base import rdd_block_id
from ..rdd.lineage import combiner_spec, partitioner_spec
from .block_locations import BlockLocations
from .closures import ClosureRegistry
from .jobs import Job, JobCancelledError, JobFailedError
from .map_outputs import MapOutputTracker, MapStatus
from .planner import TaskPlanner
from .progress import JobProgress
from .stages import Stage, parent_shuffles
from .task_set import Task, TaskRun, TaskScheduler, TaskSet, analyse_plan

log = logging.getLogger("sluicegate.scheduler")

FAIL_EXECUTOR_LOST = "executor_lost"
EXECUTOR_LOST_ATTEMPTS = 4  # runs of one task lost with their executors before its job fails


class DAGScheduler:
    def __init__(self, closures: ClosureRegistry, *, max_failures: int = 4,
                 max_stage_attempts: int = 4, locality_wait_s: float = 3.0,
                 no_executor_timeout_s: float = 30.0,
                 on_accumulators: Callable[[bytes], None] | None = None,
                 on_task_end: Callable[[TaskRun, object, int], None] | None = None,
                 on_stage_submitted: Callable[[Stage, TaskSet], None] | None = None):
        self.closures = closures
        self.max_failures = max_failures
        self.max_stage_attempts = max_stage_attempts
        self.no_executor_timeout_s = no_executor_timeout_s
        self.on_accumulators = on_accumulators or (lambda data: None)
        self.on_task_end = on_task_end or (lambda run, outcome, stage_attempt: None)
        self.on_stage_submitted = on_stage_submitted or (lambda stage, task_set: None)
        self.map_outputs = MapOutputTracker()
        self.block_locations = BlockLocations()
        self.planner = TaskPlanner(closures, self.block_locations, self.executors_address)
        self.tasks = TaskScheduler(locality_wait_s)
        self.executors: dict[str, str] = {}  # alive executor id -> block address
        self.draining: set[str] = set()  # being removed: still serve blocks, no task waits for them
        self.jobs: dict[int, Job] = {}
        self.stages: dict[int, Stage] = {}
        self.shuffle_stages: dict[int, Stage] = {}
        self.result_stage_of_job: dict[int, Stage] = {}
        self.waiting: set[int] = set()
        self.running: dict[int, TaskSet] = {}
        self._stage_ids = itertools.count(0)
        self._idle_since: float | None = None
        self.progress = JobProgress()  # what StatusTracker reads
        self._kills: list[tuple[str, KillTask]] = []  # (executor id, message) to send

    # -- executors ----------------------------------------------------------------
    def executors_address(self, executor_id: str) -> str | None:
        return self.executors.get(executor_id)

    def executor_added(self, executor_id: str, block_address: str) -> None:
        self.executors[executor_id] = block_address
        self._idle_since = None

    def executor_lost(self, executor_id: str, reason: str, now: float) -> None:
        if self.executors.pop(executor_id, None) is None:
            return
        log.warning("executor %s lost: %s", executor_id, reason)
        self.map_outputs.remove_executor(executor_id)
        self.block_locations.remove_executor(executor_id)
        for tid in self.tasks.running_on(executor_id):
            found = self.tasks.finish(tid)
            if found is not None:
                task_set, run = found
                self.on_task_end(run, TaskFailed(
                    task_id=tid, attempt=run.attempt, executor_id=executor_id,
                    reason=FAIL_EXECUTOR_LOST, error_type="ExecutorLostFailure",
                    message=f"executor {executor_id} was lost ({reason})", traceback="",
                    shuffle_id=None, map_id=None, peer_executor=None,
                    duration_ms=(now - run.started_s) * 1000.0), task_set.attempt)
                self.progress.task_ended(task_set.stage_id, task_set.attempt, succeeded=False)
                self._count_failure(task_set, run, FAIL_EXECUTOR_LOST,
                                    f"executor {executor_id} was lost while running the task ({reason})",
                                    "", "ExecutorLostFailure", now)

    # -- jobs ---------------------------------------------------------------------
    def submit_job(self, job: Job, now: float) -> None:
        self.jobs[job.id] = job
        self.progress.job_submitted(job.id, job.group, job.stage_ids)
        if not job.partitions:
            self._finish_job(job, None)
            return
        stage = Stage(next(self._stage_ids), job.rdd, None, list(job.partitions))
        stage.job_ids.add(job.id)
        self.stages[stage.id] = stage
        self.result_stage_of_job[job.id] = stage
        job.stage_ids.append(stage.id)
        try:
            self._submit_stage(stage, now)
        except Exception as exc:  # noqa: BLE001 - planning a stage ran user-facing code
            log.exception("could not plan job %s", job.id)
            self._fail_job(job, JobFailedError(f"Job {job.id} could not be planned: {exc}"))

    def cancel_job(self, job_id: int, reason: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None:
            self._fail_job(job, JobCancelledError(f"Job {job_id} cancelled: {reason}"))

    def cancel_job_group(self, group_id: str) -> list[int]:
        """Cancel the active jobs of a job group (``setJobGroup``); their ids."""
        return self._cancel_where(lambda job: job.group == group_id,
                                  f"part of cancelled job group {group_id}")

    def cancel_jobs_with_tag(self, tag: str) -> list[int]:
        """Cancel the active jobs carrying ``tag`` (``addJobTag``); their ids."""
        return self._cancel_where(lambda job: tag in job.tags, f"part of cancelled job tags {tag}")

    def cancel_all_jobs(self) -> list[int]:
        return self._cancel_where(lambda job: True, "as part of cancellation of all jobs")

    def _cancel_where(self, chosen, reason: str) -> list[int]:
        doomed = [job for job in sorted(self.jobs.values(), key=lambda j: j.id) if chosen(job)]
        for job in doomed:
            self._fail_job(job, JobCancelledError(f"[SPARK_JOB_CANCELLED] Job {job.id} cancelled {reason}"))
        return [job.id for job in doomed]

    def take_kills(self) -> list[tuple[str, KillTask]]:
        """The ``KillTask`` messages to send (executor id, message), once each."""
        kills, self._kills = self._kills, []
        return kills

    def drop_shuffle(self, shuffle_id: int) -> None:
        """The shuffle's RDD is gone: forget its outputs and its map stage."""
        self.map_outputs.unregister_shuffle(shuffle_id)
        stage = self.shuffle_stages.get(shuffle_id)
        if stage is not None and not stage.job_ids:
            del self.shuffle_stages[shuffle_id]
            self.stages.pop(stage.id, None)

    # -- stages -------------------------------------------------------------------
    def _map_stage(self, dep) -> Stage:
        stage = self.shuffle_stages.get(dep.shuffle_id)
        if stage is None:
            stage = Stage(next(self._stage_ids), dep.rdd, dep, list(range(dep.num_maps)))
            self.shuffle_stages[dep.shuffle_id] = stage
            self.stages[stage.id] = stage
            self.map_outputs.register_shuffle(dep.shuffle_id, dep.num_maps)
        return stage

    def _fully_cached(self, rdd) -> bool:
        return all(self.block_locations.holders(rdd_block_id(rdd.id(), split))
                   for split in range(rdd.getNumPartitions()))

    def _missing_parents(self, stage: Stage) -> list[Stage]:
        missing = []
        for dep in parent_shuffles(stage.rdd, self._fully_cached):
            parent = self._map_stage(dep)
            if not self.map_outputs.is_available(dep.shuffle_id):
                missing.append(parent)
        return missing

    def _submit_stage(self, stage: Stage, now: float) -> None:
        if stage.id in self.running or stage.id in self.waiting:
            return
        missing = self._missing_parents(stage)
        if missing:
            self.waiting.add(stage.id)
            for parent in missing:
                parent.job_ids |= stage.job_ids
                for job_id in stage.job_ids:
                    if parent.id not in self.jobs[job_id].stage_ids:
                        self.jobs[job_id].stage_ids.append(parent.id)
                self._submit_stage(parent, now)
        else:
            self._submit_tasks(stage, now)

    def _submit_tasks(self, stage: Stage, now: float) -> None:
        if stage.is_map_stage:
            partitions = self.map_outputs.missing(stage.shuffle_dep.shuffle_id)
        else:
            job = self.jobs[next(iter(stage.job_ids))]
            partitions = [part for part in stage.partitions if part not in job.results]
        if not partitions:
            self._stage_completed(stage, now)
            return
        stage.attempt += 1
        job_id = min(stage.job_ids) if stage.job_ids else -1
        tasks = {part: self._make_task(stage, part, job_id) for part in partitions}
        task_set = TaskSet(stage.id, stage.attempt, tasks, self.max_failures, now)
        self.running[stage.id] = task_set
        self.tasks.add(task_set)
        self.progress.stage_submitted(stage.id, stage.attempt, self._stage_name(stage),
                                      len(tasks), stage.job_ids)
        self.on_stage_submitted(stage, task_set)

    def _stage_name(self, stage: Stage) -> str:
        """Spark's stage name: the call site of the action for a result stage."""
        if not stage.is_map_stage and stage.job_ids:
            job = self.jobs.get(min(stage.job_ids))
            if job is not None:
                return job.name
        return repr(stage.rdd)

    def _retire(self, task_set: TaskSet | None) -> None:
        """A task set no longer runs (its stage completed, failed, or is not needed)."""
        if task_set is not None:
            task_set.zombie = True
            self.progress.stage_ended(task_set.stage_id, task_set.attempt)

    def _make_task(self, stage: Stage, partition: int, job_id: int) -> Task:
        plan = stage.rdd._plan(partition, self.planner)
        if stage.is_map_stage:
            dep = stage.shuffle_dep
            combiner = combiner_spec(dep.combiner, self.planner) if dep.map_side_combine else None
            sink: p.Sink = p.ShuffleWriteSink(dep.shuffle_id, partition,
                                               partitioner_spec(dep.partitioner, self.planner),
                                               combiner)
        else:
            sink = p.CollectSink()
        functions, inputs, cached, shuffles = analyse_plan(plan, sink)
        job = self.jobs.get(job_id)
        return Task(stage.id, stage.attempt, job_id, partition, plan, sink, functions, inputs,
                    cached, shuffles, job.properties if job is not None else {})

    def _stage_completed(self, stage: Stage, now: float) -> None:
        self._retire(self.running.pop(stage.id, None))
        self.waiting.discard(stage.id)
        stage.fetch_failures = 0
        for waiting_id in sorted(self.waiting):
            waiting = self.stages.get(waiting_id)
            if waiting is None or waiting_id not in self.waiting:
                continue
            # Submitted again, not just checked: a parent may have gone missing
            # meanwhile (an executor lost took its map outputs, or the cached
            # partitions that made it unnecessary), and must then run first.
            self.waiting.discard(waiting_id)
            self._submit_stage(waiting, now)

    # -- task outcomes ------------------------------------------------------------
    def _end_task(self, outcome: TaskSucceeded | TaskFailed, succeeded: bool, killed: bool = False):
        """Take the task of ``outcome`` off the running ones and tell the listener and the
        progress record; its ``(task_set, run)``, or None if the launch was stale."""
        found = self.tasks.finish(outcome.task_id)
        if found is not None:
            task_set, run = found
            self.on_task_end(run, outcome, task_set.attempt)
            self.progress.task_ended(task_set.stage_id, task_set.attempt, succeeded, killed)
        return found

    def task_succeeded(self, message: TaskSucceeded, now: float) -> bool:
        """Apply a success; False if the launch was stale (already ended)."""
        found = self._end_task(message, succeeded=True)
        if found is None:
            return False
        task_set, run = found
        stage = self.stages.get(task_set.stage_id)
        partition = run.task.partition
        for block_id in message.cached_blocks:
            self.block_locations.add(block_id, run.executor_id)
        if stage is None:
            return True
        first_success = partition not in task_set.finished
        task_set.finished.add(partition)
        if stage.is_map_stage:
            if message.executor_id in self.executors and message.map_block_sizes is not None:
                self.map_outputs.add(stage.shuffle_dep.shuffle_id, partition, MapStatus(
                    message.executor_id, self.executors[message.executor_id],
                    message.map_block_sizes))
            if first_success and message.has_accumulators:
                self.on_accumulators(message.payload[-1])
            current = self.running.get(stage.id)
            if current is not None:
                if self.map_outputs.is_available(stage.shuffle_dep.shuffle_id):
                    self._stage_completed(stage, now)
                elif current is task_set and task_set.done and not task_set.running:
                    # Outputs this attempt made were lost meanwhile: run them again.
                    del self.running[stage.id]
                    self._retire(task_set)
                    self._submit_tasks(stage, now)
            return True
        for job_id in list(stage.job_ids):
            job = self.jobs.get(job_id)
            if job is None or partition in job.results:
                continue
            job.results[partition] = message.payload[0] if message.has_result else b""
            if message.has_accumulators:
                self.on_accumulators(message.payload[-1])
            if len(job.results) == len(job.partitions):
                self._finish_job(job, None)
        return True

    def task_failed(self, message: TaskFailed, now: float) -> bool:
        # Spark counts killed tasks apart from failed ones.
        found = self._end_task(message, succeeded=False, killed=message.reason == FAIL_KILLED)
        if found is None:
            return False
        task_set, run = found
        if task_set.zombie or task_set.stage_id not in self.stages:
            return True
        if message.reason == FAIL_MISSING_FUNCTION:
            task_set.requeue(run.task.partition, now)
        elif message.reason == FAIL_BLOCK_MISSING:
            self._block_missing(task_set, run, message, now)
        elif message.reason == FAIL_FETCH:
            self._fetch_failed(task_set, run, message, now)
        else:
            self._count_failure(task_set, run, message.reason, message.message, message.traceback,
                                message.error_type, now)
        return True

    def _count_failure(self, task_set: TaskSet, run: TaskRun, reason: str, text: str,
                       traceback: str, error_type: str, now: float) -> None:
        if task_set.zombie:
            return
        partition = run.task.partition
        # A run lost with its executor is not the task's fault (Spark counts it only when the
        # application caused the exit): it has its own bound, so local[N]'s single attempt
        # (Spark's) still survives a killed executor process.
        counts, limit = task_set.failures, task_set.max_failures
        if reason == FAIL_EXECUTOR_LOST:
            counts, limit = task_set.lost_failures, max(limit, EXECUTOR_LOST_ATTEMPTS)
        counts[partition] += 1
        count = counts[partition]
        log.warning("task %s.%s of stage %s.%s (TID %s) failed on executor %s (%s): %s: %s",
                    partition, run.attempt, task_set.stage_id, task_set.attempt, run.tid,
                    run.executor_id, reason, error_type, text)
        if count < limit:
            task_set.requeue(partition, now)
            return
        stage = self.stages[task_set.stage_id]
        message = (f"Job aborted due to stage failure: Task {partition} in stage "
                   f"{stage.id}.{task_set.attempt} failed {count} times, most recent failure: "
                   f"Lost task {partition}.{run.attempt} in stage {stage.id}.{task_set.attempt} "
                   f"(TID {run.tid}) (executor {run.executor_id}): {error_type}: {text}")
        if traceback:
            message += "\nTraceback from the executor:\n" + traceback
        self._abort_stage(stage, JobFailedError(
            message, error_type=error_type, error_message=text, worker_traceback=traceback,
            stage_id=stage.id, partition=partition, executor_id=run.executor_id))

    def _block_missing(self, task_set: TaskSet, run: TaskRun, message: TaskFailed,
                       now: float) -> None:
        """A block the plan expected is gone: forget where we thought it was and
        plan the task again (from lineage, where there is any)."""
        if message.block_id:
            gone = message.block_id
            self.block_locations.remove_where(lambda b: b == gone)
        stage = self.stages[task_set.stage_id]
        partition = run.task.partition
        task_set.tasks[partition] = self._make_task(stage, partition, run.task.job_id)
        self._count_failure(task_set, run, message.reason, message.message, message.traceback,
                            message.error_type, now)

    def _fetch_failed(self, task_set: TaskSet, run: TaskRun, message: TaskFailed, now: float) -> None:
        stage = self.stages[task_set.stage_id]
        shuffle_id = message.shuffle_id
        log.info("stage %s: fetch of shuffle %s map %s from %s failed: %s", stage.id, shuffle_id,
                 message.map_id, message.peer_executor, message.message)
        if shuffle_id is not None:
            if message.map_id is not None:
                self.map_outputs.remove_output(shuffle_id, message.map_id)
            if message.peer_executor is not None:
                self.map_outputs.remove_executor(message.peer_executor, shuffle_id)
        self._retire(task_set)
        if self.running.get(stage.id) is task_set:
            del self.running[stage.id]
        stage.fetch_failures += 1
        if stage.fetch_failures >= self.max_stage_attempts:
            self._abort_stage(stage, JobFailedError(
                f"Job aborted: stage {stage.id} lost its shuffle input {stage.fetch_failures} "
                f"times in a row; last: {message.message}", stage_id=stage.id,
                partition=run.task.partition, executor_id=run.executor_id))
            return
        self._submit_stage(stage, now)

    def _abort_stage(self, stage: Stage, error: JobFailedError) -> None:
        self._kill_running(self.running.pop(stage.id, None), error, interrupt=False)
        self.waiting.discard(stage.id)
        for job_id in sorted(stage.job_ids):
            job = self.jobs.get(job_id)
            if job is not None:
                self._fail_job(job, error)

    def _fail_job(self, job: Job, error: BaseException) -> None:
        self._finish_job(job, error)

    def _finish_job(self, job: Job, error: BaseException | None) -> None:
        self.jobs.pop(job.id, None)
        self.progress.job_ended(job.id, failed=error is not None)
        for stage in list(self.stages.values()):
            if job.id not in stage.job_ids:
                continue
            stage.job_ids.discard(job.id)
            if stage.job_ids:
                continue
            task_set = self.running.pop(stage.id, None)
            if error is None:
                self._retire(task_set)
            else:  # as Spark, the tasks of a job that did not succeed are stopped
                self._kill_running(task_set, error, job.interrupt_on_cancel)
            self.waiting.discard(stage.id)
            # A stage no job needs goes, map stages too (as Spark's cleanup of a
            # job's independent stages): a stage holds its shuffle dependency, and
            # the shuffle's blocks are dropped only once that dependency is garbage.
            # Its map outputs stay registered, so a later job reading the same
            # shuffle finds them through a fresh stage and skips the work.
            del self.stages[stage.id]
            if stage.is_map_stage and self.shuffle_stages.get(stage.shuffle_dep.shuffle_id) is stage:
                del self.shuffle_stages[stage.shuffle_dep.shuffle_id]
        self.result_stage_of_job.pop(job.id, None)
        job.finish(error)

    def _kill_running(self, task_set: TaskSet | None, error: BaseException,
                      interrupt: bool) -> None:
        """Retire ``task_set`` and ask its executors to stop its running tasks. They
        keep their slots until they reply (``killed``, ignored as stale by then)."""
        if task_set is None:
            return
        self._retire(task_set)
        reason = str(error).split("\n", 1)[0]
        for run in task_set.running.values():
            self._kills.append((run.executor_id, KillTask(run.tid, reason, interrupt)))

    # -- placement and time ---------------------------------------------------------
    def preferred_executors(self, task: Task) -> set[str]:
        """Where the task's data is: its nearest cached ancestor, and its input blocks."""
        holders: set[str] = set()
        for block_id in task.cache_block_ids:  # shallowest first
            found = self.block_locations.holders(block_id)
            if found:
                holders |= found
                break
        for block_id in task.input_block_ids:
            holders |= self.block_locations.holders(block_id)
        return holders

    def assign(self, free_slots: dict[str, int], now: float) -> list[TaskRun]:
        live = {e: n for e, n in free_slots.items() if e in self.executors and n > 0}
        if not live:
            return []
        runs = self.tasks.assign(live, self.preferred_executors, now,
                                 alive=set(self.executors) - self.draining)
        for run in runs:
            task_set = self.tasks.running[run.tid][0]
            self.progress.task_launched(task_set.stage_id, task_set.attempt)
        return runs

    def tick(self, now: float) -> None:
        """Timers: give up on waiting jobs when no executor has been alive for too long."""
        self.tasks.remove_finished_sets()
        if self.executors or not self.tasks.has_pending():
            self._idle_since = None
            return
        if self._idle_since is None:
            self._idle_since = now
        elif now - self._idle_since >= self.no_executor_timeout_s:
            error = JobFailedError(
                f"no live executors for {self.no_executor_timeout_s:.0f}s while tasks were "
                "waiting: every worker process is gone")
            for job in list(self.jobs.values()):
                self._fail_job(job, error)
            self._idle_since = None

    def shuffle_locations(self, task: Task) -> dict:
        """Per shuffle the task reads: the map outputs it must fetch from (only
        those with data for its reduce partitions)."""
        reads = shuffle_reads(task.plan)
        return {sid: self.map_outputs.reduce_locations(sid, reads.get(sid, []))
                for sid in task.shuffle_ids}


def shuffle_reads(plan: p.PlanNode) -> dict[int, list[int]]:
    """The reduce partitions a plan reads, by shuffle id."""
    reads: dict[int, list[int]] = {}
    pending = [plan]
    while pending:
        node = pending.pop()
        if isinstance(node, p.ShuffleRead):
            reads.setdefault(node.shuffle_id, []).append(node.reduce_id)
        for name in node._wire_fields:
            value = getattr(node, name)
            if isinstance(value, p.PlanNode):
                pending.append(value)
            elif isinstance(value, list) and value and isinstance(value[0], p.PlanNode):
                pending.extend(value)
    return reads
