"""The status pages as a real browser renders them: Debian's chromium, headless,
against a running streaming application and a cluster service (``sluicegate
driver`` + a worker) with a finished job (``--dump-dom`` for the DOM after load,
``--screenshot`` for a picture). Offline renders go through a proxy that refuses
every connection, so anything a page wanted from outside this machine would
fail. Skipped when no chromium is installed (CI installs it through ``.ci/run``).
"""
from __future__ import annotations

import getpass
import json
import re
import tempfile
import textwrap
import urllib.request
from operator import add
from pathlib import Path

import pytest

from cluster_harness import LocalCluster, wait_until
from conftest import _stop_active, make_context
from headless_chromium import CHROMIUM, chromium, dump_dom
from page_checks import CHARTS, Dom, byte_size, number, outside_references
from sluicegate.driver import StreamingContext

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (CI installs Debian's chromium via .ci/run; "
                             "locally: apt-get install chromium)")

SIZES = [12, 25, 37, 50]   # records of the stream's first batches (then empty ones)
BATCH_S = 0.5


def api(base: str, path: str):
    with urllib.request.urlopen(base + path, timeout=20) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def running_app():
    """A local[2] application whose stream runs all through the tests."""
    _stop_active()
    sc = make_context("local[2]", spark__sluicegate__progress="false")
    ssc = StreamingContext(sc, BATCH_S)
    try:
        batches = [[f"k{i % 5}" for i in range(n)] for n in SIZES]
        (ssc.queueStream(batches, default=[]).map(lambda k: (k, 1)).reduceByKey(add)
         .foreachRDD(lambda rdd: rdd.collect()))
        ssc.start()
        base = sc.uiWebUrl

        def enough():
            done = [b for b in api(base, "/api/v1/batches") if b["state"] == "COMPLETED"]
            return [b["records"] for b in done[::-1] if b["records"]] == SIZES and len(done) > len(SIZES)
        wait_until(enough, 90, what="the queued batches to complete")
        yield base
    finally:
        ssc.stop(stopSparkContext=True)


def roughly(shown: float, before: float, after: float) -> bool:
    """``shown`` (read between ``before`` and ``after``) is about where they are;
    a batch or two may have completed meanwhile."""
    low, high = min(before, after), max(before, after)
    slack = 0.5 * high + 2.0
    return low - slack <= shown <= high + slack


def chart_values(batch: dict) -> dict[str, float]:
    """What each chart draws for one completed batch."""
    return {"chart-input-rate": batch["records"] * 1000.0 / (BATCH_S * 1000),
            "chart-scheduling-delay": batch["scheduling_delay_ms"],
            "chart-processing-time": batch["processing_ms"],
            "chart-total-delay": batch["total_delay_ms"]}


def test_streaming_page_in_a_browser(running_app):
    before = api(running_app, "/api/v1/streaming")
    listed = api(running_app, "/api/v1/batches")
    dom = Dom(dump_dom(running_app + "/streaming"))
    after = api(running_app, "/api/v1/streaming")
    completed = [b for b in api(running_app, "/api/v1/batches")[::-1]  # oldest first
                 if b["state"] in ("COMPLETED", "FAILED")]

    assert {"http-equiv": "refresh", "content": "2"} in dom.meta
    rows = [row for row in dom.tables["completed-batches"] if row["links"]]
    assert len(rows) >= before["batches_completed"]
    shown = {row["links"][0]: row for row in rows}
    data = [b for b in listed[::-1] if b["records"]]
    assert [b["records"] for b in data] == SIZES
    for batch in data:
        row = shown[f"/batch/{batch['batch_ms']}"]
        assert number(row["cells"][1]) == batch["records"]
        assert row["cells"][5] == "1/1" and row["cells"][6] == "COMPLETED"
        assert row["cells"][2].endswith(" ms") and row["cells"][4].endswith(" ms")
    # Newest first, as the API lists them.
    order = [int(link.rsplit("/", 1)[1]) for row in rows for link in row["links"]]
    assert order == sorted(order, reverse=True)

    assert set(CHARTS) <= set(dom.svgs)
    for chart, average in CHARTS.items():
        attrs = dom.svgs[chart]
        points = int(attrs["data-points"])
        assert before["batches_completed"] <= points <= after["batches_completed"], chart
        assert points > 0
        assert attrs["data-average"] != "", chart
        shown_average = float(attrs["data-average"])
        # Exactly the average of the batches it drew (the oldest ``points`` completed)...
        drawn = [chart_values(b)[chart] for b in completed[:points]]
        assert shown_average == pytest.approx(sum(drawn) / len(drawn), abs=0.006), chart
        # ...and about what /api/v1/streaming says around the time the page was rendered.
        assert roughly(shown_average, before[average], after[average]), \
            (chart, shown_average, before[average], after[average])
    # The input rate of the data batches dominates its average: SIZES / interval.
    assert float(dom.svgs["chart-input-rate"]["data-average"]) > 0


