"""Where a submitted job's status pages are (issue 16, item 1).

A job's driver serves its own status pages (4040, or the next free port) and
reports their address to the driver service, which passes it on: ``submit``
prints it once at start, ``jobs`` and ``/api/v1/jobs`` list it while the job
runs, and the service's jobs page links a running job's name to them (as
Spark's master page links an application's name to its UI). The link is
followed in Debian's chromium, headless, from the service's page to the job's
streaming page (skipped without chromium, which CI installs); the rest is
checked over plain HTTP.
"""
from __future__ import annotations

import json
import re
import tempfile
import textwrap
import urllib.request
from pathlib import Path

import pytest

from cluster_harness import LocalCluster, wait_until
from headless_chromium import CHROMIUM, dump_dom
from page_checks import CHARTS, Dom, outside_references

STREAMING_JOB = """
    import os, sys, time
    from sluicegate.driver import SparkContext, StreamingContext
    stop_file = sys.argv[1]
    sc = SparkContext(appName="pages-job")
    ssc = StreamingContext(sc, 0.5)
    ssc.queueStream([], default=sc.parallelize(range(6), 2)).map(lambda x: x * 2).pprint()
    ssc.start()
    while not os.path.exists(stop_file):
        time.sleep(0.1)
    ssc.stop(stopSparkContext=True, stopGraceFully=False)
"""

ANNOUNCED = re.compile(r"^sluicegate: (\S+) \((job-\d+)\): status pages at (http://\S+)$", re.M)


def fetch(url: str) -> tuple[str, str]:
    """The page at ``url`` (redirects followed) and where it ended up."""
    with urllib.request.urlopen(url, timeout=20) as response:
        return response.read().decode(), response.geturl()


@pytest.fixture(scope="module")
def service():
    """A ``sluicegate driver`` serving its pages, a worker, and a streaming job submitted
    to it that runs until the module's last test stops it."""
    with tempfile.TemporaryDirectory(prefix="sluicegate-service-pages-") as tmp:
        cluster = LocalCluster(Path(tmp))
        try:
            cluster.start_driver(extra=["--ui-port", "0"])
            ui = cluster.ui_url()
            cluster.start_worker("pages-worker", cores=2)
            script = Path(tmp) / "pages_job.py"
            script.write_text(textwrap.dedent(STREAMING_JOB))
            stop = Path(tmp) / "stop"
            sub = cluster.submit_async(script, str(stop), options=["--name", "pages-job"])
            job_id = sub.job_id()
            found = wait_until(lambda: ANNOUNCED.search(sub.stderr), 90,
                               what="submit to print the job's status page address")
            yield {"cluster": cluster, "ui": ui, "sub": sub, "job_id": job_id,
                   "job_ui": found.group(3), "stop": stop}
        finally:
            cluster.close()


def test_submit_prints_the_jobs_address_once_and_jobs_list_it(service):
    cluster, sub, job_id, job_ui = (service[k] for k in ("cluster", "sub", "job_id", "job_ui"))
    wait_until(lambda: "Time: " in sub.stdout, 60, what="a batch")
    announced = ANNOUNCED.findall(sub.stderr)
    assert announced == [("pages-job", job_id, job_ui)], sub.stderr[-2000:]
    assert sub.stderr.count("status pages at") == 1  # the job's own driver leaves it to submit
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", job_ui)
    # Its pages really are there, and they are this job's.
    page, where = fetch(job_ui + "/")
    assert where == job_ui + "/streaming" and "<title>Streaming - pages-job</title>" in page

    assert cluster.job(job_id)["ui_url"] == job_ui
    listed = cluster.cli("jobs")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["JOB", "STATE", "EXECUTORS", "TASKS", "BATCHES", "OWNER", "UI",
                              "NAME"]
    [row] = [r.split() for r in rows if r.startswith(job_id)]
    assert row[1] == "RUNNING" and row[6] == job_ui and row[7] == "pages-job"
    [api_job] = json.loads(fetch(service["ui"] + "/api/v1/jobs")[0])
    assert api_job["job_id"] == job_id and api_job["ui_url"] == job_ui


def test_the_service_jobs_page_links_to_the_jobs_pages(service):
    page, _ = fetch(service["ui"] + "/cluster")
    link = f'<a class="job-ui" href="{service["job_ui"]}/" title="its status pages">pages-job</a>'
    assert link in page
    assert set(outside_references(page)) == {service["job_ui"] + "/"}  # the link, nothing else


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (CI installs Debian's chromium "
                                             "via .ci/run; locally: apt-get install chromium)")
def test_following_the_link_from_the_service_page_to_the_jobs_streaming_page_in_a_browser(service):
    dom = Dom(dump_dom(service["ui"] + "/cluster"))
    [row] = [r for r in dom.tables["cluster-jobs"] if r["cells"] and r["cells"][0] == service["job_id"]]
    assert row["cells"][1] == "pages-job" and row["cells"][2] == "RUNNING"
    [target] = row["links"]
    assert target == service["job_ui"] + "/"

    landed = dump_dom(target)  # the browser follows the link and the redirect behind it
    assert "<title>Streaming - pages-job</title>" in landed
    job_dom = Dom(landed)
    assert set(CHARTS) <= set(job_dom.svgs)
    batches = [r for r in job_dom.tables["completed-batches"] if r["links"]]
    assert batches and all(link.startswith("/batch/") for r in batches for link in r["links"])
    nav = re.findall(r'<header>.*?</header>', landed, re.S)[0]
    assert 'href="/streaming" class="on"' in nav


def test_an_ended_jobs_pages_are_no_longer_listed(service):
    cluster, sub, job_id = service["cluster"], service["sub"], service["job_id"]
    service["stop"].write_text("")
    assert sub.wait(90) == 0, sub.stderr[-2000:]
    record = cluster.job(job_id)
    assert record["state"] == "FINISHED" and record["ui_url"] == ""
    page, _ = fetch(service["ui"] + "/cluster")
    assert 'class="job-ui"' not in page and outside_references(page) == []
    [row] = [r.split() for r in cluster.cli("jobs").stdout.splitlines() if r.startswith(job_id)]
    assert row[6] == "-"
