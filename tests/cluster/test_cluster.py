"""A standalone cluster through its command line: ``sluicegate driver``, two
``sluicegate worker`` processes and ``sluicegate submit``/``jobs``/``kill``/
``status``, all real processes on loopback (see ``cluster_harness``).

Most tests share one cluster (2 workers x 2 cores); the ones that kill, add or
restart something get a cluster of their own:

* a worker registers again by itself after the driver service is SIGKILLed and
  restarted on the same port, and runs the next job;
* ``--log-file`` sends the driver's and the worker's logs to their files;
* a worker runs no more executors than its ``--memory`` holds.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import urllib.request

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

@pytest.mark.parametrize("command", [None, "driver", "worker", "submit", "jobs", "kill", "status",
                                     "logs", "sql"])
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
    "aborts": ("""
        import os
        from sluicegate.driver import SparkContext
        sc = SparkContext(appName="crashes-its-interpreter")
        print("COUNT", sc.parallelize(range(4), 2).count(), flush=True)
        os.abort()
        """, 1, "killed by signal 6"),
}


def test_failing_jobs_end_only_themselves(cluster, tmp_path):
    subs = {name: cluster.submit_async(write_job(tmp_path, f"{name}.py", source))
            for name, (source, _, _) in FAILING_JOBS.items()}
    for name, sub in subs.items():
        _, code, error = FAILING_JOBS[name]
        assert sub.wait(120) == code, (name, sub.stderr)
        assert f"{sub.job_id()} failed: " in sub.stderr, (name, sub.stderr)
        if error:
            assert error in sub.stderr, (name, sub.stderr)
        job = cluster.job(sub.job_id())
        assert job["state"] == "FAILED", job
        if name == "aborts":
            assert job["exit_code"] == -6 and job["message"] == "killed by signal 6", job
        else:
            assert job["message"] == f"exited with code {code}", job
    assert "leaving" in subs["exit-3"].stdout
    assert "Traceback" in subs["task-raises"].stderr
    assert "COUNT 4" in subs["aborts"].stdout  # it had executors before it crashed
    aborted = subs["aborts"].job_id()
    wait_until(lambda: executors_gone(cluster, aborted), 30, what="the crashed job's executors")

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


# Streams a cached 2-partition RDD every 0.5 s; while the file argv[1] exists, each
# batch's two tasks wait for it to go, so they are seen running.
HELD_JOB = """
    import os, sys, time
    from sluicegate.driver import SparkContext, StreamingContext
    hold = sys.argv[1]
    sc = SparkContext(appName="held")
    ssc = StreamingContext(sc, 0.5)
    data = sc.parallelize(range(1000), 2).cache()
    data.count()  # cached on the executors: block memory in use

    def wait_while_held(part):
        while os.path.exists(hold):
            time.sleep(0.05)
        yield sum(part)

    ssc.queueStream([], default=data).foreachRDD(lambda rdd: rdd.mapPartitions(wait_while_held).collect())
    ssc.start()
    ssc.awaitTermination()
