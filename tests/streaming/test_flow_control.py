"""Flow control: Spark's PID backpressure, bounded receiver buffers, the cap on
queued batches, and receivers that cannot starve the driver.

The estimator and the intake are tested as pure objects (no sockets). The
rest runs real local[2] applications: a job fed at three times its capacity,
a stalled output under a fast socket source, and a receiver that calls
``store()`` in a tight loop.
"""
from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
import urllib.request

import psutil
import pytest

from sluicegate.driver import StreamingContext, StreamingListener
from sluicegate.driver.receivers.receiver import Receiver
from sluicegate.driver.streaming_scheduler.flow_control import (
    RATE_LIMIT_KEY, FlowControl, RateController)
from sluicegate.driver.streaming_scheduler.rate_estimator import PidSettings, PIDRateEstimator
from sluicegate.driver.streaming_scheduler.streaming_listener import (
    BatchInfo, StreamInputInfo, StreamingListenerBatchCompleted, StreamingListenerBatchStarted)
from sluicegate.driver.streaming_scheduler.receiver_intake import ReceiverIntake

from conftest import executor_processes
from streaming_sources import CountingReceiver
from waiting import wait_until

MB = 1 << 20


# -- the PID estimator (pure) ------------------------------------------------------------------

def test_pid_first_batch_calibrates_and_publishes_what_the_job_did():
    pid = PIDRateEstimator(1000)
    # 5000 records in 500 ms: the job processes 10,000/s
    assert pid.compute(1000, 5000, 500, 0) == pytest.approx(10_000)
    # same speed, no delay: no error, the rate holds
    assert pid.compute(2000, 5000, 500, 0) == pytest.approx(10_000)


def test_pid_first_batch_answers_nothing_as_spark_without_calibration_publishing():
    pid = PIDRateEstimator(1000, publish_calibration=False)
    assert pid.compute(1000, 5000, 500, 0) is None
    assert pid.compute(2000, 5000, 500, 0) == pytest.approx(10_000)


@pytest.mark.parametrize("time_ms,records,processing_ms", [(2000, 0, 500), (2000, 10, 0),
                                                            (1000, 10, 500), (999, 10, 500)])
def test_pid_skips_batches_that_say_nothing(time_ms, records, processing_ms):
    pid = PIDRateEstimator(1000)
    pid.compute(1000, 5000, 500, 0)
    assert pid.compute(time_ms, records, processing_ms, 0) is None
    # and it did not move: the next useful batch is judged against the first
    assert pid.compute(3000, 5000, 500, 0) == pytest.approx(10_000)


def test_pid_proportional_term_follows_a_slower_job():
    pid = PIDRateEstimator(1000, PidSettings(proportional=1.0, integral=0.0))
    pid.compute(1000, 10_000, 1000, 0)              # 10,000/s
    # the job slowed to 4,000/s: error 6,000, the whole of it taken off
    assert pid.compute(2000, 10_000, 2500, 0) == pytest.approx(4_000)


def test_pid_integral_term_drains_the_scheduling_delay():
    pid = PIDRateEstimator(1000, PidSettings(proportional=1.0, integral=0.2))
    pid.compute(1000, 5000, 500, 0)                 # 10,000/s
    # same speed, but batches waited 2 s: 2 s * 10,000/s / 1 s = 20,000/s of backlog,
    # of which the integral takes 0.2
    assert pid.compute(2000, 5000, 500, 2000) == pytest.approx(10_000 - 0.2 * 20_000)


def test_pid_derivative_term_damps_a_changing_error():
    pid = PIDRateEstimator(1000, PidSettings(proportional=0.0, integral=0.0, derived=0.5))
    pid.compute(1000, 10_000, 1000, 0)              # rate 10,000, error 0
    # processing rate 8,000: error 2,000 in 1 s -> d(error)/dt 2,000
    assert pid.compute(2000, 8_000, 1000, 0) == pytest.approx(10_000 - 0.5 * 2_000)


def test_pid_never_goes_below_min_rate():
    pid = PIDRateEstimator(1000, PidSettings(min_rate=250))
    pid.compute(1000, 1000, 1000, 0)
    assert pid.compute(2000, 10, 1000, 60_000) == 250
    assert PIDRateEstimator(1000, PidSettings(min_rate=250)).compute(1000, 1, 1000, 0) == 250


