"""Watching applications: the REST API, ``/metrics``, the status pages, the UI's
ports, the live progress line, and the cluster service's pages.

Everything runs for real: a local[2] application with a socket receiver fed by
a server thread here (one burst of lines per batch), a second application
whose output operation fails on purpose (and whose other task fails once and
is retried), small streaming scripts run as subprocesses (directly and through
``sluicegate submit`` against a ``sluicegate driver`` + ``sluicegate worker``
on loopback), and an application fed at a steady pace to check the receiver
rate in ``/metrics`` while data flows. The status pages are read with plain HTTP
here (``page_checks``); a real browser renders them in
``tests/browser/test_status_pages_browser.py``.
"""
from __future__ import annotations

import datetime
import getpass
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from operator import add
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from cluster_harness import LocalCluster, wait_until
from conftest import _stop_active, make_context, wait_for_no_executors
from page_checks import (
    CHART_AVERAGES, SVG_NAMESPACE, Tables, byte_size, get_json, get_page, http_get, metric, number,
    outside_references, scrape, svg_chart, task_rows)
from sluicegate.common.auth import SecurityError
from sluicegate.driver import SparkContext, StreamingContext, StreamingListener, TaskContext
from streaming_harness import batch_ms_of

WAIT_S = 90.0  # a loaded 2-core machine: generous, only ever reached on failure


def listening_ports_here() -> set[int]:
    return {c.laddr.port for c in psutil.Process().net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN}


# -- a running streaming application fed through a socket --------------------------------------

BURSTS = 5          # bursts of lines the server sends, one per batch
BURST_LINES = 40    # lines in each burst
WORDS = 7           # each line: its burst's tag and one of WORDS words


