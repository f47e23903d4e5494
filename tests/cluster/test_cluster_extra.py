"""More of a standalone cluster's life, each test on a cluster of its own:

* a worker registers again by itself after the driver service is SIGKILLed and
  restarted on the same port, and runs the next job;
* ``--log-file`` sends the driver's and the worker's logs to their files;
* a worker runs no more executors than its ``--memory`` holds.
"""
from __future__ import annotations

from cluster_harness import wait_until
from test_cluster import PIDS_JOB, own_cluster, pids_printed, write_job  # noqa: F401 - a fixture

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
