"""``sluicegate logs JOB [--follow] [--tail N] [--executors]`` (issue 16, item 2).

Real processes on loopback: ``sluicegate driver`` (+ a worker where executors
are needed), jobs submitted with ``--detach``, and ``sluicegate logs`` run as a
user would. A job's driver output (stdout and stderr) is read while the job
runs, followed to its end, read after it ended and after a restart of the
service; the service's size cap shows as a note and the newest output. The
executors' logs come from the workers, which keep them per job and executor in
capped, rotated files.
"""
from __future__ import annotations

import re
import subprocess
import textwrap

import pytest

from cluster_harness import SLUICEGATE, LocalCluster, Submission, wait_until

PRINTING_JOB = """
    import os, sys, time
    stop_file = sys.argv[1]
    i = 0
    while not os.path.exists(stop_file):
        print(f"OUT {i}", flush=True)
        print(f"ERR {i}", file=sys.stderr, flush=True)
        i += 1
        time.sleep(0.05)
    print("DONE", flush=True)
    sys.exit(3)
"""

FLOOD_JOB = """
    line = "x" * 99
    for i in range(20000):            # 2 MB on stdout
        print(f"{i:08d} {line}")
    print("THE END")
"""

CHATTY_JOB = """
    import os, sys, time
    from sluicegate.driver import SparkContext
    stop1, stop2 = sys.argv[1], sys.argv[2]
    sc = SparkContext(appName="chatty")

    def chat(i):
        print(f"EXEC {i}", flush=True)
        print(f"EXECERR {i}", file=sys.stderr, flush=True)
        return i

    def late(i):
        print(f"LATE {i}", flush=True)
        return i

    def flood(i):
        for n in range(3000):
            print(f"FLOOD {i} {n:05d} " + "x" * 60)
        print(f"TAIL {i}", flush=True)
        return i

    def wait_for(path):
        while not os.path.exists(path):
            time.sleep(0.1)

    print("SUM", sc.parallelize(range(8), 4).map(chat).sum(), flush=True)
    print("READY", flush=True)
    wait_for(stop1)
    print("SUM2", sc.parallelize(range(4), 4).map(late).sum(), flush=True)
    wait_for(stop2)
    print("SUM3", sc.parallelize(range(2), 2).map(flood).sum(), flush=True)
    sc.stop()
"""


