"""Jobs outlive a restart of ``sluicegate driver`` (issue 11, items 1-3 and the secret of item 8).

All real processes on loopback: ``sluicegate driver`` + ``sluicegate worker`` +
``sluicegate submit`` (see ``cluster_harness``). The service is SIGKILLed while
a job runs and started again on the same address, secret and work dir:

* the job keeps running (its output goes to files in its job dir, not to pipes
  of the service), the new service adopts it with the executors that really
  run for it and launches none, the still-running ``submit`` re-attaches and
  gets the rest of the output, each line once, and the job's end is recorded
  with its exit status;
* a job that ends while no service runs is reported with its exit status to
  its ``submit`` within seconds of the restart;
* a ``submit`` whose job the new service does not know, or whose job ended
  without a recorded status, returns within seconds with a clear message;
* an adopted job can be killed;
* a job's output files are capped (segments, the oldest dropped) and a reader
  that fell behind is told how much it missed; the job's copy of the cluster
  secret is gone once it ends.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime

import psutil
import pytest

from cluster_harness import LocalCluster, free_port, parse_pprint, wait_until

# A streaming job that pprints every batch (the pid of the executor that ran each
# record), until a stop file appears; then it says DONE and exits with the given code.
STREAMING_JOB = """
    import os, sys, time
    from sluicegate.driver import SparkContext, StreamingContext
    stop_file, code = sys.argv[1], int(sys.argv[2])
    sc = SparkContext(appName="restartable")
    ssc = StreamingContext(sc, 0.5)
    numbers = ssc.queueStream([], default=sc.parallelize(range(4), 4))
    numbers.map(lambda x: (x, os.getpid())).pprint()
    ssc.start()
    while not os.path.exists(stop_file):
        time.sleep(0.1)
    ssc.stop(stopSparkContext=True, stopGraceFully=False)
    print("DONE", flush=True)
    sys.exit(code)
"""

# No SparkContext at all: a script that counts until a stop file appears.
COUNTING_JOB = """
    import os, sys, time
    stop_file, code = sys.argv[1], int(sys.argv[2])
    i = 0
    while not os.path.exists(stop_file):
        print("COUNT", i, flush=True)
        i += 1
        time.sleep(0.1)
    print("DONE", flush=True)
    sys.exit(code)
"""


def write_job(tmp_path, name: str, source: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture
def own_cluster(tmp_path):
    c = LocalCluster(tmp_path / "own")
    yield c
    c.close()


def job_dir(cluster: LocalCluster, job_id: str):
    return cluster.base / "driver-work" / "jobs" / job_id


def job_process(cluster: LocalCluster, job_id: str, script_name: str) -> psutil.Process:
    """The job's own interpreter (not the process that keeps its output)."""
    script = str(job_dir(cluster, job_id) / script_name)
    for proc in cluster.all_processes():
        try:
            line = proc.cmdline()
        except psutil.NoSuchProcess:
            continue
        if script in line and not any("job_keeper" in part for part in line):
            return proc
    raise AssertionError(f"no process runs {script}")


def job_tree(cluster: LocalCluster, job_id: str) -> list[psutil.Process]:
    """Every process that runs or keeps job ``job_id`` (its command line names the job dir)."""
    marker = str(job_dir(cluster, job_id))
    found = []
    for proc in cluster.all_processes():
        try:
            if any(marker in part for part in proc.cmdline()):
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def executor_ids(cluster: LocalCluster, job_id: str) -> list[str]:
    """The ids of the executor processes that really run for ``job_id``."""
    ids = []
    for pid in cluster.executor_pids(job_id=job_id):
        try:
            line = psutil.Process(pid).cmdline()
        except psutil.NoSuchProcess:
            continue
        ids.append(line[line.index("--executor-id") + 1])
    return sorted(ids)


def batch_times(text: str) -> list[str]:
    return [line[len("Time: "):] for line in text.splitlines() if line.startswith("Time: ")]


def consecutive(times: list[str], batch_s: float = 0.5) -> bool:
    """Whether pprint's batch times follow each other one batch apart (none missing or twice)."""
    stamps = [datetime.fromisoformat(t) for t in times]
    return all((b - a).total_seconds() == batch_s for a, b in zip(stamps, stamps[1:]))


def launches(cluster: LocalCluster, job_id: str) -> int:
    return cluster.log_text("driver.log").count(f"job {job_id}: executor ")