class BurstServer:
    """A TCP server thread: once a client is connected, sends a burst of
    ``BURST_LINES`` lines each time ``release()`` is called, ``BURSTS`` times."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self.released = threading.Event()
        self._stop = threading.Event()
        self._conn: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, name="burst-server", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self.released.set()

    def _serve(self) -> None:
        while self._conn is None and not self._stop.is_set():
            try:
                self._conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
        for burst in range(BURSTS):
            self.released.clear()
            while not self.released.wait(0.2):
                if self._stop.is_set():
                    return
            lines = "".join(f"b{burst} w{i % WORDS}\n" for i in range(BURST_LINES))
            try:
                self._conn.sendall(lines.encode())
            except OSError:
                return
            self.sent += BURST_LINES

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        if self._conn is not None:
            self._conn.close()
        self.sock.close()


class ReleaseOnBatch(StreamingListener):
    """Lets the server send its next burst right after a batch completes, so
    that each burst lands well inside the next batch interval."""

    def __init__(self, server: BurstServer):
        self.server = server

    def onBatchCompleted(self, batchCompleted) -> None:
        self.server.release()


class SocketRun:
    def __init__(self, sc: SparkContext, ssc: StreamingContext, server: BurstServer):
        self.sc, self.ssc, self.server = sc, ssc, server
        self.base = sc.uiWebUrl
        self.tags: dict[int, dict] = {}     # batch ms -> {burst tag: lines}, as the job saw them
        self.words: dict[int, dict] = {}    # batch ms -> word counts (the reduceByKey's output)

    def data_batches(self) -> list[int]:
        return sorted(ms for ms, tags in self.tags.items() if tags)


@pytest.fixture(scope="class")
def socket_run():
    _stop_active()
    sc = make_context("local[2]", spark__sluicegate__progress="false")
    server = BurstServer()
    ssc = StreamingContext(sc, 0.5)
    run = SocketRun(sc, ssc, server)
    try:
        lines = ssc.socketTextStream("127.0.0.1", server.port)
        lines.foreachRDD(lambda t, rdd: run.tags.__setitem__(
            batch_ms_of(t), dict(rdd.map(lambda line: line.split()[0]).countByValue())))
        (lines.flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(add)
         .foreachRDD(lambda t, rdd: run.words.__setitem__(batch_ms_of(t), dict(rdd.collect()))))
        ssc.addStreamingListener(ReleaseOnBatch(server))
        ssc.start()

        def all_seen():
            received = sum(b["records"] for b in get_json(run.base, "/api/v1/batches")
                           if b["state"] == "COMPLETED")
            return received == BURSTS * BURST_LINES and sum(
                sum(t.values()) for t in list(run.tags.values())) == BURSTS * BURST_LINES
        wait_until(all_seen, WAIT_S, what="every burst in a completed batch")
        yield run
    finally:
        ssc.stop(stopSparkContext=True, stopGraceFully=False)
        server.close()


class TestRunningStream:
    def test_streaming_summary(self, socket_run):
        first = get_json(socket_run.base, "/api/v1/streaming")
        assert first["batch_duration_ms"] == 500
        assert first["started_ms"] > 0
        assert first["batches_completed"] >= BURSTS
        assert first["batches_failed"] == 0
        assert first["avg_input_rate"] > 0
        for key in ("avg_scheduling_delay_ms", "avg_processing_ms", "avg_total_delay_ms"):
            assert first[key] is not None and first[key] >= 0, key
        assert first["avg_total_delay_ms"] >= first["avg_processing_ms"]
        [receiver] = first["receivers"]
        assert receiver["state"] == "ACTIVE" and receiver["stream_id"] == 0
        assert "Socket" in receiver["name"]
        wait_until(lambda: get_json(socket_run.base, "/api/v1/streaming")["batches_completed"]
                   > first["batches_completed"], WAIT_S, what="batches_completed to grow")

    def test_batches_list_records_what_was_sent(self, socket_run):
        batches = get_json(socket_run.base, "/api/v1/batches")
        times = [b["batch_ms"] for b in batches]
        assert times == sorted(times, reverse=True), "newest first"
        assert all(t % 500 == 0 for t in times)
        by_time = {b["batch_ms"]: b for b in batches}
        for batch_ms, tags in socket_run.tags.items():
            batch = by_time[batch_ms]
            assert batch["records"] == sum(tags.values()), (batch_ms, tags)
            assert batch["input_by_stream"] == {"0": batch["records"]}
        data = [by_time[ms] for ms in socket_run.data_batches()]
        assert sum(b["records"] for b in data) == BURSTS * BURST_LINES
        # One burst per batch (a burst split over two batches would only happen
        # on a badly stalled machine; then the totals above still hold).
        assert any(b["records"] == BURST_LINES for b in data)
        completed = [b for b in batches if b["state"] == "COMPLETED"]
        assert len(completed) >= BURSTS
        for b in completed:
            assert b["scheduling_delay_ms"] >= 0 and b["processing_ms"] >= 0, b
            assert b["total_delay_ms"] >= b["processing_ms"], b
            assert b["output_ops"] == b["output_ops_done"] == 2
            assert b["failure"] == ""
            assert b["submitted_ms"] >= b["batch_ms"]
            jobs = get_json(socket_run.base, f"/api/v1/batches/{b['batch_ms']}")["jobs"]
            assert {j["output_id"] for j in jobs} == {0, 1}, b

    def test_batch_detail_has_outputs_jobs_stages_tasks(self, socket_run):
        workers = {w["id"] for w in get_json(socket_run.base, "/api/v1/workers")}
        batch_ms = next(ms for ms in socket_run.data_batches()
                        if sum(socket_run.tags[ms].values()) == BURST_LINES)
        detail = get_json(socket_run.base, f"/api/v1/batches/{batch_ms}")
        assert detail["batch_ms"] == batch_ms and detail["state"] == "COMPLETED"
        assert detail["records"] == BURST_LINES
        assert [o["id"] for o in detail["outputs"]] == [0, 1]
        for output in detail["outputs"]:
            assert output["name"] == "foreachRDD"
            assert "test_observability.py" in output["description"]
            assert output["end_ms"] >= output["start_ms"] >= batch_ms and output["failure"] == ""
        jobs = detail["jobs"]
        assert {j["output_id"] for j in jobs} == {0, 1}
        assert all(j["batch_ms"] == batch_ms and j["status"] == "SUCCEEDED" for j in jobs)
        for job in jobs:
            assert job["stages"], job
            for stage in job["stages"]:
                assert stage["tasks_succeeded"] == stage["num_tasks"] == len(stage["tasks"])
                for task in stage["tasks"]:
                    assert task["executor_id"] in workers
                    assert task["status"] == "SUCCESS" and task["duration_ms"] >= 0
                    assert task["records_in"] >= 0 and task["records_out"] >= 0
        # The reduceByKey's job: a map stage writing shuffle output, a result stage reading it.
        [shuffled] = [j for j in jobs if j["output_id"] == 1]
        maps = [s for s in shuffled["stages"] if s["kind"].startswith("map for shuffle")]
        results = [s for s in shuffled["stages"] if s["kind"] == "result"]
        assert len(maps) == 1 and len(results) == 1
        map_tasks, result_tasks = maps[0]["tasks"], results[0]["tasks"]
        assert sum(t["records_in"] for t in map_tasks) == BURST_LINES
        assert sum(t["shuffle_write_bytes"] for t in map_tasks) == maps[0]["shuffle_write_bytes"] > 0
        assert sum(t["shuffle_read_bytes"] for t in result_tasks) == results[0]["shuffle_read_bytes"]
        assert results[0]["shuffle_read_bytes"] == maps[0]["shuffle_write_bytes"]
        words = socket_run.words[batch_ms]
        assert len(words) == WORDS + 1 and sum(words.values()) == 2 * BURST_LINES
        assert sum(t["records_out"] for t in result_tasks) == len(words)

        # The same job through /api/v1/jobs/<id>, and in /api/v1/jobs.
        again = get_json(socket_run.base, f"/api/v1/jobs/{shuffled['job_id']}")
        assert again == shuffled
        listed = {j["job_id"]: j for j in get_json(socket_run.base, "/api/v1/jobs")}
        for job in jobs:
            summary = listed[job["job_id"]]
            assert summary["batch_ms"] == batch_ms and summary["status"] == "SUCCEEDED"
            assert summary["stage_ids"] == job["stage_ids"]
            assert summary["duration_ms"] >= 0 and "stages" not in summary

    def test_workers(self, socket_run):
        workers = get_json(socket_run.base, "/api/v1/workers")
        assert sorted(w["id"] for w in workers) == ["exec-1", "exec-2"]
        children = {p.pid for p in psutil.Process().children(recursive=True)}
        for worker in workers:
            assert worker["state"] == "ALIVE"
            assert worker["cores"] == 1
            assert worker["pid"] in children
            assert 0 <= worker["last_heartbeat_s_ago"] < 60
            assert worker["tasks_done"] > 0 and worker["tasks_failed"] == 0
            assert worker["memory_bytes"] > 0

    def test_unknown_batch_or_job_is_404(self, socket_run):
        base = socket_run.base
        some_batch = get_json(base, "/api/v1/batches")[0]["batch_ms"]
        for path in (f"/api/v1/batches/{some_batch + 1}", "/api/v1/jobs/987654",
                     f"/batch/{some_batch + 1}", "/job/987654", "/api/v1/nothing",
                     "/cluster", "/nothing"):
            status, _, _ = http_get(base, path)
            assert status == 404, path

    def test_metrics_agree_with_the_api(self, socket_run):
        base = socket_run.base
        before = scrape(base)
        summary = get_json(base, "/api/v1/streaming")
        batches = get_json(base, "/api/v1/batches")
        jobs = get_json(base, "/api/v1/jobs")
        workers = get_json(base, "/api/v1/workers")
        after = scrape(base)

        def between(name, value, **labels):
            low, high = metric(before, name, **labels), metric(after, name, **labels)
            assert low <= value <= high, f"{name}{labels}: {low} <= {value} <= {high}"

        between("sluicegate_batches_completed_total", summary["batches_completed"])
        between("sluicegate_batches_completed_total",
                sum(b["state"] == "COMPLETED" for b in batches))
        assert metric(after, "sluicegate_batches_failed_total") == 0
        # Every burst has been counted; later batches are empty.
        assert metric(before, "sluicegate_input_records_total") == BURSTS * BURST_LINES
        assert sum(b["records"] for b in batches) == BURSTS * BURST_LINES
        between("sluicegate_jobs_total", sum(j["status"] == "SUCCEEDED" for j in jobs),
                status="succeeded")
        assert ("sluicegate_jobs_total", frozenset({("status", "failed")})) not in after
        assert metric(after, "sluicegate_workers") == len(workers) == 2
        assert metric(after, "sluicegate_task_retries_total") == 0
        for name in ("sluicegate_batch_scheduling_delay_seconds", "sluicegate_batch_processing_seconds",
                     "sluicegate_batch_total_delay_seconds"):
            between(f"{name}_count", summary["batches_completed"])
            assert metric(after, f"{name}_sum") >= 0
            assert metric(after, f"{name}_bucket", le="+Inf") == metric(after, f"{name}_count")
        # Shuffle bytes: at least what the batches' reduceByKey jobs report.
        written = read = 0
        for batch_ms in socket_run.data_batches():
            for job in get_json(base, f"/api/v1/batches/{batch_ms}")["jobs"]:
                for stage in job["stages"]:
                    written += stage["shuffle_write_bytes"]
                    read += stage["shuffle_read_bytes"]
        assert 0 < written <= metric(after, "sluicegate_shuffle_write_bytes_total")
        assert 0 < read <= metric(after, "sluicegate_shuffle_read_bytes_total")
        tasks = metric(after, "sluicegate_tasks_total", status="success")
        assert tasks >= sum(len(s["tasks"]) for j in get_json(
            base, f"/api/v1/batches/{socket_run.data_batches()[0]}")["jobs"] for s in j["stages"])
        # The receiver's rate in the last batch (records / batch interval); the data has
        # ended here, so it may be 0 (test_receiver_rate_while_data_flows scrapes it while
        # data flows).
        assert metric(after, "sluicegate_receiver_records_per_second", stream="0") >= 0

    def test_pages(self, socket_run):
        base = socket_run.base
        status, headers, _ = http_get(base, "/")
        assert status == 302 and headers["Location"] == "/streaming"
        page = get_page(base, "/streaming")
        assert '<meta http-equiv="refresh" content="2">' in page
        for chart in ("chart-input-rate", "chart-scheduling-delay", "chart-processing-time",
                      "chart-total-delay"):
            assert f'id="{chart}"' in page
        rows = Tables(page).tables["completed-batches"]
        shown = {row["links"][0]: number(row["cells"][1]) for row in rows}
        for batch_ms in socket_run.data_batches():
            assert shown[f"/batch/{batch_ms}"] == sum(socket_run.tags[batch_ms].values())
        batch_ms = socket_run.data_batches()[0]
        page = get_page(base, f"/batch/{batch_ms}")
        assert "Output operations" in page and "foreachRDD" in page and "exec-" in page
        job_id = get_json(base, f"/api/v1/batches/{batch_ms}")["jobs"][0]["job_id"]
        assert f"Job {job_id}" in get_page(base, f"/job/{job_id}")
        jobs = Tables(get_page(base, "/jobs")).tables["jobs"]
        assert any(row["links"] == [f"/job/{job_id}"] for row in jobs)
        workers = Tables(get_page(base, "/workers")).tables["workers"]
        assert sorted(row["cells"][0] for row in workers) == ["exec-1", "exec-2"]
        assert all(row["cells"][-1] == "ALIVE" for row in workers)

    def test_charts_show_their_averages(self, socket_run):
        base = socket_run.base
        before = get_json(base, "/api/v1/streaming")
        page = get_page(base, "/streaming")
        after = get_json(base, "/api/v1/streaming")
        for chart, (title, unit, key) in CHART_AVERAGES.items():
            svg = svg_chart(page, chart)
            assert before["batches_completed"] <= svg["points"] <= after["batches_completed"], chart
            # The average as a number, as the visible title, and as a dashed line.
            assert svg["average"] is not None, chart
            assert svg["title"].startswith(f"{title} (avg "), svg["title"]
            assert svg["title"].endswith(f" {unit})"), svg["title"]
            label = float(svg["title"][len(title) + 6:-len(unit) - 2].replace(",", ""))
            assert label == pytest.approx(svg["average"], abs=0.06), (chart, svg)
            assert svg["avg_lines"] == 1, chart
            # The API's average over (nearly) the same batches; a batch or two may complete
            # between the requests, so allow for them.
            low, high = sorted((before[key], after[key]))
            slack = 0.5 * high + 2.0
            assert low - slack <= svg["average"] <= high + slack, (chart, svg, before[key], after[key])
        # Data went through: the input rate's average is above zero.
        assert svg_chart(page, "chart-input-rate")["average"] > 0

    def test_batch_page_shows_each_task(self, socket_run):
        base = socket_run.base
        batch_ms = next(ms for ms in socket_run.data_batches()
                        if sum(socket_run.tags[ms].values()) == BURST_LINES)
        detail = get_json(base, f"/api/v1/batches/{batch_ms}")
        rows = task_rows(get_page(base, f"/batch/{batch_ms}"))
        tasks = [t for job in detail["jobs"] for stage in job["stages"] for t in stage["tasks"]]
        assert len(rows) == len(tasks) > 0
        for task in tasks:
            row = rows[str(task["tid"])]
            cells = row["cells"]
            assert cells[3] == task["executor_id"] and cells[3] in ("exec-1", "exec-2"), cells
            assert float(cells[4].removesuffix(" ms").replace(",", "")) == pytest.approx(
                task["duration_ms"], abs=0.051), cells
            assert number(cells[5]) == task["records_in"] and number(cells[6]) == task["records_out"]
            for cell, key in ((cells[7], "shuffle_read_bytes"), (cells[8], "shuffle_write_bytes")):
                shown, off_by = byte_size(cell)
                assert abs(shown - task[key]) <= off_by, (cell, key, task[key])
            assert cells[9] == "SUCCESS" and cells[10] == "" and row["class"] == ""
        # The reduceByKey's shuffle shows on the page: bytes written and read.
        assert sum(byte_size(r["cells"][8])[0] for r in rows.values()) > 0
        assert sum(byte_size(r["cells"][7])[0] for r in rows.values()) > 0
        assert sum(number(r["cells"][5]) for r in rows.values()) >= BURST_LINES

    def test_pages_work_offline_and_refresh(self, socket_run):
        base = socket_run.base
        batch_ms = socket_run.data_batches()[0]
        job_id = get_json(base, f"/api/v1/batches/{batch_ms}")["jobs"][0]["job_id"]
        for path in ("/streaming", f"/batch/{batch_ms}", "/jobs", f"/job/{job_id}", "/workers"):
            page = get_page(base, path)
            assert outside_references(page) == [], path
            assert '<meta http-equiv="refresh" content="2">' in page, path
        # The charts are drawn right in the page, as SVG.
        assert get_page(base, "/streaming").count(f'xmlns="{SVG_NAMESPACE}"') == len(CHART_AVERAGES)


# -- the receiver rate while data flows at a steady pace ---------------------------------------

BATCH_S = 0.5   # the steady feed's application
TICK_S = 0.02   # the feeder sends LINES_PER_TICK lines every TICK_S:
LINES_PER_TICK = 8   # about 400 lines/s, about 200 a batch


class SteadyFeed:
    """A TCP server thread sending ``LINES_PER_TICK`` lines every ``TICK_S`` to the
    first client, until closed."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self.first_sent_s: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="steady-feed", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn = None
        while conn is None and not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
        if conn is None:
            return
        with conn:
            line = 0
            next_s = time.monotonic()
            while not self._stop.is_set():
                chunk = "".join(f"line {line + i}\n" for i in range(LINES_PER_TICK))
                try:
                    conn.sendall(chunk.encode())
                except OSError:
                    return
                if self.first_sent_s is None:
                    self.first_sent_s = time.monotonic()
                line += LINES_PER_TICK
                self.sent = line
                next_s += TICK_S
                self._stop.wait(max(0.0, next_s - time.monotonic()))

    def sending(self) -> bool:
        return self._thread.is_alive() and self.sent > 0

    def rate(self) -> float:
        """Lines per second sent so far."""
        return self.sent / max(1e-3, time.monotonic() - self.first_sent_s)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def completed_batches(base: str) -> list[dict]:
    """Completed batches, newest first."""
    return [b for b in get_json(base, "/api/v1/batches") if b["state"] == "COMPLETED"]


