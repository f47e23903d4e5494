"""Prometheus metrics of one application, served at ``/metrics``.

Each SparkContext has its own registry (so several contexts in one process
never clash); counters and histograms follow the status store's events, and
gauges are read when scraped.
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
        if self.batch_interval_ms:
            for stream_id, records in batch.input_by_stream.items():
                self.receiver_rate.labels(str(stream_id)).set(records * 1000.0 / self.batch_interval_ms)

    def text(self) -> bytes:
        return generate_latest(self.registry)
