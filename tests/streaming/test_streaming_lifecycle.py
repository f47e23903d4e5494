"""The streaming context's lifecycle: starting and stopping (once, twice, one
context at a time, released when stopped), graceful stops (in-process, on
SIGTERM, the signal handlers put back, a stuck batch given up on after
``spark.streaming.gracefulStopTimeout``), and listener events (batches, output
operations, receivers) as Spark delivers them.

In-process tests step batches with a manual clock where they can; receivers
deliver on their own threads, so those tests wait for a condition with
generous timeouts (the suite runs on a loaded two-core machine); the only
timings asserted are orderings of recorded intervals, or margins of seconds.
"""
from __future__ import annotations

import gc
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref

import psutil
import pytest
from waiting import wait_until

from conftest import executor_processes, wait_for_no_executors
from sluicegate.common import config as cfg
from sluicegate.driver import ManualClock, Receiver, StreamingContext, StreamingListener
from streaming_harness import Collector, ManualBatches, batch_ms_of
from streaming_sources import EndlessReceiver, Events, NumberReceiver, TextServer, streaming_threads

pytestmark = pytest.mark.usefixtures("no_streaming_leftovers")


# -- starting and stopping -------------------------------------------------------------------------------------------------------

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


def script_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["SLUICEGATE_QUIET"] = "1"
    for key in ("SLUICEGATE_MASTER", "SLUICEGATE_JOB_ID"):  # run locally, whatever the caller
        env.pop(key, None)
    return env