@pytest.mark.parametrize("settings,what", [
    (PidSettings(proportional=-1), "proportional"), (PidSettings(integral=-0.1), "integral"),
    (PidSettings(derived=-2), "derived"), (PidSettings(min_rate=0), "minRate")])
def test_pid_refuses_bad_settings(settings, what):
    with pytest.raises(ValueError, match=what):
        PIDRateEstimator(1000, settings)
    with pytest.raises(ValueError, match="batch interval"):
        PIDRateEstimator(0)


def simulate_overload(capacity: float, offered: float, batch_s: float, batches: int,
                      first_batch_s: float, overhead_s: float = 0.02,
                      step_s: float = 0.01) -> list[tuple[float, float]]:
    """A job that processes ``capacity`` records/s (plus a fixed cost per batch) fed
    ``offered`` records/s, under a real ``RateController`` told of each batch's start
    and completion and asked to check running batches as time passes: (ingested
    records/s, lag of the batch's start in s) per batch, in order. Batches run one at
    a time, in time order; the first batch gathers ``first_batch_s`` of input."""
    limit = [None]
    controller = RateController(0, PIDRateEstimator(int(batch_s * 1000)),
                                lambda rate: limit.__setitem__(0, rate))
    ms = lambda seconds: int(round(seconds * 1000))  # noqa: E731
    now, received, due = 0.0, 0.0, first_batch_s
    queue, running, rows = [], None, []
    while len(rows) < batches:
        rate = offered if limit[0] is None else min(offered, limit[0])
        received += rate * step_s
        now += step_s
        controller.check_running(ms(now))
        if now >= due - 1e-9:
            info = BatchInfo(ms(due), ms(due), input_infos={0: StreamInputInfo(0, int(received))})
            queue.append(info)
            received, due = 0.0, due + batch_s
        if running is not None and now >= running[1] - 1e-9:
            info = running[0]
            info.processing_end_ms = ms(now)
            controller.onBatchCompleted(StreamingListenerBatchCompleted(info))
            rows.append((info.numRecords() / batch_s,
                         (info.processing_start_ms - info.batch_time_ms) / 1000))
            running = None
        if running is None and queue:
            info = queue.pop(0)
            info.processing_start_ms = ms(now)
            controller.onBatchStarted(StreamingListenerBatchStarted(info))
            running = (info, now + info.numRecords() / capacity + overhead_s)
    return rows


@pytest.mark.parametrize("first_batch_s", [0.5, 0.25, 0.05])
def test_rate_controller_converges_on_a_simulated_threefold_overload(first_batch_s):
    """Spark's controller takes 21 batches here when the first batch is a whole interval
    (the backlog of the unlimited start drains at the minimum rate); with the first
    batch's rate published, the overrun check and the next batch's lag, it settles
    within 18 (of the 20 the issue allows) and keeps the delay small after."""
    rows = simulate_overload(capacity=4000, offered=12_000, batch_s=0.5, batches=60,
                             first_batch_s=first_batch_s)
    settled = next(i for i in range(len(rows))
                   if all(abs(r[0] - 4000) <= 800 for r in rows[i:]))
    assert settled <= 18, [(round(r[0]), round(r[1], 2)) for r in rows[:30]]
    assert max(r[1] for r in rows[settled:]) < 0.5


# -- the receiver intake (pure, real time) -----------------------------------------------------

def test_intake_limits_the_rate_and_never_exceeds_max_rate():
    intake = ReceiverIntake(0, max_rate=2000, max_buffer_bytes=1 << 30, burst_s=0.1)
    assert intake.limit == 2000
    assert intake.set_rate(50_000) == 2000          # backpressure cannot go above maxRate
    assert intake.set_rate(1000) == 1000
    assert intake.set_rate(0) == 1000 and intake.set_rate(None) == 1000  # ignored, as Spark
    started = time.monotonic()
    for _ in range(10):
        intake.take(100, lambda: False)             # 1,000 records at 1,000/s
    assert 0.75 <= time.monotonic() - started <= 3.0


