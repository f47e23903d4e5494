"""Cancelling jobs (setJobGroup/cancelJobGroup, job tags, cancelAllJobs) as in
PySpark: the action raises in the thread that ran it, with Spark's text, and
the job's running tasks really stop on their executors -- their side effects
end -- while the executors stay up for the next job. A task that will not
stop costs its executor, which is replaced. Real processes, local and on a
cluster; the scheduler's rules alone are in ``tests/unit/test_job_cancel_rules.py``.
"""
from __future__ import annotations

import os
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cluster_harness import LocalCluster, wait_until
from sluicegate.driver.files import SparkFiles
from sluicegate.driver.scheduler.jobs import JobCancelledError, JobFailedError
from sluicegate.driver.util import InheritableThread


def keep_writing(marker: str, seconds: float = 120.0):
    """A task that appends to ``marker`` every 50 ms (a side effect to watch), for long."""
    def task(_):
        deadline = time.monotonic() + seconds
        with open(marker, "a") as out:
            while time.monotonic() < deadline:
                out.write(f"{os.getpid()}\n")
                out.flush()
                time.sleep(0.05)
        return os.getpid()
    return task


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def wait_for_writes(path: Path, at_least: int = 10) -> None:
    wait_until(lambda: lines(path) >= at_least, 60, what=f"tasks writing to {path}")


