"""Spark's monitoring REST API (``/api/v1/applications/...``) over the status store.

Dashboards and scripts written for Spark's UI read these paths and field names
(Spark's ``status/api/v1`` classes: ApplicationInfo, JobData, StageData,
ExecutorSummary, and the streaming StreamingStatistics, ReceiverInfo,
BatchInfo and OutputOperationInfo). sluicegate serves what it has under the
same names; a value it does not track (GC time, spilled bytes, ...) is 0, and
optional fields it cannot know are left out, as Spark leaves out an empty
``Option``. Times are Spark's ``yyyy-MM-dd'T'HH:mm:ss.SSS'GMT'`` strings,
durations milliseconds.

Beyond Spark's fields, and only where there is something to say: a
receiver's ``rateLimit``, and a batch's ``inputInfos`` -- each input stream's
``StreamInputInfo`` as Spark's batch page shows it (``inputStreamId``,
``numRecords``, ``metadataDescription``: for the direct Kafka stream, the
offset ranges in Spark's own Description text), plus, for a Kafka stream,
``kafkaPartitions`` (offsets, records and consumer lag per topic-partition)
and ``kafkaError`` when the brokers did not answer.
"""
from __future__ import annotations

import getpass
import time
from functools import partial
from typing import Any, Callable

SPARK_COMPATIBLE_VERSION = "4.3.0"


def spark_date(epoch_s: float | None) -> str | None:
    """Spark's JSON date form, in GMT."""
    if epoch_s is None or epoch_s < 0:
        return None
    millis = int(round(epoch_s * 1000)) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s)) + f".{millis:03d}GMT"


def _present(fields: dict) -> dict:
    """Drops the optional fields that have no value, as Spark's JSON does."""
    return {k: v for k, v in fields.items() if v is not None}


