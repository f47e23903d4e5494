"""Streaming against the real world: sockets, files, receiver threads, listeners,
failures and the streaming context's lifecycle.

Where the data source is a file or a queue, batches are stepped with a manual
clock (deterministic). Sockets and receivers deliver on their own threads, so
those tests run on the system clock and wait for a condition (with generous
timeouts), never for a fixed time -- except the rate-limit test, whose
subject is time.
"""
from __future__ import annotations

import datetime
import gc
import os
import socket
import threading
import time
import weakref
from collections import Counter
from operator import add

import psutil
import pytest
from waiting import wait_until

from conftest import executor_processes, wait_for_no_executors
from sluicegate.driver import (JobFailedError, Receiver, StorageLevel, StreamingContext,
                               StreamingListener)
from streaming_harness import BatchWaiter, Collector, ManualBatches, batch_ms_of

DASHES = "-------------------------------------------"
STREAMING_THREAD_PREFIXES = ("streaming-", "block-generator", "socket-receiver", "receiver-restart",
                             "graceful-stop")


def streaming_threads(ignore: frozenset = frozenset()) -> list[str]:
    """Names of running streaming threads, except the ``ignore``d thread objects."""
    return [t.name for t in threading.enumerate()
            if t.name.startswith(STREAMING_THREAD_PREFIXES) and t not in ignore]


@pytest.fixture
def earlier_threads() -> frozenset:
    """Threads already running before the test (another file's leftovers are not ours)."""
    return frozenset(threading.enumerate())


@pytest.fixture(autouse=True)
def no_streaming_leftovers(earlier_threads):
    """Every test stops what it started: no active context, no streaming threads."""
    yield
    active = StreamingContext.getActive()
    if active is not None:
        active.stop(stopSparkContext=False)
        pytest.fail("a test left a StreamingContext running")
    assert wait_until(lambda: not streaming_threads(earlier_threads), 10.0), \
        f"streaming threads left running: {streaming_threads(earlier_threads)}"


# -- helpers: a TCP text server and receivers -----------------------------------------------

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


def word_counts(stream):
    return stream.flatMap(lambda line: line.split(" ")).map(lambda w: (w, 1)).reduceByKey(add)


def summed(collector: Collector) -> Counter:
    total: Counter = Counter()
    for word, count in collector.all_records():
        total[word] += count
    return total


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


# -- socketTextStream -------------------------------------------------------------------------

def test_socket_text_stream_word_count(sc):
    payload = b"to be or not to be\n" * 100 + b"hello world\n" * 50
    expected = Counter({"to": 200, "be": 200, "or": 100, "not": 100, "hello": 50, "world": 50})
    with TextServer([(payload, False)]) as server:
        ssc = StreamingContext(sc, 0.5)
        collector = Collector(word_counts(ssc.socketTextStream("127.0.0.1", server.port)))
        waiter = BatchWaiter()
        ssc.addStreamingListener(waiter)
        ssc.start()
        try:
            assert collector.wait_for(
                lambda records: sum(c for _, c in records) >= sum(expected.values()), 60)
            # two more batches: nothing is counted twice
            seen = len(waiter.completed)
            assert wait_until(lambda: len(waiter.completed) >= seen + 2, 30)
        finally:
            ssc.stop(stopSparkContext=False)
        assert summed(collector) == expected
        assert server.accepted == 1
        # every batch is one reduceByKey result: a word at most once per batch
        for batch in collector.in_order():
            assert len(batch) == len({w for w, _ in batch})


def test_socket_text_stream_partial_last_line_and_utf8(sc):
    payload = "héllo wörld\nnaïve café\nunterminated".encode("utf-8")
    with TextServer([(payload, False)]) as server:
        ssc = StreamingContext(sc, 0.5)
        collector = Collector(ssc.socketTextStream("127.0.0.1", server.port))
        ssc.start()
        try:
            assert collector.wait_for(lambda records: len(records) >= 2, 60)
        finally:
            ssc.stop(stopSparkContext=False)
        # the unterminated line is held back while the connection is open
        assert collector.all_records() == ["héllo wörld", "naïve café"]