# -- a streaming job across a restart ---------------------------------------------------------

def test_a_streaming_job_outlives_a_service_crash_and_is_adopted(own_cluster, tmp_path):
    cluster = own_cluster.start_driver()
    cluster.start_worker("w1", cores=2)
    stop = tmp_path / "stop"
    sub = cluster.submit_async(write_job(tmp_path, "restartable.py", STREAMING_JOB), str(stop), "3")
    job_id = sub.job_id()
    wait_until(lambda: len(batch_times(sub.stdout)) >= 2, 90, what="two batches")
    wait_until(lambda: len(executor_ids(cluster, job_id)) == 2, 60, what="two executors")
    executors = executor_ids(cluster, job_id)
    assert sorted(cluster.polled_job(job_id)["executors"]) == executors
    job = job_process(cluster, job_id, "restartable.py")
    port = cluster.port

    cluster.crash_driver()
    crashed_at = len(batch_times(sub.stdout))
    launches_before = launches(cluster, job_id)
    # Nobody reads the job's output now: it must go on printing batches regardless.
    out_files = job_dir(cluster, job_id) / "output"
    printed_before = sum(f.stat().st_size for f in out_files.glob("stdout.*"))
    wait_until(lambda: sum(f.stat().st_size for f in out_files.glob("stdout.*"))
               > printed_before + 200, 30, what="the job to print while the service is down")
    assert job.is_running() and not gone(job)

    cluster.start_driver(port=port)

    def adopted():
        record = cluster.polled_job(job_id)
        return record["state"] == "RUNNING" and sorted(record["executors"]) == executors
    wait_until(adopted, 60, what="the new service to adopt the job with its two executors")
    assert executor_ids(cluster, job_id) == executors  # the same executor processes
    assert cluster.job(job_id)["state"] == "RUNNING"   # `sluicegate jobs` says so too
    # The submit that was attached to the old service gets the batches that follow.
    wait_until(lambda: len(batch_times(sub.stdout)) >= crashed_at + 6, 60,
               what="batches reaching the re-attached submit")
    pids = {pid for batch in parse_pprint(sub.stdout) for _, pid in batch}
    assert pids <= set(cluster.executor_pids(job_id=job_id))
    assert sub.proc.poll() is None

    stop.write_text("")
    assert sub.wait(60) == 3, sub.stderr[-3000:]
    times = batch_times(sub.stdout)
    assert len(times) >= crashed_at + 6
    assert consecutive(times), f"a batch's output is missing, came twice or out of order: {times}"
    assert sub.stdout.rstrip().endswith("DONE")
    record = cluster.job(job_id)
    assert (record["state"], record["exit_code"]) == ("FAILED", 3), record
    assert "exited with code 3" in record["message"]
    assert launches(cluster, job_id) == launches_before  # no executor started for it again
    wait_until(lambda: not executor_ids(cluster, job_id) and not cluster.polled_job(job_id)["executors"],
               30, what="the job's executors to stop")
    assert gone(job)
    assert not (job_dir(cluster, job_id) / ".secret").exists()
    assert launches(cluster, job_id) == launches_before


def test_a_job_that_ends_while_the_service_is_down_reports_its_status(own_cluster, tmp_path):
    cluster = own_cluster.start_driver()
    cluster.start_worker("w1", cores=1)
    stop = tmp_path / "stop"
    sub = cluster.submit_async(write_job(tmp_path, "restartable.py", STREAMING_JOB), str(stop), "4")
    job_id = sub.job_id()
    wait_until(lambda: len(batch_times(sub.stdout)) >= 2, 90, what="two batches")
    job = job_process(cluster, job_id, "restartable.py")
    port = cluster.port

    cluster.crash_driver()
    stop.write_text("")  # the job stops and prints DONE with no service to read it
    wait_until(lambda: gone(job), 60, what="the job to end")
    assert "DONE" not in sub.stdout

    cluster.start_driver(port=port)
    restarted = time.monotonic()
    assert sub.wait(60) == 4, sub.stderr[-3000:]
    assert time.monotonic() - restarted < 20
    assert sub.stdout.rstrip().endswith("DONE")  # the output it printed meanwhile arrived
    assert consecutive(batch_times(sub.stdout))
    record = cluster.job(job_id)
    assert (record["state"], record["exit_code"]) == ("FAILED", 4), record
    assert not (job_dir(cluster, job_id) / ".secret").exists()
    wait_until(lambda: not executor_ids(cluster, job_id), 30, what="the job's executor to stop")
    assert not cluster.polled_job(job_id)["executors"]


