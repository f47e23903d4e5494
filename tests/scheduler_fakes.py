"""Fakes for driving the pure DAG scheduler (``driver/scheduler/``) without
sockets or processes: a stand-in for ``SparkContext`` that supplies only what
building RDD lineages needs (ids, the closure registry, a conf), and functions
that play the driver's event loop -- register executors, submit jobs, ask
``assign`` for launches, and feed back ``TaskSucceeded`` / ``TaskFailed`` as
executors would.
"""
from __future__ import annotations

import itertools
import operator

from sluicegate.common.protocol import plan as p
from sluicegate.common.protocol.executor import FAIL_ERROR, TaskFailed, TaskSucceeded
from sluicegate.driver.context.conf import SparkConf
from sluicegate.driver.rdd import lineage as lin
from sluicegate.driver.rdd.base import RDD
from sluicegate.driver.rdd.dependencies import ShuffleDependency
from sluicegate.driver.scheduler.closures import ClosureRegistry
from sluicegate.driver.scheduler.dag import DAGScheduler
from sluicegate.driver.scheduler.jobs import Job

A, B, C = "exec-A", "exec-B", "exec-C"
ADDR = {A: "tcp://127.0.0.1:1001", B: "tcp://127.0.0.1:1002", C: "tcp://127.0.0.1:1003"}


# -- a stand-in for SparkContext: only what building lineages needs ----------------

class _NoRuntime:
    """The runtime hooks RDDs call (finalizers for shuffles/caches): no-ops here."""

    def track_shuffle(self, dep) -> None:
        pass

    def track_rdd_blocks(self, rdd, block_ids) -> None:
        pass

    def track_cached_rdd(self, rdd) -> None:
        pass

    def drop_rdd(self, rdd_id) -> None:
        pass


class FakeContext:
    def __init__(self) -> None:
        self._closures = ClosureRegistry()
        self._conf = SparkConf(loadDefaults=False)
        self._runtime = _NoRuntime()
        self._checkpoint_dir = None
        self._rdd_ids = itertools.count(0)
        self._shuffle_ids = itertools.count(0)

    def _next_rdd_id(self) -> int:
        return next(self._rdd_ids)

    def _new_shuffle_id(self) -> int:
        return next(self._shuffle_ids)

    def _new_shuffle(self, rdd, partitioner, combiner, map_side_combine):
        return ShuffleDependency(rdd, self._new_shuffle_id(), partitioner, combiner, map_side_combine)

    def union(self, rdds):
        return RDD(self, lin.Union(list(rdds)))

    def source(self, num_partitions: int, per_partition: int = 10) -> RDD:
        slices = [p.RangeSource(i * per_partition, (i + 1) * per_partition, 1)
                  for i in range(num_partitions)]
        return RDD(self, lin.ParallelCollection(slices))

    def blocks(self, block_ids: list[str]) -> RDD:
        return RDD(self, lin.Blocks(block_ids))


def pair_with_mod(x):
    return (x % 5, x)


# -- driving the scheduler like the event loop does ------------------------------------

_job_ids = itertools.count(100)


def next_job_id() -> int:
    """A fresh job id (job ids are the driver loop's to hand out; here the test's)."""
    return next(_job_ids)


def new_dag(ctx: FakeContext, executors=(A, B), **settings) -> DAGScheduler:
    settings.setdefault("locality_wait_s", 3.0)
    dag = DAGScheduler(ctx._closures, **settings)
    for executor_id in executors:
        dag.executor_added(executor_id, ADDR[executor_id])
    return dag


def submit(dag: DAGScheduler, rdd: RDD, partitions=None, now: float = 0.0) -> Job:
    parts = list(range(rdd.getNumPartitions())) if partitions is None else list(partitions)
    job = Job(next_job_id(), rdd, parts)
    dag.submit_job(job, now)
    return job


def is_map(run) -> bool:
    return isinstance(run.task.sink, p.ShuffleWriteSink)


def succeed(dag: DAGScheduler, run, now: float = 0.0, result: bytes | None = None) -> bool:
    if is_map(run):
        sizes = [7] * run.task.sink.partitioner.num_partitions
        message = TaskSucceeded(task_id=run.tid, attempt=run.attempt, executor_id=run.executor_id,
                                duration_ms=1.0, records_in=0, records_out=0, shuffle_read_bytes=0,
                                shuffle_write_bytes=sum(sizes), map_block_sizes=sizes,
                                cached_blocks=[], has_result=False, has_accumulators=False,
                                payload=[])
    else:
        data = result if result is not None else f"p{run.task.partition}".encode()
        message = TaskSucceeded(task_id=run.tid, attempt=run.attempt, executor_id=run.executor_id,
                                duration_ms=1.0, records_in=1, records_out=1, shuffle_read_bytes=0,
                                shuffle_write_bytes=0, map_block_sizes=None, cached_blocks=[],
                                has_result=True, has_accumulators=False, payload=[data])
    return dag.task_succeeded(message, now)


def fail(dag: DAGScheduler, run, now: float = 0.0, reason: str = FAIL_ERROR,
         error_type: str = "ValueError", message: str = "bad record 42",
         traceback: str = "", shuffle_id=None, map_id=None, peer=None) -> bool:
    failed = TaskFailed(task_id=run.tid, attempt=run.attempt, executor_id=run.executor_id,
                        reason=reason, error_type=error_type, message=message, traceback=traceback,
                        shuffle_id=shuffle_id, map_id=map_id, peer_executor=peer, duration_ms=1.0)
    return dag.task_failed(failed, now)


def assign(dag: DAGScheduler, slots: dict[str, int], now: float = 0.0):
    return dag.assign(dict(slots), now)


def by_partition(runs) -> dict:
    return {run.task.partition: run for run in runs}


def two_stage(ctx: FakeContext, maps: int = 3, reduces: int = 2) -> RDD:
    return ctx.source(maps).map(pair_with_mod).reduceByKey(operator.add, reduces)
