"""Elasticity: streaming dynamic allocation (local[N] and a cluster), ``sluicegate
rebalance`` of a running stateful job, and ``submit --supervise``.

The decision rule is tested as a pure function. Everything else runs real
processes: ``tests/jobs/elastic_job.py`` (a stateful stream whose load the
test steps through a file) locally and on a cluster of two workers on
loopback, and ``tests/jobs/stateful_recovery_job.py`` under supervision,
SIGKILLed three times.
"""
from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from sluicegate.driver.streaming_scheduler.allocation_manager import AllocationSettings, decide

from cluster_harness import LocalCluster, kill_tree, wait_until

JOBS = Path(__file__).resolve().parents[1] / "jobs"
ELASTIC_JOB = JOBS / "elastic_job.py"
RECOVERY_JOB = JOBS / "stateful_recovery_job.py"


# -- the decision (pure) ------------------------------------------------------------------------

def test_decide_follows_sparks_streaming_policy():
    s = AllocationSettings(interval_s=60, up_ratio=0.9, down_ratio=0.3, min_executors=1,
                           max_executors=6)
    assert decide(None, 1000, 3, s) == 3                  # no batch completed: nothing to say
    assert decide(950, 1000, 3, s) == 4                   # ratio 0.95: one more
    assert decide(2600, 1000, 3, s) == 6                  # ratio 2.6: round(2.6) = 3 more
    assert decide(9000, 1000, 3, s) == 6                  # never above max
    assert decide(500, 1000, 3, s) == 3                   # between the ratios: stay
    assert decide(200, 1000, 3, s) == 2                   # ratio 0.2: one fewer
    assert decide(100, 1000, 1, s) == 1                   # never below min
    assert decide(950, 1000, 0, AllocationSettings(min_executors=2)) == 2


def test_allocation_settings_are_checked_and_capped_by_local_n():
    conf = {"spark.streaming.dynamicAllocation.maxExecutors": "8"}
    assert AllocationSettings.from_conf(conf, 3).max_executors == 3
    assert AllocationSettings.from_conf({}, 4) == AllocationSettings(60.0, 0.9, 0.3, 1, 4)
    assert AllocationSettings.from_conf({}, None).max_executors is None
    with pytest.raises(ValueError, match="scalingUpRatio"):
        AllocationSettings.from_conf({"spark.streaming.dynamicAllocation.scalingUpRatio": "0.2"},
                                     None)
    with pytest.raises(ValueError, match="maxExecutors"):
        AllocationSettings.from_conf({"spark.streaming.dynamicAllocation.minExecutors": "3",
                                      "spark.streaming.dynamicAllocation.maxExecutors": "2"}, None)


# -- helpers ----------------------------------------------------------------------------------------

def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def set_rate(out: Path, records_per_s: float) -> None:
    staging = out / ".rate.tmp"
    staging.write_text(str(records_per_s))
    os.replace(staging, out / "rate")


def progress(out: Path) -> dict:
    return read_json(out / "progress.json")


def more_batches(out: Path, count: int, timeout_s: float = 60) -> None:
    start = progress(out).get("batches", 0)
    wait_until(lambda: progress(out).get("batches", 0) >= start + count, timeout_s,
               what=f"{count} more batches")


def finish_and_check(out: Path, timeout_s: float = 120) -> dict:
    """Stop the job's input, let it finish, and compare its state with what it stored."""
    set_rate(out, 0)
    (out / "stop").touch()
    final = wait_until(lambda: read_json(out / "final.json"), timeout_s, what="the job's end")
    assert sum(final["stored"].values()) > 0
    assert final["state"] == final["stored"], final
    return final


def executor_children(pid: int) -> list[int]:
    found = []
    for proc in psutil.Process(pid).children(recursive=True):
        try:
            if "sluicegate.worker.executor" in " ".join(proc.cmdline()):
                found.append(proc.pid)
        except psutil.NoSuchProcess:
            pass
    return found


# -- local mode ----------------------------------------------------------------------------------