# -- textFileStream / binaryRecordsStream -----------------------------------------------------------

def test_text_file_stream_picks_up_new_files_once(sc, tmp_path):
    watched = tmp_path / "in"
    watched.mkdir()
    (watched / "old.txt").write_text("old line\n")
    with ManualBatches(sc, 1.0) as run:
        collector = Collector(run.ssc.textFileStream(str(watched)))
        run.start()
        (watched / "a.txt").write_text("a1\na2\n")
        (watched / ".b.txt.tmp").write_text("b1\nb2\nb3\n")  # hidden while being written
        (watched / "_c.txt").write_text("underscore\n")
        run.step(2)  # a.txt: seen by one scan, unchanged at the next -> read
        os.rename(watched / ".b.txt.tmp", watched / "b.txt")
        run.step(2)
        with open(watched / "old.txt", "a") as f:  # files present at start stay ignored
            f.write("more old\n")
        run.step(3)
    out = collector.in_order(sort=True)
    assert out == [[], ["a1", "a2"], [], ["b1", "b2", "b3"], [], [], []]


def test_text_file_stream_never_reads_a_file_half_written(sc, tmp_path):
    watched = tmp_path / "in"
    watched.mkdir()
    parts = [[f"part{p}-line{i}" for i in range(20)] for p in range(4)]
    with ManualBatches(sc, 1.0) as run:
        collector = Collector(run.ssc.textFileStream(str(watched)))
        run.start()
        for part in parts:  # one append per batch: the file grows across batch boundaries
            with open(watched / "slow.txt", "a") as f:
                f.write("\n".join(part) + "\n")
            run.step()
        run.step(3)
    batches = collector.in_order()
    assert len(batches) == 7
    holding = [i for i, batch in enumerate(batches) if batch]
    assert len(holding) == 1, f"the file's lines were split over batches {holding}"
    assert sorted(batches[holding[0]]) == sorted(line for part in parts for line in part)


def test_binary_records_stream(sc, tmp_path):
    watched = tmp_path / "bin"
    watched.mkdir()
    records = [bytes([i]) * 3 + b"\x00" for i in range(6)]
    with ManualBatches(sc, 1.0) as run:
        collector = Collector(run.ssc.binaryRecordsStream(str(watched), 4))
        run.start()
        hidden = watched / ".records.tmp"
        hidden.write_bytes(b"".join(records))
        os.rename(hidden, watched / "records.bin")
        run.step(3)
    assert collector.in_order() == [[], records, []]


def test_binary_records_stream_rejects_bad_length(sc, tmp_path):
    ssc = StreamingContext(sc, 1.0)
    with pytest.raises(ValueError):
        ssc.binaryRecordsStream(str(tmp_path), 0)


# -- custom receivers -----------------------------------------------------------------------------------

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


def test_custom_receiver_single_records_and_lists(sc):
    receiver = NumberReceiver(1000, singles=400, chunk=50)
    ssc = StreamingContext(sc, 0.5)
    events = Events()
    ssc.addStreamingListener(events)
    collector = Collector(ssc.receiverStream(receiver))
    ssc.start()
    try:
        assert collector.wait_for(lambda records: len(records) >= 1000, 60)
        assert receiver.done.is_set()
        seen = len(events.of("completed"))
        assert wait_until(lambda: len(events.of("completed")) >= seen + 1, 30)
    finally:
        ssc.stop(stopSparkContext=False)
    assert sorted(collector.all_records()) == list(range(1000))
    # the listener's numRecords agrees with what the batches held
    per_batch = {t: len(records) for t, records in collector.batches.items()}
    for completed in events.of("completed"):
        assert completed["records"] == per_batch.get(completed["time"], 0)
        assert set(completed["inputs"]) == {0}
    assert sum(c["records"] for c in events.of("completed")) == 1000


