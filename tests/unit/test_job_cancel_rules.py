"""Cancelling jobs in the DAG scheduler (setJobGroup/cancelJobGroup, job tags,
cancelAllJobs), played without sockets on ``scheduler_fakes``: the right jobs
fail with Spark's text, their running tasks are killed (with or without an
interrupt), and the rest runs on. Real processes: ``tests/engine/test_job_cancel.py``.
"""
from __future__ import annotations

import scheduler_fakes as fakes
from sluicegate.common.protocol.executor import FAIL_KILLED, KillTask, TaskFailed
from sluicegate.driver.scheduler.jobs import Job, JobCancelledError, JobFailedError


def submit_with(dag, rdd, **properties) -> Job:
    job = Job(fakes.next_job_id(), rdd, list(range(rdd.getNumPartitions())),
              properties={k.replace("__", "."): v for k, v in properties.items()})
    dag.submit_job(job, 0.0)
    return job


def test_cancel_group_fails_only_its_jobs_and_kills_their_running_tasks():
    ctx = fakes.FakeContext()
    dag = fakes.new_dag(ctx)
    grouped = submit_with(dag, ctx.source(2), spark__jobGroup__id="nightly",
                          spark__job__interruptOnCancel="true")
    other = submit_with(dag, ctx.source(2), spark__jobGroup__id="daily")
    runs = fakes.assign(dag, {fakes.A: 2, fakes.B: 2})
    assert len(runs) == 4 and dag.take_kills() == []

    assert dag.cancel_job_group("nightly") == [grouped.id]
    assert grouped.done and isinstance(grouped.error, JobCancelledError)
    assert str(grouped.error) == (f"[SPARK_JOB_CANCELLED] Job {grouped.id} cancelled part of "
                                  "cancelled job group nightly")
    assert not other.done
    kills = dag.take_kills()
    doomed = {run.tid: run for run in runs if run.task.job_id == grouped.id}
    assert {(executor, kill.task_id) for executor, kill in kills} == {
        (run.executor_id, tid) for tid, run in doomed.items()}
    assert all(kill.interrupt and "job group nightly" in kill.reason for _, kill in kills)
    assert dag.take_kills() == []  # handed out once

    # The executors answer "killed"; the replies are harmless, and the slots come back.
    for tid, run in doomed.items():
        killed = TaskFailed(task_id=tid, attempt=run.attempt, executor_id=run.executor_id,
                            reason=FAIL_KILLED, error_type="TaskKilled", message="task killed",
                            traceback="", shuffle_id=None, map_id=None, peer_executor=None,
                            duration_ms=1.0)
        assert dag.task_failed(killed, 0.0)
    stage = dag.progress.stage(dag.progress.job(grouped.id)[1][0])
    assert stage[4:] == (0, 0, 0)  # no active, completed or failed tasks: killed ones apart
    for run in runs:
        if run.tid not in doomed:
            fakes.succeed(dag, run)
    assert other.succeeded


def test_cancel_by_tag_and_all_and_a_failed_job_kill_without_interrupt_by_default():
    ctx = fakes.FakeContext()
    dag = fakes.new_dag(ctx)
    tagged = submit_with(dag, ctx.source(1), spark__job__tags="a,b")
    plain = submit_with(dag, ctx.source(1))
    fakes.assign(dag, {fakes.A: 1, fakes.B: 1})
    assert dag.cancel_jobs_with_tag("b") == [tagged.id]
    assert "cancelled part of cancelled job tags b" in str(tagged.error)
    [(_, kill)] = dag.take_kills()
    assert isinstance(kill, KillTask) and not kill.interrupt
    assert dag.cancel_all_jobs() == [plain.id]
    assert str(plain.error).endswith(f"Job {plain.id} cancelled as part of cancellation of all jobs")

    # A job failing for good (maxFailures) kills its stage's other running tasks too.
    failing = submit_with(dag, ctx.source(2))
    first, second = fakes.assign(dag, {fakes.A: 1, fakes.B: 1})
    dag.take_kills()
    for attempt in range(4):
        assert fakes.fail(dag, first)
        if attempt < 3:
            (first,) = fakes.assign(dag, {first.executor_id: 1})
    assert isinstance(failing.error, JobFailedError)
    assert not isinstance(failing.error, JobCancelledError)
    assert [k.task_id for _, k in dag.take_kills()] == [second.tid]


def test_a_succeeded_job_kills_nothing():
    ctx = fakes.FakeContext()
    dag = fakes.new_dag(ctx)
    job = submit_with(dag, fakes.two_stage(ctx))
    while not job.done:
        for run in fakes.assign(dag, {fakes.A: 2, fakes.B: 2}):
            fakes.succeed(dag, run)
    assert job.succeeded and dag.take_kills() == []