"""


def text_jobs(lines: list[str]) -> dict[str, dict]:
    """Job rows of `sluicegate jobs` (or the indented ones of `status`), by job id."""
    rows = {}
    for line in lines:
        cells = line.split()
        if cells and cells[0].startswith("job-"):
            rows[cells[0]] = {"state": cells[1], "executors": int(cells[2]),
                              "tasks": int(cells[3]), "batches": int(cells[4])}
    return rows


def text_status(cluster: LocalCluster) -> tuple[dict[str, dict], dict[str, dict]]:
    """`sluicegate status` (plain text) as worker rows and job rows."""
    done = cluster.cli("status")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"driver {cluster.address}: ") and "workers alive" in lines[0]
    assert lines[1].split() == ["WORKER", "HOST", "CORES", "TASKS", "MEMORY", "USED",
                                "HEARTBEAT", "STATE"], lines[1]
    workers = {}
    for line in lines[2:]:
        cells = line.split()
        if len(cells) == 7 and cells[-1] in ("alive", "lost"):
            used, cores = cells[2].split("/")
            workers[cells[0]] = {"host": cells[1], "cores_used": int(used), "cores": int(cores),
                                 "tasks": int(cells[3]), "memory": cells[4],
                                 "heartbeat": cells[5], "state": cells[6]}
    return workers, text_jobs(lines)


def test_status_and_jobs_as_text_show_running_tasks_and_batches(cluster, tmp_path):
    hold = tmp_path / "hold"
    sub = cluster.submit_async(write_job(tmp_path, "held.py", HELD_JOB), str(hold),
                               options=["--cores", "2"])
    job_id = sub.job_id()

    def jobs_text():
        done = cluster.cli("jobs")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].split() == ["JOB", "STATE", "EXECUTORS", "TASKS", "BATCHES", "OWNER",
                                    "UI", "NAME"], lines[0]
        return text_jobs(lines)[job_id]

    # Batches counted by the job's own driver show up in `sluicegate jobs`.
    row = wait_until(lambda: (r := jobs_text())["batches"] >= 3 and r, 60, what="3 batches")
    assert row["state"] == "RUNNING" and row["executors"] == 2

    hold.touch()  # from the next batch on, its two tasks keep running

    def two_running():
        workers, jobs = text_status(cluster)
        if jobs[job_id]["tasks"] == 2 and sum(w["tasks"] for w in workers.values()) == 2:
            return workers, jobs
    workers, jobs = wait_until(two_running, 60, what="2 running tasks in `sluicegate status`")
    assert set(workers) == {"w1", "w2"}
    assert all(w["state"] == "alive" and w["cores"] == 2 for w in workers.values())
    assert sum(w["cores_used"] for w in workers.values()) == 2  # its two executors
    assert jobs[job_id]["state"] == "RUNNING" and jobs[job_id]["executors"] == 2
    held_at = jobs[job_id]["batches"]
    # The same in JSON, with the memory the executors use and how long the tasks run
    # (as their next heartbeats tell).

    def busy_workers():
        workers = cluster.status()["workers"]
        busy = [w for w in workers if w["running_tasks"]]
        assert sum(w["running_tasks"] for w in busy) == 2 \
            and all(w["rss_bytes"] > 0 and w["running_task_ms"] > 0 for w in busy) \
            and sum(w["memory_used"] for w in workers) > 0, workers  # shown on a timeout
        return busy
    wait_until(busy_workers, 30, what="memory used and task times of the busy workers")
    # And in the service's JSON API, which its workers and jobs pages show.
    ui = cluster.ui_url()

    def api(path):
        with urllib.request.urlopen(ui + path, timeout=20) as response:
            return json.load(response)
    api_workers = api("/api/v1/workers")
    assert sum(w["running_tasks"] for w in api_workers) == 2, api_workers
    assert sum(w["memory_used"] for w in api_workers) > 0, api_workers
    [api_job] = [j for j in api("/api/v1/jobs") if j["job_id"] == job_id]
    assert api_job["running_tasks"] == 2 and api_job["batches_completed"] >= held_at, api_job

    hold.unlink()
    wait_until(lambda: jobs_text()["batches"] > held_at, 60, what="batches after the release")
    assert cluster.cli("kill", job_id).returncode == 0
    assert sub.wait(60) != 0
    ended = wait_until(lambda: (r := jobs_text())["state"] == "KILLED" and r, 30, what="KILLED")
    assert ended["tasks"] == 0 and ended["batches"] > held_at
    wait_until(lambda: executors_gone(cluster, job_id), 30, what="the executors to stop")


PY_FILES_JOB = """
    import helper, zipped_consts
    from sluicegate.driver import SparkContext
    sc = SparkContext(appName="py-files")
    rdd = sc.parallelize(range(6), 3)
    # Both modules are used inside tasks, so the executors must import them too.
    print("OUT", sorted(rdd.map(lambda x: helper.triple(x) + zipped_consts.OFFSET).collect()))
    print("FROM", sorted(set(rdd.map(lambda _: (helper.__file__, zipped_consts.__file__)).collect())))
    sc.stop()
"""


def test_py_files_reach_the_job_and_its_executors(cluster, tmp_path):
    import zipfile

    helper = tmp_path / "helper.py"
    helper.write_text("def triple(x):\n    return 3 * x\n")
    archive = tmp_path / "consts.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("zipped_consts.py", "OFFSET = 1000\n")
    done = cluster.submit(write_job(tmp_path, "py_files.py", PY_FILES_JOB),
                          options=["--py-files", f"{helper},{archive}"], timeout_s=120)
    assert done.returncode == 0, done.stderr
    assert "OUT [1000, 1003, 1006, 1009, 1012, 1015]" in done.stdout, done.stdout
    sources = [line for line in done.stdout.splitlines() if line.startswith("FROM ")]
    # The executors imported the copies their worker was sent, not the test's files.
    assert sources and "worker-work" in sources[0] and str(tmp_path) not in sources[0], sources
    assert "consts.zip" in sources[0]


OVERRIDE_JOB = """
    import os, psutil
    from sluicegate.driver import SparkConf, SparkContext
    sc = SparkContext(conf=SparkConf().setMaster("local[3]").setAppName("override"))
    print("MASTER", sc.master)
    print("JOB", os.getpid())
    ran = sc.parallelize(range(12), 12).map(lambda _: (os.getpid(), os.getppid())).collect()
    print("RAN", *sorted({f"{pid}:{parent}" for pid, parent in ran}))
    local = [p for p in psutil.Process().children(recursive=True)
             if "sluicegate.worker.executor" in " ".join(p.cmdline())]
    print("LOCAL_EXECUTORS", len(local))
    sc.stop()
