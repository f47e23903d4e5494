"""Nothing unauthenticated gets into a cluster, and nothing malformed takes it down.

* a worker or submitter holding another secret is refused (with a message
  that says so) and nothing runs;
* a peer without CURVE keys that sends a pickle which would create a file
  when unpickled, to the driver service, to an executor's block port and to
  a job's driver, never gets it unpickled, and every service keeps serving;
* services refuse to listen beyond loopback without a secret, and refuse a
  secret file other users can read; so does a local-mode application's driver;
* raw TCP that is not ZeroMQ at all (random bytes, HTTP, half a ZMTP
  greeting, a greeting without CURVE) is dropped by every port;
* garbage sent *with* the right keys (random bytes, truncated msgpack, wrong
  magic or version, wrong field types) is dropped without harm.
"""
from __future__ import annotations

import os
import pickle
import random
import socket
import struct
import subprocess
import time
from pathlib import Path

import msgpack
import psutil
import pytest
import zmq

from cluster_harness import (
    EXAMPLES, SLUICEGATE, LocalCluster, TextServer, free_port, listening_ports, summed_counts,
    wait_until)
from sluicegate.common.auth import SecurityError, new_secret
from sluicegate.common.protocol import ProtocolError, decode, encode
from sluicegate.common.protocol.cluster import (
    ClusterStatus, ClusterStatusRequest, KillJob, Ping, WorkerRegistered)
from sluicegate.common.protocol.records import _BY_CODE, MAGIC, PROTOCOL_VERSION
from sluicegate.common.transport import Transport

BATCH_JOB = """\
from sluicegate.driver import SparkContext
sc = SparkContext(appName="batch")
print("SUM", sc.parallelize(range(100), 4).sum())
sc.stop()
"""