def test_local_dynamic_allocation_starts_and_stops_executors_within_n(tmp_path):
    """local[3] with streaming dynamic allocation: idle, it shrinks to one executor
    process; under a load step (records that cost 2 ms each, 1,000 a second: two
    executors' worth) it grows back to three; after the step it shrinks again. The
    state stays exact through every change."""
    out = tmp_path / "out"
    out.mkdir()
    log = open(tmp_path / "job.log", "wb")
    job = subprocess.Popen([sys.executable, str(ELASTIC_JOB), str(out), "--dynamic", "3",
                            "--master", "local[3]", "--cost-ms", "2"],
                           stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: progress(out).get("batches", 0) >= 2, 60, what="the job to run")
        wait_until(lambda: len(executor_children(job.pid)) == 1, 60, what="shrinking to 1")
        set_rate(out, 1000)
        wait_until(lambda: progress(out).get("executors") == 3, 60, what="growing to 3")
        assert len(executor_children(job.pid)) == 3
        more_batches(out, 4)
        set_rate(out, 0)
        wait_until(lambda: len(executor_children(job.pid)) == 1, 90, what="shrinking after the load")
        final = finish_and_check(out)
        assert job.wait(60) == 0
    finally:
        if job.poll() is None:
            kill_tree([psutil.Process(job.pid)] + psutil.Process(job.pid).children(recursive=True))
        log.close()
    text = (tmp_path / "job.log").read_text(errors="replace")
    assert "removed (dynamic allocation" in text, text[-3000:]
    print(f"local dynamic allocation: stored {sum(final['stored'].values())} records, exact")


# -- a cluster ------------------------------------------------------------------------------------

@pytest.fixture
def cluster(tmp_path):
    c = LocalCluster(tmp_path / "cluster")
    try:
        c.start_driver()
        c.start_worker("w1", cores=2)
        c.start_worker("w2", cores=2)
        yield c
    finally:
        c.close()


def submitted_job(cluster: LocalCluster, *args: str, options: list[str] = ()) -> str:
    done = cluster.submit(*args, options=["--detach", "--quiet", *options])
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def job_executors(cluster: LocalCluster, job_id: str) -> int:
    return len(cluster.polled_job(job_id)["executors"])


def test_rebalance_two_four_two_keeps_the_state_exact(cluster, tmp_path):
    """A stateful stream on two executors is rebalanced to four and back to two while
    it runs: the new executors take tasks, the drained ones leave without a job
    failure, and the state counts every stored record exactly once."""
    out = tmp_path / "out"
    out.mkdir()
    set_rate(out, 400)
    job_id = submitted_job(cluster, str(ELASTIC_JOB), str(out), options=["--cores", "2"])
    wait_until(lambda: progress(out).get("batches", 0) >= 3, 90, what="the job to run")
    assert job_executors(cluster, job_id) == 2

    done = cluster.cli("rebalance", job_id, "--cores", "4")
    assert done.returncode == 0, done.stderr
    assert "4 cores wanted" in done.stdout
    wait_until(lambda: job_executors(cluster, job_id) == 4 and progress(out).get("executors") == 4,
               60, what="four executors")
    more_batches(out, 4)
    assert read_json(out / "progress.json")["counted"] > 0

    # back to two through the REST API: the secret is required, even on loopback
    url = f"{cluster.ui_url()}/api/v1/jobs/{job_id}/rebalance"
    assert rest_post(url, {"cores": 2}, None)[0] == 403
    assert rest_post(url, {"cores": "two"}, cluster.secret)[0] == 400
    status, reply = rest_post(url, {"cores": 2}, cluster.secret)
    assert status == 200 and reply["ok"], reply
    wait_until(lambda: job_executors(cluster, job_id) == 2 and progress(out).get("executors") == 2,
               90, what="back to two executors")
    more_batches(out, 4)
    final = finish_and_check(out)
    wait_until(lambda: cluster.job(job_id)["state"] == "FINISHED", 60, what="the job to finish")
    logs = cluster.cli("logs", job_id).stderr + cluster.cli("logs", job_id).stdout
    assert "removed (the job's cores are now 2)" in logs, logs[-3000:]  # drained, not killed
    assert cluster.cli("rebalance", job_id, "--cores", "3").returncode != 0  # it has ended
    print(f"rebalance 2->4->2: stored {sum(final['stored'].values())} records, exact")


