"""Unit tests of the pure scheduler (``driver/scheduler/``): no sockets, no processes.

The DAG scheduler is a state machine the driver's event loop drives; here a
test plays the loop: it registers executors, submits jobs, asks ``assign``
for launches with a manual clock, and feeds back ``TaskSucceeded`` /
``TaskFailed`` messages as executors would.

RDD lineages are built on a tiny stand-in for ``SparkContext`` that supplies
only what lineage construction needs (ids, the closure registry, a conf), so
no executor is ever started (``tests/scheduler_fakes.py``).
"""
from __future__ import annotations

import operator
import pickle
import threading

import cloudpickle
import pytest

from scheduler_fakes import (
    ADDR, A, B, C, FakeContext, assign, by_partition, fail, is_map, new_dag, pair_with_mod, submit,
    succeed, two_stage)
from sluicegate.common.protocol import plan as p
from sluicegate.common.protocol.executor import (
    FAIL_ERROR, FAIL_FETCH, FAIL_MISSING_FUNCTION, TaskFailed, TaskSucceeded)
from sluicegate.common.serializer import SerializationError
from sluicegate.driver.rdd import lineage as lin
from sluicegate.driver.rdd.base import RDD, rdd_block_id
from sluicegate.driver.rdd.dependencies import ShuffleDependency
from sluicegate.driver.scheduler.closures import ClosureRegistry
from sluicegate.driver.scheduler.jobs import JobFailedError
from sluicegate.driver.scheduler.map_outputs import MapOutputTracker, MapStatus
from sluicegate.driver.scheduler.stages import lineage_rdds, parent_shuffles
from sluicegate.driver.scheduler.task_set import TaskScheduler, TaskSet


# -- jobs and stages ------------------------------------------------------------------------

def test_two_stage_job_runs_map_stage_then_result_stage():
    ctx = FakeContext()
    dag = new_dag(ctx)
    rdd = two_stage(ctx, maps=3, reduces=2)
    job = submit(dag, rdd)

    runs = assign(dag, {A: 2, B: 2})
    assert len(runs) == 3 and all(is_map(r) for r in runs)
    assert sorted(r.task.partition for r in runs) == [0, 1, 2]
    assert len({r.tid for r in runs}) == 3
    assert {r.task.stage_id for r in runs} != {dag.result_stage_of_job[job.id].id}
    shuffle_id = runs[0].task.sink.shuffle_id
    # The map tasks read their range and write the shuffle, combining map-side.
    assert runs[0].task.sink.combiner is not None
    assert runs[0].task.sink.partitioner.num_partitions == 2

    for run in runs[:2]:
        assert succeed(dag, run)
    # The result stage waits for the whole map stage.
    assert assign(dag, {A: 2, B: 2}) == []
    assert not job.done
    assert succeed(dag, runs[2])

    reduce_runs = assign(dag, {A: 2, B: 2})
    assert len(reduce_runs) == 2 and not any(is_map(r) for r in reduce_runs)
    assert all(isinstance(r.task.sink, p.CollectSink) for r in reduce_runs)
    assert all(isinstance(r.task.plan, p.ShuffleRead) for r in reduce_runs)
    assert reduce_runs[0].task.shuffle_ids == [shuffle_id]
    locations = dag.shuffle_locations(reduce_runs[0].task)[shuffle_id]
    expected = sorted([r.task.partition, r.executor_id, ADDR[r.executor_id]] for r in runs)
    assert sorted(locations) == expected

    for run in reduce_runs:
        assert not job.done
        assert succeed(dag, run, result=f"reduce-{run.task.partition}".encode())
    assert job.succeeded
    assert job.results == {0: b"reduce-0", 1: b"reduce-1"}
    assert dag.jobs == {} and dag.running == {} and dag.waiting == set()


def test_single_stage_job_and_partial_partitions():
    ctx = FakeContext()
    dag = new_dag(ctx)
    rdd = ctx.source(5).map(str)
    job = submit(dag, rdd, partitions=[1, 3])
    runs = assign(dag, {A: 4, B: 4})
    assert sorted(r.task.partition for r in runs) == [1, 3]
    for run in runs:
        assert isinstance(run.task.plan, p.MapNode)
        assert isinstance(run.task.plan.child, p.RangeSource)
        succeed(dag, run)
    assert job.succeeded and sorted(job.results) == [1, 3]


