"""Running each batch's output jobs, in order, and reporting how it went.

Jobs run on ``spark.streaming.concurrentJobs`` threads (one by default, so
batches never overlap and run in time order). A batch's first job waits until
the metadata checkpoint of its generation is durable (``Batch.durable``). Each
job runs with Spark's local properties on its thread -- the batch time, the
output operation's id and description (``scheduler.batch_tag``) -- which every
job it starts carries to the status store and to its tasks. The runner posts
every listener event of a batch and logs one line when a batch completes,
then hands the batch back (``on_batch_done``). A job that raises fails only
its output operation: the error goes to the context (``awaitTermination``
raises it) and later batches still run.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ..scheduler.batch_tag import BATCH_KEYS, BATCH_TIME_KEY, CALL_SITE_KEY, OUTPUT_OP_ID_KEY
from .streaming_listener import (
    BatchInfo, StreamingListenerBatchCompleted, StreamingListenerBatchStarted,
    StreamingListenerBatchSubmitted, StreamingListenerBus, StreamingListenerOutputOperationCompleted,
    StreamingListenerOutputOperationStarted)

if TYPE_CHECKING:
    from .checkpoint_writer import CheckpointTicket

log = logging.getLogger("sluicegate.streaming.batches")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Batch:
    info: BatchInfo
    jobs: list[tuple[int, Callable[[], None]]]
    remaining: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    durable: "CheckpointTicket | None" = None  # the record its jobs wait for

    @property
    def time_ms(self) -> int:
        return self.info.batch_time_ms


class BatchRunner:
    """Runs submitted batches' jobs; counts a batch unfinished from ``expect`` (the
    timer posted it) until its jobs ended and ``on_batch_done`` took it."""

    def __init__(self, concurrent_jobs: int, bus: StreamingListenerBus,
                 on_batch_done: Callable[[Batch], None], on_error: Callable[[BaseException], None],
                 local_properties=None):
        """``local_properties``: the SparkContext's per-thread properties (an object whose
        ``values`` is this thread's dict), which the jobs of a batch are run with."""
        self.bus = bus
        self.on_batch_done = on_batch_done
        self.on_error = on_error
        self.local_properties = local_properties
        self._jobs: queue.Queue = queue.Queue()
        self._threads = [threading.Thread(target=self._work, name=f"streaming-job-{i}", daemon=True)
                         for i in range(max(1, concurrent_jobs))]
        self._unfinished = 0
        self._idle = threading.Condition()
        self.completed: list[BatchInfo] = []
        self.max_completed = 1000

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def expect(self) -> None:
        """A batch is on its way (``submit`` follows, or ``release``): it counts as
        queued from now, so the cap on queued batches sees it at once."""
        with self._idle:
            self._unfinished += 1

    def release(self) -> None:
        """The batch ``expect`` announced will not come (it could not be generated)."""
        with self._idle:
            self._unfinished -= 1
            self._idle.notify_all()

    def submit(self, batch: Batch) -> None:
        """Run the batch ``expect`` announced."""
        batch.remaining = len(batch.jobs)
        self.bus.post(StreamingListenerBatchSubmitted(batch.info.snapshot()))
        if not batch.jobs:
            self._start(batch)
            self._finish(batch)
            return
        for output_id, job in batch.jobs:
            self._jobs.put((batch, output_id, job))

    @property
    def pending_batches(self) -> int:
        with self._idle:
            return self._unfinished

    def wait_for_fewer(self, count: int, timeout_s: float) -> None:
        """Return once fewer than ``count`` batches are unfinished, or after ``timeout_s``."""
        with self._idle:
            if self._unfinished >= count:
                self._idle.wait(timeout_s)

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._idle:
            while self._unfinished:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(0.1 if remaining is None else min(remaining, 0.1))
        return True

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the jobs that are running; drop those still queued (a graceful
        stop waits for ``wait_idle`` first)."""
        dropped = 0
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                dropped += 1
        if dropped:
            log.warning("stopping: %d queued output jobs were not run", dropped)
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout_s)

    def _start(self, batch: Batch) -> None:
        with batch.lock:
            if batch.info.processing_start_ms >= 0:
                return
            batch.info.processing_start_ms = now_ms()
        self.bus.post(StreamingListenerBatchStarted(batch.info.snapshot()))

    def _work(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            batch, output_id, job = item
            if batch.durable is not None:
                batch.durable.wait()
            self._start(batch)
            info = batch.info.output_infos[output_id]
            info.start_ms = now_ms()
            self.bus.post(StreamingListenerOutputOperationStarted(info.snapshot()))
            self._run_job(batch, output_id, info, job)
            info.end_ms = now_ms()
            self.bus.post(StreamingListenerOutputOperationCompleted(info.snapshot()))
            with batch.lock:
                batch.remaining -= 1
                last = batch.remaining == 0
            if last:
                self._finish(batch)

    def _run_job(self, batch: Batch, output_id: int, info, job: Callable[[], None]) -> None:
        properties = self.local_properties
        if properties is not None:  # as Spark's JobHandler: the batch's keys on this thread
            values = properties.values
            values[BATCH_TIME_KEY] = str(batch.time_ms)
            values[OUTPUT_OP_ID_KEY] = str(output_id)
            values[CALL_SITE_KEY] = info.description()
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 - user code; report, keep running
            info.failure_reason = "".join(traceback.format_exception_only(exc)).strip()
            log.error("batch %s: output operation %s (%s) failed: %s", batch.time_ms,
                      output_id, info.description(), info.failure_reason)
            self.on_error(exc)
        finally:
            if properties is not None:  # what user code set itself stays, as before
                values = properties.values
                for key in BATCH_KEYS:
                    values.pop(key, None)

    def _finish(self, batch: Batch) -> None:
        info = batch.info
        info.processing_end_ms = now_ms()
        self.bus.post(StreamingListenerBatchCompleted(info.snapshot()))
        log.info("batch %s: %d records, scheduling delay %d ms, processing %d ms, total delay %d ms%s",
                 info.batch_time_ms, info.numRecords(), info.schedulingDelay(),
                 info.processingDelay(), info.totalDelay(), " (FAILED)" if info.failed() else "")
        self.completed.append(info)
        del self.completed[:-self.max_completed]
        try:
            self.on_batch_done(batch)
        finally:
            with self._idle:
                self._unfinished -= 1
                self._idle.notify_all()
