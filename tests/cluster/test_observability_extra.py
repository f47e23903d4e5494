"""More of watching an application: the receiver rate in ``/metrics`` while data
flows, and the status pages on a non-loopback address once a secret is set.

Real processes throughout: local[2] applications with a socket receiver fed by a
server thread here at a steady pace.
"""
from __future__ import annotations

import socket
import threading
import time

import psutil
import pytest

from cluster_harness import wait_until
from sluicegate.driver import StreamingContext
from test_observability import Tables, get_json, get_page, metric, scrape, ui_port

WAIT_S = 90.0   # a loaded 2-core machine: generous, only ever reached on failure
BATCH_S = 0.5
TICK_S = 0.02   # the feeder sends LINES_PER_TICK lines every TICK_S:
LINES_PER_TICK = 8   # about 400 lines/s, about 200 a batch


class SteadyFeed:
    """A TCP server thread sending ``LINES_PER_TICK`` lines every ``TICK_S`` to the
    first client, until closed."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self.first_sent_s: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="steady-feed", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn = None
        while conn is None and not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
        if conn is None:
            return
        with conn:
            line = 0
            next_s = time.monotonic()
            while not self._stop.is_set():
                chunk = "".join(f"line {line + i}\n" for i in range(LINES_PER_TICK))
                try:
                    conn.sendall(chunk.encode())
                except OSError:
                    return
                if self.first_sent_s is None:
                    self.first_sent_s = time.monotonic()
                line += LINES_PER_TICK
                self.sent = line
                next_s += TICK_S
                self._stop.wait(max(0.0, next_s - time.monotonic()))

    def sending(self) -> bool:
        return self._thread.is_alive() and self.sent > 0

    def rate(self) -> float:
        """Lines per second sent so far."""
        return self.sent / max(1e-3, time.monotonic() - self.first_sent_s)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def completed_batches(base: str) -> list[dict]:
    """Completed batches, newest first."""
    return [b for b in get_json(base, "/api/v1/batches") if b["state"] == "COMPLETED"]


def test_receiver_rate_while_data_flows(own_context):
    sc = own_context("local[2]", spark__sluicegate__progress="false")
    feed = SteadyFeed()
    ssc = StreamingContext(sc, BATCH_S)
    try:
        ssc.socketTextStream("127.0.0.1", feed.port).map(len).foreachRDD(lambda rdd: rdd.count())
        ssc.start()
        base = sc.uiWebUrl

        # The first batch with data may hold only part of an interval: wait for more.
        wait_until(lambda: sum(b["records"] > 0 for b in completed_batches(base)) >= 4, WAIT_S,
                   what="four batches with data")

        # Scrape while the feed sends. The gauge shows one of the batches that completed
        # around the scrape; a scrape is judged when all of those had data (on a stalled
        # machine a batch may come out empty, and then the next scrape is taken).
        judged = 0
        deadline = time.monotonic() + WAIT_S
        while judged < 3:
            assert time.monotonic() < deadline, "no scrape while batches had data"
            assert feed.sending(), "the feed must still be sending"
            before = completed_batches(base)
            samples = scrape(base)
            after = completed_batches(base)
            around = [b for b in after if b["batch_ms"] >= before[min(1, len(before) - 1)]["batch_ms"]]
            if not all(b["records"] > 0 for b in around):
                time.sleep(BATCH_S)
                continue
            judged += 1
            rate = metric(samples, "sluicegate_receiver_records_per_second", stream="0")
            recent = after[:max(3, len(around))]
            recent_rate = sum(b["records"] for b in recent) / (len(recent) * BATCH_S)
            assert rate > 0, (rate, around)
            assert recent_rate / 3 <= rate <= recent_rate * 3, (rate, recent_rate, recent)
            # ... and about what the feed sends (the machine may stall either side).
            assert feed.rate() / 4 <= rate <= feed.rate() * 4, (rate, feed.rate())
            time.sleep(BATCH_S)
        # Everything counted so far was sent.
        assert metric(scrape(base), "sluicegate_input_records_total") <= feed.sent
    finally:
        ssc.stop(stopSparkContext=True, stopGraceFully=False)
        feed.close()


def non_loopback_ipv4() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


def test_status_pages_beyond_loopback_with_a_secret(own_context):
    address = non_loopback_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to bind the status pages to")
    sc = own_context("local[1]", spark__authenticate__secret="observability-test-secret",
                     spark__ui__bindAddress=address, spark__sluicegate__progress="false")
    port = ui_port(sc)
    assert sc.uiWebUrl == f"http://{address}:{port}"
    # Bound to that address (not to all of them, not only to loopback).
    bound = {c.laddr.ip for c in psutil.Process().net_connections(kind="tcp")
             if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
    assert bound == {address}, bound
    # Reachable there: the API, and a page showing this application's worker.
    [worker] = get_json(sc.uiWebUrl, "/api/v1/workers")
    assert worker["id"] == "exec-1" and worker["state"] == "ALIVE"
    assert sc.parallelize(range(100), 2).sum() == 4950
    [row] = Tables(get_page(sc.uiWebUrl, "/workers")).tables["workers"]
    assert row["cells"][0] == "exec-1" and row["cells"][-1] == "ALIVE"
    jobs = get_json(sc.uiWebUrl, "/api/v1/jobs")
    assert [j["status"] for j in jobs] == ["SUCCEEDED"]