def test_jobs_with_zero_partitions_finish_immediately():
    ctx = FakeContext()
    dag = new_dag(ctx)
    job = submit(dag, two_stage(ctx), partitions=[])
    assert job.succeeded and job.results == {}
    empty = RDD(ctx, lin.Empty())
    job2 = submit(dag, empty.map(str))
    assert empty.getNumPartitions() == 0
    assert job2.succeeded and job2.results == {}
    assert assign(dag, {A: 1, B: 1}) == []
    assert dag.jobs == {} and not dag.tasks.has_pending()


def test_shared_map_stage_between_two_jobs_runs_once():
    ctx = FakeContext()
    dag = new_dag(ctx)
    reduced = two_stage(ctx, maps=3, reduces=2)
    job1 = submit(dag, reduced)
    job2 = submit(dag, reduced.mapValues(str))  # same shuffle, another result stage

    map_runs = assign(dag, {A: 4, B: 4})
    assert len(map_runs) == 3 and all(is_map(r) for r in map_runs), \
        "the second job must not launch its own copy of the map stage"
    assert assign(dag, {A: 4, B: 4}) == []
    for run in map_runs:
        succeed(dag, run)

    reduce_runs = assign(dag, {A: 4, B: 4})
    assert len(reduce_runs) == 4 and not any(is_map(r) for r in reduce_runs)
    assert {r.task.job_id for r in reduce_runs} == {job1.id, job2.id}
    for run in reduce_runs:
        succeed(dag, run)
    assert job1.succeeded and job2.succeeded

    # A later job on the same shuffled RDD finds the map outputs and runs no map task.
    job3 = submit(dag, reduced.keys())
    runs = assign(dag, {A: 4, B: 4})
    assert len(runs) == 2 and not any(is_map(r) for r in runs)
    for run in runs:
        succeed(dag, run)
    assert job3.succeeded


def test_finished_jobs_leave_no_stage_holding_their_shuffle():
    """A stage holds its shuffle dependency, and the shuffle's blocks are dropped
    only once that dependency is garbage: a finished job must let go of it (a
    streaming job makes a shuffle per batch), while its map outputs stay for reuse."""
    import gc
    import weakref

    ctx = FakeContext()
    dag = new_dag(ctx)
    reduced = two_stage(ctx, maps=3, reduces=2)
    job = submit(dag, reduced)
    for _ in range(2):
        for run in assign(dag, {A: 4, B: 4}):
            succeed(dag, run)
    assert job.succeeded
    assert dag.stages == {} and dag.shuffle_stages == {}
    [shuffle_id] = dag.map_outputs.shuffle_ids()
    assert dag.map_outputs.is_available(shuffle_id)

    dep = weakref.ref(reduced.dependencies[0])
    del reduced, job
    gc.collect()
    assert dep() is None, "nothing in the scheduler may keep a finished job's shuffle alive"

    failed = submit(dag, ctx.source(2).map(pair_with_mod).reduceByKey(operator.add, 2))
    for _ in range(20):  # every attempt raises, until the job gives up
        if failed.done:
            break
        for run in assign(dag, {A: 4, B: 4}):
            fail(dag, run)
    assert failed.done and not failed.succeeded
    assert dag.stages == {} and dag.shuffle_stages == {} and dag.running == {}


def test_fully_cached_rdd_skips_its_lineage():
    ctx = FakeContext()
    dag = new_dag(ctx)
    cached = two_stage(ctx, maps=3, reduces=2).cache()
    for split in range(2):
        dag.block_locations.add(rdd_block_id(cached.id(), split), B)
    job = submit(dag, cached.map(str))
    runs = assign(dag, {A: 1, B: 2})
    assert len(runs) == 2 and not any(is_map(r) for r in runs)
    # Preferred: the executor holding the cached partitions.
    assert {r.executor_id for r in runs} == {B}
    for run in runs:
        block_id = rdd_block_id(cached.id(), run.task.partition)
        persist = run.task.plan.child
        assert isinstance(persist, p.PersistNode) and persist.block_id == block_id
        # The plan references the cached block and where it is, not the lineage behind it.
        assert persist.child == p.CachedBlockRef(block_id, [[B, ADDR[B]]])
        assert run.task.cache_block_ids == [block_id] and run.task.shuffle_ids == []
    for run in runs:
        succeed(dag, run)
    assert job.succeeded

    # Once its holder is gone the partitions are planned from lineage again: the map stage runs.
    dag.executor_lost(B, "killed", now=1.0)
    job2 = submit(dag, cached.map(str), now=1.0)
    runs = assign(dag, {A: 4}, now=1.0)
    assert len(runs) == 3 and all(is_map(r) for r in runs)
    for run in runs:
        succeed(dag, run, now=1.0)
    runs = assign(dag, {A: 4}, now=1.0)
    assert len(runs) == 2 and all(isinstance(r.task.plan.child.child, p.ShuffleRead) for r in runs)
    for run in runs:
        succeed(dag, run, now=1.0)
    assert job2.succeeded


