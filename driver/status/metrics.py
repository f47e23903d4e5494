"""Prometheus metrics of one application, served at ``/metrics``.

Each SparkContext has its own registry (so several contexts in one process
never clash); counters and histograms follow the status store's events, and
gauges are read when scraped.

A Kafka direct stream's gauges follow its newest batch: per topic-partition
the offset it has read up to (``sluicegate_kafka_offset``, the next offset to
read), what the brokers held beyond it (``sluicegate_kafka_consumer_lag``) and
the records the batch takes; broker errors are counted per stream.
"""
from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

DELAY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class AppMetrics:
    def __init__(self, live_executors: Callable[[], int]):
        self.registry = CollectorRegistry()
        r = self.registry
        self.batches = Counter("sluicegate_batches_completed", "Streaming batches completed", registry=r)
        self.batches_failed = Counter("sluicegate_batches_failed",
                                      "Streaming batches with a failed output operation", registry=r)
        self.records = Counter("sluicegate_input_records", "Records received by input streams",
                               registry=r)
        self.scheduling = Histogram("sluicegate_batch_scheduling_delay_seconds",
                                    "Batch scheduling delay", buckets=DELAY_BUCKETS_S, registry=r)
        self.processing = Histogram("sluicegate_batch_processing_seconds", "Batch processing time",
                                    buckets=DELAY_BUCKETS_S, registry=r)
        self.total = Histogram("sluicegate_batch_total_delay_seconds", "Batch total delay",
                               buckets=DELAY_BUCKETS_S, registry=r)
        self.jobs = Counter("sluicegate_jobs", "Jobs finished", ["status"], registry=r)
        self.tasks = Counter("sluicegate_tasks", "Task launches finished", ["status"], registry=r)
        self.retries = Counter("sluicegate_task_retries", "Task launches that failed and were retried "
                               "or gave up", registry=r)
        self.shuffle_read = Counter("sluicegate_shuffle_read_bytes", "Shuffle bytes read", registry=r)
        self.shuffle_write = Counter("sluicegate_shuffle_write_bytes", "Shuffle bytes written",
                                     registry=r)
        self.receiver_rate = Gauge("sluicegate_receiver_records_per_second",
                                   "Records per second of each input stream in the last batch",
                                   ["stream"], registry=r)
        self.executors = Gauge("sluicegate_workers", "Live executors (worker processes) of this "
                               "application", registry=r)
        self.executors.set_function(live_executors)
        self.invalid_utf8 = Counter(
            "sluicegate_input_invalid_utf8_lines", "Input lines that held invalid UTF-8 and were "
            "decoded with U+FFFD, by input ('stream-N' for a receiver stream, 'files' for text "
            "files)", ["input"], registry=r)
        self.dropped_lines = Counter(
            "sluicegate_receiver_dropped_lines", "Lines a socket receiver dropped for being longer "
            "than spark.sluicegate.receiver.maxLineBytes", ["stream"], registry=r)
        kafka = ["stream", "topic", "partition"]
        self.kafka_offset = Gauge("sluicegate_kafka_offset", "Next offset a Kafka direct stream "
                                  "reads, per topic-partition (its newest batch's untilOffset)",
                                  kafka, registry=r)
        self.kafka_lag = Gauge("sluicegate_kafka_consumer_lag", "Records the brokers held beyond "
                               "a Kafka direct stream's newest batch, per topic-partition",
                               kafka, registry=r)
        self.kafka_batch_records = Gauge("sluicegate_kafka_batch_records", "Records of each "
                                         "topic-partition in a Kafka direct stream's newest batch",
                                         kafka, registry=r)
        self.kafka_records = Counter("sluicegate_kafka_records", "Records Kafka direct streams "
                                     "took into batches, per topic-partition", kafka, registry=r)
        self.kafka_total_lag = Gauge("sluicegate_kafka_total_lag", "Consumer lag of a Kafka "
                                     "direct stream over all its partitions", ["stream"], registry=r)
        self.kafka_errors = Counter("sluicegate_kafka_broker_errors", "Batches of a Kafka direct "
                                    "stream that got no answer from the brokers", ["stream"],
                                    registry=r)
        self._kafka_newest: dict[str, int] = {}  # stream -> newest batch shown in the gauges
        self.batch_interval_ms = 0

    # -- store events --------------------------------------------------------------------
    def job_ended(self, job) -> None:
        self.jobs.labels(job.status.lower()).inc()

    def task_ended(self, task) -> None:
        self.tasks.labels(task.status.lower()).inc()
        if task.status != "SUCCESS":
            self.retries.inc()
        self.shuffle_read.inc(task.shuffle_read_bytes)
        self.shuffle_write.inc(task.shuffle_write_bytes)
        if task.invalid_utf8_lines:
            self.invalid_utf8.labels("files").inc(sum(task.invalid_utf8_lines.values()))

    def batch_completed(self, batch) -> None:
        self.batches.inc()
        if batch.failure:
            self.batches_failed.inc()
        self.records.inc(batch.records)
        if batch.scheduling_ms >= 0:
            self.scheduling.observe(batch.scheduling_ms / 1000.0)
        if batch.processing_ms >= 0:
            self.processing.observe(batch.processing_ms / 1000.0)
        if batch.total_ms >= 0:
            self.total.observe(batch.total_ms / 1000.0)
        for source, lines in batch.invalid_utf8_lines.items():
            if source.startswith("stream "):  # files were counted with their tasks
                self.invalid_utf8.labels("stream-" + source[len("stream "):]).inc(lines)
        for source, lines in batch.dropped_lines.items():
            self.dropped_lines.labels(source[len("stream "):]).inc(lines)
        if self.batch_interval_ms:
            for stream_id, records in batch.input_by_stream.items():
                self.receiver_rate.labels(str(stream_id)).set(records * 1000.0 / self.batch_interval_ms)

    def streaming_started(self) -> None:
        """A new streaming context: the gauges of the last one's streams go."""
        for gauge in (self.kafka_offset, self.kafka_lag, self.kafka_batch_records,
                      self.kafka_total_lag):
            gauge.clear()
        self._kafka_newest.clear()

    def kafka_batch(self, batch) -> None:
        """A batch with Kafka input was generated."""
        for stream_id, kafka in batch.kafka.items():
            stream = str(stream_id)
            for p in kafka["partitions"]:
                self.kafka_records.labels(stream, p["topic"], str(p["partition"])).inc(p["records"])
            if kafka["error"]:
                self.kafka_errors.labels(stream).inc()
                if not any(p["records"] for p in kafka["partitions"]):
                    continue  # offsets and lag stay as last known
            if batch.batch_ms < self._kafka_newest.get(stream, -1):
                continue  # a re-run of an older batch (recovery)
            self._kafka_newest[stream] = batch.batch_ms
            for p in kafka["partitions"]:
                labels = (stream, p["topic"], str(p["partition"]))
                self.kafka_offset.labels(*labels).set(p["untilOffset"])
                self.kafka_batch_records.labels(*labels).set(p["records"])
                if p["lag"] is not None:
                    self.kafka_lag.labels(*labels).set(p["lag"])
            if kafka["total_lag"] is not None:
                self.kafka_total_lag.labels(stream).set(kafka["total_lag"])

    def text(self) -> bytes:
        return generate_latest(self.registry)
