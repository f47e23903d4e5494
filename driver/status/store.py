"""What an application has done, kept for the status pages, the REST API and
the metrics: jobs, their stages and tasks, streaming batches, receivers.

The scheduler and the streaming runner report events here (from their own
threads); readers take consistent snapshots as plain dicts. Everything is
bounded: old jobs and batches are forgotten, so a long-running stream does
not grow the driver.

A Kafka direct stream's batches carry their offset ranges, record counts and
the consumer lag per topic-partition (``common.kafka.PARTITIONS_KEY`` in the
input info metadata, plus Spark's ``Description`` text and any broker
error); the store keeps them per batch and, per stream, the newest batch's
view (``kafka_streams``) for the streaming page, the REST API and ``/metrics``.

Input that was not clean is counted here too: lines with invalid UTF-8
(decoded with U+FFFD) per source, and lines a socket receiver dropped for
being too long. File sources report theirs with their tasks; a warning names
each such source once per batch (or per job outside streaming).
"""
from __future__ import annotations

import logging
import pickle
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from sluicegate.common.input_text import invalid_utf8_of
from sluicegate.common.kafka import PARTITIONS_KEY as KAFKA_PARTITIONS

from ..receivers.received_blocks import DROPPED_LINES_KEY, INVALID_UTF8_KEY

if TYPE_CHECKING:
    from ..scheduler.batch_tag import BatchTag

log = logging.getLogger("sluicegate.status")

MAX_JOBS = 500
MAX_BATCHES = 1000
MAX_TASKS_PER_STAGE = 2000


@dataclass
class TaskStatus:
    tid: int
    stage_id: int
    stage_attempt: int
    partition: int
    attempt: int
    executor_id: str
    launched_s: float
    duration_ms: float
    status: str
    records_in: int = 0
    records_out: int = 0
    shuffle_read_bytes: int = 0
    shuffle_write_bytes: int = 0
    reason: str = ""
    error: str = ""
    traceback: str = ""
    invalid_utf8_lines: dict = field(default_factory=dict)  # source -> lines decoded with U+FFFD


@dataclass
class StageStatus:
    stage_id: int
    attempt: int
    name: str
    kind: str
    num_tasks: int
    job_ids: list[int]
    submitted_s: float
    tasks: list[TaskStatus] = field(default_factory=list)

    def summary(self) -> dict:
        done = sum(t.status == "SUCCESS" for t in self.tasks)
        failed = sum(t.status != "SUCCESS" for t in self.tasks)
        return {"stage_id": self.stage_id, "attempt": self.attempt, "name": self.name,
                "kind": self.kind, "num_tasks": self.num_tasks, "tasks_succeeded": done,
                "tasks_failed": failed, "job_ids": self.job_ids, "submitted": self.submitted_s,
                "shuffle_read_bytes": sum(t.shuffle_read_bytes for t in self.tasks),
                "shuffle_write_bytes": sum(t.shuffle_write_bytes for t in self.tasks)}


@dataclass
class JobStatus:
    job_id: int
    description: str
    partitions: int
    submitted_s: float
    batch_ms: int | None = None
    output_id: int | None = None
    finished_s: float | None = None
    status: str = "RUNNING"
    error: str = ""
    stage_ids: list[int] = field(default_factory=list)
    invalid_utf8_lines: dict = field(default_factory=dict)  # source -> lines, from its tasks

    def summary(self) -> dict:
        data = asdict(self)
        data["duration_ms"] = round((self.finished_s - self.submitted_s) * 1000, 1) \
            if self.finished_s else None
        return data