# -- failures -------------------------------------------------------------------------------

def test_user_error_is_retried_then_fails_the_job_with_the_worker_traceback():
    ctx = FakeContext()
    dag = new_dag(ctx, max_failures=3)
    job = submit(dag, ctx.source(2).map(str))
    result_stage_id = dag.result_stage_of_job[job.id].id
    traceback = ('Traceback (most recent call last):\n  File "job.py", line 7, in parse_line\n'
                 "ValueError: bad record 42\n")

    runs = by_partition(assign(dag, {A: 1, B: 1}))
    good = runs[1]
    attempts = []
    bad = runs[0]
    for failure in range(3):
        attempts.append(bad.attempt)
        assert not job.done
        assert fail(dag, bad, now=float(failure), traceback=traceback)
        if failure < 2:
            relaunched = assign(dag, {A: 1}, now=float(failure))
            assert [r.task.partition for r in relaunched] == [0]
            assert relaunched[0].tid != bad.tid
            bad = relaunched[0]
    assert attempts == [0, 1, 2]
    assert job.done and not job.succeeded
    error = job.error
    assert isinstance(error, JobFailedError)
    text = str(error)
    assert "ValueError" in text and "bad record 42" in text
    assert "parse_line" in text and 'File "job.py", line 7' in text
    assert "failed 3 times" in text and "Task 0 in stage" in text
    assert error.error_type == "ValueError" and error.error_message == "bad record 42"
    assert error.worker_traceback == traceback
    assert error.partition == 0 and error.stage_id == result_stage_id
    assert f"Task 0 in stage {result_stage_id}.0 failed 3 times" in text
    assert error.executor_id in (A, B)
    # The aborted stage launches nothing more; the other task's late reply is harmless.
    assert assign(dag, {A: 2, B: 2}) == []
    succeed(dag, good)
    assert job.results == {} and dag.jobs == {}


def test_missing_function_requeues_without_counting_a_failure():
    ctx = FakeContext()
    dag = new_dag(ctx, max_failures=1)
    job = submit(dag, ctx.source(1).map(str))
    (run,) = assign(dag, {A: 1})
    fail(dag, run, reason=FAIL_MISSING_FUNCTION, error_type="MissingFunction", message="evicted")
    assert not job.done
    (again,) = assign(dag, {A: 1})
    succeed(dag, again)
    assert job.succeeded


def test_fetch_failure_reruns_only_the_lost_map_output_then_the_reduce_stage():
    ctx = FakeContext()
    dag = new_dag(ctx, executors=(A, B))
    job = submit(dag, two_stage(ctx, maps=3, reduces=2))

    maps = by_partition(assign(dag, {A: 2, B: 1}))
    assert {maps[0].executor_id, maps[1].executor_id} == {A} and maps[2].executor_id == B
    for run in maps.values():
        succeed(dag, run)
    shuffle_id = maps[0].task.sink.shuffle_id
    map_stage_id = maps[0].task.stage_id

    reduces = by_partition(assign(dag, {A: 1, B: 1}))
    assert sorted(reduces) == [0, 1]
    # Reduce 0 could not fetch map 2's block from B.
    assert fail(dag, reduces[0], reason=FAIL_FETCH, error_type="FetchFailed",
                message="executor exec-B does not have it", shuffle_id=shuffle_id, map_id=2, peer=B)
    assert dag.map_outputs.missing(shuffle_id) == [2]
    assert not job.done

    rerun = assign(dag, {A: 3, B: 3}, now=1.0)
    assert [r.task.partition for r in rerun] == [2], "only the lost map output is recomputed"
    assert is_map(rerun[0]) and rerun[0].task.stage_id == map_stage_id
    assert rerun[0].task.stage_attempt == 1

    # The other reduce task of the old attempt still finishes; its result counts.
    assert succeed(dag, reduces[1], result=b"reduce-1")
    assert assign(dag, {A: 3, B: 3}) == []  # the reduce stage waits for map 2
    succeed(dag, rerun[0], now=2.0)

    again = assign(dag, {A: 3, B: 3}, now=2.0)
    assert [r.task.partition for r in again] == [0], "only the unfinished reduce partition re-runs"
    assert not is_map(again[0])
    locations = dag.shuffle_locations(again[0].task)[shuffle_id]
    assert sorted(m for m, _, _ in locations) == [0, 1, 2]
    succeed(dag, again[0], result=b"reduce-0")
    assert job.succeeded and job.results == {0: b"reduce-0", 1: b"reduce-1"}