def test_receiver_rate_while_data_flows(own_context):
    sc = own_context("local[2]", spark__sluicegate__progress="false")
    feed = SteadyFeed()
    ssc = StreamingContext(sc, BATCH_S)
    try:
        ssc.socketTextStream("127.0.0.1", feed.port).map(len).foreachRDD(lambda rdd: rdd.count())
        ssc.start()
        base = sc.uiWebUrl

        # The first batch with data may hold only part of an interval: wait for more.
        wait_until(lambda: sum(b["records"] > 0 for b in completed_batches(base)) >= 4, WAIT_S,
                   what="four batches with data")

        # Scrape while the feed sends. The gauge shows one of the batches that completed
        # around the scrape; a scrape is judged when all of those had data (on a stalled
        # machine a batch may come out empty, and then the next scrape is taken).
        judged = 0
        deadline = time.monotonic() + WAIT_S
        while judged < 3:
            assert time.monotonic() < deadline, "no scrape while batches had data"
            assert feed.sending(), "the feed must still be sending"
            before = completed_batches(base)
            samples = scrape(base)
            after = completed_batches(base)
            around = [b for b in after if b["batch_ms"] >= before[min(1, len(before) - 1)]["batch_ms"]]
            if not all(b["records"] > 0 for b in around):
                time.sleep(BATCH_S)
                continue
            judged += 1
            rate = metric(samples, "sluicegate_receiver_records_per_second", stream="0")
            recent = after[:max(3, len(around))]
            recent_rate = sum(b["records"] for b in recent) / (len(recent) * BATCH_S)
            assert rate > 0, (rate, around)
            assert recent_rate / 3 <= rate <= recent_rate * 3, (rate, recent_rate, recent)
            # ... and about what the feed sends (the machine may stall either side).
            assert feed.rate() / 4 <= rate <= feed.rate() * 4, (rate, feed.rate())
            time.sleep(BATCH_S)
        # Everything counted so far was sent.
        assert metric(scrape(base), "sluicegate_input_records_total") <= feed.sent
    finally:
        ssc.stop(stopSparkContext=True, stopGraceFully=False)
        feed.close()