def test_batch_page_in_a_browser(running_app):
    [batch] = [b for b in api(running_app, "/api/v1/batches") if b["records"] == SIZES[2]]
    detail = api(running_app, f"/api/v1/batches/{batch['batch_ms']}")
    dom = Dom(dump_dom(f"{running_app}/batch/{batch['batch_ms']}"))
    tables = list(dom.tables.values())
    facts = {row["cells"][0]: row["cells"][1] for row in tables[0]}
    assert number(facts["Input records"]) == SIZES[2]
    assert facts["State"] == "COMPLETED"
    outputs = [row["cells"] for row in tables[1] if row["cells"] and row["cells"][0] != "Output op"]
    assert [cells[1] for cells in outputs] == ["foreachRDD"]
    tasks = [row["cells"] for table in tables[2:] for row in table
             if row["cells"] and row["cells"][0] != "Task"]
    expected = sum(len(stage["tasks"]) for job in detail["jobs"] for stage in job["stages"])
    assert len(tasks) == expected > 0
    for cells in tasks:
        assert cells[3] in ("exec-1", "exec-2") and cells[9] == "SUCCESS"
    records_in = sum(number(cells[5]) for cells in tasks)
    assert records_in >= SIZES[2]
    # Each task as the API has it: worker, duration, records in/out, shuffle read/write.
    shown = {cells[0]: cells for cells in tasks}
    for task in (t for job in detail["jobs"] for stage in job["stages"] for t in stage["tasks"]):
        cells = shown[str(task["tid"])]
        assert cells[3] == task["executor_id"]
        assert cells[4] == f"{task['duration_ms']:,.1f} ms"
        assert number(cells[5]) == task["records_in"]
        assert number(cells[6]) == task["records_out"]
        for cell, key in ((cells[7], "shuffle_read_bytes"), (cells[8], "shuffle_write_bytes")):
            size, off_by = byte_size(cell)
            assert abs(size - task[key]) <= off_by, (cell, key, task[key])
    # The reduceByKey moved data through a shuffle, and the page shows it.
    assert sum(byte_size(cells[8])[0] for cells in tasks) > 0
    assert sum(byte_size(cells[7])[0] for cells in tasks) > 0


def test_screenshot_of_the_streaming_page(running_app):
    with tempfile.TemporaryDirectory(prefix="sluicegate-shot-") as tmp:
        shot = Path(tmp) / "streaming.png"
        done = chromium(f"--screenshot={shot}", "--window-size=1280,1400", "--hide-scrollbars",
                        running_app + "/streaming")
        assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
        data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 1280 and int.from_bytes(data[20:24], "big") == 1400
    assert len(data) > 10 * 1024, f"a nearly blank screenshot ({len(data)} bytes)"


def structure(text: str) -> dict:
    """What a page is made of, whatever its numbers: its tables (id and first row's
    headers), its charts, its links to other pages, whether it refreshes itself."""
    dom = Dom(text)
    return {"tables": {tid: [c for c in rows[0]["cells"] if not re.search(r"\d", c)] if rows else []
                       for tid, rows in dom.tables.items()},
            "charts": sorted(dom.svgs),
            "nav": re.findall(r'<header>.*?</header>', text, re.S)[0].count("<a "),
            "refresh": {"http-equiv": "refresh", "content": "2"} in dom.meta}


def served(url: str) -> str:
    with urllib.request.urlopen(url, timeout=20) as response:
        return response.read().decode()


def test_pages_render_offline(running_app):
    """Every page of the application renders in full with nothing reachable beyond
    this machine, the same as served, and points nowhere outside."""
    batch_ms = next(b["batch_ms"] for b in api(running_app, "/api/v1/batches") if b["records"])
    job_id = api(running_app, f"/api/v1/batches/{batch_ms}")["jobs"][0]["job_id"]
    rendered = {}
    for path in ("/streaming", f"/batch/{batch_ms}", "/jobs", f"/job/{job_id}", "/workers"):
        direct = served(running_app + path)
        rendered[path] = dom = dump_dom(running_app + path, offline=True)
        assert outside_references(dom) == [], path
        shape = structure(dom)
        assert shape == structure(direct), path
        assert shape["refresh"] and shape["nav"] == 3 and shape["tables"], (path, shape)
    # The charts are drawn, data points and all, without any script from anywhere.
    streaming = rendered["/streaming"]
    assert set(CHARTS) <= set(structure(streaming)["charts"])
    assert "<script" not in streaming and streaming.count('class="dot"') > 0


