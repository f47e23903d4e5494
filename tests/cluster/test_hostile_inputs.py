"""Hostile inputs cannot take a process's memory, threads or time, and bad input leaves a trace.

* raw TCP connections that open a ZMTP handshake asking for CURVE and then
  announce a 1 GiB frame and send data get nothing buffered, on every port
  (an application's driver, its executors' block services, the cluster
  service); a flood of connections that stay in their handshake is capped per
  port and closed after the handshake timeout; real work goes on meanwhile;
* a socketTextStream line of 120 MB arrives in time linear in its length, and a
  line longer than ``spark.sluicegate.receiver.maxLineBytes`` is dropped,
  counted and named in a warning while the lines after it arrive;
* invalid UTF-8 from a socket or a text file still decodes to U+FFFD (as in
  PySpark) but is counted: StreamInputInfo metadata, the status API, the
  Prometheus metrics and one warning per source per batch (per job in batch);
* the temporary file of a write-ahead-log write cut short by SIGKILL is
  removed when the recovered driver opens the log;
* idle HTTP connections to the status pages are closed after a timeout and
  capped, and the pages keep answering while they pile up.

Everything runs on loopback, in real processes, with bounded memory and time.
"""
from __future__ import annotations

import json
import logging
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
import zmq

from cluster_harness import LocalCluster, descendants, kill_tree, listening_ports
from conftest import executor_processes
from sluicegate.common.auth import new_secret
from sluicegate.common.protocol import ProtocolError
from sluicegate.common.protocol.block_service import BlocksReply
from sluicegate.common.transport import MAX_FRAME_BYTES, Transport, recv_within, send
from sluicegate.driver import StreamingContext, StreamingListener
from streaming_harness import Collector, ManualBatches
from waiting import wait_until

MiB = 1 << 20

TARGET_APP = """\
import json, os, sys, time
from sluicegate.driver import SparkConf, SparkContext
conf = SparkConf().setMaster("local[2]").setAppName("hostile-target")
for pair in sys.argv[2:]:
    key, value = pair.split("=", 1)
    conf.set(key, value)
sc = SparkContext(conf=conf)
print(json.dumps({"driver_port": sc._runtime.endpoint.port, "ui": sc.uiWebUrl}), flush=True)
done = 0
while not os.path.exists(sys.argv[1]):
    assert sc.parallelize(range(1000), 2).map(lambda x: x * 2).sum() == 999000
    done += 1
    print("JOB", done, flush=True)
    time.sleep(0.1)
sc.stop()
"""


class TargetApp:
    """A local[2] application in its own process that runs a small job again and again."""

    def __init__(self, tmp_path: Path, *settings: str):
        script = tmp_path / "target_app.py"
        script.write_text(TARGET_APP)
        self.stop_file = tmp_path / "stop-target"
        self.log = tmp_path / "target.log"
        self._log = open(self.log, "wb")  # noqa: SIM115 - open while the app runs
        self.proc = subprocess.Popen([sys.executable, str(script), str(self.stop_file), *settings],
                                     stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL)
        self.lines: list[str] = []
        first = self.proc.stdout.readline()
        if not first:
            self.close()
            raise AssertionError("the target app did not start:\n" + self.log.read_text())
        self.info = json.loads(first)
        threading.Thread(target=self._read, daemon=True).start()
        self.executors = wait_until(lambda: len(executor_processes(self.proc.pid)) == 2
                                    and executor_processes(self.proc.pid), 60, what="two executors")
        self.block_ports = [wait_until(lambda: listening_ports(e.pid), 30, what="a block port")[0]
                            for e in self.executors]
        self.wait_for_jobs(2, 60)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.decode(errors="replace"))

    @property
    def jobs_done(self) -> int:
        return sum(line.startswith("JOB") for line in self.lines)

    def wait_for_jobs(self, more: int, timeout_s: float) -> None:
        target = self.jobs_done + more
        wait_until(lambda: self.proc.poll() is not None or self.jobs_done >= target, timeout_s,
                   what=f"{more} more jobs of the target app")
        assert self.proc.poll() is None, self.log.read_text()[-3000:]

    def close(self) -> None:
        self.stop_file.touch()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            kill_tree([psutil.Process(self.proc.pid), *descendants(self.proc.pid)])
        self._log.close()


def rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


def established(pid: int, port: int) -> int:
    """Connections the process ``pid`` has open on its listening ``port``."""
    return sum(1 for c in psutil.Process(pid).net_connections(kind="tcp")
               if c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)


class PeakRss:
    """The highest RSS each process reaches while the block runs, over its RSS before."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self.before = {name: rss(pid) for name, pid in pids.items()}
        self.peak = dict(self.before)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], rss(pid))

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def growth_mib(self) -> dict[str, float]:
        return {name: round((self.peak[name] - self.before[name]) / MiB, 1) for name in self.pids}


# -- 4. unauthenticated peers cannot take memory ----------------------------------------------------

ZMTP_SIGNATURE = b"\xff" + b"\x00" * 8 + b"\x7f"
CURVE_GREETING = ZMTP_SIGNATURE + b"\x03\x00" + b"CURVE".ljust(20, b"\x00") + b"\x00" * 32


def frame_header(size: int) -> bytes:
    """A ZMTP long command frame of ``size`` bytes (what a CURVE HELLO would travel in)."""
    return b"\x06" + struct.pack(">Q", size)


def announce_and_send(port: int, announced: int, send_bytes: int, hold_s: float) -> None:
    """Open a handshake, announce a frame of ``announced`` bytes, send ``send_bytes`` of it
    in 1 MiB pieces (until the peer hangs up), and hold the connection ``hold_s``."""
    try:
        conn = socket.create_connection(("127.0.0.1", port), timeout=30)
    except OSError:
        return
    try:
        conn.sendall(CURVE_GREETING + frame_header(announced))
        piece = b"\x5a" * MiB
        sent = 0
        while sent < send_bytes:
            conn.sendall(piece[:min(MiB, send_bytes - sent)])
            sent += MiB
        time.sleep(hold_s)
    except OSError:
        pass  # hung up on: what should happen
    finally:
        conn.close()


def test_frames_announced_before_authentication_are_not_buffered(tmp_path):
    cluster = LocalCluster(tmp_path / "cluster")
    app = None
    try:
        cluster.start_driver()
        app = TargetApp(tmp_path)
        targets = {"service": (cluster.driver.pid, cluster.port),
                   "app driver": (app.proc.pid, app.info["driver_port"])}
        for i, (executor, port) in enumerate(zip(app.executors, app.block_ports)):
            targets[f"executor {i}"] = (executor.pid, port)
        jobs_before = app.jobs_done
        # Six connections per port, each announcing 1 GiB and sending 40 MiB of it: before
        # the fix every process buffered all of it (240 MiB each) until the handshake
        # timed out 30 s later.
        attackers = [threading.Thread(target=announce_and_send, args=(port, 1 << 30, 40 * MiB, 2.0))
                     for _, port in targets.values() for _ in range(6)]
        with PeakRss({name: pid for name, (pid, _) in targets.items()}) as memory:
            for thread in attackers:
                thread.start()
            for thread in attackers:
                thread.join(120)
        growth = memory.growth_mib()
        print("RSS growth (MiB) under 6 x 40 MiB announced-frame connections per port:", growth)
        assert all(g < 64 for g in growth.values()), growth
        app.wait_for_jobs(3, 60)  # the application kept working...
        assert app.jobs_done > jobs_before
        assert cluster.ping()  # ...and the service answers
    finally:
        if app is not None:
            app.close()
        cluster.close()


def test_connections_stuck_in_their_handshake_are_capped_and_closed(tmp_path):
    app = TargetApp(tmp_path, "spark.sluicegate.network.maxPendingConnections=16",
                    "spark.sluicegate.network.handshakeTimeout=3s")
    held: list[socket.socket] = []
    try:
        port = app.info["driver_port"]
        legit = established(app.proc.pid, port)  # the executors' connections
        before = rss(app.proc.pid)
        started = time.monotonic()
        almost_a_frame = MAX_FRAME_BYTES - 1024  # as much as one connection may send
        for _ in range(200):
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=10)
                conn.sendall(CURVE_GREETING + frame_header(almost_a_frame) + b"y" * (almost_a_frame - 1))
                held.append(conn)
            except OSError:
                pass  # refused at once: what the cap does
        time.sleep(0.5)
        open_now = established(app.proc.pid, port) - legit
        grown_mib = (rss(app.proc.pid) - before) / MiB
        print(f"200 connections mid-handshake: {open_now} held open, RSS +{grown_mib:.1f} MiB")
        assert open_now <= 16 + 4, open_now  # the cap, and a few closing right now
        assert grown_mib < 32
        app.wait_for_jobs(3, 60)
        # None of them outlives the handshake timeout (3 s; before the fix: 30 s).
        wait_until(lambda: established(app.proc.pid, port) <= legit, 20,
                   what="the handshake timeout to close the held connections")
        assert time.monotonic() - started < 20
        app.wait_for_jobs(3, 60)
    finally:
        for conn in held:
            conn.close()
        app.close()


def test_legitimate_messages_of_any_size_still_travel(own_context):
    """Frames are capped, messages are not: big task results, broadcast values,
    parallelized data and input blocks go in pieces."""
    secret = new_secret()
    server, client = Transport(secret), Transport(secret)
    try:
        router, port = server.bind(zmq.ROUTER, "127.0.0.1")
        dealer = client.connect(zmq.DEALER, f"tcp://127.0.0.1:{port}")
        sizes = [0, 5, MAX_FRAME_BYTES, MAX_FRAME_BYTES + 1, 3 * MAX_FRAME_BYTES + 7, 64 * MiB]
        payload = [bytes([i]) * n for i, n in enumerate(sizes)]
        payload[-1] = bytearray(payload[-1])  # a buffer its owner could change is copied
        send(dealer, BlocksReply(7, [True] * len(sizes), payload=payload))
        payload[-1][:3] = b"new"
        _, got = recv_within(router, 60, routed=True)
        assert [len(f) for f in got.payload] == sizes
        assert got.payload[:-1] == payload[:-1] and got.payload[-1] == bytes([5]) * (64 * MiB)
        # A frame over the limit from a peer that does not cut it is never delivered.
        dealer.send(b"x" * (MAX_FRAME_BYTES + 4096))
        assert recv_within(router, 2, routed=True) is None
        # A list of pieces that does not fit the frames is garbage.
        dealer = client.connect(zmq.DEALER, f"tcp://127.0.0.1:{port}")
        dealer.send_multipart([b"\xc1" + b"\x92\x01\x91\x92\x00\x05", b"a", b"b"])
        with pytest.raises(ProtocolError, match="frame pieces"):
            recv_within(router, 30, routed=True)
    finally:
        server.close()
        client.close()

    sc = own_context("local[2]", spark__sluicegate__progress="false")
    big = sc.broadcast(b"b" * (40 * MiB))
    results = sc.parallelize([b"p" * (20 * MiB), b"q" * (20 * MiB)], 2) \
        .map(lambda data: (len(data), len(big.value), (data[:1] * (30 * MiB)))).collect()
    assert [(n, b, len(r), r[:1]) for n, b, r in results] == \
        [(20 * MiB, 40 * MiB, 30 * MiB, b"p"), (20 * MiB, 40 * MiB, 30 * MiB, b"q")]


# -- 6. long lines ------------------------------------------------------------------------------------

class ByteServer:
    """Sends ``payload`` to its first connection, then keeps that connection open."""

    def __init__(self, payload: bytes):
        self.payload = payload
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sent = threading.Event()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        self._conns.append(conn)
        try:
            conn.sendall(self.payload)
        except OSError:
            return
        self.sent.set()

    def close(self) -> None:
        for conn in self._conns:
            conn.close()
        self.sock.close()


class InputInfos(StreamingListener):
    """Every completed batch's StreamInputInfo metadata, by stream."""

    def __init__(self):
        self.metadata: list[dict] = []

    def onBatchCompleted(self, batchCompleted) -> None:
        for stream_id, info in batchCompleted.batchInfo().streamIdToInputInfo().items():
            if info.metadata():
                self.metadata.append({"stream": stream_id, **info.metadata()})

    def total(self, key: str) -> int:
        return sum(m.get(key, 0) for m in self.metadata)