class SparkRestApi:
    """The application's status as Spark's REST API shows it."""

    def __init__(self, source):
        self.source = source
        self.store = source.store

    @property
    def app_id(self) -> str:
        return self.source.app_id

    def _newest_first(self, table: str, present: Callable[[Any], dict]) -> list[dict]:
        """Every record of the store's ``table`` (jobs, batches: oldest first there),
        newest first, each as ``present`` shows it."""
        with self.store._lock:
            return [present(record) for record in reversed(getattr(self.store, table).values())]

    def _one(self, table: str, key, present: Callable[[Any], dict]) -> dict | None:
        """The record ``key`` of the store's ``table`` as ``present`` shows it, or None."""
        with self.store._lock:
            record = getattr(self.store, table).get(key)
            return None if record is None else present(record)

    # -- application -------------------------------------------------------------------
    def applications(self) -> list[dict]:
        return [self.application()]

    def application(self) -> dict:
        started = self.store.started_s
        now = time.time()
        cores = sum(e["cores"] for e in self._executor_rows() if e["state"] == "ALIVE")
        attempt = {
            "startTime": spark_date(started), "endTime": "1969-12-31T23:59:59.999GMT",  # Spark's "not ended"
            "lastUpdated": spark_date(now), "duration": int((now - started) * 1000),
            "sparkUser": _user(), "completed": False, "appSparkVersion": SPARK_COMPATIBLE_VERSION,
            "startTimeEpoch": int(started * 1000), "endTimeEpoch": -1,
            "lastUpdatedEpoch": int(now * 1000),
        }
        return {"id": self.app_id, "name": self.source.name, "coresGranted": cores,
                "maxCores": cores, "attempts": [attempt]}

    # -- jobs and stages -------------------------------------------------------------------
    def jobs(self) -> list[dict]:
        return self._newest_first("jobs", self._job)

    def job(self, job_id: int) -> dict | None:
        return self._one("jobs", job_id, self._job)

    def _job(self, job) -> dict:
        stages = [s for (sid, _), s in self.store.stages.items() if sid in job.stage_ids]
        tasks = [t for s in stages for t in s.tasks]
        done = sum(t.status == "SUCCESS" for t in tasks)
        failed = sum(t.status != "SUCCESS" for t in tasks)
        states = [_stage_state(s, job) for s in stages]
        num_tasks = sum(s.num_tasks for s in stages)
        return _present({
            "jobId": job.job_id, "name": job.description, "description": job.description,
            "submissionTime": spark_date(job.submitted_s), "completionTime": spark_date(job.finished_s),
            "stageIds": list(job.stage_ids), "jobGroup": getattr(job, "job_group", None),
            "jobTags": list(getattr(job, "job_tags", []) or []),
            "status": job.status, "numTasks": num_tasks,
            "numActiveTasks": 0 if job.status != "RUNNING" else max(0, num_tasks - done - failed),
            "numCompletedTasks": done, "numSkippedTasks": 0, "numFailedTasks": failed,
            "numKilledTasks": 0, "numCompletedIndices": done,
            "numActiveStages": states.count("ACTIVE"), "numCompletedStages": states.count("COMPLETE"),
            "numSkippedStages": 0, "numFailedStages": states.count("FAILED"),
            "killedTasksSummary": {},
        })

    def stages(self) -> list[dict]:
        with self.store._lock:
            return [self._stage(s) for _, s in sorted(self.store.stages.items(), reverse=True)]

    def stage_attempts(self, stage_id: int) -> list[dict] | None:
        with self.store._lock:
            found = [self._stage(s) for (sid, _), s in sorted(self.store.stages.items())
                     if sid == stage_id]
            return found or None

    def stage_attempt(self, stage_id: int, attempt: int) -> dict | None:
        return self._one("stages", (stage_id, attempt), partial(self._stage, with_tasks=True))

    def _stage(self, stage, with_tasks: bool = False) -> dict:
        jobs = [self.store.jobs[j] for j in stage.job_ids if j in self.store.jobs]
        state = _stage_state(stage, jobs[0] if jobs else None)
        done = [t for t in stage.tasks if t.status == "SUCCESS"]
        failed = [t for t in stage.tasks if t.status != "SUCCESS"]
        first_launch = min((t.launched_s for t in stage.tasks), default=None)
        ends = [t.launched_s + t.duration_ms / 1000 for t in stage.tasks]
        data = _present({
            "status": state, "stageId": stage.stage_id, "attemptId": stage.attempt,
            "numTasks": stage.num_tasks,
            "numActiveTasks": max(0, stage.num_tasks - len(done) - len(failed)) if state == "ACTIVE" else 0,
            "numCompleteTasks": len(done), "numFailedTasks": len(failed), "numKilledTasks": 0,
            "numCompletedIndices": len({t.partition for t in done}),
            "submissionTime": spark_date(stage.submitted_s),
            "firstTaskLaunchedTime": spark_date(first_launch),
            "completionTime": spark_date(max(ends)) if state != "ACTIVE" and ends else None,
            "failureReason": failed[-1].error if failed and state == "FAILED" else None,
            "executorRunTime": int(sum(t.duration_ms for t in stage.tasks)), "executorCpuTime": 0,
            "inputBytes": 0, "inputRecords": sum(t.records_in for t in done),
            "outputBytes": 0, "outputRecords": sum(t.records_out for t in done),
            "shuffleReadBytes": sum(t.shuffle_read_bytes for t in done), "shuffleReadRecords": 0,
            "shuffleWriteBytes": sum(t.shuffle_write_bytes for t in done), "shuffleWriteRecords": 0,
            "memoryBytesSpilled": 0, "diskBytesSpilled": 0,
            "name": stage.name, "description": None, "details": stage.kind,
            "schedulingPool": "default", "rddIds": [], "accumulatorUpdates": [],
            "killedTasksSummary": {}, "resourceProfileId": 0,
        })
        if with_tasks:
            data["tasks"] = {str(t.tid): _task(t) for t in stage.tasks}
        return data

    # -- executors ------------------------------------------------------------------------------
    def _executor_rows(self) -> list[dict]:
        return self.source.workers()

    def executors(self, include_dead: bool = False) -> list[dict]:
        with self.store._lock:
            by_executor: dict[str, list] = {}
            for stage in self.store.stages.values():
                for task in stage.tasks:
                    by_executor.setdefault(task.executor_id, []).append(task)
        rows = [self._driver_summary()]
        for row in self._executor_rows():
            active = row["state"] == "ALIVE"
            if not active and not include_dead:
                continue
            tasks = by_executor.get(row["id"], [])
            completed, failed = row.get("tasks_done", 0), row.get("tasks_failed", 0)
            rows.append(_present({
                "id": row["id"], "hostPort": row.get("block_address") or row["host"],
                "isActive": active, "rddBlocks": 0, "memoryUsed": row.get("memory_used", 0),
                "diskUsed": 0, "totalCores": row["cores"], "maxTasks": row["cores"],
                "activeTasks": row.get("running_tasks", 0), "failedTasks": failed,
                "completedTasks": completed,
                "totalTasks": completed + failed + row.get("running_tasks", 0),
                "totalDuration": int(sum(t.duration_ms for t in tasks)), "totalGCTime": 0,
                "totalInputBytes": 0,
                "totalShuffleRead": sum(t.shuffle_read_bytes for t in tasks),
                "totalShuffleWrite": sum(t.shuffle_write_bytes for t in tasks),
                "isBlacklisted": False, "isExcluded": False,
                "maxMemory": row.get("memory_bytes", 0),
                "addTime": spark_date(self.store.started_s),
                "removeReason": None if active else row["state"],
                "executorLogs": {}, "blacklistedInStages": [], "excludedInStages": [],
                "attributes": {}, "resources": {}, "resourceProfileId": 0,
            }))
        return rows

    def _driver_summary(self) -> dict:
        return {"id": "driver", "hostPort": "driver", "isActive": True, "rddBlocks": 0,
                "memoryUsed": 0, "diskUsed": 0, "totalCores": 0, "maxTasks": 0,
                "activeTasks": 0, "failedTasks": 0, "completedTasks": 0, "totalTasks": 0,
                "totalDuration": 0, "totalGCTime": 0, "totalInputBytes": 0,
                "totalShuffleRead": 0, "totalShuffleWrite": 0, "isBlacklisted": False,
                "isExcluded": False, "maxMemory": 0, "addTime": spark_date(self.store.started_s),
                "executorLogs": {}, "blacklistedInStages": [], "excludedInStages": [],
                "attributes": {}, "resources": {}, "resourceProfileId": 0}

    # -- streaming -------------------------------------------------------------------------------
    def streaming_statistics(self) -> dict | None:
        store = self.store
        with store._lock:
            if store.batch_duration_ms is None:
                return None
            batches = list(store.batches.values())
            receivers = list(store.receivers.values())
        done = [b for b in batches if b.processing_end_ms >= 0]
        interval_s = store.batch_duration_ms / 1000

        def average(values):
            values = [v for v in values if v >= 0]
            return int(round(sum(values) / len(values))) if values else None
        records = sum(b.records for b in done)
        return _present({
            "startTime": spark_date((store.streaming_started_ms or 0) / 1000),
            "batchDuration": store.batch_duration_ms,
            "numReceivers": len(receivers),
            "numActiveReceivers": sum(r["state"] == "ACTIVE" for r in receivers),
            "numInactiveReceivers": sum(r["state"] != "ACTIVE" for r in receivers),
            "numTotalCompletedBatches": len(done), "numRetainedCompletedBatches": len(done),
            "numActiveBatches": len(batches) - len(done),
            "numProcessedRecords": records, "numReceivedRecords": sum(b.records for b in batches),
            "avgInputRate": (records / (len(done) * interval_s)) if done and interval_s else None,
            "avgSchedulingDelay": average([b.scheduling_ms for b in done]),
            "avgProcessingTime": average([b.processing_ms for b in done]),
            "avgTotalDelay": average([b.total_ms for b in done]),
        })

    def receivers(self) -> list[dict]:
        store = self.store
        with store._lock:
            receivers = list(store.receivers.values())
            batches = list(store.batches.values())
        interval_s = (store.batch_duration_ms or 1000) / 1000
        flow = (store.flow_control() or {}).get("streams", {})  # sluicegate's: the rate limit
        rows = []
        for r in sorted(receivers, key=lambda r: r["stream_id"]):
            rates = [(b.batch_ms, b.input_by_stream.get(r["stream_id"], 0) / interval_s)
                     for b in batches if b.processing_end_ms >= 0]
            rows.append(_present({
                "streamId": r["stream_id"], "streamName": r["name"],
                "isActive": r["state"] == "ACTIVE",
                "executorId": "driver", "executorHost": r.get("location") or "driver",
                "lastErrorMessage": r.get("last_error") or None,
                "lastError": r.get("last_error") or None,
                "avgEventRate": sum(rate for _, rate in rates) / len(rates) if rates else None,
                "eventRates": [[t, rate] for t, rate in rates],
                "rateLimit": (flow.get(r["stream_id"]) or {}).get("rate_limit"),
            }))
        return rows

    def receiver(self, stream_id: int) -> dict | None:
        return next((r for r in self.receivers() if r["streamId"] == stream_id), None)

    def batches(self) -> list[dict]:
        return self._newest_first("batches", self._batch)

    def batch(self, batch_id: int) -> dict | None:
        return self._one("batches", batch_id, self._batch)

    def _batch(self, b) -> dict:
        outputs = list(b.outputs.values())
        failed = [o for o in outputs if o.get("failure")]
        completed = [o for o in outputs if o.get("end_ms", -1) >= 0 and not o.get("failure")]
        status = {"QUEUED": "QUEUED", "PROCESSING": "PROCESSING"}.get(b.state, "COMPLETED")
        return _present({
            "batchId": b.batch_ms, "batchTime": spark_date(b.batch_ms / 1000), "status": status,
            "batchDuration": self.store.batch_duration_ms, "inputSize": b.records,
            "schedulingDelay": b.scheduling_ms if b.scheduling_ms >= 0 else None,
            "processingTime": b.processing_ms if b.processing_ms >= 0 else None,
            "totalDelay": b.total_ms if b.total_ms >= 0 else None,
            "numActiveOutputOps": len(outputs) - len(failed) - len(completed),
            "numCompletedOutputOps": len(completed), "numFailedOutputOps": len(failed),
            "numTotalOutputOps": len(outputs),
            "firstFailureReason": failed[0]["failure"] if failed else None,
            "inputInfos": _input_infos(b) or None,
        })

    def operations(self, batch_id: int) -> list[dict] | None:
        with self.store._lock:
            batch = self.store.batches.get(batch_id)
            if batch is None:
                return None
            jobs_of = {}
            for job_id in batch.job_ids:
                job = self.store.jobs.get(job_id)
                if job is not None and job.output_id is not None:
                    jobs_of.setdefault(job.output_id, []).append(job_id)
            return [_operation(o, jobs_of.get(o["id"], []))
                    for _, o in sorted(batch.outputs.items())]

    def operation(self, batch_id: int, op_id: int) -> dict | None:
        return next((o for o in self.operations(batch_id) or [] if o["outputOpId"] == op_id), None)