# -- an application whose output operation fails -------------------------------------------------

def explode(record):
    if record == "boom":
        raise ValueError("deliberate failure in the output operation")
    if record == "flaky" and TaskContext.get().attemptNumber() == 0:
        raise RuntimeError("flaky task, first attempt")
    return record


FAILURE_BATCHES = [["fine", "fine", "fine"], ["boom"], ["flaky"]]
MAX_FAILURES = 3


@pytest.fixture(scope="class")
def failing_run():
    _stop_active()
    sc = make_context("local[2]", spark__sluicegate__progress="false",
                      spark__task__maxFailures=str(MAX_FAILURES))
    ssc = StreamingContext(sc, 0.5)
    try:
        ssc.queueStream(FAILURE_BATCHES, default=[]).map(explode).foreachRDD(lambda rdd: rdd.count())
        ssc.start()
        base = sc.uiWebUrl

        def data_batches():
            found = [b for b in get_json(base, "/api/v1/batches")[::-1] if b["records"]]
            if len(found) == len(FAILURE_BATCHES) and all(
                    b["state"] in ("COMPLETED", "FAILED") for b in found):
                return found
            return None
        batches = wait_until(data_batches, WAIT_S, what="the three batches to complete")
        yield base, batches
    finally:
        ssc.stop(stopSparkContext=True, stopGraceFully=False)