def metrics_text(sc) -> str:
    with urllib.request.urlopen(sc.uiWebUrl + "/metrics", timeout=30) as reply:
        return reply.read().decode()


def metric(text: str, name: str, labels: str) -> float:
    found = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def socket_stream(own_context, payload: bytes, **settings):
    sc = own_context("local[2]", spark__sluicegate__progress="false", **settings)
    server = ByteServer(payload)
    ssc = StreamingContext(sc, 0.5)
    infos = InputInfos()
    ssc.addStreamingListener(infos)
    return sc, ssc, server, infos


def test_a_long_line_takes_time_linear_in_its_length(own_context):
    line_bytes = 120 * MiB
    payload = b"first\n" + b"x" * line_bytes + b"\nlast\n"
    sc, ssc, server, _ = socket_stream(own_context, payload,
                                       spark__sluicegate__receiver__maxLineBytes="256m")
    lengths = Collector(ssc.socketTextStream("127.0.0.1", server.port).map(len))
    try:
        started = time.monotonic()
        ssc.start()
        # Linear: a few seconds. Quadratic (before the fix): each 64 KiB read copied the
        # whole line so far, 115 GB of copying for this line -- minutes.
        assert lengths.wait_for(lambda r: sorted(r) == [4, 5, line_bytes], 60), \
            f"got lines of {sorted(lengths.all_records())[:5]} bytes"
        print(f"a {line_bytes / MiB:.0f} MiB line arrived {time.monotonic() - started:.1f}s after start")
    finally:
        ssc.stop(stopSparkContext=False)
        server.close()