def test_intake_store_waits_while_the_buffer_is_full_and_goes_on_when_a_batch_is_done():
    intake = ReceiverIntake(0, max_rate=0, max_buffer_bytes=1000)
    assert intake.limit is None
    intake.block_stored("b1", 600, 10)
    intake.block_stored("b2", 600, 10)
    passed = threading.Event()

    def store():
        intake.take(1, lambda: False)
        passed.set()

    threading.Thread(target=store, daemon=True).start()
    assert not passed.wait(0.5)                      # 1,200 bytes held: store() waits
    assert intake.waiting and intake.full_waits == 1
    intake.release(["b1"])                           # its batch is done
    assert passed.wait(5)
    assert intake.unprocessed_bytes == 600


def test_intake_wait_ends_when_the_receiver_stops():
    intake = ReceiverIntake(0, max_rate=0, max_buffer_bytes=10)
    intake.block_stored("b", 100, 1)
    stopped = threading.Event()
    threading.Timer(0.3, stopped.set).start()
    started = time.monotonic()
    intake.take(1, stopped.is_set)
    assert time.monotonic() - started < 5


def test_flow_control_caps_queued_batches():
    pending = [3]
    flow = FlowControl({"spark.sluicegate.maxQueuedBatches": "3"}, 500, lambda: pending[0],
                       lambda n, timeout_s: time.sleep(timeout_s))
    stop = threading.Event()
    released = threading.Timer(0.4, lambda: pending.__setitem__(0, 2))
    released.start()
    started = time.monotonic()
    assert flow.wait_for_batch_room(1000, stop)
    assert time.monotonic() - started >= 0.3
    assert flow.queue_full_episodes == 1
    pending[0] = 5
    threading.Timer(0.2, stop.set).start()
    assert flow.wait_for_batch_room(1500, stop) is False   # a stop ends the wait


def test_flow_control_refuses_bad_settings():
    with pytest.raises(ValueError, match="Unknown rate estimator"):
        FlowControl({"spark.streaming.backpressure.enabled": "true",
                     "spark.streaming.backpressure.rateEstimator": "magic"}, 1000, lambda: 0,
                    lambda n, t: None)
    with pytest.raises(ValueError, match="minRate"):
        FlowControl({"spark.streaming.backpressure.enabled": "true",
                     "spark.streaming.backpressure.pid.minRate": "0"}, 1000, lambda: 0,
                    lambda n, t: None)


# -- real applications --------------------------------------------------------------------------

class PacedReceiver(Receiver):
    """Offers ``per_s`` records a second (numbered from 0) in lists of ``chunk``;
    ``accepted`` counts what store() took (a store refused after the stop is not)."""

    def __init__(self, per_s: int, chunk: int = 100):
        super().__init__()
        self.per_s, self.chunk = per_s, chunk
        self.accepted = 0

    def onStart(self):
        threading.Thread(target=self._run, name="paced-receiver", daemon=True).start()

    def _run(self):
        started, first = time.monotonic(), self.accepted
        while not self.isStopped():
            pause = started + (self.accepted - first) / self.per_s - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            elif pause < -1.0:  # held back by the limit: offer at the pace from now on
                started, first = time.monotonic(), self.accepted
            batch = list(range(self.accepted, self.accepted + self.chunk))
            try:
                self.store(batch)
            except Exception:  # noqa: BLE001 - refused: the context stopped
                return
            self.accepted += len(batch)


class Batches(StreamingListener):
    def __init__(self):
        self.infos = []

    def onBatchCompleted(self, batchCompleted):
        self.infos.append(batchCompleted.batchInfo())