"""


def test_set_master_in_the_script_is_overridden_by_the_cluster(cluster, tmp_path):
    done = cluster.submit(write_job(tmp_path, "override.py", OVERRIDE_JOB), timeout_s=120)
    assert done.returncode == 0, done.stderr
    said = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines() if line.strip()}
    assert said["MASTER"] == [f"sluicegate://{cluster.address}"]
    assert said["LOCAL_EXECUTORS"] == ["0"]
    ran = [tuple(map(int, pair.split(":"))) for pair in said["RAN"]]
    workers = {proc.pid for proc in cluster.workers.values()}
    # Every task ran in an executor that a cluster worker started, none under the job.
    assert ran and {parent for _, parent in ran} <= workers, (ran, workers)
    assert int(said["JOB"][0]) not in {parent for _, parent in ran}
    assert len({pid for pid, _ in ran}) >= 2  # not one stray process either


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


# -- restarts, log files, memory: each on a cluster of its own ------------------------------

# Prints the sum, and the parent pid of every executor process that ran a task
# (executors are children of the worker daemon that started them).
PARENTS_JOB = """
    import os
    from sluicegate.driver import SparkContext
    sc = SparkContext(appName="parents")
    rdd = sc.parallelize(range(100), 4)
    print("SUM", rdd.sum())
    print("PARENTS", *sorted(set(rdd.map(lambda _: os.getppid()).collect())))
    sc.stop()
"""


def printed(text: str, tag: str) -> list[str]:
    return [word for line in text.splitlines() if line.startswith(tag + " ")
            for word in line.split()[1:]]


def test_a_worker_registers_again_after_the_driver_restarts(own_cluster, tmp_path):
    cluster = own_cluster.start_driver()
    worker = cluster.start_worker("w1", cores=2)
    job = write_job(tmp_path, "parents.py", PARENTS_JOB)
    before = cluster.submit(job, timeout_s=120)
    assert before.returncode == 0, before.stderr
    assert "SUM 4950" in before.stdout

    port = cluster.port
    cluster.crash_driver()  # SIGKILL: no goodbye to the worker
    assert worker.poll() is None
    cluster.start_driver(port=port)  # same port, same secret, same work dir
    wait_until(lambda: cluster.worker_alive("w1"), 60, what="w1 to register with the new service")
    assert worker.poll() is None  # the same process: it reconnected by itself
    assert cluster.log_text("w1.log").count(f"registered with tcp://{cluster.address}") == 2

    after = cluster.submit(job, timeout_s=120)
    assert after.returncode == 0, after.stderr
    assert "SUM 4950" in after.stdout
    assert printed(after.stdout, "PARENTS") == [str(worker.pid)]  # its executors ran the tasks
    assert cluster.worker_alive("w1")


def test_log_files_of_the_driver_and_a_worker(own_cluster):
    logs = own_cluster.base / "log-files"
    logs.mkdir()
    cluster = own_cluster.start_driver(extra=["--log-file", str(logs / "driver.log")])
    cluster.start_worker("w1", cores=1, extra=["--log-file", str(logs / "worker.log")])
    wait_until(lambda: "worker w1 registered" in (logs / "driver.log").read_text(), 30,
               what="the registration in the driver's log file")
    driver_log = (logs / "driver.log").read_text()
    worker_log = (logs / "worker.log").read_text()
    assert f"INFO sluicegate.service: sluicegate driver listening on sluicegate://127.0.0.1:{cluster.port}" \
        in driver_log, driver_log
    assert f"INFO sluicegate.worker.daemon: registered with tcp://{cluster.address} as w1" \
        in worker_log, worker_log
    # The log lines went to the files, not to stderr (the worker logs nothing else).
    assert "INFO sluicegate" not in cluster.log_text("driver.log")
    assert cluster.log_text("w1.log") == ""


def test_a_worker_runs_no_more_executors_than_its_memory_holds(own_cluster, tmp_path):
    cluster = own_cluster.start_driver(extra=["--executor-memory", "400m"])
    cluster.start_worker("w1", cores=4, extra=["--memory", "1g"])  # room for 2 of 400 MB
    [w1] = cluster.poll()["workers"]
    assert w1["cores"] == 4 and w1["memory_bytes"] == 1 << 30 and w1["executor_slots"] == 2
    assert "w1 runs at most 2 executors" in cluster.log_text("driver.log")

    sub = cluster.submit_async(write_job(tmp_path, "pids.py", PIDS_JOB))
    job_id = sub.job_id()
    wait_until(lambda: len(pids_printed(sub.stdout)) >= 2 and
               len(sub.stdout.splitlines()) >= 3, 60, what="batches on two executors")
    assert len(cluster.polled_job(job_id)["executors"]) == 2
    assert len(cluster.executor_pids("w1", job_id)) == 2
    assert pids_printed(sub.stdout) == set(cluster.executor_pids("w1", job_id))
    [w1] = cluster.poll()["workers"]
    assert w1["cores_used"] == 2 and len(w1["executors"]) == 2
    sub.interrupt()
    assert sub.wait(60) == 130