def write_job(tmp_path, name: str, source: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture
def own_cluster(tmp_path):
    c = LocalCluster(tmp_path / "cluster")
    yield c
    c.close()


def logs(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess:
    return cluster.cli("logs", *args, timeout_s=60)


def logs_async(cluster: LocalCluster, *args: str) -> Submission:
    """``sluicegate logs`` in the background, its output read as it comes."""
    proc = subprocess.Popen([SLUICEGATE, "logs", "--driver", cluster.address, *args],
                            env=cluster.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    cluster._others.append(proc)  # stopped with the cluster, whatever happens
    return Submission(proc)


def numbered(text: str, prefix: str) -> list[int]:
    return [int(line.split()[1]) for line in text.splitlines() if line.startswith(prefix + " ")]


def detach(cluster: LocalCluster, script, *args: str) -> str:
    done = cluster.submit(script, *args, options=["--detach"])
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# -- a job's driver output ---------------------------------------------------------------------

def test_logs_of_a_detached_job_while_it_runs_after_it_ended_and_after_a_restart(own_cluster,
                                                                                  tmp_path):
    cluster = own_cluster.start_driver(extra=["--ui-port", "-1"])
    stop = tmp_path / "stop"
    job_id = detach(cluster, write_job(tmp_path, "printing.py", PRINTING_JOB), str(stop))

    # While it runs: what it printed so far, on the same streams, each line once, in order.
    now = wait_until(lambda: (d := logs(cluster, job_id)).returncode == 0
                     and len(numbered(d.stdout, "OUT")) >= 20 and d, 60, what="20 lines")
    out, err = numbered(now.stdout, "OUT"), numbered(now.stderr, "ERR")
    assert out == list(range(len(out))) and err == list(range(len(err)))
    assert "DONE" not in now.stdout

    last = logs(cluster, job_id, "--tail", "2")
    assert last.returncode == 0, last.stderr
    tail = last.stdout.splitlines()
    assert len(tail) == 2 and numbered(last.stdout, "OUT") == [int(tail[0].split()[1]),
                                                               int(tail[0].split()[1]) + 1]
    assert int(tail[0].split()[1]) >= out[-1] - 1
    assert len(last.stderr.splitlines()) == 2

    # Followed from the last 5 lines on until the job ends (and then `logs -f` ends).
    follower = logs_async(cluster, job_id, "--follow", "--tail", "5")
    wait_until(lambda: len(numbered(follower.stdout, "OUT")) > 25, 60,
               what="the follower to print 25 lines")
    assert follower.proc.poll() is None
    stop.write_text("")
    assert follower.wait(60) == 0, follower.stderr
    followed_out = follower.stdout
    seen = numbered(followed_out, "OUT")
    assert len(seen) > 25 and seen == list(range(seen[0], seen[0] + len(seen)))
    assert followed_out.endswith("DONE\n")

    # After it ended: all of it, as the follower saw its end.
    wait_until(lambda: cluster.job(job_id)["state"] == "FAILED", 30, what="the job's end")
    ended = logs(cluster, job_id)
    assert ended.returncode == 0, ended.stderr
    everything = numbered(ended.stdout, "OUT")
    assert everything == list(range(len(everything))) and ended.stdout.endswith("DONE\n")
    assert followed_out.endswith("".join(f"OUT {i}\n" for i in seen) + "DONE\n")
    assert everything[-len(seen):] == seen
    assert numbered(ended.stderr, "ERR") == list(range(len(numbered(ended.stderr, "ERR"))))
    assert logs(cluster, job_id, "--tail", "1").stdout == "DONE\n"
    assert logs(cluster, job_id, "--tail", "0").stdout == ""

    # A new service on the same work dir serves the same output.
    port = cluster.port
    cluster.crash_driver()
    cluster.start_driver(port=port, extra=["--ui-port", "-1"])
    assert logs(cluster, job_id).stdout == ended.stdout

    unknown = logs(cluster, "job-9999")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith(f"sluicegate logs: the driver service at {cluster.address} "
                                     "has no job job-9999 (no such job in its work dir"), unknown.stderr


def test_logs_show_the_newest_output_within_the_cap_and_say_what_went(own_cluster, tmp_path):
    cluster = own_cluster.start_driver(extra=["--ui-port", "-1", "--job-output-limit", "256k"])
    job_id = detach(cluster, write_job(tmp_path, "flood.py", FLOOD_JOB))
    wait_until(lambda: cluster.job(job_id)["state"] == "FINISHED", 60, what="the job's end")
    done = logs(cluster, job_id)
    assert done.returncode == 0, done.stderr
    dropped = re.fullmatch(r"\n\[sluicegate logs: (\d+) bytes of the job's stdout are no longer "
                           r"kept \(the driver's --job-output-limit\)\]\n", done.stderr)
    assert dropped, done.stderr
    assert done.stdout.endswith("00019999 " + "x" * 99 + "\nTHE END\n")
    kept = len(done.stdout.encode())
    assert int(dropped.group(1)) + kept == 20000 * 109 + len("THE END\n")
    assert kept <= 256 * 1024 + 64 * 1024  # the cap, in 4 segments of 64 KiB
    numbers = [int(line[:8]) for line in done.stdout.splitlines()[1:-1]]
    assert numbers == list(range(numbers[0], 20000))
    segments = list((cluster.base / "driver-work" / "jobs" / job_id / "output").glob("stdout.*"))
    assert len(segments) == 4


# -- the executors' logs -----------------------------------------------------------------------

HEADER = re.compile(r"^==> executor (\S+) on worker (\S+), (stdout|stderr) <==$", re.M)


def sections(text: str) -> list[tuple[str, str, str, str]]:
    """``logs --executors`` output as (executor, worker, stream, text) in order."""
    found = []
    marks = list(HEADER.finditer(text))
    for mark, following in zip(marks, marks[1:] + [None]):
        body = text[mark.end() + 1:following.start() if following else len(text)]
        found.append((mark.group(1), mark.group(2), mark.group(3), body.rstrip("\n") + "\n"))
    return found


def test_executor_logs_while_the_job_runs_followed_and_capped(own_cluster, tmp_path):
    cluster = own_cluster.start_driver(extra=["--ui-port", "-1"])
    cluster.start_worker("w1", cores=2, extra=["--executor-log-limit", "64k"])
    stop1, stop2 = tmp_path / "stop1", tmp_path / "stop2"
    job_id = detach(cluster, write_job(tmp_path, "chatty.py", CHATTY_JOB), str(stop1), str(stop2))
    wait_until(lambda: "READY" in logs(cluster, job_id).stdout, 90, what="the first action")

    done = logs(cluster, job_id, "--executors")
    assert done.returncode == 0, done.stderr
    parts = sections(done.stdout)
    assert parts and {worker for _, worker, _, _ in parts} == {"w1"}
    assert all(executor.startswith(f"{job_id}-exec-") for executor, _, _, _ in parts)
    stdout_lines = "".join(body for _, _, stream, body in parts if stream == "stdout")
    stderr_lines = "".join(body for _, _, stream, body in parts if stream == "stderr")
    assert sorted(numbered(stdout_lines, "EXEC")) == list(range(8))  # each record once
    assert sorted(numbered(stderr_lines, "EXECERR")) == list(range(8))
    assert "EXECERR" not in stdout_lines and "EXEC " not in stderr_lines

    last = logs(cluster, job_id, "--executors", "--tail", "1")
    assert last.returncode == 0, last.stderr
    for executor, _, stream, body in sections(last.stdout):
        assert len(body.splitlines()) == 1, (executor, stream, last.stdout)
    assert {(e, s) for e, _, s, _ in sections(last.stdout)} == {(e, s) for e, _, s, _ in parts}

    # Followed: what there is, then what comes, until the job ends.
    follower = logs_async(cluster, job_id, "--executors", "--follow")
    wait_until(lambda: len(numbered(follower.stdout, "EXEC")) == 8, 60, what="the follower")
    stop1.write_text("")
    wait_until(lambda: len(numbered(follower.stdout, "LATE")) == 4, 60,
               what="the second action's lines reaching the follower")
    assert follower.proc.poll() is None
    stop2.write_text("")
    assert follower.wait(90) == 0, follower.stderr
    followed = follower.stdout
    body = "".join(b for _, _, stream, b in sections(followed) if stream == "stdout")
    assert sorted(numbered(body, "EXEC")) == list(range(8))
    assert sorted(numbered(body, "LATE")) == list(range(4))
    wait_until(lambda: cluster.job(job_id)["state"] == "FINISHED", 60, what="the job's end")

    # Each executor's files stay within the cap (4 segments of 16 KiB) ...
    logs_dir = cluster.base / "worker-work" / "sluicegate-worker" / "logs" / "w1" / job_id
    flooded = 0
    for stream_file in ("stdout", "stderr"):
        for executor_dir in logs_dir.iterdir():
            files = list(executor_dir.glob(f"{stream_file}.*"))
            assert len(files) <= 4 and sum(f.stat().st_size for f in files) <= 64 * 1024
            flooded += stream_file == "stdout" and any(f.name != "stdout.0000000000000000" for f in files)
    assert flooded >= 1
    # ... and reading them back says what is no longer kept, then the newest lines in order.
    after = logs(cluster, job_id, "--executors")
    assert after.returncode == 0, after.stderr
    notes = re.findall(r"^\[(\d+) bytes no longer kept by the worker\]$", after.stdout, re.M)
    assert len(notes) == flooded
    tails = numbered(after.stdout, "TAIL")
    assert tails and set(tails) <= {0, 1}
    for _, _, stream, text in sections(after.stdout):
        floods = [(int(line.split()[1]), int(line.split()[2])) for line in text.splitlines()
                  if line.startswith("FLOOD ")]
        for (task_a, n_a), (task_b, n_b) in zip(floods, floods[1:]):
            assert (task_a == task_b and n_b == n_a + 1) or (task_a != task_b and n_b == 0)


def test_logs_of_a_job_the_service_does_not_know(own_cluster):
    cluster = own_cluster.start_driver(extra=["--ui-port", "-1"])
    for extra in ([], ["--executors"]):
        done = logs(cluster, "job-0042", *extra)
        assert done.returncode == 1
        assert done.stderr.startswith(f"sluicegate logs: the driver service at {cluster.address} "
                                      "has no job job-0042"), done.stderr
        assert "Traceback" not in done.stderr


# -- the files behind them ---------------------------------------------------------------------

def test_last_lines_are_found_across_segments_as_tail_counts_them(tmp_path):
    from sluicegate.common.segment_files import SegmentWriter, start_of_last_lines

    for text in (b"", b"a\n", b"no newline", b"a\nb\nc\n", b"a\nb\nlast without newline",
                 b"\n\n\n", b"".join(b"line %d %s\n" % (i, b"y" * (i % 7)) for i in range(300))):
        directory = tmp_path / str(abs(hash(text)))
        directory.mkdir()
        writer = SegmentWriter(directory, "stdout", segment_bytes=13, segments=10_000)
        for start in range(0, len(text), 5):
            writer.write(text[start:start + 5])
        writer.close()
        for lines in (0, 1, 2, 3, 50, 1000):
            start = start_of_last_lines(directory, "stdout", lines)
            expected = b"".join(text.splitlines(keepends=True)[-lines:]) if lines else b""
            assert text[start:] == expected, (text[:40], lines)


def test_a_worker_keeps_the_executor_logs_of_its_newest_jobs(tmp_path):
    import os

    from sluicegate.worker.daemon import KEEP_JOB_LOGS, WorkerDaemon

    daemon = WorkerDaemon("tcp://127.0.0.1:1", b"a-secret-of-16-bytes-or-more", 1, 1 << 30, tmp_path, "127.0.0.1",
                          "127.0.0.1", "w-keep")
    try:
        for number in range(KEEP_JOB_LOGS + 5):
            job_dir = daemon.logs_dir / f"job-{number:04d}" / f"job-{number:04d}-exec-1"
            job_dir.mkdir(parents=True)
            (job_dir / "stdout.0000000000000000").write_text("x\n")
            os.utime(job_dir.parent, (1_000_000 + number, 1_000_000 + number))
        daemon._executor_log_writers("job-new", "job-new-exec-1")  # a new job's first executor
        kept = sorted(p.name for p in daemon.logs_dir.iterdir())
        assert len(kept) == KEEP_JOB_LOGS and "job-new" in kept
        assert kept[0] == f"job-{6:04d}"  # the oldest went
    finally:
        daemon.transport.close()
