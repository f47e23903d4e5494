"""StreamingContext: the entry point of a streaming application (PySpark's API).

A facade: it defines the DStream graph (inputs, transformations, outputs),
holds the application's settings (checkpoint directory, remember duration,
listeners), and starts and stops the streaming scheduler
(``streaming_scheduler.JobScheduler``), which generates every batch, runs its
output jobs, cleans up after it and writes the metadata checkpoints. Here too:
the wiring to this SparkContext's cluster -- receivers in processes of their
own, streaming dynamic allocation, the status pages and metrics.
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

from sluicegate.common import config as cfg
from sluicegate.common import constants
from sluicegate.common import storage
from sluicegate.common.storagelevel import StorageLevel

from ..checkpoint import metadata
from ..checkpoint.wal import ReceivedBlockLog
from ..cluster.receiver_link import RemoteReceiverSupervisor
from ..cluster.scaling import ExecutorScaler
from ..dstream.base import DStream
from ..dstream.graph import DStreamGraph
from ..dstream.inputs import FileInput, QueueInput, ReceiverInput
from ..dstream.ops import Transformed, duration_ms
from ..rdd.base import RDD
from ..receivers.receiver import Receiver
from ..receivers.socket_text import SocketTextReceiver
from ..receivers.supervisor import ReceiverTracker
from ..status.listener import ConsoleProgress, StatusListener
from ..streaming_scheduler.allocation_manager import AllocationManager, AllocationSettings
from ..streaming_scheduler.batch_runner import now_ms
from ..streaming_scheduler.checkpoint_writer import CheckpointTarget, without_secrets
from ..streaming_scheduler.clock import SystemClock
from ..streaming_scheduler.job_scheduler import JobScheduler
from ..streaming_scheduler.streaming_listener import (
    BatchInfo, StreamingListener, StreamingListenerBus, StreamingListenerStreamingStarted)
from .recovery import Recovery
from .spark_context import SparkContext

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
        self._clock = clock or SystemClock()
        self._state = INITIALIZED
        conf = sparkContext._conf.as_dict()
        self._conf = conf
        runtime = sparkContext._runtime
        bus = StreamingListenerBus()
        self._receivers = ReceiverTracker(
            runtime.drop_driver_blocks, bus,
            block_interval_s=cfg.get_setting(conf, cfg.STREAMING_BLOCK_INTERVAL),
            max_rate=cfg.get_setting(conf, cfg.STREAMING_RECEIVER_MAX_RATE),
            restart_delay_s=cfg.get_setting(conf, cfg.STREAMING_RECEIVER_RESTART_DELAY),
            spread=lambda: runtime.total_cores, conf=conf)
        self._scheduler = JobScheduler(
            batch_ms=self._batch_ms, graph=DStreamGraph(self._batch_ms), clock=self._clock, bus=bus,
            receivers=self._receivers, conf=conf, store_input_block=runtime.store_input_block,
            on_error=self._report_error, local_properties=sparkContext._local_properties)
        self._stream_ids = itertools.count(0)
        self._flow_metrics = None
        self._allocation: AllocationManager | None = None  # streaming dynamic allocation
        bus.add(StatusListener(runtime.status))
        if cfg.get_setting(conf, cfg.PROGRESS) and os.environ.get(constants.ENV_QUIET) != "1":
            bus.add(ConsoleProgress(self._batch_ms))
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._checkpoint_dir: str | None = None
        self._fingerprint = ""
        self._recovered: metadata.StreamingCheckpoint | None = None
        self._clock_ref: metadata.ClockRef | None = None  # the clock, as checkpoints hold it
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

    @property
    def _graph(self) -> DStreamGraph:
        """The DStream graph (the scheduler runs it; recovery replaces it)."""
        return self._scheduler.graph

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
            first = self._scheduler.start(self._recovered)
            self._state = ACTIVE
            StreamingContext._activeContext = self
            self._install_signal_handlers()
        self._sc._runtime.status.streaming_started(self._batch_ms)
        self._sc._metrics.batch_interval_ms = self._batch_ms
        self._scheduler.bus.post(StreamingListenerStreamingStarted(now_ms()))
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
            self._scheduler.bus.add(self._allocation)
            self._allocation.start()
        flow = self._scheduler.flow
        self._sc._runtime.status.flow = flow.describe
        metrics = getattr(self._sc, "_metrics", None)
        if metrics is not None and self._flow_metrics is None:
            self._flow_metrics = flow.metrics()
            metrics.registry.register(self._flow_metrics)

    def _stop_flow_control(self) -> None:
        if self._allocation is not None:
            self._allocation.stop()
        flow = self._scheduler.flow
        status = self._sc._runtime.status
        if status.flow == flow.describe:  # the pages keep its last state, not this context
            last = flow.describe()
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
            initial = stream._op.initial
            if isinstance(initial, RDD) and not initial.isCheckpointed():
                initial.checkpoint()
                initial.count()
        if self._clock_ref is None and not isinstance(self._clock, SystemClock):
            self._clock_ref = metadata.ClockRef(self._clock)
        self._scheduler.enable_checkpoints(CheckpointTarget(
            directory=str(self._checkpoint_dir), fingerprint=self._fingerprint,
            app_name=self._sc.appName, conf=without_secrets(self._conf), batch_ms=self._batch_ms,
            wal_enabled=self._receivers.wal is not None, clock=self._clock_ref))

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
                self._scheduler.stop(graceful=stopGraceFully)
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

    def _report_error(self, error: BaseException) -> None:
        with self._changed:
            self._error = error
            self._changed.notify_all()

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
        self._scheduler.bus.add(streamingListener)

    @property
    def completed_batches(self) -> list[BatchInfo]:
        """Recently completed batches, oldest first (status pages, tests)."""
        return list(self._scheduler.runner.completed)


def _union_rdds(time, *rdds):
    return rdds[0].context.union(list(rdds))