def test_repeated_fetch_failures_abort_after_max_stage_attempts():
    ctx = FakeContext()
    dag = new_dag(ctx, max_stage_attempts=2)
    job = submit(dag, two_stage(ctx, maps=1, reduces=1))
    for attempt in range(2):  # Spark's rule: the 2nd consecutive fetch failure aborts
        assert not job.done
        (map_run,) = assign(dag, {A: 1})
        assert is_map(map_run)
        succeed(dag, map_run)
        (reduce_run,) = assign(dag, {A: 1})
        fail(dag, reduce_run, reason=FAIL_FETCH, error_type="FetchFailed", message="gone",
             shuffle_id=map_run.task.sink.shuffle_id, map_id=0, peer=A)
    assert job.done and isinstance(job.error, JobFailedError)
    assert "lost its shuffle input 2 times" in str(job.error)


def test_executor_loss_requeues_running_tasks_and_invalidates_its_map_outputs():
    ctx = FakeContext()
    dag = new_dag(ctx, executors=(A, B), max_failures=2)
    job = submit(dag, two_stage(ctx, maps=4, reduces=2))

    first = by_partition(assign(dag, {A: 1, B: 2}))
    assert sorted(first) == [0, 1, 2]
    on_b = [part for part, run in first.items() if run.executor_id == B]
    assert len(on_b) == 2
    done_on_b, running_on_b = on_b
    shuffle_id = first[0].task.sink.shuffle_id
    succeed(dag, first[done_on_b])
    assert dag.map_outputs.missing(shuffle_id) == sorted({0, 1, 2, 3} - {done_on_b})

    dag.executor_lost(B, "killed", now=1.0)
    assert B not in dag.executors
    # B's finished output is gone and its running task waits to run again.
    assert done_on_b in dag.map_outputs.missing(shuffle_id)
    assert dag.tasks.running_on(B) == []
    map_set = dag.running[first[0].task.stage_id]
    # A run lost with its executor is counted apart from the task's own failures.
    assert running_on_b in map_set.pending and map_set.lost_failures[running_on_b] == 1
    assert map_set.failures[running_on_b] == 0
    # A late reply from the lost executor's launch is stale.
    assert not succeed(dag, first[running_on_b])
    # Slots on the lost executor are never used.
    assert all(r.executor_id == A for r in assign(dag, {B: 5}))

    pending = [run for run in first.values() if run.executor_id == A]  # still running on A
    while not job.done:
        pending += assign(dag, {A: 1, B: 1}, now=2.0)
        assert all(r.executor_id == A for r in pending)
        assert pending, "the job must make progress on the surviving executor"
        succeed(dag, pending.pop(0), now=2.0)
    assert job.succeeded and sorted(job.results) == [0, 1]
    # Every map output was written by the survivor in the end.
    status = dag.map_outputs.locations(shuffle_id)
    assert sorted(m for m, _, _ in status) == [0, 1, 2, 3]
    assert {e for _, e, _ in status} == {A}


