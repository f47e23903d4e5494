"""StreamingContext: the entry point of a streaming application (PySpark's API).

It owns the DStream graph, the receivers, the job generator (a timer at
every batch time) and the batch runner. Each batch: receivers' blocks are
claimed, every output operation builds its RDDs and becomes a job, the jobs
run in order on the SparkContext's executors, listeners hear about it, and
RDDs that fell out of the remember window are forgotten.
"""
from __future__ import annotations

import collections
import itertools
import logging
import os
import signal
import threading
import time
from typing import Any, Callable, Iterable

import cloudpickle

from sluicegate.common import config as cfg
from sluicegate.common import storage
from sluicegate.common.storagelevel import StorageLevel

from ..checkpoint import metadata
from ..checkpoint.wal import ReceivedBlockLog
from ..dstream.base import DStream
from ..dstream.graph import DStreamGraph
from ..dstream.inputs import CheckpointUnsupported, FileInput, QueueInput, ReceiverInput
from ..dstream.ops import Transformed, duration_ms
from ..rdd.base import RDD
from ..receivers.received_blocks import ReceivedBlock
from ..receivers.receiver import Receiver
from ..receivers.socket_text import SocketTextReceiver
from ..receivers.supervisor import ReceiverTracker
from ..scheduler.batch_runner import Batch, BatchRunner, now_ms
from ..scheduler.clock import SystemClock
from ..cluster.receiver_link import RemoteReceiverSupervisor
from ..cluster.scaling import ExecutorScaler
from ..scheduler.allocation_manager import AllocationManager, AllocationSettings
from ..scheduler.flow_control import FlowControl
from ..scheduler.job_generator import JobGenerator, first_batch_time
from ..scheduler.streaming_listener import (
    BatchInfo, OutputOperationInfo, StreamInputInfo, StreamingListener, StreamingListenerBus,
    StreamingListenerStreamingStarted)
from ..status.listener import ConsoleProgress, StatusListener
from .recovery import Recovery
from .spark_context import VERSION, SparkContext

log = logging.getLogger("sluicegate.streaming")

INITIALIZED, ACTIVE, STOPPED = "INITIALIZED", "ACTIVE", "STOPPED"