def test_backpressure_converges_to_capacity_and_processes_every_accepted_record(own_context):
    """A job that processes 4,000 records/s (a sleep per record, so other load on the
    machine does not move its capacity) is offered 12,000/s. With backpressure its
    ingestion settles within 20 batches to within 20% of 4,000/s, with a bounded
    scheduling delay, and every record store() accepted is processed once. The limit
    is in the batches' input metadata, /metrics, the REST API and the status page."""
    sc = own_context("local[2]", spark__streaming__backpressure__enabled="true",
                     spark__sluicegate__progress="false")
    capacity, batch_s = 4000, 0.5
    ssc = StreamingContext(sc, batch_s)
    receiver = PacedReceiver(3 * capacity)
    batches = Batches()
    ssc.addStreamingListener(batches)
    seen: list[int] = []

    def work(t, rdd):
        records = rdd.collect()
        time.sleep(len(records) / capacity)
        seen.extend(records)

    ssc.receiverStream(receiver).foreachRDD(work)
    ssc.start()
    try:
        wait_until(lambda: len(batches.infos) >= 30, 120, "30 batches")
        base = sc.uiWebUrl
        metrics = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
        streaming = json.loads(urllib.request.urlopen(base + "/api/v1/streaming",
                                                      timeout=10).read())
        app = json.loads(urllib.request.urlopen(base + "/api/v1/applications",
                                                timeout=10).read())[0]["id"]
        receivers = json.loads(urllib.request.urlopen(
            f"{base}/api/v1/applications/{app}/streaming/receivers", timeout=10).read())
        page = urllib.request.urlopen(base + "/streaming", timeout=10).read().decode()
    finally:
        ssc.stop(stopSparkContext=False, stopGraceFully=True)
    infos = batches.infos
    rates = [i.numRecords() / batch_s for i in infos]
    settled = next((i for i in range(len(rates)) if all(
        abs(r - capacity) <= 0.2 * capacity for r in rates[i:30])), None)
    print(f"3x overload: settled after {settled} batches; rates {[round(r) for r in rates]}")
    assert settled is not None and settled <= 20, [round(r) for r in rates]
    lags = [i.processingStartTime() - i.batch_time_ms for i in infos[settled:30]]
    assert max(lags) < 3 * batch_s * 1000, lags
    # nothing accepted was lost, nothing was processed twice
    assert sorted(seen) == list(range(receiver.accepted))
    # the limit in force, where users look for it
    limits = [i.streamIdToInputInfo()[0].metadata().get(RATE_LIMIT_KEY) for i in infos[settled:]]
    assert all(limit and 0.5 * capacity < limit < 2 * capacity for limit in limits), limits
    found = re.search(r'sluicegate_input_rate_limit\{stream="0"\} ([0-9.e+]+)', metrics)
    assert found and 0.5 * capacity < float(found.group(1)) < 2 * capacity
    assert "sluicegate_queued_batches" in metrics
    assert streaming["flow_control"]["backpressure"] is True
    assert streaming["receivers"][0]["rate_limit"] > 0
    assert receivers[0]["rateLimit"] > 0
    assert "Rate limit" in page and "Backpressure" in page