def test_executor_loss_during_reduce_stage_recovers_through_a_fetch_failure():
    ctx = FakeContext()
    dag = new_dag(ctx, executors=(A, B))
    job = submit(dag, two_stage(ctx, maps=2, reduces=2))
    maps = by_partition(assign(dag, {A: 1, B: 1}))
    for run in maps.values():
        succeed(dag, run)
    shuffle_id = maps[0].task.sink.shuffle_id
    lost_map = next(part for part, run in maps.items() if run.executor_id == B)

    reduces = by_partition(assign(dag, {A: 1, B: 1}))
    reduce_on_b = next(run for run in reduces.values() if run.executor_id == B)
    reduce_on_a = next(run for run in reduces.values() if run.executor_id == A)
    dag.executor_lost(B, "heartbeat timeout", now=1.0)
    assert dag.map_outputs.missing(shuffle_id) == [lost_map]

    # The requeued reduce runs on A, cannot find B's map output, and reports it.
    (retry,) = assign(dag, {A: 1}, now=1.0)
    assert retry.task.partition == reduce_on_b.task.partition
    fail(dag, retry, now=1.0, reason=FAIL_FETCH, error_type="FetchFailed",
         message="no known output location", shuffle_id=shuffle_id, map_id=lost_map, peer=None)
    (remap,) = assign(dag, {A: 1}, now=1.0)
    assert is_map(remap) and remap.task.partition == lost_map
    succeed(dag, reduce_on_a)  # the old attempt's other task still counts
    succeed(dag, remap)
    (final,) = assign(dag, {A: 1}, now=1.0)
    assert final.task.partition == reduce_on_b.task.partition
    succeed(dag, final)
    assert job.succeeded and sorted(job.results) == [0, 1]


def test_stale_and_duplicate_results_are_ignored():
    ctx = FakeContext()
    dag = new_dag(ctx)
    job = submit(dag, ctx.source(2).map(str))
    runs = by_partition(assign(dag, {A: 1, B: 1}))
    unknown = TaskSucceeded(task_id=9999, attempt=0, executor_id=A, duration_ms=1.0, records_in=1,
                            records_out=1, shuffle_read_bytes=0, shuffle_write_bytes=0,
                            map_block_sizes=None, cached_blocks=[], has_result=True,
                            has_accumulators=False, payload=[b"forged"])
    assert dag.task_succeeded(unknown, 0.0) is False
    forged = TaskFailed(task_id=9998, attempt=0, executor_id=A, reason=FAIL_ERROR, error_type="E",
                        message="m", traceback="", shuffle_id=None, map_id=None, peer_executor=None,
                        duration_ms=1.0)
    assert dag.task_failed(forged, 0.0) is False
    assert job.results == {} and not job.done

    assert succeed(dag, runs[0], result=b"first")
    assert not succeed(dag, runs[0], result=b"duplicate")
    assert not fail(dag, runs[0])
    assert job.results == {0: b"first"}
    assert succeed(dag, runs[1])
    assert job.succeeded and job.results[0] == b"first"
    assert not succeed(dag, runs[1], result=b"after the end")


def test_cancel_job_fails_it_and_stops_its_tasks():
    ctx = FakeContext()
    dag = new_dag(ctx)
    job = submit(dag, two_stage(ctx))
    runs = assign(dag, {A: 1})
    dag.cancel_job(job.id, "interrupted")
    assert job.done and "cancelled: interrupted" in str(job.error)
    assert assign(dag, {A: 4, B: 4}) == []
    succeed(dag, runs[0])  # a late reply is harmless


# -- placement --------------------------------------------------------------------------------

def test_delay_scheduling_waits_for_the_executor_holding_the_input():
    ctx = FakeContext()
    dag = new_dag(ctx, executors=(A, B), locality_wait_s=3.0)
    dag.block_locations.add("input-0", A)
    job = submit(dag, ctx.blocks(["input-0"]).map(str), now=0.0)
    (run,) = dag.tasks.task_sets[0].tasks.values()
    assert run.input_block_ids == ["input-0"]
    assert dag.preferred_executors(run) == {A}

    # A is alive but busy: the task waits for it rather than taking B's slot...
    assert assign(dag, {B: 1}, now=0.0) == []
    assert assign(dag, {B: 1}, now=2.9) == []
    # ...until the locality wait is over, then any slot will do.
    (launched,) = assign(dag, {B: 1}, now=3.0)
    assert launched.executor_id == B
    succeed(dag, launched)
    assert job.succeeded


def test_delay_scheduling_takes_the_preferred_executor_when_it_frees_up():
    ctx = FakeContext()
    dag = new_dag(ctx, executors=(A, B, C), locality_wait_s=3.0)
    dag.block_locations.add("input-0", A)
    dag.block_locations.add("input-1", B)
    job = submit(dag, ctx.blocks(["input-0", "input-1", "input-2"]), now=0.0)
    # Only C is free: the block without a home runs there; the others wait.
    first = assign(dag, {C: 3}, now=0.5)
    assert [(r.task.partition, r.executor_id) for r in first] == [(2, C)]
    second = assign(dag, {C: 1, B: 1, A: 1}, now=1.0)
    assert sorted((r.task.partition, r.executor_id) for r in second) == [(0, A), (1, B)]
    for run in first + second:
        succeed(dag, run)
    assert job.succeeded