# -- submit never hangs ---------------------------------------------------------------------------

def test_submit_returns_when_the_new_service_does_not_know_the_job_or_its_end(own_cluster, tmp_path):
    cluster = own_cluster.start_driver()
    script = write_job(tmp_path, "counting.py", COUNTING_JOB)
    subs, ids = {}, {}
    for name in ("forgotten", "lost", "killed"):
        subs[name] = cluster.submit_async(script, str(tmp_path / f"stop-{name}"), "0")
        ids[name] = subs[name].job_id()
    for sub in subs.values():
        wait_until(lambda: "COUNT 3" in sub.stdout, 60, what="the job to count")
    port = cluster.port
    forgotten, lost, killed = ids["forgotten"], ids["lost"], ids["killed"]

    cluster.crash_driver()
    # Two jobs die with every process of theirs (no exit status can be recorded), and the
    # work dir of one of them is wiped.
    for victim in (forgotten, lost):
        tree = job_tree(cluster, victim)
        assert tree
        for proc in tree:
            proc.kill()
        psutil.wait_procs(tree, timeout=30)
    shutil.rmtree(job_dir(cluster, forgotten))

    cluster.start_driver(port=port)
    restarted = time.monotonic()
    assert subs["forgotten"].wait(30) == 1
    assert f"does not know {forgotten}" in subs["forgotten"].stderr, subs["forgotten"].stderr
    assert subs["lost"].wait(30) == 1
    assert f"{lost} lost" in subs["lost"].stderr and "exit status" in subs["lost"].stderr, \
        subs["lost"].stderr
    assert time.monotonic() - restarted < 25
    record = cluster.job(lost)
    assert record["state"] == "LOST" and "exit status" in record["message"], record
    assert not (job_dir(cluster, lost) / ".secret").exists()
    assert all(j["job_id"] != forgotten for j in cluster.jobs())

    # The third job is alive and adopted: `sluicegate kill` still stops it.
    assert cluster.job(killed)["state"] == "RUNNING"
    done = cluster.cli("kill", killed)
    assert done.returncode == 0, done.stderr
    assert subs["killed"].wait(60) != 0
    assert f"{killed} killed" in subs["killed"].stderr
    assert cluster.job(killed)["state"] == "KILLED"
    assert not job_tree(cluster, killed) or all(gone(p) for p in job_tree(cluster, killed))
    assert not (job_dir(cluster, killed) / ".secret").exists()


def test_a_stopped_service_stops_its_jobs_unless_told_to_keep_them(own_cluster, tmp_path):
    cluster = own_cluster.start_driver()
    script = write_job(tmp_path, "counting.py", COUNTING_JOB)
    first = cluster.submit(script, str(tmp_path / "stop-first"), "0", options=["--detach"])
    first_id = first.stdout.strip()
    wait_until(lambda: job_process(cluster, first_id, "counting.py"), 30, what="the first job")
    port = cluster.port
    assert cluster.stop_driver() == 0  # stopping the service stops its jobs ...
    wait_until(lambda: all(gone(p) for p in job_tree(cluster, first_id)), 30,
               what="the first job to stop")

    cluster.start_driver(port=port, extra=["--keep-jobs"])
    record = cluster.job(first_id)  # ... and the next service knows how it ended
    assert record["state"] == "KILLED" and record["exit_code"] == -signal.SIGTERM, record
    (tmp_path / "stop-quick").write_text("")
    quick = cluster.submit(script, str(tmp_path / "stop-quick"), "5")
    assert (quick.returncode, quick.stdout) == (5, "DONE\n"), quick.stderr
    assert not [p for p in psutil.Process(cluster.driver.pid).children()
                if p.status() == psutil.STATUS_ZOMBIE], "the ended job left a zombie"
    stop = tmp_path / "stop-second"
    second = cluster.submit(script, str(stop), "0", options=["--detach"])
    second_id = second.stdout.strip()
    job = wait_until(lambda: job_process(cluster, second_id, "counting.py"), 30,
                     what="the second job")
    assert cluster.stop_driver() == 0  # with --keep-jobs, the job goes on without a service
    counted = job_dir(cluster, second_id) / "output"
    size = sum(f.stat().st_size for f in counted.glob("stdout.*"))
    wait_until(lambda: sum(f.stat().st_size for f in counted.glob("stdout.*")) > size + 100, 30,
               what="the job to go on printing")
    assert not gone(job)

    cluster.start_driver(port=port)
    assert cluster.job(second_id)["state"] == "RUNNING"
    stop.write_text("")
    wait_until(lambda: cluster.job(second_id)["state"] == "FINISHED", 30, what="FINISHED")
    assert cluster.job(second_id)["exit_code"] == 0