class CreatesFile:
    """Unpickling this creates ``path``: proof that something was unpickled."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def secret_file(path: Path, mode: int = 0o600) -> Path:
    path.write_bytes(new_secret())
    path.chmod(mode)
    return path


def word_lines(n: int) -> tuple[list[str], dict]:
    return [f"key{i % 4} other" for i in range(n)], {
        **{f"key{k}": len(range(k, n, 4)) for k in range(4)}, "other": n}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("secure"))
    try:
        c.start_driver()
        c.start_worker("w1", cores=2)
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def streaming_job(cluster):
    """A word count that keeps running (its source trickles) while we attack it."""
    lines, expected = word_lines(4000)
    server = TextServer(lines, spread_s=10.0)
    sub = cluster.submit_async(EXAMPLES / "network_wordcount.py", "127.0.0.1", str(server.port))
    job_id = sub.job_id()
    job = wait_until(lambda: (j := cluster.polled_job(job_id))["executors"] and j, 60,
                     what="the job's executors")
    executor = wait_until(lambda: cluster.executor_pids("w1", job_id), 30, what="executors")[0]
    yield {"job_id": job_id, "sub": sub, "server": server, "expected": expected,
           "driver_port": int(job["driver_endpoint"].rsplit(":", 1)[1]),
           "block_port": wait_until(lambda: listening_ports(executor), 30, what="a block port")[0]}
    sub.interrupt()
    sub.wait(60)
    server.close()


def assert_still_serving(cluster: LocalCluster, job: dict) -> None:
    """The service answers, the worker is there, the job keeps counting."""
    assert cluster.driver.poll() is None and cluster.workers["w1"].poll() is None
    assert cluster.worker_alive("w1")
    assert cluster.polled_job(job["job_id"])["state"] == "RUNNING"
    sub = job["sub"]
    before = len(sub.stdout)
    wait_until(lambda: len(sub.stdout) > before, 30, what="more output from the job")


# -- wrong secrets ---------------------------------------------------------------------

def test_submit_with_another_secret_is_refused(cluster, tmp_path):
    jobs_before = len(cluster.poll()["jobs"])
    script = tmp_path / "job.py"
    script.write_text(BATCH_JOB)
    other = secret_file(tmp_path / "other-secret")
    started = time.monotonic()
    done = _run_cli(cluster, ["submit", "--driver", cluster.address, "--secret-file", str(other),
                              str(script)])
    assert done.returncode == 1
    assert "refused the connection: it does not use this secret" in done.stderr, done.stderr
    assert time.monotonic() - started < 25  # told at once, not after a timeout
    assert len(cluster.poll()["jobs"]) == jobs_before  # nothing ran

    status = _run_cli(cluster, ["status", "--driver", cluster.address, "--secret-file", str(other)])
    assert status.returncode == 1 and "does not use this secret" in status.stderr


def test_worker_with_another_secret_never_registers(cluster, tmp_path):
    other = secret_file(tmp_path / "other-secret")
    intruder = cluster.start_worker("intruder", cores=1, wait=False,
                                    extra=["--secret-file", str(other)])
    wait_until(lambda: "does not use this worker's secret" in cluster.log_text("intruder.log"),
               30, what="the worker to say it was refused")
    assert intruder.poll() is None  # it keeps trying (the driver may come back with its secret)
    assert "intruder" not in {w["worker_id"] for w in cluster.poll()["workers"]}
    intruder.terminate()
    assert intruder.wait(30) == 0


def _run_cli(cluster: LocalCluster, args: list[str]):
    return subprocess.run([SLUICEGATE, *args], env=cluster.env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


# -- no secret, no keys ----------------------------------------------------------------------

def test_an_unauthenticated_pickle_is_never_unpickled(cluster, streaming_job, tmp_path):
    targets = {"service": cluster.port, "block service": streaming_job["block_port"],
               "job driver": streaming_job["driver_port"]}
    marks = {}
    context = zmq.Context()
    try:
        for name, port in targets.items():
            mark = marks[name] = tmp_path / f"pwned-{name.replace(' ', '-')}"
            evil = pickle.dumps(CreatesFile(mark))
            sock = context.socket(zmq.DEALER)  # no CURVE keys at all
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(f"tcp://127.0.0.1:{port}")
            for frames in ([evil], [b"", evil], [encode(ClusterStatusRequest())[0], evil]):
                sock.send_multipart(frames)
            assert not sock.poll(1000), f"the {name} answered an unauthenticated peer"
            sock.close()
    finally:
        context.destroy(linger=0)
    assert not [name for name, mark in marks.items() if mark.exists()]
    assert_still_serving(cluster, streaming_job)
    assert not [name for name, mark in marks.items() if mark.exists()]


def test_no_listening_beyond_loopback_without_a_secret(tmp_path):
    env = {**os.environ, "SLUICEGATE_HOME": str(tmp_path / "home")}
    env.pop("SLUICEGATE_SECRET_FILE", None)
    for args in (["driver", "--host", "0.0.0.0", "--port", str(free_port())],
                 ["driver", "--host", "10.11.12.13", "--port", str(free_port())],
                 ["driver", "--host", "", "--port", str(free_port())]):  # "": everywhere
        done = subprocess.run([SLUICEGATE, *args], env=env, capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)
        assert done.returncode == 2, done.stderr
        assert "without a shared secret" in done.stderr
        assert "--secret-file FILE (chmod 600)" in done.stderr
    assert not (tmp_path / "home" / "secret").exists()  # refused before making one


def test_a_worker_serving_blocks_beyond_loopback_needs_a_secret(cluster):
    done = _run_cli(cluster, ["worker", "--driver", cluster.address, "--host", "0.0.0.0",
                              "--cores", "1"])
    assert done.returncode == 2
    assert "--secret-file" in done.stderr


def test_a_secret_file_others_can_read_is_refused(cluster, tmp_path):
    loose = secret_file(tmp_path / "loose-secret", mode=0o644)
    for args in (["driver", "--port", str(free_port())],
                 ["worker", "--driver", cluster.address],
                 ["status", "--driver", cluster.address]):
        done = _run_cli(cluster, [*args, "--secret-file", str(loose)])
        assert done.returncode == 2, done.stderr
        assert f"chmod 600 {loose}" in done.stderr


def local_executors() -> set[int]:
    """Executor processes of a local-mode context in this process (its direct children)."""
    found = set()
    for child in psutil.Process().children():
        try:
            if "sluicegate.worker.executor" in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def test_a_local_driver_beyond_loopback_needs_a_secret(own_context):
    before = local_executors()
    for address in ("0.0.0.0", "10.11.12.13", ""):
        with pytest.raises(SecurityError) as refused:
            own_context("local[1]", spark__driver__bindAddress=address, spark__ui__enabled="false")
        message = str(refused.value)
        assert "spark.driver.bindAddress" in message and "without a shared secret" in message
        assert "spark.authenticate.secret" in message
        assert "spark.authenticate.secret.file" in message
    assert local_executors() <= before  # refused before any executor was started
    # With a secret set on purpose it may listen everywhere.
    sc = own_context("local[1]", spark__driver__bindAddress="0.0.0.0", spark__ui__enabled="false",
                     spark__authenticate__secret=new_secret().decode())
    assert sc.parallelize(range(10), 2).sum() == 45
    sc.stop()


# -- raw TCP that is not ZeroMQ ---------------------------------------------------------------

ZMTP_SIGNATURE = b"\xff" + b"\x00" * 8 + b"\x7f"


def zmtp_greeting(mechanism: bytes) -> bytes:
    """A whole ZMTP 3.0 greeting: signature, version, mechanism, as-server, filler."""
    return ZMTP_SIGNATURE + b"\x03\x00" + mechanism.ljust(20, b"\x00") + b"\x00" + b"\x00" * 31


def raw_attacks(rng: random.Random) -> dict[str, bytes]:
    return {
        "random bytes": rng.randbytes(8192),
        "an HTTP request": b"GET /api/v1/jobs HTTP/1.1\r\nHost: driver\r\n\r\n",
        "an HTTP upload": b"POST / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n" + rng.randbytes(2000),
        "half a greeting": ZMTP_SIGNATURE + b"\x03",
        "a NULL greeting and junk": zmtp_greeting(b"NULL") + rng.randbytes(512),
        "a CURVE greeting and a bogus HELLO": zmtp_greeting(b"CURVE")
        + b"\x04" + struct.pack(">Q", 200) + b"\x05HELLO" + rng.randbytes(194),
        "a huge frame length": zmtp_greeting(b"CURVE") + b"\x06" + struct.pack(">Q", 2**62),
        "zeros": b"\x00" * 65536,
    }


def test_raw_tcp_garbage_on_every_port_harms_nothing(cluster, streaming_job, tmp_path):
    targets = {"service": cluster.port, "job driver": streaming_job["driver_port"],
               "executor block service": streaming_job["block_port"]}
    logs_before = {name: cluster.log_text(name).count("Traceback") for name in ("driver.log", "w1.log")}
    held = []  # connections left open mid-handshake while the cluster works on
    try:
        for name, port in targets.items():
            for what, data in raw_attacks(random.Random(port)).items():
                conn = socket.create_connection(("127.0.0.1", port), timeout=10)
                try:
                    conn.sendall(data)
                except OSError:
                    pass  # the peer hung up on us already: fine
                if what == "half a greeting":
                    held.append(conn)
                else:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    conn.close()  # a reset, not a goodbye
        assert_still_serving(cluster, streaming_job)
    finally:
        for conn in held:
            conn.close()
    assert all(p.poll() is None for p in (cluster.driver, cluster.workers["w1"]))
    for name, count in logs_before.items():
        assert cluster.log_text(name).count("Traceback") == count, cluster.log_text(name)[-3000:]
    script = tmp_path / "job.py"
    script.write_text(BATCH_JOB)
    done = cluster.submit(script, timeout_s=120)
    assert done.returncode == 0, done.stderr
    assert "SUM 4950" in done.stdout


# -- garbage with the right keys ------------------------------------------------------------------

def fuzz_messages(rng: random.Random, mark: Path) -> tuple[list[list[bytes]], list[str]]:
    """Frame lists that are not valid messages, each checked by ``decode`` to be refused,
    and why each was refused."""
    real = [encode(ClusterStatus([{"worker_id": "w1", "cores": 2}], [{"job_id": "job-0001"}]))[0],
            encode(KillJob("job-0001"))[0], encode(Ping(12345))[0]]
    codes = sorted(_BY_CODE)

    def header(magic=MAGIC, version=PROTOCOL_VERSION, code=None, fields=None, rest=None) -> bytes:
        """A real message's header with some of its parts replaced."""
        parts = msgpack.unpackb(encode(Ping(1))[0])
        parts[:4] = [magic, version, parts[2] if code is None else code,
                     parts[3] if fields is None else fields]
        if rest is not None:
            parts[4:] = rest
        return msgpack.packb(parts)

    def junk_value(depth=0):
        choice = rng.randrange(8 if depth < 3 else 6)
        return [lambda: rng.randrange(-2**63, 2**63), lambda: rng.random() * 1e9,
                lambda: rng.randbytes(rng.randrange(20)), lambda: "é" * rng.randrange(5),
                lambda: None, lambda: rng.random() < 0.5,
                lambda: [junk_value(depth + 1) for _ in range(rng.randrange(4))],
                lambda: {rng.randrange(9): junk_value(depth + 1)}][choice]()

    makers = [
        lambda: [rng.randbytes(rng.randrange(0, 300))],
        lambda: [rng.choice(real)[:rng.randrange(1, 12)]],  # truncated msgpack
        lambda: [header(magic=MAGIC + rng.randrange(1, 99))],
        lambda: [header(version=PROTOCOL_VERSION + rng.randrange(1, 9))],
        lambda: [header(code=rng.randrange(1000, 2000))],
        lambda: [header(code=rng.choice(codes),  # wrong field types or counts
                        fields=[junk_value() for _ in range(rng.randrange(8))])],
        lambda: [header(rest=[junk_value() for _ in range(rng.randrange(3))])],
        lambda: [msgpack.packb(junk_value())],
        lambda: [header(), rng.randbytes(10)],  # a payload on a message without one
        lambda: [pickle.dumps(CreatesFile(mark))],
        lambda: [header(code=65, fields=["j", "e", 5, "1m", []]), pickle.dumps(CreatesFile(mark))],
        lambda: [b"\x91" * 5000 + b"\x90"],  # deeply nested arrays
        lambda: [],  # identity only: no body at all
    ]
    messages, refusals = [], []
    while len(messages) < 400:
        frames = rng.choice(makers)()
        try:
            decode(frames)
        except ProtocolError as exc:
            messages.append(frames)
            refusals.append(str(exc))
    return messages, refusals