class LineServer:
    """A TCP server that writes numbered lines as fast as its client reads them;
    ``sent`` counts whole lines written (``stop_sending`` finishes the line it is in)."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port = self.server.getsockname()[1]
        self.sent = 0
        self.stalls = 0  # times the client's window was closed (TCP pushed back)
        self._stop = threading.Event()
        self._done = threading.Event()
        self.conn = None
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        self.conn, _ = self.server.accept()
        self.conn.setblocking(False)
        pending, line_ends = b"", []
        try:
            while True:
                if not pending:
                    if self._stop.is_set():
                        break
                    first = self.sent
                    lines = [f"{n}\n".encode() for n in range(first, first + 2000)]
                    pending = b"".join(lines)
                    line_ends, total = [], 0
                    for line in lines:
                        total += len(line)
                        line_ends.append(total)
                    written = 0
                _, writable, _ = select.select([], [self.conn], [], 0.2)
                if not writable:
                    self.stalls += 1
                    continue
                try:
                    n = self.conn.send(pending[:1 << 16])
                except BlockingIOError:
                    continue
                pending, written = pending[n:], written + n
                while line_ends and line_ends[0] <= written:
                    line_ends.pop(0)
                    self.sent += 1
        finally:
            self._done.set()

    def stop_sending(self, timeout_s: float = 60) -> int:
        self._stop.set()
        assert self._done.wait(timeout_s)
        return self.sent

    def close(self):
        self._stop.set()
        for sock in (self.conn, self.server):
            if sock is not None:
                sock.close()


def rss(pid: int | None = None) -> int:
    return psutil.Process(pid).memory_info().rss


def test_stalled_output_keeps_memory_bounded_and_loses_nothing(own_context):
    """A socket source as fast as loopback allows, and an output that stalls for 20 s:
    the driver's and executors' memory stay under a fixed bound (receiver buffer 16 MB,
    at most 4 queued batches), TCP pushes back on the sender, and once the output
    resumes every line the server sent is processed exactly once."""
    sc = own_context("local[2]", spark__sluicegate__receiver__maxBufferBytes="16m",
                     spark__sluicegate__maxQueuedBatches="4", spark__sluicegate__progress="false")
    server = LineServer()
    ssc = StreamingContext(sc, 0.25)
    stalled = threading.Event()
    stalled.set()
    counts: dict[int, int] = {}
    seen_numbers: list[int] = []

    def output(t, rdd):
        numbers = rdd.map(int).collect()
        seen_numbers.extend(numbers)
        counts[len(counts)] = len(numbers)
        while stalled.is_set():
            time.sleep(0.05)

    ssc.socketTextStream("127.0.0.1", server.port).foreachRDD(output)
    executors = [p.pid for p in executor_processes()]
    driver_before = rss()
    executors_before = {pid: rss(pid) for pid in executors}
    ssc.start()
    peaks = {"driver": 0, **{pid: 0 for pid in executors}}
    try:
        wait_until(lambda: server.sent > 100_000, 60, "the source to send")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            peaks["driver"] = max(peaks["driver"], rss() - driver_before)
            for pid in executors:
                peaks[pid] = max(peaks[pid], rss(pid) - executors_before[pid])
            time.sleep(0.2)
        sent_while_stalled = server.sent
        queued = ssc._scheduler.flow.describe()["queued_batches"]
        full_episodes = ssc._scheduler.flow.queue_full_episodes
        stalls = server.stalls
        time.sleep(1.0)
        assert server.sent - sent_while_stalled < 200_000, "the sender was not held back"
        stalled.clear()
        total = server.stop_sending()
        wait_until(lambda: len(seen_numbers) >= total, 120, f"all {total} lines")
    finally:
        stalled.clear()
        ssc.stop(stopSparkContext=False, stopGraceFully=True)
        server.close()
    print(f"stalled output: sent {total} lines, peak RSS growth (MB) "
          f"{ {k: v // MB for k, v in peaks.items()} }, sender stalls {stalls}")
    assert peaks["driver"] < 200 * MB, peaks
    assert all(peaks[pid] < 150 * MB for pid in executors), peaks
    assert queued <= 4 and full_episodes >= 1
    assert stalls > 0
    assert sorted(seen_numbers) == list(range(total))




@pytest.mark.parametrize("backpressure", ["false", "true"])
def test_tight_loop_receiver_cannot_starve_the_driver(own_context, backpressure):
    """A receiver calling store() in a tight loop, with an output slower than it (the
    job is half a second behind every batch): batches keep completing, executors'
    heartbeats are answered (none is lost, none goes silent for long), the driver's
    memory stays bounded, and every stored record is processed once."""
    sc = own_context("local[2]", spark__streaming__backpressure__enabled=backpressure,
                     spark__sluicegate__receiver__maxBufferBytes="32m",
                     spark__sluicegate__progress="false")
    endpoint = sc._runtime.endpoint
    ssc = StreamingContext(sc, 0.5)
    receiver = CountingReceiver()
    batches = Batches()
    ssc.addStreamingListener(batches)
    total = [0]

    def output(t, rdd):
        total[0] += rdd.count()
        time.sleep(0.6)

    ssc.receiverStream(receiver).foreachRDD(output)
    before = rss()
    silence = [0.0]
    peak = [0]
    watching = threading.Event()

    def watch():
        while not watching.is_set():
            now = time.monotonic()
            silence[0] = max([silence[0]] + [now - e.last_seen_s for e in endpoint.registry.alive()])
            peak[0] = max(peak[0], rss() - before)
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    ssc.start()
    watcher.start()
    try:
        wait_until(lambda: len(batches.infos) >= 15, 90, "15 batches")
    finally:
        ssc.stop(stopSparkContext=False, stopGraceFully=True)
        watching.set()
        watcher.join(5)
    print(f"tight loop (backpressure {backpressure}): stored {receiver.stored}, "
          f"{len(batches.infos)} batches, longest executor silence {silence[0]:.2f}s, "
          f"peak driver RSS growth {peak[0] // MB} MB")
    assert receiver.stored > 100_000
    assert not [e for e in endpoint.registry.executors.values() if not e.alive]
    assert silence[0] < 3.0, f"an executor went unheard for {silence[0]:.1f}s"
    assert peak[0] < 300 * MB, peak
    assert total[0] == receiver.stored


# -- receivers in processes of their own ---------------------------------------------------------

def exact_range(stats: list) -> bool:
    """``stats``: (count, sum, max) of several batches of 0..N-1 stored once each."""
    count = sum(s[0] for s in stats)
    total = sum(s[1] for s in stats)
    top = max((s[2] for s in stats if s[0]), default=-1)
    return count == top + 1 and total == count * (count - 1) // 2


def batch_stats(rdd):
    return rdd.map(lambda x: (1, x, x)).fold((0, 0, -1), lambda a, b: (a[0] + b[0], a[1] + b[1],
                                                                       max(a[2], b[2])))


@pytest.mark.parametrize("backpressure", ["false", "true"])
def test_tight_loop_receiver_in_its_own_process_leaves_the_driver_alone(own_context, backpressure):
    """With spark.sluicegate.receiver.isolation=process the tight loop runs in its own
    interpreter: batches complete, heartbeats are answered, the driver's loop answers
    within milliseconds, its memory stays bounded, and 0..N-1 arrive exactly once."""
    sc = own_context("local[2]", spark__streaming__backpressure__enabled=backpressure,
                     spark__sluicegate__receiver__isolation="process",
                     spark__sluicegate__receiver__maxBufferBytes="32m",
                     spark__sluicegate__progress="false")
    endpoint = sc._runtime.endpoint
    ssc = StreamingContext(sc, 0.5)
    batches = Batches()
    ssc.addStreamingListener(batches)
    stats: list = []

    def output(t, rdd):
        stats.append(batch_stats(rdd))
        time.sleep(0.6)  # slower than the source: buffers fill, store() waits

    ssc.receiverStream(CountingReceiver()).foreachRDD(output)
    before = rss()
    ssc.start()
    latencies, silence, peak = [], 0.0, 0
    try:
        deadline = time.monotonic() + 90
        while len(batches.infos) < 15 and time.monotonic() < deadline:
            started = time.perf_counter()
            sc._runtime.wait_for_posted()  # answered once the loop got to it
            latencies.append(time.perf_counter() - started)
            now = time.monotonic()
            silence = max([silence] + [now - e.last_seen_s for e in endpoint.registry.alive()])
            peak = max(peak, rss() - before)
            time.sleep(0.1)
        assert len(batches.infos) >= 15
    finally:
        ssc.stop(stopSparkContext=False, stopGraceFully=True)
    latencies.sort()
    print(f"receiver process (backpressure {backpressure}): {sum(s[0] for s in stats)} records, "
          f"loop p50 {latencies[len(latencies) // 2] * 1000:.2f} ms, "
          f"p90 {latencies[int(len(latencies) * 0.9)] * 1000:.1f} ms, "
          f"silence {silence:.2f}s, RSS +{peak // MB} MB")
    assert sum(s[0] for s in stats) > 100_000
    assert exact_range(stats)
    assert not [e for e in endpoint.registry.executors.values() if not e.alive]
    assert silence < 3.0 and peak < 300 * MB


SOURCES: dict[str, str] = {}


class FileLinesReceiver(Receiver):
    """A reliable receiver: stores a file's lines ten at a time, each block with the
    offset after it, resuming after the last stored one (lastStoredMetadata)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def onStart(self):
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        offset = self.lastStoredMetadata() or 0
        while not self.isStopped():
            with open(self.path) as f:
                lines = f.read().split("\n")[:-1]
            if offset >= len(lines):
                time.sleep(0.02)
                continue
            chunk = lines[offset:offset + 10]
            try:
                self.store(chunk, metadata=offset + len(chunk))
            except Exception:  # noqa: BLE001 - refused after the stop
                return
            offset += len(chunk)
            time.sleep(0.01)