def test_a_second_service_on_the_same_work_dir_is_refused(own_cluster):
    cluster = own_cluster.start_driver()
    done = cluster.cli("driver", "--port", str(free_port()), "--ui-port", "-1",
                       "--work-dir", str(cluster.base / "driver-work"), with_driver=False)
    assert done.returncode == 2
    assert "another sluicegate driver uses the work dir" in done.stderr, done.stderr
    assert cluster.ping()  # the first one is untouched


# -- the output files ------------------------------------------------------------------------------

FLOOD_JOB = """
    import sys
    line = "x" * 99
    for i in range(20000):            # 2 MB on stdout
        print(f"{i:08d} {line}")
    print("to stderr", file=sys.stderr)
    sys.exit(7)
"""


def test_job_output_is_capped_in_segments_and_read_back_with_gaps(tmp_path):
    from sluicegate.driver.cluster.job_output import OutputTail
    from sluicegate.driver.cluster.job_process import KEEPER

    work = tmp_path / "job"
    work.mkdir()
    script = write_job(work, "flood.py", FLOOD_JOB)
    (work / ".secret").write_bytes(b"s")
    done = subprocess.run(
        [sys.executable, "-I", str(KEEPER), "--job-dir", str(work), "--segment-bytes", "65536",
         "--segments", "4", "--", sys.executable, "-u", str(script)],
        timeout=120, capture_output=True)
    assert done.returncode == 0, done.stderr
    status = json.loads((work / "exit.json").read_text())
    assert status["exit_code"] == 7
    assert not (work / ".secret").exists()

    segments = sorted((work / "output").glob("stdout.*"))
    assert len(segments) == 4
    assert sum(s.stat().st_size for s in segments) <= 4 * 65536 + 65536
    total = 20000 * 109
    tail = OutputTail(work / "output", "stdout", 0)
    got = bytearray()
    first_offset = None
    while True:
        chunk = tail.read(1 << 16)
        if chunk is None:
            break
        offset, data = chunk
        if first_offset is None:
            first_offset = offset
        assert offset == first_offset + len(got)  # no gap after the first read
        got += data
    assert first_offset > 0 and first_offset + len(got) == total  # the oldest were dropped
    lines = got.decode().splitlines()
    assert lines[-1].startswith("00019999 ")
    numbers = [int(line[:8]) for line in lines[1:]]
    assert numbers == list(range(numbers[0], 20000))
    assert OutputTail(work / "output", "stderr", 0).read(100) == (0, b"to stderr\n")


def test_the_keeper_passes_a_stop_on_and_records_the_signal(tmp_path):
    work = tmp_path / "job"
    work.mkdir()
    script = write_job(work, "sleepy.py", """
        import time
        print("UP", flush=True)
        time.sleep(600)
    """)
    from sluicegate.driver.cluster.job_process import KEEPER

    keeper = subprocess.Popen(
        [sys.executable, "-I", str(KEEPER), "--job-dir", str(work), "--", sys.executable, "-u",
         str(script)], start_new_session=True)
    try:
        wait_until(lambda: b"UP" in b"".join(p.read_bytes() for p in (work / "output").glob("stdout.*")),
                   60, what="the job to start")
        started = json.loads((work / "started.json").read_text())
        assert psutil.Process(started["job_pid"]).create_time() == pytest.approx(started["job_started"])
        keeper.send_signal(signal.SIGTERM)
        assert keeper.wait(30) == 0
        status = json.loads((work / "exit.json").read_text())
        assert status["exit_code"] == -signal.SIGTERM and status["stop_requested"] is True
        assert not psutil.pid_exists(started["job_pid"]) or gone(psutil.Process(started["job_pid"]))
    finally:
        if keeper.poll() is None:
            keeper.kill()
            keeper.wait(10)