def test_workers_page_in_a_browser(running_app):
    dom = Dom(dump_dom(running_app + "/workers"))
    workers = {w["id"]: w for w in api(running_app, "/api/v1/workers")}
    rows = [row["cells"] for row in dom.tables["workers"] if row["cells"][0] != "Worker"]
    assert sorted(cells[0] for cells in rows) == sorted(workers) == ["exec-1", "exec-2"]
    for cells in rows:
        worker = workers[cells[0]]
        # Worker, host, cores, ..., tasks done, tasks failed, last heartbeat, state
        assert cells[1] == worker["host"] and cells[2] == str(worker["cores"]) == "1"
        assert int(cells[8]) > 0 and cells[9] == "0"
        assert re.fullmatch(r"\d+\.\d s ago", cells[10]) and float(cells[10].split()[0]) < 60
        assert cells[11] == "ALIVE"


SERVICE_JOB = """
    from sluicegate.driver import SparkConf, SparkContext
    sc = SparkContext(conf=SparkConf().setAppName("browser-job"))
    print("SUM", sc.parallelize(range(100), 2).sum(), flush=True)
    sc.stop()
"""


@pytest.fixture(scope="module")
def service():
    """A ``sluicegate driver`` with one worker, and one job it ran to the end."""
    with tempfile.TemporaryDirectory(prefix="sluicegate-browser-cluster-") as tmp:
        cluster = LocalCluster(Path(tmp))
        try:
            cluster.start_driver(extra=["--ui-port", "0"])
            ui = cluster.ui_url()
            cluster.start_worker("browser-worker", cores=2)
            script = Path(tmp) / "browser_job.py"
            script.write_text(textwrap.dedent(SERVICE_JOB))
            done = cluster.submit(script, options=["--cores", "1", "--name", "browser-job"],
                                  timeout_s=120)
            assert done.returncode == 0 and "SUM 4950" in done.stdout, (
                done.stdout, done.stderr, cluster.log_text("driver.log"))
            yield ui
        finally:
            cluster.close()


def test_cluster_service_pages_in_a_browser(service):
    """The service's jobs and workers pages, rendered offline."""
    [job] = api(service, "/api/v1/jobs")
    text = dump_dom(service + "/cluster", offline=True)
    assert outside_references(text) == []
    dom = Dom(text)
    assert {"http-equiv": "refresh", "content": "2"} in dom.meta
    rows = [row["cells"] for row in dom.tables["cluster-jobs"] if row["cells"][0] != "Job"]
    # Job, name, state, owner, started, ended, ...
    assert rows == [[job["job_id"], "browser-job", "FINISHED", getpass.getuser(), *rows[0][4:]]]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", rows[0][4]) and rows[0][5] >= rows[0][4]
    # Executors, cores wanted, running tasks, batches, failed batches: as the API has them.
    assert rows[0][6] == str(len(job["executors"]))
    for cell, key in zip(rows[0][7:11], ("cores_wanted", "running_tasks", "batches_completed",
                                         "batches_failed")):
        assert cell == ("-" if job.get(key) is None else str(job[key])), (key, cell, job)

    [worker] = api(service, "/api/v1/workers")
    text = dump_dom(service + "/workers", offline=True)
    assert outside_references(text) == []
    dom = Dom(text)
    assert {"http-equiv": "refresh", "content": "2"} in dom.meta
    [cells] = [row["cells"] for row in dom.tables["workers"] if row["cells"][0] != "Worker"]
    assert cells[0] == worker["id"] == "browser-worker"
    assert cells[1] == worker["host"] and cells[2] == "2" and cells[11] == "ALIVE"
    assert re.fullmatch(r"\d+\.\d s ago", cells[10]) and float(cells[10].split()[0]) < 60
    nav = [href for href in re.findall(r'<header>.*?</header>', text, re.S)[0].split('href="')[1:]]
    assert [href.split('"')[0] for href in nav] == ["/cluster", "/workers"]