class StreamingContext(Recovery):
    """Main entry point for streaming (PySpark's ``StreamingContext``).

    ``StreamingContext(sc, 1.0)`` cuts input into 1-second batches. ``clock``
    may be given a ``ManualClock`` to step batches by hand (tests).
    """

    _activeContext: "StreamingContext | None" = None
    _lock = threading.RLock()

    def __init__(self, sparkContext: SparkContext, batchDuration: float | None = None,
                 jssc: Any = None, clock: Any = None):
        if batchDuration is None:
            raise ValueError("batchDuration (seconds) must be given")
        self._sc = sparkContext
        self._batch_ms = duration_ms(batchDuration, "batchDuration")
        self._graph = DStreamGraph(self._batch_ms)
        self._clock = clock or SystemClock()
        self._state = INITIALIZED
        conf = sparkContext._conf.as_dict()
        self._conf = conf
        self._bus = StreamingListenerBus()
        self._receivers = ReceiverTracker(
            self._store_block, sparkContext._runtime.drop_driver_blocks, self._bus,
            block_interval_s=cfg.get_setting(conf, cfg.STREAMING_BLOCK_INTERVAL),
            max_rate=cfg.get_setting(conf, cfg.STREAMING_RECEIVER_MAX_RATE),
            restart_delay_s=cfg.get_setting(conf, cfg.STREAMING_RECEIVER_RESTART_DELAY),
            spread=lambda: sparkContext._runtime.total_cores, conf=conf)
        self._stream_ids = itertools.count(0)
        self._runner = BatchRunner(cfg.get_setting(conf, cfg.STREAMING_CONCURRENT_JOBS), self._bus,
                                   self._batch_done, self._report_error, self._tag_jobs)
        # Backpressure, bounded receiver buffers, the cap on queued batches.
        self._flow = FlowControl(conf, self._batch_ms, lambda: self._runner.pending_batches,
                                 self._runner.wait_for_fewer)
        self._flow_metrics = None
        self._allocation: AllocationManager | None = None  # streaming dynamic allocation
        self._generator = JobGenerator(self._clock, self._batch_ms, self._generate_batch,
                                       self._flow.wait_for_batch_room)
        self._bus.add(StatusListener(sparkContext._runtime.status))
        if cfg.get_setting(conf, cfg.PROGRESS) and os.environ.get("SLUICEGATE_QUIET") != "1":
            self._bus.add(ConsoleProgress(self._batch_ms))
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._checkpoint_dir: str | None = None
        self._metadata_checkpoints = False
        self._fingerprint = ""
        self._recovered: metadata.StreamingCheckpoint | None = None
        self._clock_ref: metadata.ClockRef | None = None  # the clock, as checkpoints hold it
        self._pending: set[int] = set()
        self._graph_lock = threading.RLock()  # generation, cleanup and checkpoints take turns
        self._old_signal_handlers: dict[int, Any] = {}
        self._stop_lock = threading.Lock()
        sparkContext._stop_hooks.append(self._on_spark_context_stop)

    # -- properties --------------------------------------------------------------------
    @property
    def sparkContext(self) -> SparkContext:
        return self._sc

    @property
    def batch_duration_ms(self) -> int:
        return self._batch_ms

    def _check_can_define(self) -> None:
        if self._state != INITIALIZED:
            raise ValueError("Adding new inputs, transformations, and output operations after "
                             "starting a context is not supported")

    # -- active context --------------------------------------------------------------------
    @classmethod
    def getActive(cls) -> "StreamingContext | None":
        """The started, not yet stopped StreamingContext, if any."""
        with cls._lock:
            return cls._activeContext

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start receiving data and running batches."""
        with StreamingContext._lock:
            if self._state == ACTIVE:  # as in Spark: harmless, nothing starts twice
                log.warning("StreamingContext has already been started")
                return
            if self._state == STOPPED:
                raise ValueError("StreamingContext has already been stopped")
            if StreamingContext._activeContext is not None:
                raise ValueError("Only one StreamingContext may be started in this process")
            self._graph.validate()
            self._before_start()
            self._start_flow_control()
            first = first_batch_time(self._clock.now_ms(), self._batch_ms)
            rerun: list[int] = []
            if self._recovered is not None:
                checkpoint = self._recovered
                self._graph.start(checkpoint.zero_ms)
                if self._receivers.wal is None:
                    lost = self._receivers.blocks.forget_all_blocks()
                    if lost:
                        log.warning("recovery: %d received blocks died with the driver and are "
                                    "skipped; enable spark.streaming.receiver.writeAheadLog.enable "
                                    "to keep them", lost)
                restored = self._receivers.reload_from_log(self._store_block)
                downtime = range(checkpoint.time_ms + self._batch_ms, first, self._batch_ms)
                rerun = sorted({t for t in checkpoint.pending_ms if t < first} | set(downtime))
                log.warning("recovery: %d blocks back from the write-ahead log; re-running %d "
                            "batches", restored, len(rerun))
            else:
                self._graph.start(first - self._batch_ms)
                for stream in self._graph.inputs:
                    stream._op.start(stream)
            self._bus.start()
            self._runner.start()
            for time_ms in rerun:
                self._generate_batch(time_ms)
            self._receivers.start()
            self._generator.start(first)
            self._state = ACTIVE
            StreamingContext._activeContext = self
            self._install_signal_handlers()
        self._sc._runtime.status.streaming_started(self._batch_ms)
        self._sc._metrics.batch_interval_ms = self._batch_ms
        self._bus.post(StreamingListenerStreamingStarted(now_ms()))
        log.info("streaming started: batches every %d ms from %d", self._batch_ms, first)

    def _isolate_receivers(self) -> None:
        """``spark.sluicegate.receiver.isolation=process``: each receiver runs in a process
        of its own, so its work never takes the driver's interpreter from the scheduler."""
        isolation = cfg.get_setting(self._conf, cfg.RECEIVER_ISOLATION)
        if isolation not in ("thread", "process"):
            raise ValueError(f"{cfg.RECEIVER_ISOLATION} must be 'thread' or 'process', "
                             f"got {isolation!r}")
        if isolation == "thread":
            return
        runtime = self._sc._runtime
        self._receivers.supervisors = [
            s if isinstance(s, RemoteReceiverSupervisor) else RemoteReceiverSupervisor(
                s, runtime.transport, runtime.transport.secret, lambda: runtime.total_cores)
            for s in self._receivers.supervisors]

    def _start_flow_control(self) -> None:
        self._isolate_receivers()
        if cfg.get_setting(self._conf, cfg.DYN_ALLOCATION_ENABLED) and self._allocation is None:
            scaler = ExecutorScaler.of(self._sc._runtime)
            # A drained executor serves its blocks (state) until two batches replaced them.
            scaler.settle_s = max(2.0, 2 * self._batch_ms / 1000.0)
            self._allocation = AllocationManager(
                AllocationSettings.from_conf(self._conf, scaler.max_executors), self._batch_ms,
                scaler)
            self._bus.add(self._allocation)
            self._allocation.start()
        self._flow.attach(self._receivers.supervisors, self._graph.input_ops(), self._bus.add)
        status = self._sc._runtime.status
        status.flow = self._flow.describe
        metrics = getattr(self._sc, "_metrics", None)
        if metrics is not None and self._flow_metrics is None:
            self._flow_metrics = self._flow.metrics()
            metrics.registry.register(self._flow_metrics)

    def _stop_flow_control(self) -> None:
        self._flow.stop()
        if self._allocation is not None:
            self._allocation.stop()
        status = self._sc._runtime.status
        if status.flow == self._flow.describe:  # the pages keep its last state, not this context
            last = self._flow.describe()
            status.flow = lambda: last
        metrics = getattr(self._sc, "_metrics", None)
        if metrics is not None and self._flow_metrics is not None:
            try:
                metrics.registry.unregister(self._flow_metrics)
            except KeyError:
                pass
            self._flow_metrics = None

    def _before_start(self) -> None:
        streams = self._graph.all_streams()
        # As Spark: state checkpoints go to the SparkContext's checkpoint directory, so
        # sc.setCheckpointDir() is enough for them; ssc.checkpoint() also sets it, and adds
        # the metadata checkpoints that getOrCreate recovers from.
        if self._checkpoint_dir is None and self._sc.getCheckpointDir() is None and \
                any(s._must_checkpoint for s in streams):
            raise ValueError("The checkpoint directory has not been set. Please set it by "
                             "StreamingContext.checkpoint() (or SparkContext.setCheckpointDir()): "
                             "updateStateByKey, mapWithState and reduceByKeyAndWindow with an "
                             "inverse function need one.")
        wal = cfg.get_setting(self._conf, cfg.STREAMING_WAL_ENABLE)
        if wal and self._checkpoint_dir is None:
            raise ValueError("Cannot enable the receiver write-ahead log without a checkpoint "
                             "directory: call StreamingContext.checkpoint(directory)")
        if self._checkpoint_dir is None:
            return
        if wal:
            self._receivers.wal = ReceivedBlockLog(self._checkpoint_dir)
        for stream in streams:  # initial states must be files a checkpoint can point at
            initial = getattr(stream._op, "initial", None)
            if isinstance(initial, RDD) and not initial.isCheckpointed():
                initial.checkpoint()
                initial.count()
        try:
            cloudpickle.dumps(self._checkpoint_record(0))
            self._metadata_checkpoints = True
        except CheckpointUnsupported as exc:
            log.warning("metadata checkpointing is off, so getOrCreate cannot recover this "
                        "context: %s", exc)
        except Exception as exc:  # noqa: BLE001 - name what cannot be serialized
            raise ValueError("DStream checkpointing has been enabled but the DStreams with their "
                             f"functions are not serializable: {type(exc).__name__}: {exc}") from exc

    def awaitTermination(self, timeout: float | None = None) -> None:
        """Wait for the context to stop; raise the error of the latest failed batch
        job if one happened (the context keeps running and later batches still
        produce output; as in Spark, each call raises it again)."""
        self._await(timeout)

    def awaitTerminationOrTimeout(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True if the context stopped."""
        return self._await(timeout)

    def _await(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                if self._error is not None:  # as Spark: raised on every call until stopped
                    raise self._error
                if self._state == STOPPED:
                    return True
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(0.2 if remaining is None else min(remaining, 0.2))

    def stop(self, stopSparkContext: bool = True, stopGraceFully: bool = False) -> None:
        """Stop the streams; with ``stopGraceFully`` first process all received data
        (and, with metadata checkpoints on, checkpoint every stateful stream's newest
        state, so a restart or an upgrade starts from exactly there)."""
        with self._stop_lock:
            if self._state == ACTIVE:
                if stopGraceFully:
                    self._stop_gracefully()
                else:
                    self._generator.stop()
                    self._receivers.stop()
                self._runner.stop()
                if stopGraceFully:
                    self._savepoint()
                self._bus.stop()
                self._stop_flow_control()
                for op in self._graph.input_ops():  # inputs with connections (Kafka) close them
                    if hasattr(op, "close"):
                        op.close()
                self._restore_signal_handlers()
            with StreamingContext._lock:
                if StreamingContext._activeContext is self:
                    StreamingContext._activeContext = None
            with self._changed:
                self._state = STOPPED
                self._changed.notify_all()
            try:  # a long-lived SparkContext must not keep every stopped context alive
                self._sc._stop_hooks.remove(self._on_spark_context_stop)
            except ValueError:
                pass
        if stopSparkContext:
            self._sc.stop()
        log.info("streaming stopped%s", " gracefully" if stopGraceFully else "")

    def _stop_gracefully(self) -> None:
        self._receivers.stop()  # the last buffered records become blocks now
        flushed_at = self._clock.now_ms()
        timeout_s = cfg.get_setting(self._conf, cfg.STREAMING_GRACEFUL_STOP_TIMEOUT)
        if timeout_s is None:  # Spark's ten batch durations, but never under 10 s:
            timeout_s = max(10.0, 10 * self._batch_ms / 1000.0)  # tiny batches on a busy host
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            generated = self._generator.last_generated_ms
            if generated is not None and generated >= flushed_at and \
                    not self._receivers.blocks.has_unallocated():
                break
            time.sleep(0.01)
        else:
            log.warning("graceful stop: received data not claimed by a batch within %.0fs", timeout_s)
        self._generator.stop()
        if not self._runner.wait_idle(timeout_s):
            log.warning("graceful stop: batches still running after %.0fs", timeout_s)

    def _on_spark_context_stop(self) -> None:
        if self._state == ACTIVE:
            self.stop(stopSparkContext=False)

    def _install_signal_handlers(self) -> None:
        if not cfg.get_setting(self._conf, cfg.STREAMING_STOP_GRACEFULLY_ON_SHUTDOWN):
            return
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum, frame):
            log.warning("signal %s: stopping the streaming context gracefully", signum)
            # Handlers run on the main thread, the only one that may restore them: a
            # second signal then takes the old way (Ctrl-C twice ends a stuck stop).
            self._restore_signal_handlers()
            threading.Thread(target=self.stop, kwargs={"stopSparkContext": True,
                                                       "stopGraceFully": True},
                             name="graceful-stop", daemon=True).start()

        for signum in (signal.SIGTERM, signal.SIGINT):
            self._old_signal_handlers[signum] = signal.signal(signum, on_signal)

    def _restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._old_signal_handlers.items():
            signal.signal(signum, handler)
        self._old_signal_handlers.clear()

    # -- batches -------------------------------------------------------------------------------
    def _generate_batch(self, time_ms: int) -> None:
        with self._graph_lock:
            receiver_ids = [op.stream_id for op in self._graph.input_ops()
                            if isinstance(op, ReceiverInput)]
            self._receivers.blocks.allocate(time_ms, receiver_ids)
            try:
                jobs = self._graph.generate_jobs(time_ms)
            except Exception as exc:  # noqa: BLE001 - user code ran while building the batch
                log.error("batch %s could not be generated: %s", time_ms, exc)
                self._report_error(exc)
                jobs = []
            info = BatchInfo(time_ms, now_ms())  # submitted once its jobs exist, as in Spark
            for op in self._graph.input_ops():
                if op.reports_input_info:
                    notes = getattr(op, "input_metadata", None)  # e.g. a Kafka batch's offsets
                    info.input_infos[op.stream_id] = StreamInputInfo(
                        op.stream_id, op.num_records(time_ms), self._flow.input_metadata(
                            op.stream_id, notes(time_ms) if notes
                            else self._receivers.input_metadata(time_ms, op.stream_id)))
                else:
                    info.unreported_records += op.num_records(time_ms)
            for op, _ in jobs:
                info.output_infos[op.output_id] = OutputOperationInfo(time_ms, op.output_id, op.name,
                                                                      op.description)
            self._pending.add(time_ms)
            self._write_checkpoint(time_ms)
        self._runner.submit(Batch(info, [(op.output_id, job) for op, job in jobs]))

    def _batch_done(self, batch: Batch) -> None:
        self._flow.batch_done(batch.time_ms, self._receivers.blocks.blocks_of)
        with self._graph_lock:
            self._graph.clear_old(batch.time_ms)
            stale: list[str] = []
            for stream in self._graph.all_streams():
                stale.extend(stream._note_checkpoints())
            self._pending.discard(batch.time_ms)
            self._write_checkpoint(self._generator.last_generated_ms or batch.time_ms)
        for path in stale:
            storage.remove_tree(path)  # a local directory or a URL

    # -- metadata checkpoints ---------------------------------------------------------------------
    def _checkpoint_record(self, time_ms: int) -> "metadata.StreamingCheckpoint":
        batches, unallocated, last_metadata = self._receivers.blocks.snapshot()
        conf = {k: v for k, v in self._conf.items()
                if not any(word in k.lower() for word in ("secret", "token", "password"))}
        if self._clock_ref is None and not isinstance(self._clock, SystemClock):
            self._clock_ref = metadata.ClockRef(self._clock)
        return metadata.StreamingCheckpoint(
            VERSION, self._fingerprint, self._sc.appName, conf, self._batch_ms,
            self._graph.zero_ms or 0, time_ms, sorted(self._pending), self._graph, batches,
            unallocated, last_metadata, str(self._checkpoint_dir), self._receivers.wal is not None,
            self._clock_ref)

    def _write_checkpoint(self, time_ms: int) -> None:
        if not self._metadata_checkpoints:
            return
        try:
            metadata.write(self._checkpoint_dir, self._checkpoint_record(time_ms))
        except Exception:  # noqa: BLE001 - a failed checkpoint must not stop the stream
            log.exception("could not write the metadata checkpoint for batch %s", time_ms)

    def _tag_jobs(self, batch_ms: int | None, output_id: int | None,
                  description: str | None = None) -> None:
        tags = self._sc._runtime.job_tags
        tags.batch_ms, tags.output_id, tags.description = batch_ms, output_id, description

    def _report_error(self, error: BaseException) -> None:
        with self._changed:
            self._error = error
            self._changed.notify_all()

    def _store_block(self, block: ReceivedBlock) -> None:
        self._flow.block_stored(block.stream_id, block.block_id, len(block.data), block.num_records)
        self._sc._runtime.store_input_block(block.block_id, block.data)

    # -- inputs ---------------------------------------------------------------------------------
    def _input(self, op) -> DStream:
        stream = DStream(self, op)
        self._graph.add_input(stream)
        return stream

    def queueStream(self, rdds: Iterable, oneAtATime: bool = True, default: Any = None) -> DStream:
        """A stream of the queued RDDs (or lists), one per batch (or all at once)."""
        self._check_can_define()
        if default is not None and not isinstance(default, RDD):
            default = self._sc.parallelize(default)
        queue: collections.deque = collections.deque()
        for item in rdds:
            if isinstance(item, RDD):
                queue.append((item, 0))
            else:
                data = list(item)
                queue.append((self._sc.parallelize(data), len(data)))
        return self._input(QueueInput(self._batch_ms, next(self._stream_ids), queue, oneAtATime,
                                      default))

    def textFileStream(self, directory: str) -> DStream:
        """Lines of the text files that appear in ``directory`` after start."""
        self._check_can_define()
        return self._input(FileInput(self._batch_ms, next(self._stream_ids), directory, None))

    def binaryRecordsStream(self, directory: str, recordLength: int) -> DStream:
        """Fixed-length byte records of the files that appear in ``directory``."""
        self._check_can_define()
        if recordLength <= 0:
            raise ValueError(f"recordLength must be positive, got {recordLength}")
        return self._input(FileInput(self._batch_ms, next(self._stream_ids), directory,
                                     recordLength))

    def receiverStream(self, receiver: Receiver) -> DStream:
        """A stream of what a custom ``Receiver`` stores."""
        self._check_can_define()
        if not isinstance(receiver, Receiver):
            raise TypeError(f"receiverStream() needs a Receiver, got {type(receiver).__name__}")
        stream_id = next(self._stream_ids)
        self._receivers.add(receiver, stream_id)
        return self._input(ReceiverInput(self._batch_ms, stream_id, receiver))

    def socketTextStream(self, hostname: str, port: int,
                         storageLevel: StorageLevel = StorageLevel.MEMORY_AND_DISK_2) -> DStream:
        """Lines of UTF-8 text from a TCP server (reconnecting when it goes away)."""
        return self.receiverStream(SocketTextReceiver(hostname, int(port), storageLevel))

    # -- combining streams --------------------------------------------------------------------------
    def union(self, *dstreams: DStream) -> DStream:
        """All elements of several streams with the same slide duration."""
        if not dstreams:
            raise ValueError("should have at least one DStream to union")
        if len(dstreams) == 1:
            return dstreams[0]
        return DStream(self, Transformed(list(dstreams), _union_rdds))

    def transform(self, dstreams: list[DStream], transformFunc: Callable) -> DStream:
        """A stream of ``transformFunc(rdds)`` over several streams (``rdds``: a tuple, as PySpark)."""
        return DStream(self, Transformed(list(dstreams), lambda t, *rdds: transformFunc(rdds)))

    def remember(self, duration: float) -> None:
        """Keep each stream's RDDs for at least ``duration`` seconds."""
        self._graph.remember(duration_ms(duration, "remember duration"))

    def checkpoint(self, directory: str) -> None:
        """Checkpoint to ``directory``: the metadata for ``getOrCreate`` recovery,
        stateful streams' state, and (if enabled) the receivers' write-ahead log."""
        self._checkpoint_dir = storage.absolute(directory)  # a local directory or a URL
        self._sc.setCheckpointDir(self._checkpoint_dir)

    def addStreamingListener(self, streamingListener: StreamingListener) -> None:
        self._bus.add(streamingListener)

    @property
    def completed_batches(self) -> list[BatchInfo]:
        """Recently completed batches, oldest first (status pages, tests)."""
        return list(self._runner.completed)


def _union_rdds(time, *rdds):
    return rdds[0].context.union(list(rdds))