class ReceiverEvents(StreamingListener):
    def __init__(self):
        self.events = []

    def onReceiverStarted(self, receiverStarted):
        self.events.append(("started", receiverStarted.receiverInfo()))

    def onReceiverError(self, receiverError):
        self.events.append(("error", receiverError.receiverInfo()))


def test_receiver_process_killed_restarts_from_its_last_stored_block(own_context, tmp_path):
    """A reliable receiver (write-ahead log on) in its own process, SIGKILLed while it
    stores: it is restarted, resumes after its last stored block (lastStoredMetadata
    survives the process), and every line arrives exactly once. Listeners hear of the
    start, the loss and the restart."""
    sc = own_context("local[2]", spark__sluicegate__receiver__isolation="process",
                     spark__streaming__receiver__writeAheadLog__enable="true",
                     spark__streaming__receiverRestartDelay="500ms",
                     spark__sluicegate__progress="false")
    source = tmp_path / "lines.txt"
    source.write_text("".join(f"{n}\n" for n in range(3000)))
    ssc = StreamingContext(sc, 0.5)
    ssc.checkpoint(str(tmp_path / "ck"))
    events = ReceiverEvents()
    ssc.addStreamingListener(events)
    seen: list[int] = []
    ssc.receiverStream(FileLinesReceiver(str(source))).map(int) \
        .foreachRDD(lambda t, rdd: seen.extend(rdd.collect()))
    ssc.start()
    try:
        link = ssc._receivers.supervisors[0]
        wait_until(lambda: 300 < len(seen) < 2500, 60, "some lines")
        first_pid = link.process.pid
        psutil.Process(first_pid).kill()
        wait_until(lambda: link.process.pid != first_pid and link.restarts == 1, 30, "a restart")
        with source.open("a") as f:
            f.write("".join(f"{n}\n" for n in range(3000, 4000)))
        wait_until(lambda: len(seen) >= 4000, 60, "every line")
        time.sleep(1.0)  # nothing more comes
    finally:
        ssc.stop(stopSparkContext=False, stopGraceFully=True)
    assert sorted(seen) == list(range(4000))
    kinds = [kind for kind, _ in events.events]
    assert kinds.count("started") >= 2 and "error" in kinds, kinds
    assert events.events[0][1].location().startswith("receiver process ")


