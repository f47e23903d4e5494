"""Spark's monitoring REST API paths and field names, served by a real application.

A local[2] application with a custom receiver runs a few one-second batches and
a batch job with a shuffle; every path of Spark's API that sluicegate serves is
read over HTTP, and each answer must carry the fields Spark's API documentation
and its ``status/api/v1`` classes give that object (the non-optional ones; an
optional field may be absent, as in Spark).
"""
from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from operator import add

import pytest

from cluster_harness import wait_until
from sluicegate.driver import Receiver, StreamingContext

APPLICATION = {"id", "name", "attempts"}
ATTEMPT = {"startTime", "endTime", "lastUpdated", "duration", "sparkUser", "completed",
           "appSparkVersion", "startTimeEpoch", "endTimeEpoch", "lastUpdatedEpoch"}
JOB = {"jobId", "name", "stageIds", "status", "numTasks", "numActiveTasks", "numCompletedTasks",
       "numSkippedTasks", "numFailedTasks", "numKilledTasks", "numCompletedIndices",
       "numActiveStages", "numCompletedStages", "numSkippedStages", "numFailedStages",
       "killedTasksSummary"}
STAGE = {"status", "stageId", "attemptId", "numTasks", "numActiveTasks", "numCompleteTasks",
         "numFailedTasks", "numKilledTasks", "numCompletedIndices", "executorRunTime",
         "executorCpuTime", "inputBytes", "inputRecords", "outputBytes", "outputRecords",
         "shuffleReadBytes", "shuffleReadRecords", "shuffleWriteBytes", "shuffleWriteRecords",
         "memoryBytesSpilled", "diskBytesSpilled", "name", "details", "schedulingPool", "rddIds",
         "accumulatorUpdates", "killedTasksSummary"}
TASK = {"taskId", "index", "attempt", "launchTime", "executorId", "host", "status",
        "taskLocality", "speculative", "accumulatorUpdates"}
EXECUTOR = {"id", "hostPort", "isActive", "rddBlocks", "memoryUsed", "diskUsed", "totalCores",
            "maxTasks", "activeTasks", "failedTasks", "completedTasks", "totalTasks",
            "totalDuration", "totalGCTime", "totalInputBytes", "totalShuffleRead",
            "totalShuffleWrite", "isBlacklisted", "maxMemory", "addTime", "executorLogs"}
STATISTICS = {"startTime", "batchDuration", "numReceivers", "numActiveReceivers",
              "numInactiveReceivers", "numTotalCompletedBatches", "numRetainedCompletedBatches",
              "numActiveBatches", "numProcessedRecords", "numReceivedRecords"}
RECEIVER = {"streamId", "streamName", "eventRates"}
BATCH = {"batchId", "batchTime", "status", "batchDuration", "inputSize", "numActiveOutputOps",
         "numCompletedOutputOps", "numFailedOutputOps", "numTotalOutputOps"}
OPERATION = {"outputOpId", "name", "description", "jobIds"}
SPARK_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}GMT$")


class Ticks(Receiver):
    """Stores ten records a 100 ms."""

    def onStart(self):
        threading.Thread(target=self._run, daemon=True).start()

    def onStop(self):
        pass

    def _run(self):
        n = 0
        while not self.isStopped():
            self.store([f"tick {n + i}" for i in range(10)])
            n += 10
            time.sleep(0.1)


def get(base: str, path: str):
    with urllib.request.urlopen(base + path, timeout=20) as reply:
        assert reply.headers["Content-Type"].startswith("application/json")
        return json.loads(reply.read())


def status_of(base: str, path: str) -> int:
    try:
        with urllib.request.urlopen(base + path, timeout=20) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def has_fields(obj: dict, fields: set, what: str) -> None:
    missing = fields - set(obj)
    assert not missing, f"{what} lacks Spark's fields {sorted(missing)}: {obj}"


@pytest.fixture
def running_app(own_context):
    sc = own_context("local[2]", spark__ui__port="0")
    ssc = StreamingContext(sc, 1.0)
    ssc.receiverStream(Ticks()).map(lambda line: (line.split()[0], 1)) \
        .reduceByKey(add).foreachRDD(lambda rdd: rdd.count())
    ssc.start()
    try:
        base = sc.uiWebUrl
        assert sc.parallelize(range(100), 4).map(lambda x: (x % 3, x)).reduceByKey(add) \
            .collect()
        wait_until(lambda: get(base, f"/api/v1/applications/{sc.applicationId}/streaming/statistics")
                   ["numTotalCompletedBatches"] >= 3 or None, 90, what="three batches")
        yield sc, base
    finally:
        ssc.stop(stopSparkContext=False)


