"""StreamingListener, its events, and the bus that delivers them.

The API follows PySpark: a listener subclasses ``StreamingListener`` and
overrides ``onBatchCompleted(batchCompleted)`` and friends; event objects
expose accessor methods as PySpark's (py4j) objects do:
``batchCompleted.batchInfo().processingDelay()``. Delays are milliseconds,
-1 while not yet known. Events are delivered on one bus thread, so a slow
listener never slows a batch.
"""
from __future__ import annotations

import copy
import logging
import queue
import threading
from dataclasses import dataclass, field

log = logging.getLogger("sluicegate.streaming.listener")


class Time:
    """A batch time (PySpark's py4j ``Time``): ``milliseconds()``."""

    def __init__(self, ms: int):
        self._ms = ms

    def milliseconds(self) -> int:
        return self._ms

    def __eq__(self, other) -> bool:
        return isinstance(other, Time) and other._ms == self._ms

    def __hash__(self) -> int:
        return hash(self._ms)

    def __repr__(self) -> str:
        return f"{self._ms} ms"


@dataclass
class StreamInputInfo:
    input_stream_id: int
    num_records: int
    _metadata: dict = field(default_factory=dict)

    def inputStreamId(self) -> int:
        return self.input_stream_id

    def numRecords(self) -> int:
        return self.num_records

    def metadata(self) -> dict:
        return dict(self._metadata)

    def metadataDescription(self) -> str | None:
        return self._metadata.get("Description")


@dataclass
class OutputOperationInfo:
    batch_time_ms: int
    output_id: int
    op_name: str
    _description: str
    start_ms: int = -1
    end_ms: int = -1
    failure_reason: str | None = None

    def batchTime(self) -> Time:
        return Time(self.batch_time_ms)

    def id(self) -> int:
        return self.output_id

    def name(self) -> str:
        return self.op_name

    def description(self) -> str:
        """Where the output operation was defined (the job script's call site)."""
        return self._description

    def startTime(self) -> int:
        return self.start_ms

    def endTime(self) -> int:
        return self.end_ms

    def failureReason(self) -> str | None:
        return self.failure_reason

    def duration(self) -> int:
        return self.end_ms - self.start_ms if self.end_ms >= 0 and self.start_ms >= 0 else -1

    def snapshot(self) -> "OutputOperationInfo":
        """A copy that later progress of the operation does not change."""
        return copy.copy(self)


@dataclass
class BatchInfo:
    """One batch: when it was due, submitted, started, finished, and its input."""

    batch_time_ms: int
    submission_ms: int
    processing_start_ms: int = -1
    processing_end_ms: int = -1
    input_infos: dict[int, StreamInputInfo] = field(default_factory=dict)
    output_infos: dict[int, OutputOperationInfo] = field(default_factory=dict)
    # Records of inputs that report no input info (queue streams, as in Spark): counted
    # by numRecords() all the same, so rates and the status pages show them.
    unreported_records: int = 0

    def batchTime(self) -> Time:
        return Time(self.batch_time_ms)

    def submissionTime(self) -> int:
        return self.submission_ms

    def processingStartTime(self) -> int:
        return self.processing_start_ms

    def processingEndTime(self) -> int:
        return self.processing_end_ms

    def schedulingDelay(self) -> int:
        """Time from submission until the first job started."""
        if self.processing_start_ms < 0:
            return -1
        return self.processing_start_ms - self.submission_ms

    def processingDelay(self) -> int:
        if self.processing_end_ms < 0 or self.processing_start_ms < 0:
            return -1
        return self.processing_end_ms - self.processing_start_ms

    def totalDelay(self) -> int:
        """Scheduling delay plus processing delay (Spark's): from submission until the
        last job finished; -1 while either is unknown."""
        scheduling, processing = self.schedulingDelay(), self.processingDelay()
        if scheduling < 0 or processing < 0:
            return -1
        return scheduling + processing

    def numRecords(self) -> int:
        """Records the batch's inputs held (including the lists a queueStream was given,
        which Spark counts as 0: it has no input info for them)."""
        return sum(i.num_records for i in self.input_infos.values()) + self.unreported_records

    def streamIdToInputInfo(self) -> dict[int, StreamInputInfo]:
        return dict(self.input_infos)

    def outputOperationInfos(self) -> dict[int, OutputOperationInfo]:
        return dict(self.output_infos)

    def failed(self) -> bool:
        return any(o.failure_reason for o in self.output_infos.values())

    def snapshot(self) -> "BatchInfo":
        """A copy that later progress of the batch does not change: events carry
        one, as Spark's immutable BatchInfo, however late a listener reads it."""
        clone = copy.copy(self)
        clone.input_infos = dict(self.input_infos)
        clone.output_infos = {k: o.snapshot() for k, o in self.output_infos.items()}
        return clone