class Unpicklable(Receiver):
    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()

    def onStart(self):
        pass


def test_a_receiver_that_does_not_pickle_cannot_run_in_a_process(own_context):
    sc = own_context("local[2]", spark__sluicegate__receiver__isolation="process")
    ssc = StreamingContext(sc, 0.5)
    ssc.receiverStream(Unpicklable()).pprint()
    with pytest.raises(ValueError, match="does not pickle"):
        ssc.start()
    ssc.stop(stopSparkContext=False)


def test_receiver_isolation_setting_is_checked(own_context):
    sc = own_context("local[2]", spark__sluicegate__receiver__isolation="fork")
    ssc = StreamingContext(sc, 0.5)
    ssc.receiverStream(CountingReceiver()).pprint()
    with pytest.raises(ValueError, match="'thread' or 'process'"):
        ssc.start()
    ssc.stop(stopSparkContext=False)


def test_queued_batch_cap_delays_batches_and_skips_none(own_context):
    """spark.sluicegate.maxQueuedBatches=2 with a manual clock: while the first batch's
    output is held, the clock moves eight batches on, yet only two batches are ever
    generated and unfinished; once the output goes on, every batch time is generated,
    in order, and the records queued meanwhile are all processed."""
    sc = own_context("local[2]", spark__sluicegate__maxQueuedBatches="2",
                     spark__sluicegate__progress="false")
    from sluicegate.driver import ManualClock
    clock = ManualClock(0)
    ssc = StreamingContext(sc, 1.0, clock=clock)
    held = threading.Event()
    go_on = threading.Event()
    seen: list[tuple[int, list]] = []

    def output(t, rdd):
        seen.append((int(t.timestamp() * 1000), sorted(rdd.collect())))
        if len(seen) == 1:
            held.set()
            go_on.wait(60)

    ssc.queueStream([[i] for i in range(10)]).foreachRDD(output)
    ssc.start()
    try:
        clock.advance_ms(1000)
        assert held.wait(30)
        most = 0
        for _ in range(8):
            clock.advance_ms(1000)
            time.sleep(0.1)
            most = max(most, ssc._scheduler.runner.pending_batches)
        assert most <= 2 and ssc._scheduler.flow.queue_full_episodes >= 1
        go_on.set()
        wait_until(lambda: len(seen) >= 9, 30, "the delayed batches")
    finally:
        go_on.set()
        ssc.stop(stopSparkContext=False)
    times = [t for t, _ in seen]
    assert times[:9] == [1000 * (i + 1) for i in range(9)]
    assert [r for _, r in seen[:9]] == [[i] for i in range(9)]