@dataclass
class BatchStatus:
    batch_ms: int
    submitted_ms: int
    records: int = 0
    processing_start_ms: int = -1
    processing_end_ms: int = -1
    outputs: dict = field(default_factory=dict)  # output id -> dict
    job_ids: list[int] = field(default_factory=list)
    input_by_stream: dict = field(default_factory=dict)
    invalid_utf8_lines: dict = field(default_factory=dict)  # source -> lines decoded with U+FFFD
    dropped_lines: dict = field(default_factory=dict)  # "stream N" -> lines too long, dropped
    input_descriptions: dict = field(default_factory=dict)  # stream id -> Spark's Description
    kafka: dict = field(default_factory=dict)  # stream id -> partitions, total lag, error

    @property
    def scheduling_ms(self) -> int:
        return self.processing_start_ms - self.submitted_ms if self.processing_start_ms >= 0 else -1

    @property
    def processing_ms(self) -> int:
        if self.processing_end_ms < 0 or self.processing_start_ms < 0:
            return -1
        return self.processing_end_ms - self.processing_start_ms

    @property
    def total_ms(self) -> int:  # Spark's totalDelay: scheduling + processing
        if self.processing_end_ms < 0 or self.processing_start_ms < 0:
            return -1
        return self.processing_end_ms - self.submitted_ms

    @property
    def failure(self) -> str:
        return "; ".join(o["failure"] for o in self.outputs.values() if o.get("failure"))

    @property
    def state(self) -> str:
        if self.processing_end_ms >= 0:
            return "FAILED" if self.failure else "COMPLETED"
        return "PROCESSING" if self.processing_start_ms >= 0 else "QUEUED"

    def summary(self) -> dict:
        return {"batch_ms": self.batch_ms, "state": self.state, "records": self.records,
                "scheduling_delay_ms": self.scheduling_ms, "processing_ms": self.processing_ms,
                "total_delay_ms": self.total_ms, "submitted_ms": self.submitted_ms,
                "output_ops": len(self.outputs),
                "output_ops_done": sum(1 for o in self.outputs.values() if o.get("end_ms", -1) >= 0),
                "failure": self.failure, "input_by_stream": dict(self.input_by_stream),
                "invalid_utf8_lines": dict(self.invalid_utf8_lines),
                "dropped_lines": dict(self.dropped_lines),
                "kafka_lag": {sid: k["total_lag"] for sid, k in self.kafka.items()},
                "kafka_errors": {sid: k["error"] for sid, k in self.kafka.items() if k["error"]}}