def test_a_lost_holder_is_not_waited_for():
    ctx = FakeContext()
    dag = new_dag(ctx, executors=(A, B), locality_wait_s=3.0)
    dag.block_locations.add("input-0", A)
    submit(dag, ctx.blocks(["input-0"]), now=0.0)
    dag.executor_lost(A, "killed", now=0.1)
    (run,) = assign(dag, {B: 1}, now=0.2)
    assert run.executor_id == B


# -- no executors -----------------------------------------------------------------------------

def test_no_live_executors_past_the_timeout_fails_waiting_jobs():
    ctx = FakeContext()
    dag = new_dag(ctx, executors=(A,), no_executor_timeout_s=5.0)
    job = submit(dag, two_stage(ctx))
    runs = assign(dag, {A: 1})
    assert len(runs) == 1
    dag.executor_lost(A, "killed", now=10.0)
    dag.tick(10.0)
    dag.tick(14.9)
    assert not job.done
    dag.tick(15.0)
    assert job.done and isinstance(job.error, JobFailedError)
    assert "no live executors" in str(job.error)
    assert dag.jobs == {}


def test_an_executor_arriving_in_time_resets_the_no_executor_timer():
    ctx = FakeContext()
    dag = new_dag(ctx, executors=(), no_executor_timeout_s=5.0)
    job = submit(dag, ctx.source(1))
    dag.tick(0.0)
    dag.tick(4.0)
    dag.executor_added(B, ADDR[B])
    dag.tick(8.0)
    dag.tick(20.0)
    assert not job.done
    (run,) = assign(dag, {B: 1}, now=20.0)
    succeed(dag, run)
    assert job.succeeded


def test_idle_without_waiting_tasks_fails_nothing():
    ctx = FakeContext()
    dag = new_dag(ctx, executors=(A,), no_executor_timeout_s=1.0)
    job = submit(dag, ctx.source(1))
    (run,) = assign(dag, {A: 1})
    succeed(dag, run)
    dag.executor_lost(A, "stopped", now=1.0)
    for t in (1.0, 5.0, 50.0):
        dag.tick(t)
    assert job.succeeded


# -- TaskScheduler / TaskSet alone --------------------------------------------------------------

def test_task_scheduler_gives_fresh_ids_and_counts_attempts():
    ctx = FakeContext()
    dag = new_dag(ctx)
    submit(dag, ctx.source(1))
    (task,) = dag.tasks.task_sets[0].tasks.values()
    scheduler = TaskScheduler(locality_wait_s=0.0)
    task_set = TaskSet(0, 0, {0: task}, max_failures=4, created_s=0.0)
    scheduler.add(task_set)
    assert scheduler.has_pending()
    (first,) = scheduler.assign({A: 2}, lambda t: set(), 0.0)
    assert not scheduler.has_pending() and scheduler.running_on(A) == [first.tid]
    assert scheduler.finish(first.tid) == (task_set, first)
    assert scheduler.finish(first.tid) is None
    task_set.requeue(0, 1.0)
    task_set.requeue(0, 1.0)  # requeueing twice queues once
    assert task_set.pending == [0]
    (second,) = scheduler.assign({B: 1}, lambda t: set(), 1.0)
    assert (first.attempt, second.attempt) == (0, 1) and second.tid != first.tid
    scheduler.finish(second.tid)
    task_set.finished.add(0)
    task_set.requeue(0, 2.0)  # a finished partition is never requeued
    assert task_set.done and task_set.pending == []
    scheduler.remove_finished_sets()
    assert scheduler.task_sets == []


# -- MapOutputTracker ---------------------------------------------------------------------------

