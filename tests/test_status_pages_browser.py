"""The status pages as a real browser renders them: Debian's chromium, headless,
against a running streaming application (``--dump-dom`` for the DOM after
load, ``--screenshot`` for a picture). Skipped when no chromium is installed
(CI installs it through ``.ci/run``).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from html.parser import HTMLParser
from operator import add
from pathlib import Path

import pytest

from cluster_harness import wait_until
from conftest import _stop_active, make_context
from sluicegate.driver import StreamingContext


def find_chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (CI installs Debian's chromium via .ci/run; "
                             "locally: apt-get install chromium)")

SIZES = [12, 25, 37, 50]   # records of the stream's first batches (then empty ones)
BATCH_S = 0.5
CHARTS = {  # chart id -> the /api/v1/streaming average it draws
    "chart-input-rate": "avg_input_rate",
    "chart-scheduling-delay": "avg_scheduling_delay_ms",
    "chart-processing-time": "avg_processing_ms",
    "chart-total-delay": "avg_total_delay_ms",
}


def chromium(*args: str, timeout_s: float = 90.0) -> subprocess.CompletedProcess:
    """Run headless chromium with a fresh profile; everything it started is gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="sluicegate-chromium-") as profile:
        command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                   "--no-first-run", "--disable-background-networking", "--disable-component-update",
                   "--disable-sync", f"--user-data-dir={profile}", *args]
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError(f"chromium timed out after {timeout_s:.0f}s: {err[-2000:]!r}")
        finally:
            try:  # its helpers (zygote, crashpad...) share its process group
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return subprocess.CompletedProcess(command, proc.returncode, out.decode(errors="replace"),
                                           err.decode(errors="replace"))


def dump_dom(url: str) -> str:
    done = chromium("--dump-dom", url)
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    return done.stdout


def api(base: str, path: str):
    with urllib.request.urlopen(base + path, timeout=20) as response:
        return json.loads(response.read())


class Dom(HTMLParser):
    """Tables (id -> rows of cells and links) and SVG charts (id -> attributes) of a DOM."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: dict[str, list[dict]] = {}
        self.svgs: dict[str, dict] = {}
        self.meta: list[dict] = []
        self._rows: list[dict] | None = None
        self._row: dict | None = None
        self._cell: list[str] | None = None
        self._count = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._count += 1
            self._rows = self.tables.setdefault(attrs.get("id") or f"#{self._count}", [])
        elif tag == "tr" and self._rows is not None:
            self._row = {"class": attrs.get("class") or "", "cells": [], "links": []}
            self._rows.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "a" and self._row is not None and attrs.get("href"):
            self._row["links"].append(attrs["href"])
        elif tag == "svg" and attrs.get("id"):
            self.svgs[attrs["id"]] = attrs
        elif tag == "meta":
            self.meta.append(attrs)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row["cells"].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr":
            self._row = None
        elif tag == "table":
            self._rows = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def records_of(cell: str) -> int:
    return int(cell.replace(",", ""))


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
        assert records_of(row["cells"][1]) == batch["records"]
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
    assert records_of(facts["Input records"]) == SIZES[2]
    assert facts["State"] == "COMPLETED"
    outputs = [row["cells"] for row in tables[1] if row["cells"] and row["cells"][0] != "Output op"]
    assert [cells[1] for cells in outputs] == ["foreachRDD"]
    tasks = [row["cells"] for table in tables[2:] for row in table
             if row["cells"] and row["cells"][0] != "Task"]
    expected = sum(len(stage["tasks"]) for job in detail["jobs"] for stage in job["stages"])
    assert len(tasks) == expected > 0
    for cells in tasks:
        assert cells[3] in ("exec-1", "exec-2") and cells[9] == "SUCCESS"
    records_in = sum(records_of(cells[5]) for cells in tasks)
    assert records_in >= SIZES[2]


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