def _input_infos(b) -> list[dict]:
    infos = []
    for sid in sorted(set(b.input_descriptions) | set(b.kafka)):
        kafka = b.kafka.get(sid)
        infos.append(_present({
            "inputStreamId": sid, "numRecords": b.input_by_stream.get(sid, 0),
            "metadataDescription": b.input_descriptions.get(sid),
            "kafkaPartitions": None if kafka is None else [
                _present({"topic": p["topic"], "partition": p["partition"],
                          "fromOffset": p["fromOffset"], "untilOffset": p["untilOffset"],
                          "records": p["records"], "lag": p.get("lag")})
                for p in kafka["partitions"]],
            "kafkaTotalLag": None if kafka is None else kafka.get("total_lag"),
            "kafkaError": (kafka or {}).get("error") or None,
        }))
    return infos


def _operation(o: dict, job_ids: list[int]) -> dict:
    start = o.get("start_ms", -1)
    end = o.get("end_ms", -1)
    return _present({
        "outputOpId": o["id"], "name": o["name"], "description": o["description"],
        "startTime": spark_date(start / 1000) if start >= 0 else None,
        "endTime": spark_date(end / 1000) if end >= 0 else None,
        "duration": end - start if start >= 0 and end >= 0 else None,
        "failureReason": o.get("failure") or None, "jobIds": job_ids,
    })