@dataclass
class ReceiverInfo:
    """Spark's ReceiverInfo. Receivers run in the driver, so ``location()`` and
    ``executorId()`` say "driver". ``lastErrorTime()`` is epoch ms, -1 if none."""

    stream_id: int
    receiver_name: str
    is_active: bool
    _location: str = "driver"
    last_error_message: str = ""
    last_error: str = ""
    _executor_id: str = "driver"
    last_error_time_ms: int = -1

    def streamId(self) -> int:
        return self.stream_id

    def name(self) -> str:
        return self.receiver_name

    def active(self) -> bool:
        return self.is_active

    def location(self) -> str:
        return self._location

    def executorId(self) -> str:
        return self._executor_id

    def lastErrorMessage(self) -> str:
        return self.last_error_message

    def lastError(self) -> str:
        return self.last_error

    def lastErrorTime(self) -> int:
        return self.last_error_time_ms


# -- events ----------------------------------------------------------------------

@dataclass
class StreamingListenerStreamingStarted:
    time_ms: int

    def time(self) -> int:
        return self.time_ms


@dataclass
class _BatchEvent:
    info: BatchInfo

    def batchInfo(self) -> BatchInfo:
        return self.info


class StreamingListenerBatchSubmitted(_BatchEvent):
    pass


class StreamingListenerBatchStarted(_BatchEvent):
    pass


class StreamingListenerBatchCompleted(_BatchEvent):
    pass


@dataclass
class _OutputEvent:
    info: OutputOperationInfo

    def outputOperationInfo(self) -> OutputOperationInfo:
        return self.info


class StreamingListenerOutputOperationStarted(_OutputEvent):
    pass


class StreamingListenerOutputOperationCompleted(_OutputEvent):
    pass


@dataclass
class _ReceiverEvent:
    info: ReceiverInfo

    def receiverInfo(self) -> ReceiverInfo:
        return self.info


class StreamingListenerReceiverStarted(_ReceiverEvent):
    pass


class StreamingListenerReceiverError(_ReceiverEvent):
    pass


class StreamingListenerReceiverStopped(_ReceiverEvent):
    pass


class StreamingListener:
    """Receives streaming events; override the callbacks you need."""

    def onStreamingStarted(self, streamingStarted) -> None: ...
    def onReceiverStarted(self, receiverStarted) -> None: ...
    def onReceiverError(self, receiverError) -> None: ...
    def onReceiverStopped(self, receiverStopped) -> None: ...
    def onBatchSubmitted(self, batchSubmitted) -> None: ...
    def onBatchStarted(self, batchStarted) -> None: ...
    def onBatchCompleted(self, batchCompleted) -> None: ...
    def onOutputOperationStarted(self, outputOperationStarted) -> None: ...
    def onOutputOperationCompleted(self, outputOperationCompleted) -> None: ...


_CALLBACK = {
    StreamingListenerStreamingStarted: "onStreamingStarted",
    StreamingListenerReceiverStarted: "onReceiverStarted",
    StreamingListenerReceiverError: "onReceiverError",
    StreamingListenerReceiverStopped: "onReceiverStopped",
    StreamingListenerBatchSubmitted: "onBatchSubmitted",
    StreamingListenerBatchStarted: "onBatchStarted",
    StreamingListenerBatchCompleted: "onBatchCompleted",
    StreamingListenerOutputOperationStarted: "onOutputOperationStarted",
    StreamingListenerOutputOperationCompleted: "onOutputOperationCompleted",
}


class StreamingListenerBus:
    """Delivers events to listeners in order, on its own thread."""

    def __init__(self) -> None:
        self._listeners: list[StreamingListener] = []
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def add(self, listener: StreamingListener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="streaming-listener-bus", daemon=True)
        self._thread.start()

    def post(self, event) -> None:
        self._queue.put(event)

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            callback = _CALLBACK[type(event)]
            with self._lock:
                listeners = list(self._listeners)
            for listener in listeners:
                try:
                    getattr(listener, callback)(event)
                except Exception:  # noqa: BLE001 - one listener must not break the others
                    log.exception("streaming listener %r failed in %s", listener, callback)
