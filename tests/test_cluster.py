"""A standalone cluster through its command line: ``sluicegate driver``, two
``sluicegate worker`` processes and ``sluicegate submit``/``jobs``/``kill``/
``status``, all real processes on loopback (see ``cluster_harness``).

Most tests share one cluster (2 workers x 2 cores); the ones that kill or add
a worker get a cluster of their own.
"""
from __future__ import annotations

import os
import signal
import subprocess
import textwrap

import psutil
import pytest

from cluster_harness import (
    EXAMPLES, SLUICEGATE, LocalCluster, TextServer, summed_counts, wait_until)

WORDCOUNT = EXAMPLES / "network_wordcount.py"

BATCH_JOB = """
    import sys
    from sluicegate.driver import SparkContext
    sc = SparkContext(appName="batch")
    n = int(sys.argv[1])
    print("SUM", sc.parallelize(range(n), 4).map(lambda x: 2 * x).sum())
    sc.stop()
"""

# Each batch runs 8 small tasks and prints the pids of the executors that ran them.
PIDS_JOB = """
    import os, time
    from sluicegate.driver import SparkContext, StreamingContext
    sc = SparkContext(appName="pids")
    ssc = StreamingContext(sc, 1)

    def ran_on(_):
        time.sleep(0.05)
        yield os.getpid()

    def show(rdd):
        print("PIDS", *sorted(set(rdd.mapPartitions(ran_on).collect())), flush=True)

    ssc.queueStream([], default=sc.parallelize(range(8), 8)).foreachRDD(show)
    ssc.start()
    ssc.awaitTermination()
"""