class TestFailureReporting:
    def test_failed_batch(self, failing_run):
        base, (fine, failed, flaky) = failing_run
        assert [b["records"] for b in (fine, failed, flaky)] == [3, 1, 1]
        assert fine["state"] == "COMPLETED" and fine["failure"] == ""
        # Every batch's job is linked to it, the first one's too (its job may start
        # before the listener bus has told the status store of the batch).
        for batch in get_json(base, "/api/v1/batches"):
            if batch["state"] in ("COMPLETED", "FAILED"):
                jobs = get_json(base, f"/api/v1/batches/{batch['batch_ms']}")["jobs"]
                assert len(jobs) == 1 and jobs[0]["batch_ms"] == batch["batch_ms"], batch
        assert failed["state"] == "FAILED"
        assert "ValueError: deliberate failure in the output operation" in failed["failure"]
        assert flaky["state"] == "COMPLETED" and flaky["failure"] == ""
        assert get_json(base, "/api/v1/streaming")["batches_failed"] == 1

        detail = get_json(base, f"/api/v1/batches/{failed['batch_ms']}")
        [output] = detail["outputs"]
        assert "deliberate failure" in output["failure"] and output["end_ms"] >= 0
        [job] = detail["jobs"]
        assert job["status"] == "FAILED" and "deliberate failure" in job["error"]
        [stage] = job["stages"]
        bad = [t for t in stage["tasks"] if t["status"] != "SUCCESS"]
        assert [t["attempt"] for t in bad] == list(range(MAX_FAILURES))
        assert len({t["partition"] for t in bad}) == 1
        for task in bad:
            assert task["error"] == "ValueError: deliberate failure in the output operation"
            assert task["traceback"].startswith("Traceback (most recent call last):")
            assert "in explode" in task["traceback"]
            assert task["executor_id"] in ("exec-1", "exec-2")
        assert get_json(base, f"/api/v1/jobs/{job['job_id']}")["error"] == job["error"]

        page = get_page(base, f"/batch/{failed['batch_ms']}")
        assert "ValueError: deliberate failure in the output operation" in page
        assert "Traceback (most recent call last)" in page and "in explode" in page
        rows = Tables(get_page(base, "/streaming")).tables["completed-batches"]
        [row] = [r for r in rows if r["links"] == [f"/batch/{failed['batch_ms']}"]]
        assert row["class"] == "failed" and row["cells"][6] == "FAILED"

    def test_failed_batch_page_shows_each_task_error(self, failing_run):
        base, (_, failed, flaky) = failing_run
        for batch in (failed, flaky):
            detail = get_json(base, f"/api/v1/batches/{batch['batch_ms']}")
            page = get_page(base, f"/batch/{batch['batch_ms']}")
            assert outside_references(page) == []
            rows = task_rows(page)
            tasks = [t for job in detail["jobs"] for stage in job["stages"] for t in stage["tasks"]]
            assert len(rows) == len(tasks)
            for task in tasks:
                row = rows[str(task["tid"])]
                cells = row["cells"]
                assert cells[2] == str(task["attempt"]) and cells[3] == task["executor_id"]
                assert cells[4].endswith(" ms") and cells[9] == task["status"]
                if task["status"] == "SUCCESS":
                    assert row["class"] == "" and cells[10] == ""
                    continue
                # A failed launch: its row marked, its error and the worker's traceback in it.
                assert row["class"] == "failed"
                assert cells[10].startswith(task["error"] + "\n"), cells[10]
                assert "Traceback (most recent call last):" in cells[10]
                assert "in explode" in cells[10]
                assert task["traceback"].strip().splitlines()[-1] in cells[10]
        failed_rows = [r for r in task_rows(get_page(base, f"/batch/{failed['batch_ms']}")).values()
                       if r["class"] == "failed"]
        assert len(failed_rows) == MAX_FAILURES
        assert all("ValueError: deliberate failure in the output operation" in r["cells"][10]
                   for r in failed_rows)

    def test_retried_task(self, failing_run):
        base, (_, _, flaky) = failing_run
        [job] = get_json(base, f"/api/v1/batches/{flaky['batch_ms']}")["jobs"]
        assert job["status"] == "SUCCEEDED"
        tasks = job["stages"][0]["tasks"]
        [first] = [t for t in tasks if t["status"] == "FAILED"]
        assert first["attempt"] == 0 and first["error"] == "RuntimeError: flaky task, first attempt"
        assert "in explode" in first["traceback"]
        [retry] = [t for t in tasks if t["partition"] == first["partition"] and t["attempt"] == 1]
        assert retry["status"] == "SUCCESS" and retry["records_in"] == 1

    def test_metrics_count_the_failures(self, failing_run):
        base, _ = failing_run
        samples = scrape(base)
        jobs = get_json(base, "/api/v1/jobs")
        failed_tasks = 0
        for job in jobs:
            for stage in get_json(base, f"/api/v1/jobs/{job['job_id']}")["stages"]:
                failed_tasks += sum(t["status"] != "SUCCESS" for t in stage["tasks"])
        assert failed_tasks == MAX_FAILURES + 1
        assert metric(samples, "sluicegate_batches_failed_total") == 1
        assert metric(samples, "sluicegate_task_retries_total") == failed_tasks
        assert metric(samples, "sluicegate_tasks_total", status="failed") == failed_tasks
        assert metric(samples, "sluicegate_jobs_total", status="failed") == 1 == sum(
            j["status"] == "FAILED" for j in jobs)
        assert metric(samples, "sluicegate_input_records_total") == 5
        assert metric(samples, "sluicegate_workers") == 2