def test_fuzzed_frames_with_the_right_keys_harm_nothing(cluster, streaming_job, tmp_path):
    mark = tmp_path / "pwned-by-fuzz"
    messages, refusals = fuzz_messages(random.Random(5), mark)
    for kind in ("not msgpack", "bad magic", "protocol version", "unknown record code",
                 "expected", "carries no payload"):  # every check of the decoder is hit
        assert any(kind in why for why in refusals), kind
    transport = Transport(cluster.secret)
    try:
        for port in (cluster.port, streaming_job["driver_port"], streaming_job["block_port"]):
            sock = transport.connect(zmq.DEALER, f"tcp://127.0.0.1:{port}")
            for frames in messages:
                sock.send_multipart(frames or [b""])
            # Valid messages a port does not expect are ignored as well.
            sock.send_multipart(encode(WorkerRegistered("x", 1.0, 1.0)))
            sock.send_multipart(encode(ClusterStatusRequest()))
            time.sleep(0.5)
            sock.close(linger=1000)
    finally:
        transport.close()
    assert_still_serving(cluster, streaming_job)
    assert not mark.exists()
    # Every frame got through the handshake and was read, and dropped, by its receiver.
    assert cluster.log_text("driver.log").count("dropped a malformed message") >= len(messages)
    assert cluster.log_text("w1.log").count("dropped a malformed block request") >= len(messages)
    assert streaming_job["sub"].stderr.count("dropped a malformed message") >= len(messages)

    # A real job still works, and so does the job under attack.
    script = tmp_path / "job.py"
    script.write_text(BATCH_JOB)
    done = cluster.submit(script, timeout_s=120)
    assert done.returncode == 0, done.stderr
    assert "SUM 4950" in done.stdout
    job = streaming_job
    assert job["server"].finished.wait(60)
    wait_until(lambda: summed_counts(job["sub"].stdout) == job["expected"], 60,
               what="the attacked job's counts")