def test_a_line_over_the_maximum_is_dropped_counted_and_the_stream_goes_on(own_context, caplog):
    after = [f"line {i}" for i in range(1000)]
    payload = b"first\n" + b"y" * (40 * MiB) + b"\n" + "".join(f"{line}\n" for line in after).encode()
    sc, ssc, server, infos = socket_stream(own_context, payload,
                                           spark__sluicegate__receiver__maxLineBytes="8m")
    records = Collector(ssc.socketTextStream("127.0.0.1", server.port))
    caplog.set_level(logging.WARNING, logger="sluicegate.streaming.receiver")
    try:
        ssc.start()
        assert records.wait_for(lambda r: len(r) >= 1 + len(after), 60), len(records.all_records())
        wait_until(lambda: infos.total("droppedLongLines") == 1, 30, what="the dropped line's count")
        assert records.all_records() == ["first", *after]
        assert metric(metrics_text(sc), "sluicegate_receiver_dropped_lines_total", 'stream="0"') == 1
        warnings = [r.getMessage() for r in caplog.records if "longer than" in r.getMessage()]
        assert len(warnings) == 1, warnings
        assert "dropped 1 line(s) longer than 8388608 bytes" in warnings[0]
        assert "spark.sluicegate.receiver.maxLineBytes" in warnings[0]
        assert f"socketTextStream 127.0.0.1:{server.port}" in warnings[0]
    finally:
        ssc.stop(stopSparkContext=False)
        server.close()


# -- 7. invalid UTF-8 is counted -----------------------------------------------------------------------

BAD_LINES = [b"caf\xe9 au lait", b"\xff\xfe\xfd", b"half \xe2\x82 a euro"]
GOOD_LINES = ["caf\u00e9 au lait".encode(), "a replacement \ufffd already".encode(), b"plain"]


