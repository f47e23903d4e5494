"""Streaming core, the parts an audit found untested: graceful stop on SIGTERM,
``spark.streaming.concurrentJobs``, ``spark.streaming.blockInterval`` and the
pushing of input blocks, closures shipped once per executor, receiver
listener events, and SparkConf.

Everything runs on real executor processes. Tests wait for conditions with
generous timeouts (the suite runs on a loaded two-core machine); the only
timings asserted are orderings of recorded intervals, or margins of seconds.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter, defaultdict

import psutil
import pytest
from waiting import wait_until

from conftest import executor_processes
from sluicegate.common import config as cfg
from sluicegate.common.protocol.executor import DropBlocks, LaunchTask, PushBlock
from sluicegate.driver import (ManualClock, Receiver, SparkConf, StreamingContext,
                               StreamingListener)
from sluicegate.driver.context.spark_context import parse_local_master, parse_master
from sluicegate.driver.rdd.lineage import Blocks
from streaming_harness import BatchWaiter, Collector, batch_ms_of


@pytest.fixture(autouse=True)
def no_active_streaming_context():
    yield
    active = StreamingContext.getActive()
    if active is not None:
        active.stop(stopSparkContext=False)
        pytest.fail("a test left a StreamingContext running")


class MessageTap:
    """Watches what the driver loop sends to executors (a test-only wrap of
    ``DriverEndpoint.send``): closures shipped with each ``LaunchTask``, blocks
    attached to launches, and input blocks pushed ahead of their batch."""

    def __init__(self, sc):
        self.endpoint = sc._runtime.endpoint
        self._original = self.endpoint.send
        self.lock = threading.Lock()
        self.shipped: dict[str, list[int]] = defaultdict(list)  # executor -> function ids
        self.launches: Counter = Counter()                       # executor -> LaunchTasks
        self.attached: list[str] = []                             # blocks sent with a task
        self.pushed: dict[str, str] = {}                          # block id -> executor
        self.dropped_shuffles: dict[str, set[int]] = defaultdict(set)  # executor -> shuffle ids
        self.endpoint.send = self._send

    def _send(self, identity: bytes, message) -> bool:
        sent = self._original(identity, message)
        if sent:
            executor = identity.decode()
            with self.lock:
                if isinstance(message, LaunchTask):
                    self.launches[executor] += 1
                    self.shipped[executor].extend(message.function_ids)
                    self.attached.extend(message.block_ids)
                elif isinstance(message, PushBlock):
                    self.pushed[message.block_id] = executor
                elif isinstance(message, DropBlocks):
                    self.dropped_shuffles[executor].update(message.shuffle_ids)
        return sent

    def shipped_snapshot(self) -> dict[str, list[int]]:
        with self.lock:
            return {e: list(ids) for e, ids in self.shipped.items()}

    def close(self) -> None:
        self.endpoint.__dict__.pop("send", None)

    def __enter__(self) -> "MessageTap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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


# -- graceful stop on SIGTERM --------------------------------------------------------------------

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


def test_graceful_stop_timeout_setting():
    setting = cfg.SETTINGS[cfg.STREAMING_GRACEFUL_STOP_TIMEOUT]
    assert setting.key == "spark.streaming.gracefulStopTimeout"
    # unset: the context uses ten batch durations, at least 10 s
    assert cfg.get_setting({}, cfg.STREAMING_GRACEFUL_STOP_TIMEOUT) is None
    assert cfg.get_setting({setting.key: "5s"}, cfg.STREAMING_GRACEFUL_STOP_TIMEOUT) == 5.0
    assert cfg.get_setting({setting.key: "2500"}, cfg.STREAMING_GRACEFUL_STOP_TIMEOUT) == 2.5  # ms


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


# -- spark.streaming.concurrentJobs ------------------------------------------------------------------

class SlowOutput:
    """foreachRDD target: counts the RDD, then holds its job for ``hold_s``;
    records (batch ms, start, end) on the monotonic clock."""

    def __init__(self, hold_s: float):
        self.hold_s = hold_s
        self.runs: list[tuple[int, float, float]] = []
        self.counts: dict[int, int] = {}
        self.lock = threading.Lock()

    def __call__(self, t, rdd) -> None:
        start = time.monotonic()
        count = rdd.count()
        time.sleep(self.hold_s)
        with self.lock:
            self.counts[batch_ms_of(t)] = count
            self.runs.append((batch_ms_of(t), start, time.monotonic()))


def run_three_batches_at_once(sc, hold_s: float) -> SlowOutput:
    """Three batches due at once (the manual clock jumps), each with a slow output."""
    clock = ManualClock(0)
    ssc = StreamingContext(sc, 1.0, clock=clock)
    output = SlowOutput(hold_s)
    ssc.queueStream([[1], [2, 2], [3, 3, 3]]).foreachRDD(output)
    waiter = BatchWaiter()
    ssc.addStreamingListener(waiter)
    ssc.start()
    try:
        clock.set_ms(3000)
        for time_ms in (1000, 2000, 3000):
            assert waiter.wait_for(time_ms, 60), waiter.completed
    finally:
        ssc.stop(stopSparkContext=False)
    assert output.counts == {1000: 1, 2000: 2, 3000: 3}
    return output


def test_one_concurrent_job_by_default_batches_never_overlap(sc):
    assert cfg.get_setting(sc._conf.as_dict(), cfg.STREAMING_CONCURRENT_JOBS) == 1
    output = run_three_batches_at_once(sc, hold_s=0.4)
    runs = sorted(output.runs, key=lambda r: r[1])
    assert [t for t, _, _ in runs] == [1000, 2000, 3000]  # in time order
    for (_, _, end), (_, next_start, _) in zip(runs, runs[1:]):
        assert end <= next_start, runs


def test_two_concurrent_jobs_let_batches_overlap(own_context):
    sc = own_context("local[2]", spark__streaming__concurrentJobs="2")
    output = run_three_batches_at_once(sc, hold_s=1.5)
    runs = output.runs
    overlaps = [(a[0], b[0]) for i, a in enumerate(runs) for b in runs[i + 1:]
                if a[1] < b[2] and b[1] < a[2]]
    assert overlaps, runs


# -- spark.streaming.blockInterval, and blocks pushed ahead of their batch -------------------------------

class SteadyReceiver(Receiver):
    """Stores 0, 1, 2, ... one record at a time, a few hundred a second."""

    def __init__(self):
        super().__init__()
        self.stored = 0

    def onStart(self):
        threading.Thread(target=self._run, name="test-steady-receiver", daemon=True).start()

    def _run(self):
        i = self.stored
        while not self.isStopped():
            try:
                self.store(i)
            except Exception:  # noqa: BLE001 - refused after the stop
                break
            i += 1
            self.stored = i
            time.sleep(0.003)


def test_block_interval_cuts_batches_into_blocks_pushed_to_executors(own_context):
    sc = own_context("local[2]", spark__streaming__blockInterval="100ms")
    locations = sc._runtime.dag.block_locations
    alive = {info.executor_id for info in sc._runtime.endpoint.registry.alive()}
    seen: list[dict] = []
    problems: list[str] = []

    def inspect(t, rdd):
        lineage = rdd._lineage
        block_ids = list(lineage.block_ids) if isinstance(lineage, Blocks) else []
        # before this batch's job runs, its blocks already sit on executors
        try:
            wait_until(lambda: all(locations.holders(b) for b in block_ids), 10,
                       "the batch's blocks to be on executors")
        except AssertionError as exc:
            problems.append(str(exc))
        holders = {b: set(locations.holders(b)) for b in block_ids}
        seen.append(dict(time=batch_ms_of(t), partitions=rdd.getNumPartitions(),
                         blocks=block_ids, holders=holders, count=rdd.count()))

    receiver = SteadyReceiver()
    ssc = StreamingContext(sc, 1.0)
    ssc.receiverStream(receiver).foreachRDD(inspect)
    with MessageTap(sc) as tap:
        ssc.start()
        try:
            wait_until(lambda: len(seen) >= 4, 60, "four batches")
        finally:
            ssc.stop(stopSparkContext=False, stopGraceFully=True)
    assert not problems, problems
    # batches 2-4 ran while the receiver stored steadily (the first may be partial, and
    # so may those after the stop)
    full = seen[1:4]
    for batch in full:
        # one partition per block; ten 100 ms blocks in a 1 s batch (loosely: a busy host)
        assert batch["partitions"] == len(batch["blocks"])
        assert 1 < batch["partitions"] <= 12, [(b["time"], b["partitions"]) for b in seen]
        for block_id, holders in batch["holders"].items():
            assert holders and holders <= alive, (block_id, holders, alive)
            # they got there by a PushBlock as the block was cut, not with a task
            assert tap.pushed.get(block_id) in holders
    batch_blocks = {b for batch in seen for b in batch["blocks"]}
    assert not batch_blocks & set(tap.attached), "input blocks were attached to task launches"
    assert sum(batch["count"] for batch in seen) <= receiver.stored


# -- closures: shipped once per executor, not every batch -------------------------------------------------

def test_closures_are_shipped_once_per_executor_not_every_batch(own_context):
    sc = own_context("local[2]")
    factor = 3
    clock = ManualClock(0)
    ssc = StreamingContext(sc, 1.0, clock=clock)
    waiter = BatchWaiter()
    ssc.addStreamingListener(waiter)
    batches = [[f"w{i % 5}" for i in range(n, n + 40)] for n in range(12)]
    words = ssc.queueStream([sc.parallelize(b, 4) for b in batches])
    counts = (words.map(lambda w: (w, factor)).filter(lambda kv: kv[1] > 0)
              .reduceByKey(lambda a, b: a + b))
    collector = Collector(counts)

    def step_to(batch_index: int) -> None:
        due = batch_index * 1000
        clock.set_ms(due)
        assert waiter.wait_for(due, 60), waiter.completed

    with MessageTap(sc) as tap:
        ssc.start()
        try:
            for i in range(1, 3):
                step_to(i)
            after_two = tap.shipped_snapshot()
            launches_after_two = sum(tap.launches.values())
            for i in range(3, 13):
                step_to(i)
            after_twelve = tap.shipped_snapshot()
            launches_after_twelve = sum(tap.launches.values())
        finally:
            ssc.stop(stopSparkContext=False)
    assert [sum(c for _, c in batch) for batch in collector.in_order()] == [120] * 12
    # ten more batches ran their tasks on the executors ...
    assert launches_after_twelve >= launches_after_two + 10 * 4
    # ... with no closure shipped twice to the same executor ...
    for executor, ids in after_twelve.items():
        assert len(ids) == len(set(ids)), (executor, Counter(ids).most_common(3))
    # ... and no new closure ids: the batches' functions are the first batches' ones
    first_ids = {f for ids in after_two.values() for f in ids}
    all_ids = {f for ids in after_twelve.values() for f in ids}
    assert first_ids and all_ids == first_ids, (sorted(first_ids), sorted(all_ids))
    # so what each executor received is bounded, whatever the number of batches
    assert all(len(ids) <= len(first_ids) for ids in after_twelve.values())


# -- shuffles of finished batches are dropped ------------------------------------------------------------

def test_each_batch_shuffle_is_dropped_once_the_batch_is_forgotten(sc):
    """A streaming job makes a shuffle every batch; its blocks must leave the
    executors once no RDD refers to it, or executors grow without bound."""
    import gc

    clock = ManualClock(0)
    ssc = StreamingContext(sc, 1.0, clock=clock)
    waiter = BatchWaiter()
    ssc.addStreamingListener(waiter)
    batches = [[f"w{i % 7}" for i in range(50)] for _ in range(15)]
    counts = ssc.queueStream([sc.parallelize(b, 3) for b in batches]) \
        .map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b)
    collector = Collector(counts)
    dag = sc._runtime.dag
    before = set(dag.map_outputs.shuffle_ids())
    made: set[int] = set()

    def ours() -> set[int]:
        return set(dag.map_outputs.shuffle_ids()) - before

    def settled_to(most: int) -> bool:
        gc.collect()  # shuffles are dropped when their dependency is garbage
        return len(ours()) <= most

    with MessageTap(sc) as tap:
        ssc.start()
        try:
            for i in range(1, 16):
                clock.set_ms(i * 1000)
                assert waiter.wait_for(i * 1000, 60), waiter.completed
                made |= ours()
            wait_until(lambda: settled_to(3), 30, "old batches' shuffles to be dropped")
        finally:
            ssc.stop(stopSparkContext=False)
        executors = {info.executor_id for info in sc._runtime.endpoint.registry.alive()}
        dropped = {e: set(ids) for e, ids in tap.dropped_shuffles.items()}
    assert [sorted(batch) for batch in collector.in_order()] == \
        [sorted((f"w{k}", 50 // 7 + (k < 50 % 7)) for k in range(7))] * 15
    assert len(made) >= 12, made  # one shuffle a batch
    gone = made - ours()
    assert len(gone) >= 12, (sorted(made), sorted(ours()))
    for executor in executors:  # ... and every executor was told to drop their blocks
        assert gone <= dropped.get(executor, set()), (executor, sorted(gone - dropped.get(executor, set())))


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


# -- SparkConf ------------------------------------------------------------------------------------------------------

def test_spark_conf_api():
    conf = SparkConf(loadDefaults=False)
    assert conf.getAll() == []
    assert conf.setAll([("spark.a", "1"), ("spark.b", 2)]) is conf
    assert sorted(conf.getAll()) == [("spark.a", "1"), ("spark.b", "2")]  # values are strings
    assert conf.contains("spark.a") and not conf.contains("spark.c")
    assert conf.get("spark.a") == "1"
    assert conf.get("spark.c") is None
    assert conf.get("spark.c", "fallback") == "fallback"
    assert conf.get("spark.a", "fallback") == "1"
    assert conf.setIfMissing("spark.a", "changed") is conf
    assert conf.get("spark.a") == "1"
    conf.setIfMissing("spark.c", "3")
    assert conf.get("spark.c") == "3"
    conf.setMaster("local[2]").setAppName("app").setExecutorEnv("HOME_DIR", "/x")
    assert conf.get("spark.master") == "local[2]" and conf.get("spark.app.name") == "app"
    assert conf.get("spark.executorEnv.HOME_DIR") == "/x"
    conf.setExecutorEnv(pairs=[("A", "1"), ("B", "2")])
    assert conf.get("spark.executorEnv.B") == "2"
    with pytest.raises(ValueError):
        conf.setExecutorEnv("A", "1", pairs=[("B", "2")])
    clone = conf.copy()
    clone.set("spark.a", "other")
    assert conf.get("spark.a") == "1" and clone.get("spark.a") == "other"
    assert "spark.a=1" in conf.toDebugString().splitlines()


def test_spark_conf_defaults_from_the_environment(monkeypatch):
    monkeypatch.setenv("SLUICEGATE_CONF_spark_task_maxFailures", "7")
    assert SparkConf().get("spark.task.maxFailures") == "7"
    assert SparkConf(loadDefaults=False).get("spark.task.maxFailures") is None


def test_master_parsing():
    assert parse_local_master("local") == (1, None)
    assert parse_local_master("local[3]") == (3, None)
    assert parse_local_master("local[*]") == (os.cpu_count(), None)
    assert parse_local_master("local[2,4]") == (2, 4)
    assert parse_master("local[*]", {}).executors == os.cpu_count()
    for bad in ("local[0]", "locally", "local[x]", "yarn"):
        with pytest.raises(ValueError):
            parse_local_master(bad)


@pytest.mark.skipif((os.cpu_count() or 1) > 8, reason="starts one executor process per core")
def test_local_star_starts_one_executor_per_core(own_context):
    sc = own_context("local[*]")
    assert len(executor_processes()) == os.cpu_count()
    assert len(sc._runtime.endpoint.registry.alive()) == os.cpu_count()
    assert sc.defaultParallelism == os.cpu_count()


# -- listener objects: accessor methods, as PySpark's py4j objects -----------------------------------

def test_listener_info_objects_have_accessor_methods():
    from sluicegate.driver.scheduler.streaming_listener import (
        BatchInfo, OutputOperationInfo, ReceiverInfo, StreamInputInfo)
    inputs = StreamInputInfo(0, 5, {"Description": "5 lines"})
    assert inputs.inputStreamId() == 0 and inputs.numRecords() == 5
    assert inputs.metadata() == {"Description": "5 lines"}
    assert inputs.metadataDescription() == "5 lines"
    assert StreamInputInfo(1, 0).metadata() == {} and StreamInputInfo(1, 0).metadataDescription() is None
    output = OutputOperationInfo(1000, 2, "foreachRDD", "foreachRDD at job.py:12")
    assert output.description() == "foreachRDD at job.py:12" and output.name() == "foreachRDD"
    assert output.id() == 2 and output.batchTime().milliseconds() == 1000
    assert output.duration() == -1
    receiver = ReceiverInfo(3, "MyReceiver", True)
    assert (receiver.streamId(), receiver.name(), receiver.active()) == (3, "MyReceiver", True)
    assert receiver.location() == "driver" and receiver.executorId() == "driver"
    assert (receiver.lastErrorMessage(), receiver.lastError(), receiver.lastErrorTime()) == ("", "", -1)

    batch = BatchInfo(1000, submission_ms=1010)
    assert (batch.schedulingDelay(), batch.processingDelay(), batch.totalDelay()) == (-1, -1, -1)
    batch.processing_start_ms = 1030
    assert (batch.schedulingDelay(), batch.processingDelay(), batch.totalDelay()) == (20, -1, -1)
    batch.processing_end_ms = 1100
    # Spark: totalDelay = schedulingDelay + processingDelay (the batch time plays no part)
    assert (batch.schedulingDelay(), batch.processingDelay(), batch.totalDelay()) == (20, 70, 90)