class StatusStore:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.started_s = time.time()
        self.jobs: OrderedDict[int, JobStatus] = OrderedDict()
        self.stages: dict[tuple[int, int], StageStatus] = {}
        self.batches: OrderedDict[int, BatchStatus] = OrderedDict()
        self.batch_duration_ms: int | None = None
        self.streaming_started_ms: int | None = None
        self.receivers: dict[int, dict] = {}
        self.flow = None  # a started StreamingContext's flow control: describe() -> dict
        self.kafka_streams: dict[int, dict] = {}  # stream id -> its newest batch's Kafka view
        self.task_retries = 0
        self.shuffle_read_bytes = 0
        self.shuffle_write_bytes = 0
        self.listeners: list = []  # e.g. the metrics, told of each event too
        # Batches whose file sources with invalid UTF-8 were named in a warning already.
        self._warned: OrderedDict[int, set[str]] = OrderedDict()

    def _notify(self, event: str, *args) -> None:
        for listener in self.listeners:
            handler = getattr(listener, event, None)
            if handler is not None:
                handler(*args)

    # -- jobs, stages, tasks (scheduler threads) --------------------------------------
    def job_started(self, job_id: int, description: str, partitions: int,
                    tag: "BatchTag | None") -> None:
        """A job began; ``tag``: the streaming batch and output operation it runs for."""
        batch_ms = tag.batch_ms if tag is not None else None
        output_id = tag.output_id if tag is not None else None
        with self._lock:
            self.jobs[job_id] = JobStatus(job_id, description, partitions, time.time(),
                                          batch_ms, output_id)
            if batch_ms is not None and batch_ms in self.batches:
                self.batches[batch_ms].job_ids.append(job_id)
            while len(self.jobs) > MAX_JOBS:
                _, old = self.jobs.popitem(last=False)
                for stage_id in old.stage_ids:
                    for key in [k for k in self.stages if k[0] == stage_id]:
                        stage = self.stages[key]
                        stage.job_ids = [j for j in stage.job_ids if j != old.job_id]
                        if not stage.job_ids:
                            del self.stages[key]

    def job_ended(self, job_id: int, stage_ids: list[int], error: BaseException | None) -> None:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return
            job.finished_s = time.time()
            job.stage_ids = list(stage_ids)
            job.status = "FAILED" if error is not None else "SUCCEEDED"
            job.error = str(error) if error is not None else ""
            if job.invalid_utf8_lines:
                self._warn_invalid_utf8(job)
        self._notify("job_ended", job)

    def _warn_invalid_utf8(self, job: JobStatus) -> None:
        """Name each source once per batch (once per job outside streaming)."""
        sources = dict(job.invalid_utf8_lines)
        if job.batch_ms is not None:
            warned = self._warned.setdefault(job.batch_ms, set())
            while len(self._warned) > MAX_BATCHES:
                self._warned.popitem(last=False)
            batch = self.batches.get(job.batch_ms)
            for source, lines in sources.items():
                if batch is not None:
                    batch.invalid_utf8_lines[source] = batch.invalid_utf8_lines.get(source, 0) + lines
            sources = {s: n for s, n in sources.items() if s not in warned}
            warned.update(sources)
        where = f"batch {job.batch_ms}" if job.batch_ms is not None else f"job {job.job_id}"
        for source, lines in sources.items():
            log.warning("%s: %s line(s) of %s held invalid UTF-8 (decoded with U+FFFD)",
                        where, lines, source)

    def stage_submitted(self, stage_id: int, attempt: int, name: str, kind: str,
                        num_tasks: int, job_ids: list[int]) -> None:
        with self._lock:
            self.stages[(stage_id, attempt)] = StageStatus(stage_id, attempt, name, kind,
                                                           num_tasks, list(job_ids), time.time())
            for job_id in job_ids:
                job = self.jobs.get(job_id)
                if job is not None and stage_id not in job.stage_ids:
                    job.stage_ids.append(stage_id)

    def task_ended(self, task: TaskStatus) -> None:
        with self._lock:
            stage = self.stages.get((task.stage_id, task.stage_attempt))
            if stage is not None and len(stage.tasks) < MAX_TASKS_PER_STAGE:
                stage.tasks.append(task)
            if stage is not None and task.invalid_utf8_lines:
                for job_id in stage.job_ids:
                    job = self.jobs.get(job_id)
                    if job is not None:
                        for source, lines in task.invalid_utf8_lines.items():
                            job.invalid_utf8_lines[source] = job.invalid_utf8_lines.get(source, 0) + lines
            if task.status != "SUCCESS":
                self.task_retries += 1
            self.shuffle_read_bytes += task.shuffle_read_bytes
            self.shuffle_write_bytes += task.shuffle_write_bytes
        self._notify("task_ended", task)

    # -- streaming (listener bus thread) ---------------------------------------------------
    def streaming_started(self, batch_duration_ms: int) -> None:
        with self._lock:
            self.batch_duration_ms = batch_duration_ms
            self.streaming_started_ms = int(time.time() * 1000)
            self.kafka_streams = {}  # a new context: its own streams
        self._notify("streaming_started")

    def batch_event(self, info, done: bool) -> None:
        """A BatchInfo was submitted, started or completed."""
        new = False
        with self._lock:
            batch = self.batches.get(info.batch_time_ms)
            if batch is None:
                new = True
                batch = BatchStatus(info.batch_time_ms, info.submission_ms)
                # Its jobs may have started before the listener bus told us of the batch.
                batch.job_ids = [j.job_id for j in self.jobs.values()
                                 if j.batch_ms == info.batch_time_ms]
                self.batches[info.batch_time_ms] = batch
                while len(self.batches) > MAX_BATCHES:
                    self.batches.popitem(last=False)
            batch.records = info.numRecords()
            batch.input_by_stream = {sid: i.num_records for sid, i in info.input_infos.items()}
            for sid, i in info.input_infos.items():
                notes = i.metadata()
                if notes.get(INVALID_UTF8_KEY):
                    batch.invalid_utf8_lines[f"stream {sid}"] = notes[INVALID_UTF8_KEY]
                if notes.get(DROPPED_LINES_KEY):
                    batch.dropped_lines[f"stream {sid}"] = notes[DROPPED_LINES_KEY]
                if notes.get("Description"):
                    batch.input_descriptions[sid] = notes["Description"]
                if KAFKA_PARTITIONS in notes:
                    batch.kafka[sid] = {"partitions": [dict(p) for p in notes[KAFKA_PARTITIONS]],
                                        "total_lag": notes.get("totalLag"),
                                        "error": notes.get("error") or "",
                                        "rate_limit": notes.get("rateLimit")}
                    if new:
                        self._kafka_batch(sid, batch)
            batch.processing_start_ms = info.processing_start_ms
            batch.processing_end_ms = info.processing_end_ms
            batch.outputs = {oid: {"id": oid, "name": o.op_name, "description": o.description(),
                                   "start_ms": o.start_ms, "end_ms": o.end_ms,
                                   "failure": o.failure_reason or ""}
                             for oid, o in info.output_infos.items()}
        if new and batch.kafka:
            self._notify("kafka_batch", batch)
        if done:
            self._notify("batch_completed", batch)

    def _kafka_batch(self, sid: int, batch: BatchStatus) -> None:
        """A Kafka stream's new batch: the stream's view moves on (never back to an older
        batch, e.g. one re-run after recovery)."""
        kafka = batch.kafka[sid]
        view = self.kafka_streams.get(sid)
        if view is None:
            view = self.kafka_streams[sid] = {"stream_id": sid, "batch_ms": -1, "partitions": [],
                                              "total_lag": None, "records": 0, "rate_limit": None,
                                              "error": "", "last_error": "",
                                              "last_error_batch_ms": None, "error_batches": 0}
        if kafka["error"]:
            view["error_batches"] += 1
            if batch.batch_ms >= (view["last_error_batch_ms"] or -1):
                view["last_error"], view["last_error_batch_ms"] = kafka["error"], batch.batch_ms
        if batch.batch_ms < view["batch_ms"]:
            return
        view["batch_ms"] = batch.batch_ms
        view["rate_limit"] = kafka["rate_limit"]
        view["records"] = sum(p["records"] for p in kafka["partitions"])
        view["error"] = kafka["error"]
        if kafka["error"] and not any(p["records"] for p in kafka["partitions"]):
            return  # a batch without the brokers: the offsets and lag stay as last known
        view["total_lag"] = kafka["total_lag"]
        view["partitions"] = [{"topic": p["topic"], "partition": p["partition"],
                               "offset": p["untilOffset"], "records": p["records"],
                               "lag": p["lag"]} for p in kafka["partitions"]]

    def kafka_view(self) -> list[dict]:
        """Each Kafka direct stream as its newest batch left it."""
        with self._lock:
            return [{**v, "partitions": [dict(p) for p in v["partitions"]]}
                    for _, v in sorted(self.kafka_streams.items())]

    def output_event(self, info) -> None:
        """An output operation of a batch finished."""
        with self._lock:
            batch = self.batches.get(info.batch_time_ms)
            if batch is not None:
                batch.outputs[info.output_id] = {
                    "id": info.output_id, "name": info.op_name, "description": info.description(),
                    "start_ms": info.start_ms, "end_ms": info.end_ms,
                    "failure": info.failure_reason or ""}

    def receiver_event(self, info, state: str) -> None:
        with self._lock:
            self.receivers[info.stream_id] = {
                "stream_id": info.stream_id, "name": info.receiver_name, "state": state,
                "location": info.location(), "last_error": info.last_error_message}

    # -- reading ------------------------------------------------------------------------------
    def batch_list(self) -> list[dict]:
        with self._lock:
            return [b.summary() for b in reversed(self.batches.values())]

    def batch_detail(self, batch_ms: int) -> dict | None:
        with self._lock:
            batch = self.batches.get(batch_ms)
            if batch is None:
                return None
            detail = batch.summary()
            detail["outputs"] = list(batch.outputs.values())
            detail["input_metadata"] = [{"stream_id": sid, "records": batch.input_by_stream.get(sid, 0),
                                         "description": text}
                                        for sid, text in sorted(batch.input_descriptions.items())]
            detail["kafka"] = {sid: {**k, "partitions": [dict(p) for p in k["partitions"]]}
                               for sid, k in sorted(batch.kafka.items())}
            detail["jobs"] = [self._job_detail(j) for j in batch.job_ids if j in self.jobs]
            return detail

    def _job_detail(self, job_id: int) -> dict:
        job = self.jobs[job_id]
        detail = job.summary()
        stages = []
        for stage_id in job.stage_ids:
            for (sid, _), stage in sorted(self.stages.items()):
                if sid == stage_id:
                    summary = stage.summary()
                    summary["tasks"] = [asdict(t) for t in stage.tasks]
                    stages.append(summary)
        detail["stages"] = stages
        return detail

    def job_list(self) -> list[dict]:
        with self._lock:
            return [j.summary() for j in reversed(self.jobs.values())]

    def job_detail(self, job_id: int) -> dict | None:
        with self._lock:
            return self._job_detail(job_id) if job_id in self.jobs else None

    def flow_control(self) -> dict | None:
        """Backpressure, receiver buffers and the batch queue (None: no streaming yet)."""
        return self.flow() if self.flow is not None else None

    def streaming_summary(self) -> dict:
        flow = self.flow_control()
        limits = {sid: s["rate_limit"] for sid, s in (flow or {}).get("streams", {}).items()}
        with self._lock:
            done = [b for b in self.batches.values() if b.processing_end_ms >= 0]
            def average(values):
                values = [v for v in values if v >= 0]
                return round(sum(values) / len(values), 1) if values else None
            interval = self.batch_duration_ms or 0
            return {
                "batch_duration_ms": self.batch_duration_ms,
                "started_ms": self.streaming_started_ms,
                "batches_completed": len(done),
                "batches_failed": sum(1 for b in done if b.failure),
                "batches_pending": len(self.batches) - len(done),
                "avg_input_rate": average([b.records * 1000.0 / interval for b in done]) if interval else None,
                "avg_scheduling_delay_ms": average([b.scheduling_ms for b in done]),
                "avg_processing_ms": average([b.processing_ms for b in done]),
                "avg_total_delay_ms": average([b.total_ms for b in done]),
                "receivers": [dict(r, rate_limit=limits.get(r["stream_id"]))
                              for r in self.receivers.values()],
                "flow_control": flow,
                "kafka": self.kafka_view(),
            }