def test_receiver_stream_needs_a_receiver(sc):
    ssc = StreamingContext(sc, 1.0)
    with pytest.raises(TypeError):
        ssc.receiverStream(object())


def test_store_after_stop_is_refused(sc):
    """Like Spark's block generator, a stopped receiver cannot store: data handed over
    after the stop would never reach a batch, so store() must not pretend it did."""
    receiver = NumberReceiver(10, singles=10)
    ssc = StreamingContext(sc, 0.5)
    collector = Collector(ssc.receiverStream(receiver))
    ssc.start()
    try:
        assert collector.wait_for(lambda records: len(records) >= 10, 60)
    finally:
        ssc.stop(stopSparkContext=False, stopGraceFully=True)
    assert receiver.isStopped()
    with pytest.raises(Exception, match="stopped"):
        receiver.store(99)
    with pytest.raises(Exception, match="stopped"):
        receiver.store([99, 100])
    assert sorted(collector.all_records()) == list(range(10))


# -- graceful stop ------------------------------------------------------------------------------------------

def test_graceful_stop_keeps_every_stored_record(sc):
    receiver = NumberReceiver(5000, singles=3000, chunk=250)
    ssc = StreamingContext(sc, 0.5)
    collector = Collector(ssc.receiverStream(receiver))
    ssc.start()
    try:
        assert receiver.done.wait(60)
    finally:
        ssc.stop(stopSparkContext=False, stopGraceFully=True)
    records = collector.all_records()
    assert len(records) == 5000
    assert sorted(records) == list(range(5000))


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


def test_graceful_stop_while_receiving_loses_nothing_stored(sc):
    receiver = EndlessReceiver()
    ssc = StreamingContext(sc, 0.5)
    collector = Collector(ssc.receiverStream(receiver))
    ssc.start()
    try:
        assert wait_until(lambda: receiver.stored >= 2000, 60)
    finally:
        ssc.stop(stopSparkContext=False, stopGraceFully=True)
    assert receiver.finished.wait(10)
    records = collector.all_records()
    assert len(records) == receiver.stored
    assert sorted(records) == list(range(receiver.stored))


# -- output operations ------------------------------------------------------------------------------------------

def pprint_block(time_s: float, records: list, num: int) -> str:
    lines = [DASHES, f"Time: {datetime.datetime.fromtimestamp(time_s)}", DASHES]
    lines += [str(r) for r in records[:num]]
    if len(records) > num:
        lines.append("...")
    lines.append("")
    return "\n".join(lines) + "\n"


def test_pprint_format(sc, capsys):
    batches = [list(range(12)), [], [("a", 1), "b"], list(range(11))]
    with ManualBatches(sc, 0.5) as run:
        stream = run.ssc.queueStream(batches)
        stream.pprint()
        stream.pprint(2)
        run.start()
        capsys.readouterr()
        run.step(4)
    printed = capsys.readouterr().out
    expected = ""
    for i, records in enumerate(batches):
        expected += pprint_block(0.5 * (i + 1), records, 10) + pprint_block(0.5 * (i + 1), records, 2)
    assert printed == expected
    # spot-check the literal format
    assert printed.startswith(f"{DASHES}\nTime: {datetime.datetime.fromtimestamp(0.5)}\n{DASHES}\n0\n")
    assert "9\n...\n\n" in printed