def test_map_output_tracker():
    tracker = MapOutputTracker()
    assert tracker.missing(7) == [] and not tracker.is_available(7)
    tracker.register_shuffle(7, 3)
    tracker.register_shuffle(7, 99)  # registering again keeps what is known
    assert tracker.missing(7) == [0, 1, 2]
    tracker.add(7, 0, MapStatus(A, ADDR[A], (1, 2)))
    tracker.add(7, 1, MapStatus(B, ADDR[B], (3, 4)))
    tracker.add(7, 5, MapStatus(B, ADDR[B], (3, 4)))  # out of range: ignored
    tracker.add(8, 0, MapStatus(B, ADDR[B], (3, 4)))  # unknown shuffle: ignored
    assert tracker.missing(7) == [2] and not tracker.is_available(7)
    tracker.add(7, 2, MapStatus(B, ADDR[B], (5, 6)))
    assert tracker.is_available(7)
    assert tracker.locations(7) == [[0, A, ADDR[A]], [1, B, ADDR[B]], [2, B, ADDR[B]]]

    tracker.register_shuffle(9, 1)
    tracker.add(9, 0, MapStatus(B, ADDR[B], (1,)))
    assert tracker.remove_executor(B, shuffle_id=7) == {7}
    assert tracker.missing(7) == [1, 2] and tracker.is_available(9)
    assert tracker.remove_executor(B) == {9}
    assert tracker.remove_executor(B) == set()
    tracker.remove_output(7, 0)
    assert tracker.missing(7) == [0, 1, 2]
    assert sorted(tracker.shuffle_ids()) == [7, 9]
    tracker.unregister_shuffle(7)
    assert tracker.shuffle_ids() == [9] and tracker.locations(7) == []


# -- stages.parent_shuffles --------------------------------------------------------------------

def test_parent_shuffles_stops_at_shuffles_and_fully_cached_rdds():
    ctx = FakeContext()
    left = ctx.source(2).map(pair_with_mod).reduceByKey(operator.add, 2)
    right = ctx.source(3).map(pair_with_mod).groupByKey(2)
    joined = left.join(right, 3).mapValues(str)
    deps = parent_shuffles(joined, lambda rdd: False)
    # join's cogroup shuffles both sides again: the two cogroup shuffles, not the upstream ones.
    assert len(deps) == 2 and all(isinstance(d, ShuffleDependency) for d in deps)
    assert {d.rdd.getNumPartitions() for d in deps} == {2}
    upstream = {left._lineage.dep.shuffle_id}
    assert not upstream & {d.shuffle_id for d in deps}

    narrow = ctx.source(4).map(str).filter(bool)
    assert parent_shuffles(narrow, lambda rdd: False) == []
    union = ctx.union([left, ctx.source(1).map(pair_with_mod).partitionBy(2)])
    assert len(parent_shuffles(union, lambda rdd: False)) == 2

    # A fully cached RDD on the way hides its lineage; a partly cached one does not.
    left.cache()
    over_cached = left.mapValues(str)
    assert parent_shuffles(over_cached, lambda rdd: rdd is left) == []
    assert [d.shuffle_id for d in parent_shuffles(over_cached, lambda rdd: False)] == list(upstream)

    rdds = lineage_rdds(joined)
    assert len({r.id() for r in rdds}) == len(rdds) and joined in rdds and left in rdds


# -- ClosureRegistry ------------------------------------------------------------------------------

def _adder(n):
    return lambda x: x + n


def test_closure_registry_ids_by_content():
    registry = ClosureRegistry()
    f = _adder(1)
    fid = registry.register(f)
    assert registry.register(f) == fid
    # The same closure rebuilt (same code, same captures) keeps its id: not re-shipped.
    assert registry.register(_adder(1)) == fid
    other = registry.register(_adder(2))
    assert other != fid and len(registry) == 2
    assert cloudpickle.loads(registry.data(fid))(41) == 42
    assert pickle.loads(registry.data(other))(40) == 42


def test_closure_registry_names_an_unpicklable_capture():
    registry = ClosureRegistry()
    guard = threading.Lock()

    def locked_work(x):
        with guard:
            return x

    with pytest.raises(SerializationError) as info:
        registry.register(locked_work)
    assert "guard" in str(info.value) and "lock" in str(info.value).lower()
    assert len(registry) == 0


def test_closure_registry_is_bounded():
    registry = ClosureRegistry(capacity=5)
    ids = [registry.register(_adder(n)) for n in range(20)]
    assert len(set(ids)) == 20
    assert len(registry) == 5
    assert cloudpickle.loads(registry.data(ids[-1]))(0) == 19
    with pytest.raises(KeyError):
        registry.data(ids[0])