# -- the UI's port and address ---------------------------------------------------------------------

def ui_port(sc: SparkContext) -> int:
    return urlsplit(sc.uiWebUrl).port


def executor_pids(base: str) -> set[int]:
    return {w["pid"] for w in get_json(base, "/api/v1/workers") if w["state"] == "ALIVE"}


def test_contexts_one_after_another_get_working_urls(own_context):
    first = own_context("local[1]", spark__sluicegate__progress="false")
    url = first.uiWebUrl
    assert url.startswith("http://127.0.0.1:")
    first_pids = executor_pids(url)
    assert len(first_pids) == 1
    assert ui_port(first) in listening_ports_here()
    first.stop()
    assert ui_port(first) not in listening_ports_here(), "stop() must free the UI's port"
    second = own_context("local[1]", spark__sluicegate__progress="false")
    second_pids = executor_pids(second.uiWebUrl)
    assert len(second_pids) == 1 and not second_pids & first_pids
    assert get_json(second.uiWebUrl, "/api/v1/jobs") == []


def test_taken_port_moves_to_the_next_one(own_context):
    holder = socket.socket()
    # As the status server does: old connections in TIME_WAIT must not stop us
    # from taking the port; a listening socket stops the server from taking it.
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        try:
            holder.bind(("127.0.0.1", 4040))
            holder.listen(1)
        except OSError:
            pass  # someone else listens there: just as good
        sc = own_context("local[1]", spark__sluicegate__progress="false")
        port = ui_port(sc)
        assert 4040 < port < 4040 + 16
        assert len(executor_pids(sc.uiWebUrl)) == 1
    finally:
        holder.close()