def test_save_as_text_files(sc, tmp_path):
    out = tmp_path / "out"
    with ManualBatches(sc, 1.0) as run:
        stream = run.ssc.queueStream([["a", "b", "c", "d"], [], ["x"]])
        stream.saveAsTextFiles(str(out / "words"), "txt")
        stream.map(lambda s: s.upper()).saveAsTextFiles(str(out / "plain"))
        run.start()
        run.step(4)
    names = sorted(os.listdir(out))
    assert names == sorted([f"words-{t}.txt" for t in (1000, 2000, 3000, 4000)]
                           + [f"plain-{t}" for t in (1000, 2000, 3000, 4000)])
    # no staging directory or temporary file anywhere
    for root, dirs, files in os.walk(out):
        assert not [n for n in dirs + files if n.startswith(".")], (root, dirs, files)

    def read(directory) -> tuple[list[str], str]:
        parts = sorted(n for n in os.listdir(directory) if n.startswith("part-"))
        assert (directory / "_SUCCESS").exists()
        return parts, "".join((directory / p).read_text() for p in parts)

    assert read(out / "words-1000.txt") == (["part-00000", "part-00001", "part-00002"],
                                            "a\nb\nc\nd\n")
    assert read(out / "plain-1000") == (["part-00000", "part-00001", "part-00002"], "A\nB\nC\nD\n")
    assert read(out / "words-2000.txt")[1] == ""
    assert read(out / "words-3000.txt")[1] == "x\n"
    assert read(out / "plain-3000")[1] == "X\n"
    # an exhausted queue's batch: one empty partition (as PySpark's), so one empty part file
    assert read(out / "words-4000.txt") == (["part-00000"], "")


# -- listeners --------------------------------------------------------------------------------------------------

def fail_on_second_batch(time, rdd):
    if batch_ms_of(time) == 2000:
        raise ValueError("output refused batch two")
    rdd.count()


def test_streaming_listener_events(sc):
    events = Events()
    with ManualBatches(sc, 1.0) as run:
        run.ssc.addStreamingListener(events)
        stream = run.ssc.queueStream([[1, 2, 3], [4], []])
        collector = Collector(stream)
        stream.foreachRDD(fail_on_second_batch)
        run.start()
        run.step(3)
        with pytest.raises(ValueError, match="refused batch two"):
            run.ssc.awaitTerminationOrTimeout(5)
    assert collector.in_order() == [[1, 2, 3], [4], []]
    assert len(events.of("started")) == 1
    for i, records in enumerate([3, 1, 0]):
        time_ms = 1000 * (i + 1)
        kinds = [k for k, e in events.events if e.get("time") == time_ms]
        assert kinds == ["submitted", "batch-started", "output-started", "output-completed",
                         "output-started", "output-completed", "completed"]
        submitted, = events.of("submitted", time_ms)
        started, = events.of("batch-started", time_ms)
        completed, = events.of("completed", time_ms)
        for snapshot in (submitted, started, completed):
            assert snapshot["records"] == records
            assert snapshot["inputs"] == {}  # as Spark: queue streams report no input info
            assert snapshot["submission"] > 0
        assert submitted["start"] == submitted["end"] == -1
        assert submitted["scheduling"] == submitted["processing"] == submitted["total"] == -1
        assert started["start"] >= started["submission"] and started["scheduling"] >= 0
        assert started["end"] == -1 and started["processing"] == -1 and started["total"] == -1
        assert completed["scheduling"] >= 0 and completed["processing"] >= 0
        # Spark's totalDelay: scheduling + processing, i.e. from submission to the end
        assert completed["total"] == completed["scheduling"] + completed["processing"]
        assert completed["total"] == completed["end"] - completed["submission"]
        assert completed["end"] >= completed["start"] >= completed["submission"]
        names = {k: name for k, (name, _, _) in completed["outputs"].items()}
        assert names == {0: "foreachRDD", 1: "foreachRDD"}
        assert all("test_streaming_io.py" in d or "streaming_harness.py" in d
                   for d in completed["descriptions"].values())
        failures = {k: failure for k, (_, failure, _) in completed["outputs"].items()}
        if time_ms == 2000:
            assert failures[0] is None
            assert "ValueError" in failures[1] and "output refused batch two" in failures[1]
        else:
            assert failures == {0: None, 1: None}
        assert all(duration >= 0 for _, _, duration in completed["outputs"].values())
        outputs = events.of("output-completed", time_ms)
        assert [o["id"] for o in outputs] == [0, 1]
        assert all(o["end"] >= o["start"] >= 0 for o in outputs)
        assert [o["failure"] is not None for o in outputs] == [False, time_ms == 2000]