def test_invalid_utf8_from_a_socket_is_replaced_and_counted(own_context, caplog):
    raw_lines = [*GOOD_LINES, *BAD_LINES, b"\xc3\x28 again"] * 3
    payload = b"".join(line + b"\n" for line in raw_lines)
    sc, ssc, server, infos = socket_stream(own_context, payload)
    records = Collector(ssc.socketTextStream("127.0.0.1", server.port))
    caplog.set_level(logging.WARNING, logger="sluicegate.streaming.receiver")
    try:
        ssc.start()
        assert records.wait_for(lambda r: len(r) >= len(raw_lines), 60)
        # PySpark's socketTextStream decodes with replacement too (Java's InputStreamReader).
        assert records.all_records() == [line.decode("utf-8", "replace") for line in raw_lines]
        wait_until(lambda: infos.total("invalidUtf8Lines") == 12, 30, what="12 counted lines")
        assert metric(metrics_text(sc), "sluicegate_input_invalid_utf8_lines_total",
                      'input="stream-0"') == 12
        warnings = [r.getMessage() for r in caplog.records if "invalid UTF-8" in r.getMessage()]
        batches_with_bad_lines = [m for m in infos.metadata if m.get("invalidUtf8Lines")]
        assert len(warnings) == len(batches_with_bad_lines)  # one per source per batch
        assert all("(decoded with U+FFFD)" in w for w in warnings)
        batches = json.loads(urllib.request.urlopen(sc.uiWebUrl + "/api/v1/batches", timeout=30)
                             .read())
        assert sum(b["invalid_utf8_lines"].get("stream 0", 0) for b in batches) == 12
    finally:
        ssc.stop(stopSparkContext=False)
        server.close()


def test_invalid_utf8_in_text_files_is_replaced_and_counted(own_context, tmp_path, caplog):
    raw_lines = [f"line {i}".encode() for i in range(3000)]
    for i, bad in zip((5, 1499, 1500, 2990), [*BAD_LINES, b"\x80"]):
        raw_lines[i] = bad
    raw_lines[7] = GOOD_LINES[0]
    path = tmp_path / "bad.txt"
    path.write_bytes(b"\r\n".join(raw_lines) + b"\n")
    sc = own_context("local[2]", spark__sluicegate__progress="false")
    caplog.set_level(logging.WARNING, logger="sluicegate.status")

    lines = sc.textFile(str(path), 4).collect()
    # As PySpark's textFile (Hadoop's Text.toString): U+FFFD for every invalid sequence.
    assert lines == [line.decode("utf-8", "replace") for line in raw_lines]
    source = f"file:{path.resolve()}"
    job = json.loads(urllib.request.urlopen(sc.uiWebUrl + "/api/v1/jobs", timeout=30).read())[0]
    assert job["invalid_utf8_lines"] == {source: 4}
    warnings = [r.getMessage() for r in caplog.records if "invalid UTF-8" in r.getMessage()]
    assert warnings == [f"job {job['job_id']}: 4 line(s) of {source} held invalid UTF-8 "
                        "(decoded with U+FFFD)"]
    assert metric(metrics_text(sc), "sluicegate_input_invalid_utf8_lines_total",
                  'input="files"') == 4
    # Clean input reports nothing.
    assert sc.textFile(str(path), 4).filter(lambda l: "\ufffd" not in l).count() == 2996
    (tmp_path / "clean.txt").write_text("a\nb\n")
    caplog.clear()
    assert sc.textFile(str(tmp_path / "clean.txt")).count() == 2
    assert not [r for r in caplog.records if "invalid UTF-8" in r.getMessage()]
    # wholeTextFiles counts the lines of the whole file.
    assert sc.wholeTextFiles(str(path)).values().first() == path.read_bytes().decode("utf-8", "replace")


def test_invalid_utf8_in_a_file_stream_is_named_once_per_batch(own_context, tmp_path, caplog):
    watched = tmp_path / "inbox"
    watched.mkdir()
    sc = own_context("local[2]", spark__sluicegate__progress="false")
    caplog.set_level(logging.WARNING, logger="sluicegate.status")
    with ManualBatches(sc) as run:
        stream = run.ssc.textFileStream(str(watched))
        collected = Collector(stream)
        stream.count().foreachRDD(lambda rdd: rdd.collect())  # a second job over the same file
        run.start()
        bad = watched / "bad.txt"
        bad.write_bytes(b"ok\n" + BAD_LINES[0] + b"\n" + BAD_LINES[1] + b"\n")
        run.step(3)  # seen by one scan, unchanged at the next: read
        assert collected.all_records() == ["ok", "caf\ufffd au lait", "\ufffd\ufffd\ufffd"]
    warnings = [r.getMessage() for r in caplog.records if "invalid UTF-8" in r.getMessage()]
    assert len(warnings) == 1, warnings  # two jobs read it in that batch: one warning
    assert re.match(rf"batch \d+: 2 line\(s\) of file:{re.escape(str(bad.resolve()))} held invalid",
                    warnings[0])