def _task(t) -> dict:
    return _present({
        "taskId": t.tid, "index": t.partition, "attempt": t.attempt,
        "launchTime": spark_date(t.launched_s), "duration": int(t.duration_ms),
        "executorId": t.executor_id, "host": t.executor_id,
        "status": "SUCCESS" if t.status == "SUCCESS" else "FAILED",
        "taskLocality": "PROCESS_LOCAL", "speculative": False, "accumulatorUpdates": [],
        "errorMessage": t.error or None,
    })


def _stage_state(stage, job) -> str:
    succeeded = {t.partition for t in stage.tasks if t.status == "SUCCESS"}
    if len(succeeded) >= stage.num_tasks:
        return "COMPLETE"
    if job is not None and job.status == "FAILED":
        return "FAILED"
    if job is not None and job.status == "SUCCEEDED":
        return "SKIPPED" if not stage.tasks else "COMPLETE"
    return "ACTIVE"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        return "unknown"


def routes(api: SparkRestApi, json_reply: Callable, not_found: Callable) -> list[tuple[str, Callable]]:
    """(pattern, handler) pairs for the status server; each pattern is under one app id."""
    app = r"/api/v1/applications/([^/]+)"

    def of_app(fn):
        def handler(m):
            if m.group(1) != api.app_id:
                return not_found(f"unknown app: {m.group(1)}")
            found = fn(m)
            return not_found("not found") if found is None else json_reply(found)
        return handler

    return [
        (r"/api/v1/version", lambda m: json_reply({"spark": SPARK_COMPATIBLE_VERSION})),
        (r"/api/v1/applications", lambda m: json_reply(api.applications())),
        (app, of_app(lambda m: api.application())),
        (app + r"/jobs", of_app(lambda m: api.jobs())),
        (app + r"/jobs/(\d+)", of_app(lambda m: api.job(int(m.group(2))))),
        (app + r"/stages", of_app(lambda m: api.stages())),
        (app + r"/stages/(\d+)", of_app(lambda m: api.stage_attempts(int(m.group(2))))),
        (app + r"/stages/(\d+)/(\d+)", of_app(
            lambda m: api.stage_attempt(int(m.group(2)), int(m.group(3))))),
        (app + r"/executors", of_app(lambda m: api.executors())),
        (app + r"/allexecutors", of_app(lambda m: api.executors(include_dead=True))),
        (app + r"/streaming/statistics", of_app(lambda m: api.streaming_statistics())),
        (app + r"/streaming/receivers", of_app(lambda m: api.receivers())),
        (app + r"/streaming/receivers/(\d+)", of_app(lambda m: api.receiver(int(m.group(2))))),
        (app + r"/streaming/batches", of_app(lambda m: api.batches())),
        (app + r"/streaming/batches/(\d+)", of_app(lambda m: api.batch(int(m.group(2))))),
        (app + r"/streaming/batches/(\d+)/operations", of_app(
            lambda m: api.operations(int(m.group(2))))),
        (app + r"/streaming/batches/(\d+)/operations/(\d+)", of_app(
            lambda m: api.operation(int(m.group(2)), int(m.group(3))))),
    ]