def wait_until_still(path: Path, timeout_s: float = 20.0) -> int:
    """Until ``path`` has stopped growing (no line for 1.5 s); its line count."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = lines(path)
        time.sleep(1.5)
        if lines(path) == before:
            return before
    raise AssertionError(f"{path} is still growing: its tasks were not stopped")


def run_in_thread(action, *setup) -> tuple[threading.Thread, dict]:
    """Run ``action()`` after ``setup`` calls in an InheritableThread; its outcome."""
    outcome: dict = {}

    def body():
        for call in setup:
            call()
        try:
            outcome["value"] = action()
        except BaseException as exc:  # noqa: BLE001 - checked by the test
            outcome["error"] = exc

    thread = InheritableThread(target=body)
    thread.start()
    return thread, outcome


def test_cancel_job_group_stops_the_running_tasks_and_keeps_the_executors(sc, tmp_path):
    marker = tmp_path / "group.log"
    pids = set(sc._runtime.backend.pids())
    thread, outcome = run_in_thread(
        lambda: sc.parallelize(range(3), 3).map(keep_writing(str(marker))).collect(),
        lambda: sc.setJobGroup("cancel-me", "a job to cancel", interruptOnCancel=True))
    wait_until(lambda: len(set(marker.read_text().split())) == 3, 60,
               what="three tasks writing, one on each executor")
    assert {int(pid) for pid in marker.read_text().split()} == pids

    sc.cancelJobGroup("cancel-me")
    thread.join(30)
    assert not thread.is_alive()
    error = outcome["error"]
    assert isinstance(error, JobCancelledError) and isinstance(error, JobFailedError)
    assert "cancelled part of cancelled job group cancel-me" in str(error)
    stopped_at = wait_until_still(marker)
    time.sleep(1.0)
    assert lines(marker) == stopped_at
    # Interrupted in place: the same executor processes run the next job.
    assert set(sc._runtime.backend.pids()) == pids
    ran_on = set(sc.parallelize(range(6), 6).map(lambda _: os.getpid()).collect())
    assert ran_on <= pids
    tracker = sc.statusTracker()
    [job_id] = tracker.getJobIdsForGroup("cancel-me")
    assert tracker.getJobInfo(job_id).status == "FAILED"


def test_cancel_without_interrupt_stops_the_tasks_after_the_kill_timeout(sc, tmp_path):
    marker = tmp_path / "no-interrupt.log"
    pids = set(sc._runtime.backend.pids())
    thread, outcome = run_in_thread(
        lambda: sc.parallelize(range(2), 2).map(keep_writing(str(marker))).collect(),
        lambda: sc.addJobTag("slow-to-stop"))  # interruptOnCancel is off by default
    wait_for_writes(marker)
    sc.cancelJobsWithTag("slow-to-stop")
    thread.join(30)
    assert "cancelled part of cancelled job tags slow-to-stop" in str(outcome["error"])
    wait_until_still(marker)
    assert set(sc._runtime.backend.pids()) == pids


def test_cancelling_a_tag_leaves_other_jobs_alone(sc, tmp_path):
    marker = tmp_path / "tagged.log"
    doomed, doomed_outcome = run_in_thread(
        lambda: sc.parallelize(range(2), 2).map(keep_writing(str(marker))).collect(),
        lambda: sc.addJobTag("doomed"), lambda: sc.setInterruptOnCancel(True))
    wait_for_writes(marker)
    survivor, survivor_outcome = run_in_thread(
        lambda: sc.parallelize(range(1), 1).map(lambda x: time.sleep(1.0) or x + 1).collect())
    time.sleep(0.3)
    sc.cancelJobsWithTag("doomed")
    doomed.join(30)
    survivor.join(60)
    assert isinstance(doomed_outcome["error"], JobCancelledError)
    assert survivor_outcome == {"value": [1]}
    wait_until_still(marker)


def test_cancel_all_jobs(sc, tmp_path):
    marker = tmp_path / "all.log"
    thread, outcome = run_in_thread(
        lambda: sc.parallelize(range(2), 2).map(keep_writing(str(marker))).collect(),
        lambda: sc.setInterruptOnCancel(True))
    wait_for_writes(marker)
    sc.cancelAllJobs()
    thread.join(30)
    assert "cancelled as part of cancellation of all jobs" in str(outcome["error"])
    wait_until_still(marker)


def test_a_failed_job_stops_its_other_running_tasks(sc, tmp_path):
    marker = tmp_path / "sibling.log"
    write = keep_writing(str(marker))

    def one_fails(index, rows):
        if index == 0:
            time.sleep(0.5)
            raise ValueError("partition 0 is broken")
        return [write(row) for row in rows]

    with pytest.raises(JobFailedError, match="partition 0 is broken"):
        sc.parallelize(range(2), 2).mapPartitionsWithIndex(one_fails).collect()
    assert lines(marker) > 0
    wait_until_still(marker)  # as Spark: a job that failed leaves no task running


def test_a_task_that_will_not_stop_costs_its_executor(own_context, tmp_path):
    sc = own_context("local[1]", spark__python__task__killTimeout="500ms")
    shared = tmp_path / "shared_after.txt"
    shared.write_text("still shipped")
    sc.addFile(str(shared))
    marker = tmp_path / "stubborn.log"

    def stubborn(_):
        deadline = time.monotonic() + 120
        with open(marker, "a") as out:
            while time.monotonic() < deadline:
                try:
                    out.write("x\n")
                    out.flush()
                    time.sleep(0.05)
                except BaseException:  # noqa: BLE001 - this task means to ignore being killed
                    pass
        return 0

    [before] = sc._runtime.backend.pids()
    thread, outcome = run_in_thread(lambda: sc.parallelize([0], 1).map(stubborn).collect(),
                                    lambda: sc.setJobGroup("stubborn", "", True))
    wait_for_writes(marker)
    sc.cancelJobGroup("stubborn")
    thread.join(30)
    assert isinstance(outcome["error"], JobCancelledError)
    wait_until_still(marker)
    wait_until(lambda: sc._runtime.backend.pids() and sc._runtime.backend.pids() != [before]
               and len(sc._runtime.endpoint.registry.alive()) == 1, 60,
               what="a replacement executor")
    # The replacement runs jobs, and gets the application's files like any executor.
    assert sc.parallelize([0], 1).map(lambda _: (os.getpid(), open(
        SparkFiles.get("shared_after.txt")).read())).collect() == [
        (sc._runtime.backend.pids()[0], "still shipped")]


# -- a cluster: KillTask travels to executors on workers -------------------------------------

CANCEL_JOB = """
    import os, sys, threading, time
    from sluicegate.driver import SparkContext
    marker = sys.argv[1]
    sc = SparkContext(appName="cancel")

    def pid_of(_):
        time.sleep(0.3)
        return os.getpid()

    before = set(sc.parallelize(range(4), 4).map(pid_of).collect())

    def forever(_):
        with open(marker, "a") as out:
            for _ in range(2400):
                out.write("x\\n")
                out.flush()
                time.sleep(0.05)

    def run():
        sc.setJobGroup("grp", "to cancel", interruptOnCancel=True)
        try:
            sc.parallelize(range(2), 2).map(forever).collect()
            print("NOT CANCELLED", flush=True)
        except Exception as exc:
            print("CANCELLED", type(exc).__name__, exc, flush=True)

    def count():
        return len(open(marker).read().split()) if os.path.exists(marker) else 0

    thread = threading.Thread(target=run)
    thread.start()
    while count() < 10:
        time.sleep(0.05)
    sc.cancelJobGroup("grp")
    thread.join()
    while True:
        seen = count()
        time.sleep(1.5)
        if count() == seen:
            break
    after = set(sc.parallelize(range(4), 4).map(pid_of).collect())
    print("SAME EXECUTORS", after <= before, flush=True)
    sc.stop()
"""


@pytest.fixture
def cancel_cluster(tmp_path):
    cluster = LocalCluster(tmp_path / "cancel-cluster")
    try:
        cluster.start_driver()
        cluster.start_worker("cw1", cores=2)
        yield cluster
    finally:
        cluster.close()


def test_cancel_job_group_on_a_cluster(cancel_cluster, tmp_path):
    script = tmp_path / "cancel_job.py"
    script.write_text(textwrap.dedent(CANCEL_JOB))
    marker = tmp_path / "cluster.log"
    done = cancel_cluster.submit(script, str(marker), timeout_s=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "CANCELLED JobCancelledError [SPARK_JOB_CANCELLED] Job 1 cancelled part of cancelled " \
           "job group grp" in done.stdout, done.stdout + done.stderr[-3000:]
    assert "SAME EXECUTORS True" in done.stdout
    settled = lines(marker)
    time.sleep(1.0)
    assert lines(marker) == settled