def rest_post(url: str, body: dict, secret: bytes | None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    if secret is not None:
        request.add_header("Authorization", "Bearer " + secret.decode())
    try:
        with urllib.request.urlopen(request, timeout=15) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_rebalance_refuses_what_it_cannot_do(cluster):
    done = cluster.cli("rebalance", "job-9999", "--cores", "2")
    assert done.returncode != 0 and "no job job-9999" in done.stderr
    done = cluster.cli("rebalance", "job-9999", "--cores", "0")
    assert done.returncode != 0 and "--cores must be at least 1" in done.stderr
    url = f"{cluster.ui_url()}/api/v1/jobs/job-9999/rebalance"
    assert rest_post(url, {"cores": 2}, cluster.secret)[0] == 404


def test_cluster_dynamic_allocation_follows_a_load_step(cluster, tmp_path):
    """On two workers of two cores: idle, the job gives executors back down to one;
    a load step takes it up to four (it asks the service); after the step it gives
    them back again; the state stays exact."""
    out = tmp_path / "out"
    out.mkdir()
    job_id = submitted_job(cluster, str(ELASTIC_JOB), str(out), "--dynamic", "4",
                           "--cost-ms", "3")
    wait_until(lambda: progress(out).get("batches", 0) >= 2, 90, what="the job to run")
    wait_until(lambda: job_executors(cluster, job_id) == 1, 90, what="shrinking to 1")
    set_rate(out, 900)
    wait_until(lambda: job_executors(cluster, job_id) == 4 and progress(out).get("executors") == 4,
               90, what="growing to 4")
    more_batches(out, 4)
    set_rate(out, 0)
    wait_until(lambda: job_executors(cluster, job_id) == 1, 120, what="shrinking after the load")
    final = finish_and_check(out)
    print(f"cluster dynamic allocation: stored {sum(final['stored'].values())} records, exact")


# -- supervise ----------------------------------------------------------------------------------------

def latest_state(out: Path) -> dict:
    """The newest complete state the recovery job saved (``OUT/state-<ms>``)."""
    done = sorted((p for p in out.glob("state-*") if (p / "_SUCCESS").exists()),
                  key=lambda p: int(p.name.split("-")[1].split(".")[0]))
    if not done:
        return {}
    state = {}
    for part in sorted(done[-1].glob("part-*")):
        for line in part.read_text().splitlines():
            if line.strip():
                word, count = ast.literal_eval(line)
                state[word] = count
    return state


def test_supervised_job_recovers_from_three_sigkills_with_exact_state(cluster, tmp_path):
    """``submit --supervise``: the job's driver (getOrCreate, WAL, a reliable receiver)
    is SIGKILLed three times; each time it is restarted, recovers from its checkpoint
    and its state equals the line counts of everything its source holds. ``jobs``
    shows the restarts; ``kill`` stops it for good."""
    checkpoint, inbox, source, out = (tmp_path / n for n in ("ck", "inbox", "source.txt", "out"))
    inbox.mkdir()
    out.mkdir()
    source.write_text("")
    job_id = submitted_job(cluster, str(RECOVERY_JOB), str(checkpoint), str(inbox), str(source),
                           str(out), options=["--supervise"])
    job_dir = cluster.base / "driver-work" / "jobs" / job_id
    lines: list[str] = []

    def feed(round_no: int) -> dict:
        new = [f"w{round_no}-{i % 4} common" for i in range(30)]
        with source.open("a") as f:
            f.write("".join(line + "\n" for line in new))
        lines.extend(new)
        expected: dict[str, int] = {}
        for line in lines:  # the receiver's records are whole lines
            expected[line] = expected.get(line, 0) + 1
        return expected

    def driver_pid() -> int | None:
        return read_json(job_dir / "supervisor.json").get("pid")

    expected = feed(0)
    wait_until(lambda: latest_state(out) == expected, 120, what="the first state")
    for kill in range(1, 4):
        pid = wait_until(driver_pid, 30, what="the job's driver")
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: read_json(job_dir / "supervisor.json").get("restarts") == kill
                   and driver_pid() not in (None, pid), 60, what=f"restart {kill}")
        expected = feed(kill)
        wait_until(lambda: latest_state(out) == expected, 120,
                   what=f"the exact state after kill {kill}")
    listed = cluster.job(job_id)
    assert listed["state"] == "RUNNING" and listed["supervised"] and listed["restarts"] == 3
    table = cluster.cli("jobs").stdout
    assert "restarted 3x" in table, table
    done = cluster.cli("kill", job_id)
    assert done.returncode == 0, done.stderr
    wait_until(lambda: cluster.job(job_id)["state"] != "RUNNING", 60, what="the job to stop")
    time.sleep(2)
    assert read_json(job_dir / "supervisor.json")["restarts"] == 3  # a kill is not restarted
    assert cluster.job(job_id)["state"] == "KILLED"