def stop_process(proc: subprocess.Popen, executors: list[psutil.Process]) -> list[psutil.Process]:
    """Make sure the job and its executors are gone; return executors that had to be killed."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
    _, alive = psutil.wait_procs(executors, timeout=15)
    for leftover in alive:
        leftover.kill()
    return alive


# -- graceful stop on SIGTERM, and its timeout --------------------------------------------------------------------

SIGTERM_JOB = textwrap.dedent('''
    """A receiver storing 0, 1, 2, ... one at a time; each batch's records appended
    to a file; stops gracefully on SIGTERM and then writes how many it stored."""
    import json, sys, threading, time
    from sluicegate.driver import Receiver, SparkConf, SparkContext, StreamingContext

    out_dir = sys.argv[1]

    class Counting(Receiver):
        def __init__(self):
            super().__init__()
            self.stored = 0

        def onStart(self):
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()

        def _run(self):
            i = self.stored
            while not self.isStopped():
                try:
                    self.store(i)
                except Exception:  # refused: the context stopped the receiver
                    break
                i += 1
                self.stored = i
                if i % 20 == 0:
                    time.sleep(0.01)

    def save(t, rdd):
        records = rdd.collect()
        with open(out_dir + "/batches.jsonl", "a") as f:
            f.write(json.dumps(records) + "\\n")

    conf = (SparkConf().setMaster("local[2]").setAppName("sigterm-graceful")
            .set("spark.streaming.stopGracefullyOnShutdown", "true")
            .set("spark.ui.enabled", "false"))
    sc = SparkContext(conf=conf)
    ssc = StreamingContext(sc, 0.5)
    receiver = Counting()
    ssc.receiverStream(receiver).foreachRDD(save)
    ssc.start()
    ssc.awaitTermination()
    receiver.thread.join(30)  # its last store() has returned, or been refused
    with open(out_dir + "/stored.txt", "w") as f:
        f.write(str(receiver.stored))
    print("job ended", flush=True)
''')


def read_batches(path) -> list[list[int]]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_sigterm_stops_gracefully_and_loses_no_stored_record(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SIGTERM_JOB)
    batches_file = tmp_path / "batches.jsonl"
    with open(tmp_path / "stdout.txt", "w") as out, open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=out,
                                stderr=err, env=script_env())
    executors: list[psutil.Process] = []
    try:
        # streaming, with data flowing: two batches that held records
        wait_until(lambda: sum(1 for b in read_batches(batches_file) if b) >= 2 or
                   proc.poll() is not None, 90, "two non-empty batches")
        assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
        executors = executor_processes(proc.pid)
        assert len(executors) == 2
        before_signal = sum(len(b) for b in read_batches(batches_file))
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    finally:
        killed = stop_process(proc, executors)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert code == 0, stderr[-3000:]
    assert "job ended" in (tmp_path / "stdout.txt").read_text()
    assert "gracefully" in stderr
    stored = int((tmp_path / "stored.txt").read_text())
    processed = [r for batch in read_batches(batches_file) for r in batch]
    # everything stored (before the signal, and until the receiver was stopped) was
    # processed, exactly once
    assert stored >= before_signal > 0
    assert len(processed) == stored
    assert sorted(processed) == list(range(stored))
    assert not killed, "executors outlived the gracefully stopped driver"


def test_a_signal_restores_the_old_handlers_before_the_graceful_stop(own_context):
    """The stop runs on a thread of its own, which may not touch signal handlers:
    the handler itself puts the old ones back, so a second signal is not ignored."""
    sc = own_context("local[1]", **{cfg.STREAMING_STOP_GRACEFULLY_ON_SHUTDOWN: "true"})
    original = signal.getsignal(signal.SIGTERM)
    ssc = StreamingContext(sc, 0.2)
    ssc.queueStream([], default=sc.parallelize([1])).foreachRDD(lambda rdd: rdd.count())
    ssc.start()
    try:
        assert signal.getsignal(signal.SIGTERM) is not original  # else SIGTERM would end pytest
        os.kill(os.getpid(), signal.SIGTERM)
        assert ssc.awaitTerminationOrTimeout(60), "the signal did not stop the context"
        assert signal.getsignal(signal.SIGTERM) is original
        assert signal.getsignal(signal.SIGINT) is not None
    finally:
        ssc.stop(stopSparkContext=False)
        signal.signal(signal.SIGTERM, original)


class LogWatch(logging.Handler):
    def __init__(self, needle: str):
        super().__init__(logging.WARNING)
        self.needle = needle
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.seen.set()


def test_graceful_stop_gives_up_waiting_after_the_timeout(own_context):
    """A batch stuck in a slow output: a graceful stop waits gracefulStopTimeout for
    it (here 0.5 s, where the default would be at least 10 s), then stops anyway."""
    sc = own_context("local[2]", spark__streaming__gracefulStopTimeout="500ms")
    release = threading.Event()
    running = threading.Event()

    def stuck(rdd):
        running.set()
        release.wait(60)

    clock = ManualClock(0)
    ssc = StreamingContext(sc, 1.0, clock=clock)
    ssc.queueStream([[1]]).foreachRDD(stuck)
    watch = LogWatch("batches still running")
    logger = logging.getLogger("sluicegate.streaming")
    logger.addHandler(watch)
    try:
        ssc.start()
        clock.set_ms(1000)
        assert running.wait(30)
        stopper = threading.Thread(target=ssc.stop, kwargs=dict(stopSparkContext=False,
                                                                stopGraceFully=True))
        started = time.monotonic()
        stopper.start()
        assert watch.seen.wait(30), "the graceful stop never gave up on the stuck batch"
        waited = time.monotonic() - started
        release.set()
        stopper.join(30)
        assert not stopper.is_alive()
    finally:
        release.set()
        logger.removeHandler(watch)
        ssc.stop(stopSparkContext=False)
    assert waited < 8.0, f"gave up after {waited:.1f}s, not after about 0.5s"


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
        assert all("test_streaming_lifecycle.py" in d or "streaming_harness.py" in d
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


# -- receiver listener events -------------------------------------------------------------------------------

class ReceiverEvents(StreamingListener):
    def __init__(self):
        self.started: list = []
        self.errors: list = []
        self.stopped: list = []
        self.lock = threading.Lock()

    def onReceiverStarted(self, receiverStarted):
        with self.lock:
            self.started.append(receiverStarted.receiverInfo())

    def onReceiverError(self, receiverError):
        with self.lock:
            self.errors.append(receiverError.receiverInfo())

    def onReceiverStopped(self, receiverStopped):
        with self.lock:
            self.stopped.append(receiverStopped.receiverInfo())


class ReportingReceiver(Receiver):
    """Stores 0..99, reports a problem (without stopping), stores 100..199."""

    def __init__(self):
        super().__init__()
        self.starts = 0
        self.reported_at_ms: tuple[int, int] | None = None
        self.done = threading.Event()

    def onStart(self):
        self.starts += 1
        threading.Thread(target=self._run, name="test-reporting-receiver", daemon=True).start()

    def _run(self):
        self.store(list(range(100)))
        before = int(time.time() * 1000)
        self.reportError("disk is getting full", OSError(28, "No space left on device"))
        self.reported_at_ms = (before, int(time.time() * 1000))
        for i in range(100, 200):
            self.store(i)
        self.done.set()


def test_receiver_started_error_and_stopped_events(sc):
    receiver = ReportingReceiver()
    events = ReceiverEvents()
    ssc = StreamingContext(sc, 0.5)
    ssc.addStreamingListener(events)
    stream = ssc.receiverStream(receiver)
    collector = Collector(stream)
    ssc.start()
    try:
        assert collector.wait_for(lambda records: len(records) >= 200, 60)
        assert receiver.done.is_set()
        assert not receiver.isStopped()  # reportError does not stop the receiver
        assert wait_until(lambda: events.started and events.errors, 30)
    finally:
        ssc.stop(stopSparkContext=False)
    assert sorted(collector.all_records()) == list(range(200))
    assert receiver.starts == 1  # not restarted either

    started, = events.started
    assert started.streamId() == 0 and started.name() == "ReportingReceiver"
    assert started.active() is True
    assert started.location() == "driver" and started.executorId() == "driver"
    assert started.lastErrorMessage() == "" and started.lastError() == ""
    assert started.lastErrorTime() == -1

    error, = events.errors
    assert error.streamId() == 0 and error.name() == "ReportingReceiver"
    assert error.lastErrorMessage() == "disk is getting full"
    assert "OSError" in error.lastError() and "No space left on device" in error.lastError()
    before, after = receiver.reported_at_ms
    assert before <= error.lastErrorTime() <= after
    assert error.active() is True

    stopped, = events.stopped  # delivered before stop() returned
    assert stopped.streamId() == 0 and stopped.name() == "ReportingReceiver"
    assert stopped.active() is False
    assert stopped.location() == "driver" and stopped.executorId() == "driver"