class SlowFirstListener(StreamingListener):
    """Holds the listener bus on the first submitted batch until that batch completed."""

    def __init__(self, ssc):
        self.ssc = ssc

    def onBatchSubmitted(self, batchSubmitted):
        wanted = batchSubmitted.batchInfo().batchTime().milliseconds()
        wait_until(lambda: any(b.batchTime().milliseconds() == wanted
                               for b in self.ssc.completed_batches), 20)


def test_listener_events_are_snapshots(sc):
    """A slow listener must not slow batches, and what each event reports is the
    batch as it was when the event happened (Spark's BatchInfo is immutable)."""
    events = Events()
    with ManualBatches(sc, 1.0) as run:
        run.ssc.addStreamingListener(SlowFirstListener(run.ssc))
        run.ssc.addStreamingListener(events)
        stream = run.ssc.queueStream([[1, 2]])
        stream.foreachRDD(fail_on_second_batch)
        run.start()
        run.step(1)
    submitted, = events.of("submitted", 1000)
    assert submitted["start"] == -1 and submitted["processing"] == -1
    assert submitted["outputs"][0][2] == -1  # output duration unknown at submission
    started, = events.of("batch-started", 1000)
    assert started["end"] == -1
    output_started, = events.of("output-started", 1000)
    assert output_started["end"] == -1


# -- errors in user code -------------------------------------------------------------------------------------------

def refuse_three(x):
    if x == 3:
        raise KeyError("three is not allowed here")
    return x * 10


def test_failing_user_function_fails_only_its_batch(sc):
    with ManualBatches(sc, 1.0) as run:
        stream = run.ssc.queueStream([[1, 2], [3], [4], [3, 5], [6]])
        collector = Collector(stream.map(refuse_three))
        run.start()
        run.step(2)
        with pytest.raises(Exception) as first:
            run.ssc.awaitTermination()
        run.step(2)
        with pytest.raises(Exception) as second:
            run.ssc.awaitTerminationOrTimeout(10)
        run.step(1)
    for error in (first.value, second.value):
        text = str(error)
        assert "KeyError" in text
        assert "three is not allowed here" in text
        assert "Traceback" in text and "refuse_three" in text  # the worker's traceback
        assert isinstance(error, JobFailedError)
    # the failed batches produced nothing; the others ran normally
    assert sorted(collector.batches) == [1000, 3000, 5000]
    assert collector.in_order() == [[10, 20], [40], [60]]


def test_error_in_driver_side_transform_is_reported(sc):
    def bad_transform(rdd):
        raise RuntimeError("cannot build this batch")

    with ManualBatches(sc, 1.0) as run:
        stream = run.ssc.queueStream([[1], [2]])
        collector = Collector(stream.transform(lambda t, rdd: bad_transform(rdd)
                                               if batch_ms_of(t) == 1000 else rdd))
        run.start()
        run.step(2)
        with pytest.raises(RuntimeError, match="cannot build this batch"):
            run.ssc.awaitTerminationOrTimeout(5)
    assert collector.in_order() == [[2]]


# -- lifecycle ---------------------------------------------------------------------------------------------------------

def test_start_twice_stop_twice_and_start_after_stop(sc, earlier_threads):
    ssc = StreamingContext(sc, 1.0)
    ssc.queueStream([[1]]).pprint()
    ssc.start()
    try:
        ssc.start()  # as in Spark: a warning, no second scheduler
        assert StreamingContext.getActive() is ssc
        assert streaming_threads(earlier_threads).count("streaming-job-generator") == 1
    finally:
        ssc.stop(stopSparkContext=False)
    ssc.stop(stopSparkContext=False)  # stopping again is harmless
    with pytest.raises(ValueError, match="stopped"):
        ssc.start()
    assert not sc._stopped


