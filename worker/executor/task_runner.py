"""Running one task: load its closures, build its iterator, apply its sink.

Every outcome becomes exactly one reply: ``TaskSucceeded`` or ``TaskFailed``
with the reason the driver needs to react (user error with the worker-side
traceback, lost shuffle output, evicted closure, missing input block). A
``StopIteration`` that escaped user code is reported as PySpark reports it.
"""
from __future__ import annotations

import logging
import pickle
import time
import traceback
from typing import Callable

from sluicegate.common import accumulators
from sluicegate.common.protocol import plan as p
from sluicegate.common.protocol.executor import (
    FAIL_BLOCK_MISSING, FAIL_ERROR, FAIL_FETCH, FAIL_MISSING_FUNCTION, LaunchTask, TaskFailed,
    TaskSucceeded)
from sluicegate.common.serializer import dump_records
from sluicegate.common.stopiteration import as_task_error
from sluicegate.common.taskcontext import TaskContext, set_current

from ..block_store import BlockMissing, BlockStore
from ..shuffle.block_ids import FetchFailed
from ..shuffle.fetcher import PeerFetcher
from ..shuffle.writer import partitioner_function, write_map_output
from .functions import FunctionCache, MissingFunction
from .operators import PlanContext, build

log = logging.getLogger("sluicegate.worker.task")


class TaskRunner:
    def __init__(self, executor_id: str, functions: FunctionCache, store: BlockStore,
                 fetcher: PeerFetcher, read_block: Callable[[str], bytes]):
        self.executor_id = executor_id
        self.functions = functions
        self.store = store
        self.fetcher = fetcher
        self.read_block = read_block

    def run(self, task: LaunchTask) -> TaskSucceeded | TaskFailed:
        started = time.perf_counter()
        try:
            self._install_payload(task)
        except Exception as exc:  # noqa: BLE001 - a closure that will not load is the user's error
            return self._failed(task, started, FAIL_ERROR, exc,
                                prefix="could not load the task's function on the executor: ")
        ctx = PlanContext(self.functions, self.store, self.fetcher, self.executor_id,
                          task.shuffle_locations, self.read_block)
        context = TaskContext(task.stage_id, task.partition, task.attempt, task.task_id,
                              self.executor_id)
        context._local_properties = dict(task.properties)  # its job's, from the driver thread
        set_current(context)
        accumulators.begin_task()
        try:
            result, sizes, records_out, write_bytes = self._run_sink(task, ctx)
            updates = accumulators.task_updates()
        except FetchFailed as exc:
            return self._failed(task, started, FAIL_FETCH, exc, shuffle_id=exc.shuffle_id,
                                map_id=exc.map_id, peer=exc.peer_executor)
        except MissingFunction as exc:
            return self._failed(task, started, FAIL_MISSING_FUNCTION, exc)
        except BlockMissing as exc:
            return self._failed(task, started, FAIL_BLOCK_MISSING, exc, block_id=exc.block_id)
        except BaseException as exc:  # noqa: BLE001 - user code may raise anything, SystemExit too
            if isinstance(exc, KeyboardInterrupt):
                raise
            return self._failed(task, started, FAIL_ERROR, as_task_error(exc))
        finally:
            set_current(None)
        payload = [] if result is None else [result]
        if updates:
            payload.append(pickle.dumps(updates, protocol=5))
        return TaskSucceeded(
            task_id=task.task_id, attempt=task.attempt, executor_id=self.executor_id,
            duration_ms=(time.perf_counter() - started) * 1000.0, records_in=ctx.records_in,
            records_out=records_out, shuffle_read_bytes=ctx.shuffle_read.bytes_read,
            shuffle_write_bytes=write_bytes, map_block_sizes=sizes,
            cached_blocks=ctx.cached_blocks, has_result=result is not None,
            has_accumulators=bool(updates), payload=payload)

    def _install_payload(self, task: LaunchTask) -> None:
        n_functions = len(task.function_ids)
        for function_id, data in zip(task.function_ids, task.payload[:n_functions]):
            self.functions.add(function_id, bytes(data))
        for block_id, data in zip(task.block_ids, task.payload[n_functions:]):
            self.store.put_bytes(block_id, bytes(data))

    def _run_sink(self, task: LaunchTask, ctx: PlanContext):
        sink = task.sink
        # ``collect`` reads its records in one loop that stops at their end, so
        # the task's pipelines are checked once, after it. The shuffle writer
        # reads in chunks and asks again after a short one (which would resume
        # a pipeline that a user's StopIteration cut short), so its input
        # checks itself as it ends (``build``'s ``full``).
        records = build(task.plan, ctx, full=isinstance(sink, p.CollectSink))
        if isinstance(sink, p.CollectSink):
            output = list(records)
            ctx.verify(0)
            return dump_records(output), None, len(output), 0
        if isinstance(sink, p.ShuffleWriteSink):
            spec = sink.partitioner
            partition_of = partitioner_function(
                spec.kind, spec.num_partitions, ctx.fn(spec.fn) if spec.fn is not None else None)
            combiner = None
            if sink.combiner is not None:
                combiner = (ctx.fn(sink.combiner.create), ctx.fn(sink.combiner.merge_value))

            # All records are read by the time the output is stored: none of a
            # short map output is kept.
            sizes, written = write_map_output(records, sink.shuffle_id, sink.map_id,
                                              spec.num_partitions, partition_of, combiner,
                                              self.store, lambda: ctx.verify(0))
            ctx.verify(0)
            return None, sizes, written, sum(sizes)
        raise TypeError(f"executor cannot apply sink {type(sink).__name__}")

    def _failed(self, task: LaunchTask, started: float, reason: str, exc: BaseException,
                prefix: str = "", shuffle_id: int | None = None, map_id: int | None = None,
                peer: str | None = None, block_id: str | None = None) -> TaskFailed:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if reason != FAIL_ERROR:
            log.info("task %s.%s: %s: %s", task.task_id, task.attempt, reason, exc)
        return TaskFailed(task_id=task.task_id, attempt=task.attempt,
                          executor_id=self.executor_id, reason=reason,
                          error_type=type(exc).__name__, message=prefix + str(exc),
                          traceback=text, shuffle_id=shuffle_id, map_id=map_id,
                          peer_executor=peer, duration_ms=(time.perf_counter() - started) * 1000.0,
                          block_id=block_id)