def test_explicit_and_any_port(own_context):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        wanted = probe.getsockname()[1]
    sc = own_context("local[1]", spark__ui__port=str(wanted), spark__sluicegate__progress="false")
    assert sc.uiWebUrl == f"http://127.0.0.1:{wanted}"
    assert get_json(sc.uiWebUrl, "/api/v1/workers")[0]["state"] == "ALIVE"
    sc = own_context("local[1]", spark__ui__port="0", spark__sluicegate__progress="false")
    assert ui_port(sc) > 0 and get_json(sc.uiWebUrl, "/api/v1/workers")


def test_ui_disabled(own_context):
    before = listening_ports_here()
    sc = own_context("local[1]", spark__ui__enabled="false")
    assert sc.uiWebUrl is None
    assert sc.parallelize(range(10), 2).sum() == 45
    http_ports = set(range(4040, 4056)) & (listening_ports_here() - before)
    assert not http_ports


def test_binding_beyond_loopback_needs_a_secret(own_context):
    with pytest.raises(SecurityError) as raised:
        own_context("local[2]", spark__ui__bindAddress="0.0.0.0")
    message = str(raised.value)
    assert "0.0.0.0" in message and "secret" in message
    assert "spark.authenticate.secret" in message  # how to set one
    # Refusing must not leave the executors it had started behind.
    assert SparkContext._active_spark_context is None
    assert wait_for_no_executors(30) == []
    sc = own_context("local[1]", spark__sluicegate__progress="false")
    assert sc.uiWebUrl.startswith("http://127.0.0.1:")


def non_loopback_ipv4() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


