"""Sources and observers for the streaming tier's tests: a TCP text server,
receivers that store numbers (a given count, or endlessly until stopped), a
listener that records every event, and the names of running streaming threads
(a stopped context must leave none behind).
"""
from __future__ import annotations

import socket
import threading
import time

from sluicegate.driver import Receiver, StorageLevel, StreamingListener

STREAMING_THREAD_PREFIXES = ("streaming-", "block-generator", "socket-receiver", "receiver-restart",
                             "graceful-stop")


def streaming_threads(ignore: frozenset = frozenset()) -> list[str]:
    """Names of running streaming threads, except the ``ignore``d thread objects."""
    return [t.name for t in threading.enumerate()
            if t.name.startswith(STREAMING_THREAD_PREFIXES) and t not in ignore]


class TextServer:
    """A TCP server thread on 127.0.0.1. The k-th connection it accepts gets
    ``connections[k][0]`` (bytes); if ``connections[k][1]`` is true the server then
    closes it, else holds it open until ``stop()``."""

    def __init__(self, connections: list[tuple[bytes, bool]]):
        self.connections = connections
        self.accepted = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self._open: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test-text-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set() and self.accepted < len(self.connections):
            try:
                conn, _ = self._server.accept()
            except (socket.timeout, OSError):
                continue
            payload, close = self.connections[self.accepted]
            self.accepted += 1
            conn.sendall(payload)
            if close:
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            else:
                self._open.append(conn)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._open:
            conn.close()
        self._server.close()

    def __enter__(self) -> "TextServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class NumberReceiver(Receiver):
    """Stores ``0 .. n-1``: the first ``singles`` one at a time, the rest in lists."""

    def __init__(self, n: int, singles: int, chunk: int = 100):
        super().__init__(StorageLevel.MEMORY_AND_DISK_2)
        self.n, self.singles, self.chunk = n, singles, chunk
        self.done = threading.Event()

    def onStart(self):
        threading.Thread(target=self._run, name="test-number-receiver", daemon=True).start()

    def _run(self):
        for i in range(self.singles):
            self.store(i)
        for start in range(self.singles, self.n, self.chunk):
            self.store(list(range(start, min(self.n, start + self.chunk))))
        self.done.set()


class CountingReceiver(Receiver):
    """Stores 0, 1, 2, ... one record at a time until stopped, pausing ``pause_s``
    after each (0: a loop as tight as Python allows, no maxRate); ``stored`` counts
    the stores that returned."""

    def __init__(self, pause_s: float = 0.0):
        super().__init__()
        self.pause_s = pause_s
        self.stored = 0

    def onStart(self):
        threading.Thread(target=self._run, name="test-counting-receiver", daemon=True).start()

    def _run(self):
        i = self.stored
        while not self.isStopped():
            try:
                self.store(i)
            except Exception:  # noqa: BLE001 - refused after the stop
                return
            i += 1
            self.stored = i
            if self.pause_s:
                time.sleep(self.pause_s)


class EndlessReceiver(Receiver):
    """Stores 0, 1, 2, ... one at a time until stopped; ``stored`` counts the
    stores that returned (a store refused after the stop ends the loop)."""

    def __init__(self, pause_every: int = 200):
        super().__init__()
        self.stored = 0
        self.pause_every = pause_every
        self.first_store: float | None = None
        self.last_store: float | None = None
        self.finished = threading.Event()

    def onStart(self):
        threading.Thread(target=self._run, name="test-endless-receiver", daemon=True).start()

    def _run(self):
        try:
            i = self.stored
            self.first_store = self.first_store or time.monotonic()
            while not self.isStopped():
                try:
                    self.store(i)
                except Exception:  # noqa: BLE001 - refused: we were stopped meanwhile
                    break
                i += 1
                self.stored = i
                self.last_store = time.monotonic()
                if self.pause_every and i % self.pause_every == 0:
                    time.sleep(0.001)
        finally:
            self.finished.set()


class Events(StreamingListener):
    """Records every event as it is delivered (a snapshot of the interesting fields)."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.receiver_errors: list = []
        self.lock = threading.Lock()

    def _batch(self, kind, event) -> None:
        info = event.batchInfo()
        snapshot = dict(
            time=info.batchTime().milliseconds(), submission=info.submissionTime(),
            start=info.processingStartTime(), end=info.processingEndTime(),
            scheduling=info.schedulingDelay(), processing=info.processingDelay(),
            total=info.totalDelay(), records=info.numRecords(),
            inputs={k: v.numRecords() for k, v in info.streamIdToInputInfo().items()},
            outputs={k: (o.name(), o.failureReason(), o.duration())
                     for k, o in info.outputOperationInfos().items()},
            descriptions={k: o.description() for k, o in info.outputOperationInfos().items()})
        with self.lock:
            self.events.append((kind, snapshot))

    def _output(self, kind, event) -> None:
        info = event.outputOperationInfo()
        with self.lock:
            self.events.append((kind, dict(time=info.batchTime().milliseconds(), id=info.id(),
                                           name=info.name(), failure=info.failureReason(),
                                           start=info.startTime(), end=info.endTime())))

    def onStreamingStarted(self, streamingStarted):
        with self.lock:
            self.events.append(("started", {"time": streamingStarted.time()}))

    def onBatchSubmitted(self, batchSubmitted):
        self._batch("submitted", batchSubmitted)

    def onBatchStarted(self, batchStarted):
        self._batch("batch-started", batchStarted)

    def onBatchCompleted(self, batchCompleted):
        self._batch("completed", batchCompleted)

    def onOutputOperationStarted(self, outputOperationStarted):
        self._output("output-started", outputOperationStarted)

    def onOutputOperationCompleted(self, outputOperationCompleted):
        self._output("output-completed", outputOperationCompleted)

    def onReceiverError(self, receiverError):
        info = receiverError.receiverInfo()
        with self.lock:
            self.receiver_errors.append((info.name(), info.lastErrorMessage(), info.lastError()))

    def of(self, kind: str, time_ms: int | None = None) -> list[dict]:
        with self.lock:
            return [e for k, e in self.events
                    if k == kind and (time_ms is None or e.get("time") == time_ms)]