def task_status(run, outcome, stage_attempt: int) -> TaskStatus:
    """A finished launch as the store keeps it (``outcome``: TaskSucceeded or TaskFailed)."""
    launched = time.time() - (time.monotonic() - run.started_s)  # the scheduler keeps monotonic time
    status = TaskStatus(run.tid, run.task.stage_id, stage_attempt, run.task.partition, run.attempt,
                        run.executor_id, launched, getattr(outcome, "duration_ms", 0.0),
                        "SUCCESS" if hasattr(outcome, "records_out") else "FAILED")
    if status.status == "SUCCESS":
        status.records_in = outcome.records_in
        status.records_out = outcome.records_out
        status.shuffle_read_bytes = outcome.shuffle_read_bytes
        status.shuffle_write_bytes = outcome.shuffle_write_bytes
        if outcome.has_accumulators:
            # File sources count lines with invalid UTF-8 under a reserved accumulator id.
            try:
                status.invalid_utf8_lines = invalid_utf8_of(pickle.loads(outcome.payload[-1]))
            except Exception:  # noqa: BLE001 - the scheduler already dealt with bad updates
                pass
    else:
        status.reason = outcome.reason
        status.error = f"{outcome.error_type}: {outcome.message}"
        status.traceback = outcome.traceback
    return status