def write_job(tmp_path, name: str, source: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def word_lines(n: int) -> tuple[list[str], dict]:
    """``n`` lines over a few words, and how often each word occurs."""
    words = ["sluice", "gate", "river", "lot", "batch"]
    lines, expected = [], {}
    for i in range(n):
        line = [words[i % 5], words[(i * 3 + 1) % 5], "gate"]
        lines.append(" ".join(line))
        for w in line:
            expected[w] = expected.get(w, 0) + 1
    return lines, expected


def pids_printed(text: str) -> set[int]:
    return {int(p) for line in text.splitlines() if line.startswith("PIDS ")
            for p in line.split()[1:]}


def wait_for_counts(sub, expected: dict, timeout_s: float) -> None:
    """Until the batches ``sub`` printed sum up to ``expected`` (shown against it if not)."""
    try:
        wait_until(lambda: summed_counts(sub.stdout) == expected, timeout_s,
                   what=f"word counts summing to {expected}")
    except AssertionError:
        assert summed_counts(sub.stdout) == expected, sub.stderr[-3000:]


def executors_gone(cluster: LocalCluster, job_id: str) -> bool:
    status = cluster.poll()
    on_workers = [e for w in status["workers"] for e in w["executors"]
                  if e.startswith(f"{job_id}-exec-")]
    return not on_workers and not cluster.executor_pids(job_id=job_id)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start_driver()
        c.start_worker("w1", cores=2)
        c.start_worker("w2", cores=2)
        yield c
    finally:
        c.close()


@pytest.fixture
def own_cluster(tmp_path):
    c = LocalCluster(tmp_path / "own")
    yield c
    c.close()


# -- the command line ---------------------------------------------------------------------

@pytest.mark.parametrize("command", [None, "driver", "worker", "submit", "jobs", "kill", "status"])
def test_help_of_every_subcommand(command):
    args = [SLUICEGATE] + ([command] if command else []) + ["--help"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "usage: sluicegate" in done.stdout
    if command:
        assert "--secret-file" in done.stdout


# -- jobs end to end -------------------------------------------------------------------------

def test_network_wordcount_end_to_end_then_ctrl_c(cluster):
    lines, expected = word_lines(600)
    server = TextServer(lines, spread_s=2.0)
    try:
        sub = cluster.submit_async(WORDCOUNT, "127.0.0.1", str(server.port))
        job_id = sub.job_id()
        assert server.finished.wait(60), "the job never read the whole input"
        wait_for_counts(sub, expected, 60)
        assert server.connections == 1
        assert len(cluster.polled_job(job_id)["executors"]) == 4  # the whole cluster
        assert cluster.executor_pids(job_id=job_id)

        sub.interrupt()
        assert sub.wait(60) == 130
        assert summed_counts(sub.stdout) == expected  # nothing counted twice either
        assert f"stopping {job_id}" in sub.stderr
        job = cluster.job(job_id)  # `sluicegate jobs --json`
        assert job["state"] == "KILLED", job
        wait_until(lambda: executors_gone(cluster, job_id), 30, what="the executors to stop")
    finally:
        server.close()


def test_two_jobs_at_once_share_the_cluster(cluster):
    inputs = [word_lines(300), word_lines(450)]
    servers = [TextServer(lines, spread_s=2.0) for lines, _ in inputs]
    subs = []
    try:
        for server in servers:
            subs.append(cluster.submit_async(WORDCOUNT, "127.0.0.1", str(server.port),
                                             options=["--cores", "2"]))
        job_ids = [sub.job_id() for sub in subs]

        def both_have_executors():
            status = cluster.status()  # `sluicegate status --json`
            jobs = {j["job_id"]: j for j in status["jobs"]}
            return all(jobs[j]["state"] == "RUNNING" and len(jobs[j]["executors"]) == 2
                       for j in job_ids) and status
        status = wait_until(both_have_executors, 60, what="both jobs to get 2 executors")
        used = {w["worker_id"]: w["cores_used"] for w in status["workers"]}
        assert used == {"w1": 2, "w2": 2}

        for sub, (lines, expected) in zip(subs, inputs):
            wait_for_counts(sub, expected, 90)
        for sub in subs:
            sub.interrupt()
        for sub in subs:
            assert sub.wait(60) == 130
        for sub, (_, expected) in zip(subs, inputs):
            assert summed_counts(sub.stdout) == expected
        for job_id in job_ids:
            wait_until(lambda: executors_gone(cluster, job_id), 30, what="the executors to stop")
    finally:
        for server in servers:
            server.close()


FAILING_JOBS = {  # name: (script, exit code, text on stderr)
    "raises": ("raise ValueError('bad input 42')\n", 1, "ValueError: bad input 42"),
    "exit-3": ("import sys\nprint('leaving')\nsys.exit(3)\n", 3, None),
    "syntax-error": ("def broken(:\n    pass\n", 1, "SyntaxError"),
    "task-raises": ("""
        from sluicegate.driver import SparkContext
        sc = SparkContext(appName="fails-in-a-task")
        sc.parallelize(range(4), 2).map(lambda x: 1 // (x - x)).collect()
        """, 1, "ZeroDivisionError"),
}


def test_failing_jobs_end_only_themselves(cluster, tmp_path):
    subs = {name: cluster.submit_async(write_job(tmp_path, f"{name}.py", source))
            for name, (source, _, _) in FAILING_JOBS.items()}
    for name, sub in subs.items():
        _, code, error = FAILING_JOBS[name]
        assert sub.wait(120) == code, (name, sub.stderr)
        assert "failed: exited with code" in sub.stderr, (name, sub.stderr)
        if error:
            assert error in sub.stderr, (name, sub.stderr)
        assert cluster.job(sub.job_id())["state"] == "FAILED"
    assert "leaving" in subs["exit-3"].stdout
    assert "Traceback" in subs["task-raises"].stderr

    # The service and the workers keep serving the next job.
    good = cluster.submit(write_job(tmp_path, "good.py", BATCH_JOB), "100", timeout_s=120)
    assert good.returncode == 0, good.stderr
    assert "SUM 9900" in good.stdout
    assert {w["worker_id"] for w in cluster.poll()["workers"] if w["alive"]} == {"w1", "w2"}


def test_detach_then_kill(cluster, tmp_path):
    done = cluster.submit(write_job(tmp_path, "pids.py", PIDS_JOB), options=["--detach"],
                          timeout_s=30)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    assert job_id.startswith("job-")
    wait_until(lambda: cluster.polled_job(job_id)["executors"], 60, what="executors")

    killed = cluster.cli("kill", job_id)
    assert killed.returncode == 0, killed.stderr
    assert job_id in killed.stdout
    wait_until(lambda: cluster.polled_job(job_id)["state"] == "KILLED", 30, what="KILLED")
    wait_until(lambda: executors_gone(cluster, job_id), 30, what="the executors to stop")
    again = cluster.cli("kill", job_id)
    assert again.returncode == 1 and "already killed" in again.stderr
    unknown = cluster.cli("kill", "job-9999")
    assert unknown.returncode == 1 and "no job" in unknown.stderr


# -- workers come and go ------------------------------------------------------------------------

def test_kill_9_of_a_worker_loses_no_batch(own_cluster):
    cluster = own_cluster.start_driver()
    cluster.start_worker("w1", cores=2)
    victim = cluster.start_worker("w2", cores=2)
    lines, expected = word_lines(1500)
    server = TextServer(lines, spread_s=6.0)
    try:
        sub = cluster.submit_async(WORDCOUNT, "127.0.0.1", str(server.port))
        job_id = sub.job_id()
        wait_until(lambda: len(cluster.polled_job(job_id)["executors"]) == 4, 60,
                   what="4 executors")
        wait_until(lambda: server.sent >= len(lines) // 5, 60, what="a fifth of the input")
        orphans = [psutil.Process(pid) for pid in cluster.executor_pids("w2")]
        cluster.adopted.extend(orphans)
        victim.send_signal(signal.SIGKILL)
        assert server.sent < len(lines), "the input ended before the fault"

        assert server.finished.wait(60)
        wait_for_counts(sub, expected, 90)
        # The killed worker's executors do not outlive it, and the job carries on on w1.
        _, alive = psutil.wait_procs(orphans, timeout=30)
        assert not alive
        assert cluster.polled_job(job_id)["state"] == "RUNNING"
        sub.interrupt()
        assert sub.wait(60) == 130
        assert summed_counts(sub.stdout) == expected
    finally:
        server.close()


def test_a_worker_joining_mid_stream_takes_tasks(own_cluster, tmp_path):
    cluster = own_cluster.start_driver()
    cluster.start_worker("w1", cores=2)
    sub = cluster.submit_async(write_job(tmp_path, "pids.py", PIDS_JOB))
    job_id = sub.job_id()
    wait_until(lambda: pids_printed(sub.stdout), 60, what="a first batch")
    assert pids_printed(sub.stdout) <= set(cluster.executor_pids("w1", job_id))

    cluster.start_worker("w2", cores=2)

    def executors_on_w2():
        status = cluster.status()  # `sluicegate status --json`
        w2 = next(w for w in status["workers"] if w["worker_id"] == "w2")
        job = next(j for j in status["jobs"] if j["job_id"] == job_id)
        return [e for e in w2["executors"] if e in job["executors"]]
    assert len(wait_until(executors_on_w2, 60, what="executors on the new worker")) == 2
    new_pids = set(wait_until(lambda: cluster.executor_pids("w2", job_id), 30,
                              what="executor processes of w2"))
    wait_until(lambda: pids_printed(sub.stdout) & new_pids, 60,
               what="a task run by an executor of the new worker")
    before = len(sub.stdout.splitlines())
    wait_until(lambda: len(sub.stdout.splitlines()) > before, 30, what="more batches")
    sub.interrupt()
    assert sub.wait(60) == 130
    wait_until(lambda: executors_gone(cluster, job_id), 30, what="the executors to stop")


def test_a_worker_that_is_stopped_takes_its_executors_along(own_cluster, tmp_path):
    cluster = own_cluster.start_driver()
    worker = cluster.start_worker("w1", cores=1)
    done = cluster.submit(write_job(tmp_path, "pids.py", PIDS_JOB), options=["--detach"])
    job_id = done.stdout.strip()
    executors = wait_until(lambda: cluster.executor_pids("w1", job_id), 60, what="an executor")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert not [pid for pid in executors if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    wait_until(lambda: not cluster.worker_alive("w1"), 30, what="the worker to be gone")
    wait_until(lambda: not cluster.polled_job(job_id)["executors"], 30,
               what="the job to lose its executor")
    assert cluster.cli("kill", job_id).returncode == 0
    wait_until(lambda: cluster.polled_job(job_id)["state"] == "KILLED", 30, what="KILLED")
    assert not os.environ.get("SLUICEGATE_MASTER")  # nothing leaked into the test process
