"""The streaming scheduler of one StreamingContext: one loop, typed events.

Spark's JobGenerator and JobScheduler, on one logic thread that handles the
events of ``events`` in order (other threads only post them):

* ``GenerateJobs(t)`` -- posted by the ``BatchTimer`` at every batch time, and
  on recovery for every batch to re-run: the ``JobGenerator`` makes the batch
  (received blocks claimed, output jobs built), its metadata checkpoint record
  goes to the ``CheckpointWriter``, and the ``BatchRunner`` gets the batch; its
  jobs start once that record is durable.
* ``BatchCompleted(batch)`` -- posted by the runner after a batch's last job:
  the batch's blocks leave their receivers' buffers; ``ClearMetadata`` follows.
* ``ClearMetadata(t)`` -- streams forget RDDs that fell out of their remember
  window (received blocks, write-ahead log files), stateful streams note their
  new state checkpoints, the batch is no longer pending; ``DoCheckpoint`` follows.
* ``DoCheckpoint(t, stale)`` -- the record as of now goes to the writer, and the
  superseded state directories are deleted once it is durable.

Only the loop thread changes the graph while the context runs; ``graph_lock``
makes the few others (a graceful stop's savepoint) take turns with it. The
context (``StreamingContext``) is the facade: it defines the graph, hands over
its parts (receiver tracker, listener bus, clock) and starts and stops this.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Callable

import cloudpickle

from sluicegate.common import config as cfg

from ..checkpoint import metadata
from ..dstream.inputs import CheckpointUnsupported, ReceiverInput
from .batch_runner import BatchRunner
from .checkpoint_writer import CheckpointTarget, CheckpointTicket, CheckpointWriter
from .events import BatchCompleted, ClearMetadata, DoCheckpoint, GenerateJobs, StopLoop
from .flow_control import FlowControl
from .job_generator import BatchTimer, JobGenerator, first_batch_time

if TYPE_CHECKING:
    from ..checkpoint.metadata import StreamingCheckpoint
    from ..dstream.graph import DStreamGraph
    from ..receivers.received_blocks import ReceivedBlock
    from ..receivers.supervisor import ReceiverTracker
    from .streaming_listener import StreamingListenerBus

log = logging.getLogger("sluicegate.streaming")


class JobScheduler:
    """Generates, runs, cleans up and checkpoints the batches of one context.

    ``receivers``: the context's ``ReceiverTracker`` (its blocks come through
    ``store_block``); ``store_input_block(block_id, data)``: the driver's copy and
    push of a block; ``local_properties``: the SparkContext's per-thread properties.
    """

    def __init__(self, *, batch_ms: int, graph: "DStreamGraph", clock, bus: "StreamingListenerBus",
                 receivers: "ReceiverTracker", conf: dict,
                 store_input_block: Callable[[str, bytes], None],
                 on_error: Callable[[BaseException], None], local_properties=None,
                 writer: CheckpointWriter | None = None):
        self.batch_ms = batch_ms
        self.graph = graph
        self.graph_lock = threading.RLock()
        self.clock = clock
        self.bus = bus
        self.conf = conf
        self.receivers = receivers
        receivers.store_block = self.store_block
        self.store_input_block = store_input_block
        self.runner = BatchRunner(cfg.get_setting(conf, cfg.STREAMING_CONCURRENT_JOBS), bus,
                                  self._batch_done, on_error, local_properties)
        # Backpressure, bounded receiver buffers, the cap on queued batches.
        self.flow = FlowControl(conf, batch_ms, lambda: self.runner.pending_batches,
                                self.runner.wait_for_fewer)
        self.generator = JobGenerator(receivers, self.flow, on_error)
        self.timer = BatchTimer(clock, batch_ms, self._batch_due, self.flow.wait_for_batch_room)
        self.writer = writer or CheckpointWriter()
        self.target: CheckpointTarget | None = None  # None: no metadata checkpoints
        self.pending: set[int] = set()  # batches generated and not completed
        self.last_generated_ms: int | None = None
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._unhandled = 0  # posted and not yet handled
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self._handlers: dict[type, Callable] = {
            GenerateJobs: self._generate_jobs, BatchCompleted: self._batch_completed,
            ClearMetadata: self._clear_metadata, DoCheckpoint: self._do_checkpoint}

    # -- the loop --------------------------------------------------------------------------
    def post(self, event) -> None:
        with self._idle:
            self._unhandled += 1
        self._events.put(event)

    def handle(self, event) -> None:
        """Handle one event now, on this thread: the loop's dispatch (``start`` also uses it
        for the batches a recovery re-runs, before the loop thread exists)."""
        try:
            self._handlers[type(event)](event)
        except Exception:  # noqa: BLE001 - one event's failure must not end the loop
            log.exception("streaming scheduler: handling %s failed", type(event).__name__)

    def _run(self) -> None:
        while True:
            event = self._events.get()
            try:
                if isinstance(event, StopLoop):
                    return
                self.handle(event)
            finally:
                with self._idle:
                    self._unhandled -= 1
                    self._idle.notify_all()

    def _wait_loop_idle(self, timeout_s: float | None) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._unhandled == 0, timeout_s)

    def _batch_due(self, time_ms: int) -> None:
        """The timer's thread: the batch counts as queued from now on."""
        self.runner.expect()
        self.post(GenerateJobs(time_ms))

    def _batch_done(self, batch) -> None:
        """A runner thread: the batch's last job ended."""
        self.post(BatchCompleted(batch))

    # -- the handlers (loop thread) ------------------------------------------------------------
    def _generate_jobs(self, event: GenerateJobs) -> None:
        time_ms = event.time_ms
        try:
            with self.graph_lock:
                self.last_generated_ms = time_ms
                batch = self.generator.generate(self.graph, time_ms)
                self.pending.add(time_ms)
                # Recorded before any of its jobs runs: a re-run after a crash must read
                # what this run read, or an output replaced on replay would differ.
                batch.durable = self._checkpoint(time_ms)
        except BaseException:
            self.runner.release()
            raise
        self.runner.submit(batch)

    def _batch_completed(self, event: BatchCompleted) -> None:
        time_ms = event.batch.time_ms
        self.flow.batch_done(time_ms, self.receivers.blocks.blocks_of)
        self.post(ClearMetadata(time_ms))

    def _clear_metadata(self, event: ClearMetadata) -> None:
        with self.graph_lock:
            self.graph.clear_old(event.time_ms)
            stale: list[str] = []
            for stream in self.graph.all_streams():
                stale.extend(stream._note_checkpoints())
            self.pending.discard(event.time_ms)
        if self.target is not None or stale:
            self.post(DoCheckpoint(event.time_ms, tuple(stale)))

    def _do_checkpoint(self, event: DoCheckpoint) -> None:
        with self.graph_lock:
            self._checkpoint(self.last_generated_ms or event.time_ms, event.stale_paths)

    def _checkpoint(self, time_ms: int, stale=()) -> CheckpointTicket | None:
        """Hand the record as of now to the writer (graph lock held), with the state
        directories it makes stale; without metadata checkpoints only those go."""
        target = self.target
        if target is None:
            if stale:
                self.writer.submit(None, time_ms, None, stale)
            return None
        try:
            data = metadata.serialize(target.record(self.graph, time_ms, self.pending,
                                            self.receivers.blocks.snapshot()))
        except Exception:  # noqa: BLE001 - a failed checkpoint must not stop the stream
            log.exception("could not write the metadata checkpoint for batch %s", time_ms)
            return None
        return self.writer.submit(target.directory, time_ms, data, stale)

    # -- input ------------------------------------------------------------------------------
    def store_block(self, block: "ReceivedBlock") -> None:
        """A receiver's block, as cut (and logged): the driver keeps it and pushes it
        to an executor ahead of its batch."""
        self.flow.block_stored(block.stream_id, block.block_id, len(block.data), block.num_records)
        self.store_input_block(block.block_id, block.data)

    # -- checkpoints --------------------------------------------------------------------------
    def enable_checkpoints(self, target: CheckpointTarget) -> None:
        """Write metadata checkpoints to ``target`` from now on, if this graph can be
        checkpointed (a queue stream cannot: a warning says so)."""
        try:
            cloudpickle.dumps(target.record(self.graph, 0, (), self.receivers.blocks.snapshot()))
        except CheckpointUnsupported as exc:
            log.warning("metadata checkpointing is off, so getOrCreate cannot recover this "
                        "context: %s", exc)
            return
        except Exception as exc:  # noqa: BLE001 - name what cannot be serialized
            raise ValueError("DStream checkpointing has been enabled but the DStreams with their "
                             f"functions are not serializable: {type(exc).__name__}: {exc}") from exc
        self.target = target

    def savepoint(self) -> None:
        """After a graceful stop: checkpoint every stateful stream's newest state, then the
        metadata. A restart -- or a code upgrade -- then starts from the state of the last
        batch, not from an older state checkpoint plus batches computed again (which an
        upgrade would compute with its new code)."""
        if self.target is None or self.last_generated_ms is None:
            return
        try:
            with self.graph_lock:
                stale: list[str] = []
                for stream in self.graph.all_streams():
                    if stream._must_checkpoint:
                        _checkpoint_newest(stream)
                        stale.extend(stream._note_checkpoints())
                self._checkpoint(self.last_generated_ms, stale)
        except Exception:  # noqa: BLE001 - stopping must go on; recovery recomputes instead
            log.exception("graceful stop: could not checkpoint the newest state")
            return
        self.writer.wait_idle()  # the record and the deletions it allows are done
        log.info("graceful stop: the newest state of every stateful stream is checkpointed")

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self, recovered: "StreamingCheckpoint | None") -> int:
        """Start receiving and generating batches (after re-running the batches a
        recovered checkpoint left pending); return the first batch time."""
        self.flow.attach(self.receivers.supervisors, self.graph.input_ops(), self.bus.add)
        for op in self.graph.input_ops():
            if isinstance(op, ReceiverInput):
                op.use_blocks(self.receivers)
        first = first_batch_time(self.clock.now_ms(), self.batch_ms)
        if recovered is not None:
            rerun = self._recover(recovered, first)
        else:
            rerun = []
            self.graph.start(first - self.batch_ms)
            for stream in self.graph.inputs:
                stream._op.start(stream)
        self.bus.start()
        self.runner.start()
        for time_ms in rerun:  # before any new block: those go to the first new batch
            self.runner.expect()
            self.handle(GenerateJobs(time_ms))
        self._thread = threading.Thread(target=self._run, name="streaming-scheduler", daemon=True)
        self._thread.start()
        self.receivers.start()
        self.timer.start(first)
        return first

    def _recover(self, checkpoint: "StreamingCheckpoint", first: int) -> list[int]:
        """The batches to run again: those pending at the checkpoint and those that fell
        due while the driver was down."""
        self.graph.start(checkpoint.zero_ms)
        if self.receivers.wal is None:
            lost = self.receivers.blocks.forget_all_blocks()
            if lost:
                log.warning("recovery: %d received blocks died with the driver and are "
                            "skipped; enable spark.streaming.receiver.writeAheadLog.enable "
                            "to keep them", lost)
        restored = self.receivers.reload_from_log(self.store_block)
        downtime = range(checkpoint.time_ms + self.batch_ms, first, self.batch_ms)
        rerun = sorted({t for t in checkpoint.pending_ms if t < first} | set(downtime))
        log.warning("recovery: %d blocks back from the write-ahead log; re-running %d "
                    "batches", restored, len(rerun))
        return rerun

    def stop(self, graceful: bool) -> None:
        """Stop generating; with ``graceful``, first let every received record reach a
        batch and every batch finish, and checkpoint the newest state (``savepoint``)."""
        if graceful:
            self._stop_gracefully()
        else:
            self.timer.stop()
            self.receivers.stop()
        self._wait_loop_idle(10.0)  # the batches the timer posted reach the runner
        self.runner.stop()
        self.post(StopLoop())
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(30.0)  # cleanup and checkpoints of the batches that ended
        if graceful:
            self.savepoint()
        self.writer.stop()
        self.flow.stop()
        self.bus.stop()

    def _stop_gracefully(self) -> None:
        self.receivers.stop()  # the last buffered records become blocks now
        flushed_at = self.clock.now_ms()
        timeout_s = cfg.get_setting(self.conf, cfg.STREAMING_GRACEFUL_STOP_TIMEOUT)
        if timeout_s is None:  # Spark's ten batch durations, but never under 10 s:
            timeout_s = max(10.0, 10 * self.batch_ms / 1000.0)  # tiny batches on a busy host
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            generated = self.last_generated_ms
            if generated is not None and generated >= flushed_at and \
                    not self.receivers.blocks.has_unallocated():
                break
            time.sleep(0.01)
        else:
            log.warning("graceful stop: received data not claimed by a batch within %.0fs", timeout_s)
        self.timer.stop()
        if not self.wait_idle(timeout_s):
            log.warning("graceful stop: batches still running after %.0fs", timeout_s)

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Return once every batch posted so far has run, been cleaned up and had its
        metadata checkpoint written (False: not within ``timeout_s``)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        return (self.runner.wait_idle(timeout_s) and self._wait_loop_idle(left())
                and self.writer.wait_idle(left()))


def _checkpoint_newest(stream) -> None:
    """Write a stateful stream's newest RDD to checkpoint files, if it is not yet."""
    times = [t for t in stream._generated_times() if stream._generated.get(t) is not None]
    if not times:
        return
    newest = stream._generated[times[-1]]
    if newest.getCheckpointFile() is None:  # not written to files yet
        newest.checkpoint()
        newest.count()  # the job that writes it (from the cache)
