"""What an operator sees: where a job's pages are, and jobs named by the user's code.

A small streaming script runs as a real subprocess in local mode; it must print
its status pages' address once at start (the port moves on when 4040 is taken,
so the line is the only way to find them), and its jobs must be listed by call
site and output operation, never by internal RDD names.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys, time, urllib.request
    from operator import add
    from sluicegate.driver import SparkContext, StreamingContext

    sc = SparkContext("local[2]", "named-jobs")
    ssc = StreamingContext(sc, 0.5)
    batches = [sc.parallelize(["a b", "b c"]) for _ in range(3)]
    ssc.queueStream(batches).flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(add).pprint()
    ssc.start()
    deadline = time.monotonic() + 60
    while len(ssc.completed_batches) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    ssc.stop(stopSparkContext=False)
    total = sc.parallelize(range(10), 2).sum()
    jobs = json.load(urllib.request.urlopen(sc.uiWebUrl + "/api/v1/jobs", timeout=20))
    print("JOBS " + json.dumps([j["description"] for j in jobs]))
    print("URL " + sc.uiWebUrl)
    sc.stop()
""")


def run_script(tmp_path, env_extra=None) -> subprocess.CompletedProcess:
    script = tmp_path / "named_jobs.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICEGATE_")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=180, env=env, cwd=tmp_path)


def test_local_mode_prints_the_status_page_address_once_and_names_jobs_by_call_site(tmp_path):
    done = run_script(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = re.findall(r"status pages at (http://127\.0\.0\.1:\d+)", done.stderr)
    url = re.search(r"^URL (.+)$", done.stdout, re.M).group(1)
    assert printed == [url], done.stderr[-2000:]
    assert "named-jobs" in done.stderr

    names = json.loads(re.search(r"^JOBS (.+)$", done.stdout, re.M).group(1))
    assert names[0].startswith("sum at ") and names[0].endswith("named_jobs.py:15")
    streaming = names[1:]
    assert streaming and all(re.fullmatch(
        r"pprint at named_jobs\.py:9 \(output operation 0 of batch \d\d:\d\d:\d\d(\.\d{3})?\)", n)
        for n in streaming), streaming
    assert not any("RDD[" in n or "TakeUpTo" in n for n in names)


def test_a_quiet_run_prints_no_address(tmp_path):
    done = run_script(tmp_path, {"SLUICEGATE_QUIET": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "status pages at" not in done.stderr