def test_spark_rest_api_paths_and_fields(running_app):
    sc, base = running_app
    app_id = sc.applicationId
    prefix = f"/api/v1/applications/{app_id}"

    apps = get(base, "/api/v1/applications")
    assert [a["id"] for a in apps] == [app_id]
    has_fields(apps[0], APPLICATION, "application")
    has_fields(apps[0]["attempts"][0], ATTEMPT, "application attempt")
    assert SPARK_DATE.match(apps[0]["attempts"][0]["startTime"])
    assert get(base, prefix)["name"] == sc.appName
    assert set(get(base, "/api/v1/version")) == {"spark"}

    jobs = get(base, prefix + "/jobs")
    assert jobs, "no jobs"
    for job in jobs:
        has_fields(job, JOB, f"job {job.get('jobId')}")
        assert job["status"] in {"RUNNING", "SUCCEEDED", "FAILED", "UNKNOWN"}
    done = [j for j in jobs if j["status"] == "SUCCEEDED"]
    assert done and all(j["numCompletedTasks"] >= 1 and SPARK_DATE.match(j["completionTime"])
                        for j in done)
    assert get(base, f"{prefix}/jobs/{done[0]['jobId']}")["jobId"] == done[0]["jobId"]

    stages = get(base, prefix + "/stages")
    assert stages
    for stage in stages:
        has_fields(stage, STAGE, f"stage {stage.get('stageId')}")
        assert stage["status"] in {"ACTIVE", "COMPLETE", "FAILED", "PENDING", "SKIPPED"}
    complete = next(s for s in stages if s["status"] == "COMPLETE")
    attempts = get(base, f"{prefix}/stages/{complete['stageId']}")
    assert attempts[0]["stageId"] == complete["stageId"]
    one = get(base, f"{prefix}/stages/{complete['stageId']}/{complete['attemptId']}")
    assert one["tasks"]
    for task in one["tasks"].values():
        has_fields(task, TASK, "task")
    # the shuffle's bytes show on its map stage
    assert any(s["shuffleWriteBytes"] > 0 for s in stages)

    executors = get(base, prefix + "/executors")
    assert {e["id"] for e in executors} >= {"driver"}
    workers = [e for e in executors if e["id"] != "driver"]
    assert len(workers) == 2 and all(e["isActive"] and e["totalCores"] == 1 for e in workers)
    assert sum(e["completedTasks"] for e in workers) >= 1
    for executor in executors:
        has_fields(executor, EXECUTOR, f"executor {executor['id']}")
    assert len(get(base, prefix + "/allexecutors")) >= 3

    stats = get(base, prefix + "/streaming/statistics")
    has_fields(stats, STATISTICS, "streaming statistics")
    assert stats["batchDuration"] == 1000 and stats["numReceivers"] == 1
    assert stats["numProcessedRecords"] > 0

    receivers = get(base, prefix + "/streaming/receivers")
    assert len(receivers) == 1
    has_fields(receivers[0], RECEIVER, "receiver")
    assert receivers[0]["isActive"] is True
    assert get(base, f"{prefix}/streaming/receivers/{receivers[0]['streamId']}")["streamId"] == \
        receivers[0]["streamId"]

    batches = get(base, prefix + "/streaming/batches")
    completed = [b for b in batches if b["status"] == "COMPLETED"]
    assert len(completed) >= 3
    for batch in batches:
        has_fields(batch, BATCH, f"batch {batch.get('batchId')}")
    batch = completed[0]
    assert batch["batchId"] % 1000 == 0 and SPARK_DATE.match(batch["batchTime"])
    assert batch["numCompletedOutputOps"] == batch["numTotalOutputOps"] == 1
    assert get(base, f"{prefix}/streaming/batches/{batch['batchId']}")["batchId"] == batch["batchId"]
    operations = get(base, f"{prefix}/streaming/batches/{batch['batchId']}/operations")
    assert len(operations) == 1
    has_fields(operations[0], OPERATION, "output operation")
    assert operations[0]["jobIds"] and "duration" in operations[0]
    assert get(base, f"{prefix}/streaming/batches/{batch['batchId']}/operations/"
                     f"{operations[0]['outputOpId']}")["outputOpId"] == operations[0]["outputOpId"]


def test_unknown_application_and_objects_are_404(running_app):
    sc, base = running_app
    prefix = f"/api/v1/applications/{sc.applicationId}"
    assert status_of(base, "/api/v1/applications/app-nope/jobs") == 404
    assert status_of(base, prefix + "/jobs/999999") == 404
    assert status_of(base, prefix + "/stages/999999") == 404
    assert status_of(base, prefix + "/streaming/batches/1") == 404
    assert status_of(base, prefix + "/streaming/batches/1/operations") == 404