# -- 8. small leaks ----------------------------------------------------------------------------------

WAL_JOB = """\
import sys, threading
from sluicegate.driver import Receiver, SparkConf, SparkContext, StreamingContext

class Big(Receiver):
    def onStart(self):
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        block = ["x" * 1000] * 4000  # 4 MB: each write-ahead-log write takes a while
        while not self.isStopped():
            try:
                self.store(list(block))
            except Exception:
                return

def make():
    conf = (SparkConf().setMaster("local[1]").setAppName("wal")
            .set("spark.streaming.receiver.writeAheadLog.enable", "true")
            .set("spark.ui.enabled", "false").set("spark.sluicegate.progress", "false"))
    ssc = StreamingContext(SparkContext(conf=conf), 1.0)
    ssc.checkpoint(sys.argv[1])
    ssc.receiverStream(Big()).count().foreachRDD(lambda rdd: rdd.collect())
    return ssc

ssc = StreamingContext.getOrCreate(sys.argv[1], make)
ssc.start()
print("STARTED", flush=True)
ssc.awaitTermination()
"""


def _kill_with_everything_below(proc: subprocess.Popen) -> None:
    below = descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    kill_tree(below, grace_s=1.0)


def test_a_killed_write_ahead_log_write_leaves_nothing_after_recovery(tmp_path):
    script = tmp_path / "wal_job.py"
    script.write_text(WAL_JOB)
    checkpoint = tmp_path / "checkpoint"
    log_dir = checkpoint / "receivedBlocks" / "0"

    def run() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(script), str(checkpoint)], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)

    def unfinished() -> set[str]:
        try:
            return {p.name for p in log_dir.iterdir() if p.name.endswith(".tmp")}
        except FileNotFoundError:
            return set()

    left: set[str] = set()
    for _ in range(5):  # SIGKILL while a write is under way (it may just have finished)
        job = run()
        try:
            wait_until(lambda: job.poll() is not None or unfinished(), 60, interval_s=0.002,
                       what="a write-ahead-log write under way")
        finally:
            _kill_with_everything_below(job)
        left = unfinished()
        if left:
            break
    assert left, "no write was caught under way"

    recovered = run()
    try:
        assert recovered.stdout.readline() == b"STARTED\n"
        assert not left & unfinished(), "the killed write's temporary file is still there"
    finally:
        _kill_with_everything_below(recovered)


def test_idle_connections_to_the_status_pages_are_capped_and_closed(tmp_path):
    app = TargetApp(tmp_path, "spark.ui.port=0")
    idle: list[socket.socket] = []
    try:
        ui = app.info["ui"]
        host, port = ui.removeprefix("http://").split(":")
        threads_before = psutil.Process(app.proc.pid).num_threads()
        for _ in range(150):
            idle.append(socket.create_connection((host, int(port)), timeout=10))
        time.sleep(1.0)
        threads = psutil.Process(app.proc.pid).num_threads() - threads_before
        print(f"150 idle connections to the status pages: +{threads} threads")
        assert threads <= 32 + 4, threads  # before the fix: a thread for each, forever
        # The pages still answer while idle connections pile up.
        for _ in range(3):
            with urllib.request.urlopen(ui + "/api/v1/jobs", timeout=15) as reply:
                assert reply.status == 200
            idle.append(socket.create_connection((host, int(port)), timeout=10))
        # Every idle connection is closed by the server within its idle timeout.
        started = time.monotonic()
        for conn in idle:
            conn.settimeout(max(1.0, 30 - (time.monotonic() - started)))
            try:
                assert conn.recv(1) == b""
            except ConnectionResetError:
                pass  # pushed out by newer connections
        wait_until(lambda: psutil.Process(app.proc.pid).num_threads() <= threads_before + 4, 30,
                   what="the status server's threads to end")
    finally:
        for conn in idle:
            conn.close()
        app.close()