def test_defining_streams_after_start_is_an_error(sc):
    ssc = StreamingContext(sc, 1.0)
    stream = ssc.queueStream([[1]])
    stream.pprint()
    ssc.start()
    try:
        with pytest.raises(ValueError):
            stream.map(lambda x: x)
        with pytest.raises(ValueError):
            stream.foreachRDD(lambda rdd: None)
        with pytest.raises(ValueError):
            stream.pprint()
        with pytest.raises(ValueError):
            ssc.queueStream([[2]])
        with pytest.raises(ValueError):
            ssc.socketTextStream("127.0.0.1", 9)
    finally:
        ssc.stop(stopSparkContext=False)
    with pytest.raises(ValueError):
        stream.filter(bool)


def test_start_without_output_operations_is_an_error(sc):
    ssc = StreamingContext(sc, 1.0)
    ssc.queueStream([[1]]).map(lambda x: x)
    with pytest.raises(ValueError, match="No output operations"):
        ssc.start()
    assert StreamingContext.getActive() is None
    with pytest.raises(ValueError):
        StreamingContext(sc, 0)
    with pytest.raises(ValueError):
        StreamingContext(sc)


def test_get_active_and_get_active_or_create(sc):
    assert StreamingContext.getActive() is None
    created: list[StreamingContext] = []

    def setup():
        ssc = StreamingContext(sc, 1.0)
        ssc.queueStream([[1]]).pprint()
        created.append(ssc)
        return ssc

    ssc = StreamingContext.getActiveOrCreate(None, setup)
    assert created == [ssc] and StreamingContext.getActive() is None
    ssc.start()
    try:
        assert StreamingContext.getActive() is ssc
        assert StreamingContext.getActiveOrCreate(None, setup) is ssc
        assert len(created) == 1  # setup not called while a context is active
    finally:
        ssc.stop(stopSparkContext=False)
    assert StreamingContext.getActive() is None
    with pytest.raises(TypeError):
        StreamingContext.getActiveOrCreate(None, lambda: "not a context")


def test_only_one_streaming_context_runs_at_a_time(sc):
    first = StreamingContext(sc, 1.0)
    first.queueStream([[1]]).pprint()
    second = StreamingContext(sc, 1.0)
    second.queueStream([[2]]).pprint()
    first.start()
    try:
        with pytest.raises(ValueError, match="Only one StreamingContext"):
            second.start()
        assert StreamingContext.getActive() is first
    finally:
        first.stop(stopSparkContext=False)
    second.start()  # the first one is gone now
    try:
        assert StreamingContext.getActive() is second
    finally:
        second.stop(stopSparkContext=False)


def test_a_stopped_streaming_context_is_released(sc):
    """The SparkContext outlives many streaming contexts (a notebook, a test suite):
    a stopped one, with its graph and batches' RDDs, must not be kept alive."""
    with ManualBatches(sc, 1.0) as run:
        Collector(run.ssc.queueStream([[1, 2], [3]]).map(lambda x: x * 2))
        run.start()
        run.step(2)
    released = weakref.ref(run.ssc)
    del run
    gc.collect()
    assert released() is None


def test_no_streaming_threads_after_stop(sc, earlier_threads):
    with TextServer([(b"some words\n", False)]) as server:
        ssc = StreamingContext(sc, 0.5)
        ssc.socketTextStream("127.0.0.1", server.port).count().pprint()
        ssc.receiverStream(NumberReceiver(10, singles=10)).pprint()
        ssc.start()
        try:
            assert wait_until(lambda: server.accepted == 1, 30)
            names = streaming_threads(earlier_threads)
            assert any(n.startswith("streaming-job-generator") for n in names), names
            assert any(n.startswith("block-generator") for n in names), names
            assert any(n.startswith("socket-receiver") for n in names), names
        finally:
            ssc.stop(stopSparkContext=False)
        assert wait_until(lambda: not streaming_threads(earlier_threads), 10), \
            streaming_threads(earlier_threads)