def test_status_pages_beyond_loopback_with_a_secret(own_context):
    address = non_loopback_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to bind the status pages to")
    sc = own_context("local[1]", spark__authenticate__secret="observability-test-secret",
                     spark__ui__bindAddress=address, spark__sluicegate__progress="false")
    port = ui_port(sc)
    assert sc.uiWebUrl == f"http://{address}:{port}"
    # Bound to that address (not to all of them, not only to loopback).
    bound = {c.laddr.ip for c in psutil.Process().net_connections(kind="tcp")
             if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
    assert bound == {address}, bound
    # Reachable there: the API, and a page showing this application's worker.
    [worker] = get_json(sc.uiWebUrl, "/api/v1/workers")
    assert worker["id"] == "exec-1" and worker["state"] == "ALIVE"
    assert sc.parallelize(range(100), 2).sum() == 4950
    [row] = Tables(get_page(sc.uiWebUrl, "/workers")).tables["workers"]
    assert row["cells"][0] == "exec-1" and row["cells"][-1] == "ALIVE"
    jobs = get_json(sc.uiWebUrl, "/api/v1/jobs")
    assert [j["status"] for j in jobs] == ["SUCCEEDED"]


# -- the live progress line ------------------------------------------------------------------------

PROGRESS_SIZES = [3, 5, 7]

PROGRESS_SCRIPT = """
    import json, sys, threading
    from sluicegate.driver import SparkConf, SparkContext, StreamingContext, StreamingListener

    SIZES = %r

    class Done(StreamingListener):
        def __init__(self):
            self.batches = []
            self.enough = threading.Event()

        def onBatchCompleted(self, completed):
            info = completed.batchInfo()
            self.batches.append([info.batchTime().milliseconds(), info.numRecords()])
            if sum(1 for _, n in self.batches if n) >= len(SIZES) and len(self.batches) > len(SIZES):
                self.enough.set()

    conf = SparkConf().setMaster("local[2]").setAppName("progress-line")
    if "--no-progress" in sys.argv:
        conf.set("spark.sluicegate.progress", "false")
    sc = SparkContext(conf=conf)
    ssc = StreamingContext(sc, 0.3)
    ssc.queueStream([list(range(n)) for n in SIZES], default=[]).map(lambda x: 2 * x) \\
        .foreachRDD(lambda rdd: rdd.count())
    done = Done()
    ssc.addStreamingListener(done)
    ssc.start()
    ok = done.enough.wait(120)
    ssc.stop(stopSparkContext=True)
    print("RESULT " + json.dumps({"ok": ok, "batches": done.batches}), flush=True)
""" % (PROGRESS_SIZES,)

PROGRESS_LINE = re.compile(
    r"^\[batch (\d\d:\d\d:\d\d\.\d{3})\] ([\d,]+) records \(([\d,]+)/s\) \| scheduling (\d+) ms"
    r" \| processing (\d+) ms \| total (\d+) ms$")


def progress_lines(stderr: str) -> list[re.Match]:
    found = []
    for line in stderr.splitlines():
        if line.startswith("[batch "):
            match = PROGRESS_LINE.match(line)
            assert match, f"malformed progress line: {line!r}"
            found.append(match)
    return found


def script_result(stdout: str) -> dict:
    [line] = [l for l in stdout.splitlines() if l.startswith("RESULT ")]
    result = json.loads(line[len("RESULT "):])
    assert result["ok"], result
    return result


def check_progress(stderr: str, stdout: str, batch_ms: int = 300) -> None:
    batches = script_result(stdout)["batches"]
    lines = progress_lines(stderr)
    assert len(lines) == len(batches), (stderr, batches)
    for match, (time_ms, records) in zip(lines, batches):
        when = datetime.datetime.fromtimestamp(time_ms / 1000).strftime("%H:%M:%S.%f")[:-3]
        assert match.group(1) == when
        assert number(match.group(2)) == records
        assert match.group(3) == f"{records * 1000.0 / batch_ms:,.0f}"
        assert int(match.group(6)) >= int(match.group(5))
    assert [n for _, n in batches if n] == PROGRESS_SIZES


def test_progress_line_per_batch_and_quiet():
    with tempfile.TemporaryDirectory(prefix="sluicegate-progress-") as tmp:
        script = Path(tmp) / "progress_job.py"
        script.write_text(textwrap.dedent(PROGRESS_SCRIPT))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLUICEGATE_", "PYTEST_"))}
        runs = {
            "default": (env, []),
            "quiet": ({**env, "SLUICEGATE_QUIET": "1"}, []),
            "setting": (env, ["--no-progress"]),
        }
        procs = {name: subprocess.Popen([sys.executable, str(script), *args], env=run_env, cwd=tmp,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                 for name, (run_env, args) in runs.items()}
        outputs = {}
        try:
            for name, proc in procs.items():
                outputs[name] = proc.communicate(timeout=150)
                assert proc.returncode == 0, (name, outputs[name])
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
    stdout, stderr = outputs["default"]
    check_progress(stderr, stdout)
    for name in ("quiet", "setting"):
        stdout, stderr = outputs[name]
        assert script_result(stdout)["batches"]
        assert "[batch " not in stderr, name


# -- the cluster service: submit --quiet, its status pages ----------------------------------------------

@pytest.fixture(scope="class")
def service_run():
    with tempfile.TemporaryDirectory(prefix="sluicegate-obs-cluster-") as tmp:
        cluster = LocalCluster(Path(tmp))
        try:
            cluster.start_driver(extra=["--ui-port", "0"])
            cluster.ui = cluster.ui_url()
            cluster.start_worker("obs-worker", cores=2)
            script = Path(tmp) / "progress_job.py"
            script.write_text(textwrap.dedent(PROGRESS_SCRIPT))
            loud = cluster.submit_async(script, options=["--cores", "1", "--name", "loud"])
            quiet = cluster.submit_async(script, options=["--cores", "1", "--name", "quiet",
                                                          "--quiet"])
            cluster.submissions = {"loud": loud, "quiet": quiet}
            for submission in (loud, quiet):
                code = submission.wait(150)
                assert code == 0, (submission.stdout, submission.stderr,
                                   cluster.log_text("driver.log"))
            yield cluster
        finally:
            cluster.close()


class TestClusterService:
    def test_submit_quiet_or_not(self, service_run):
        loud, quiet = service_run.submissions["loud"], service_run.submissions["quiet"]
        assert re.search(r"^submitted \S+$", loud.stderr, re.M), loud.stderr
        check_progress(loud.stderr, loud.stdout)
        assert script_result(quiet.stdout)["batches"]
        assert "[batch " not in quiet.stderr and "submitted " not in quiet.stderr, quiet.stderr

    def test_service_pages(self, service_run):
        base = service_run.ui
        assert base.startswith("http://127.0.0.1:")
        status, headers, _ = http_get(base, "/")
        assert status == 302 and headers["Location"] == "/cluster"
        jobs = get_json(base, "/api/v1/jobs")
        by_name = {j["name"]: j for j in jobs}
        assert set(by_name) == {"loud", "quiet"}
        owner = getpass.getuser()
        for job in jobs:
            assert job["state"] == "FINISHED" and job["exit_code"] == 0 and job["owner"] == owner
            assert job["ended"] >= job["submitted"] > 0
        rows = Tables(get_page(base, "/cluster")).tables["cluster-jobs"]
        shown = {row["cells"][0]: row["cells"] for row in rows}
        for job in jobs:
            cells = shown[job["job_id"]]
            assert cells[1] == job["name"] and cells[2] == "FINISHED" and cells[3] == owner
            # Executors, cores wanted, running tasks, batches done and failed (as the
            # jobs' drivers reported them).
            assert cells[6] == str(len(job["executors"]))
            assert cells[7] == str(job.get("cores_wanted", "-")) == "1"
            for cell, key in zip(cells[8:11], ("running_tasks", "batches_completed",
                                               "batches_failed")):
                assert cell == str(job.get(key, "-")), (key, cells, job)

        [worker] = get_json(base, "/api/v1/workers")
        assert worker["id"] == "obs-worker" and worker["state"] == "ALIVE" and worker["cores"] == 2
        assert 0 <= worker["last_heartbeat_s_ago"] < 60
        [row] = Tables(get_page(base, "/workers")).tables["workers"]
        assert row["cells"][0] == "obs-worker" and row["cells"][2] == "2" and row["cells"][-1] == "ALIVE"

        samples = scrape(base)
        assert metric(samples, "sluicegate_service_workers") == 1
        assert metric(samples, "sluicegate_service_cores") == 2
        assert metric(samples, "sluicegate_service_jobs", state="FINISHED") == 2
        assert metric(samples, "sluicegate_service_jobs", state="RUNNING") == 0
        for path in ("/streaming", "/api/v1/batches", "/api/v1/streaming", "/job/0", "/nothing"):
            assert http_get(base, path)[0] == 404, path

    def test_service_pages_work_offline_and_refresh(self, service_run):
        for path in ("/cluster", "/workers"):
            page = get_page(service_run.ui, path)
            assert outside_references(page) == [], path
            assert '<meta http-equiv="refresh" content="2">' in page, path