# -- tests with their own SparkContext (last: each replaces the shared one) ---------------------

def test_socket_reconnects_after_the_server_closes(own_context):
    sc = own_context("local[2]", spark__streaming__receiverRestartDelay="200ms")
    events = Events()
    connections = [(b"a b\n" * 30, True), (b"c d a\n" * 20, False)]
    with TextServer(connections) as server:
        ssc = StreamingContext(sc, 0.5)
        ssc.addStreamingListener(events)
        collector = Collector(word_counts(ssc.socketTextStream("127.0.0.1", server.port)))
        ssc.start()
        try:
            assert collector.wait_for(lambda records: sum(c for _, c in records) >= 120, 60), \
                summed(collector)
            assert server.accepted == 2
        finally:
            ssc.stop(stopSparkContext=False)
    assert summed(collector) == Counter({"a": 50, "b": 30, "c": 20, "d": 20})
    assert any("no more data" in message for _, message, _ in events.receiver_errors), \
        events.receiver_errors


class FlakyReceiver(Receiver):
    """Its first onStart raises; later ones deliver ``0 .. 49``."""

    def __init__(self):
        super().__init__()
        self.starts = 0
        self.stops = 0

    def onStart(self):
        self.starts += 1
        if self.starts == 1:
            raise ConnectionError("source not ready yet")
        threading.Thread(target=lambda: self.store(list(range(50))), daemon=True).start()

    def onStop(self):
        self.stops += 1


def test_receiver_failing_to_start_is_restarted(own_context):
    sc = own_context("local[2]", spark__streaming__receiverRestartDelay="200ms")
    receiver = FlakyReceiver()
    events = Events()
    ssc = StreamingContext(sc, 0.5)
    ssc.addStreamingListener(events)
    collector = Collector(ssc.receiverStream(receiver))
    ssc.start()
    try:
        assert collector.wait_for(lambda records: len(records) >= 50, 60)
        seen = len(events.of("completed"))
        assert wait_until(lambda: len(events.of("completed")) >= seen + 2, 30)
        assert receiver.starts == 2  # restarted once, then left alone
    finally:
        ssc.stop(stopSparkContext=False)
    assert sorted(collector.all_records()) == list(range(50))
    assert receiver.stops == 2  # after the failed start, and at the end
    assert any("source not ready yet" in error and "ConnectionError" in error
               for _, _, error in events.receiver_errors), events.receiver_errors


def test_receiver_max_rate(own_context):
    rate = 200
    sc = own_context("local[2]", spark__streaming__receiver__maxRate=str(rate))
    receiver = EndlessReceiver(pause_every=0)
    ssc = StreamingContext(sc, 0.5)
    collector = Collector(ssc.receiverStream(receiver))
    ssc.start()
    try:
        time.sleep(2.0)  # the subject of this test is a rate over time
    finally:
        ssc.stop(stopSparkContext=False)
    assert receiver.finished.wait(10)
    elapsed = receiver.last_store - receiver.first_store
    assert 0 < receiver.stored < 10_000
    # a burst of one second's allowance, then at most `rate` a second (loosely)
    assert receiver.stored <= rate * (elapsed + 1) * 1.5, (receiver.stored, elapsed)
    assert len(collector.all_records()) <= receiver.stored


def test_no_executor_processes_after_spark_context_stop(own_context):
    sc = own_context("local[2]")
    children = executor_processes()
    assert len(children) == 2
    ssc = StreamingContext(sc, 1.0)
    with ManualBatches(sc, 1.0) as run:
        collector = Collector(run.ssc.queueStream([[1, 2, 3]]).map(lambda x: x + 1))
        run.start()
        run.step()
    assert collector.in_order() == [[2, 3, 4]]
    ssc.stop(stopSparkContext=True)  # never started: still stops the SparkContext
    assert sc._stopped
    assert wait_for_no_executors(15) == []
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive
