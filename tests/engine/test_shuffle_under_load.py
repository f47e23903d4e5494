"""Shuffles stay within executor memory, and heartbeats never wait on busy threads,
on real executor processes (their RSS measured with psutil).

Issue 11, item 5: a reduceByKey from 10,000 to 10,000 partitions grew each
executor to ~4.7 GB (a Python object and a buffer per tiny block), did not
finish, and made executors miss heartbeats. Bounds are generous (the machine
is shared) but far below what the old layout used. The pieces, in this process:
``tests/unit/test_shuffle_memory.py``.

This module's functions travel to executors by value, as a job script's do.
"""
from __future__ import annotations

import sys
import threading
import time
from operator import add

import cloudpickle
import psutil
import pytest
import zmq

from conftest import executor_processes
from sluicegate.common.protocol.block_service import BlocksReply, FetchBlocks
from sluicegate.common.transport import Transport, recv, send
from waiting import wait_until

cloudpickle.register_pickle_by_value(sys.modules[__name__])

MB = 1 << 20


class PeakRss:
    """The highest RSS any executor process of this test reaches, sampled."""

    def __init__(self, interval_s: float = 0.05):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), daemon=True)

    def _run(self, interval_s: float) -> None:
        while not self._stop.is_set():
            for process in executor_processes():
                try:
                    self.peak = max(self.peak, process.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass
            self._stop.wait(interval_s)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize("key", ["spark.python.worker.memory", "spark.reducer.maxSizeInFlight"])
def test_a_bad_shuffle_limit_is_refused_when_the_context_starts(own_context, key):
    with pytest.raises(ValueError, match=f"bad value for {key}: 'lots'"):
        own_context("local[1]", **{key.replace(".", "__"): "lots"})
    assert not executor_processes()


@pytest.mark.timeout(600)
def test_a_many_partition_shuffle_completes_within_executor_memory(own_context):
    """2,000 map tasks into 2,000 reduce partitions. Before: every map task wrote
    2,000 tiny blocks (4,000,000 in all), each executor grew to ~700 MB and the
    job took ~50 s; now one block per map task."""
    ctx = own_context("local[2]")
    n, partitions = 200_000, 2_000
    with PeakRss() as rss:
        counts = ctx.parallelize(range(n), partitions).map(lambda x: (x % 50_000, 1)) \
            .reduceByKey(add, partitions)
        assert counts.getNumPartitions() == partitions
        assert counts.count() == 50_000
        assert counts.values().sum() == n
        assert counts.filter(lambda kv: kv[1] != 4).count() == 0
    assert rss.peak < 200 * MB, f"an executor reached {rss.peak / MB:.0f} MB"


@pytest.mark.timeout(600)
def test_a_shuffle_bigger_than_every_memory_limit_spills_and_completes(own_context):
    """~230 MB of decoded records through executors allowed 4 MB of blocks,
    16 MB of aggregation and 4 MB in flight: map side, block store and reduce
    side all spill, and the answer is exact. Before: ~250 MB an executor."""
    ctx = own_context("local[2]", spark__sluicegate__blocks__memoryLimit="4m",
                      spark__python__worker__memory="16m", spark__reducer__maxSizeInFlight="4m")
    n = 1_000_000
    with PeakRss() as rss:
        pairs = ctx.parallelize(range(n), 8).map(lambda x: (x, "%0100d" % x))
        merged = pairs.reduceByKey(max, 2)  # every key distinct: nothing combines
        assert merged.map(lambda kv: kv[0] + len(kv[1])).sum() == n * (n - 1) // 2 + 100 * n
        # Without a combiner (partitionBy): the reduce side keeps raw frames, on disk past 16 MB.
        spread = pairs.partitionBy(2).mapPartitions(lambda it: [sum(k for k, _ in it)]).collect()
        assert sum(spread) == n * (n - 1) // 2 and len(spread) == 2
    registry = ctx._runtime.endpoint.registry
    wait_until(lambda: sum(e.disk_used for e in registry.alive()) > 50 * MB, 15,
               "heartbeats reporting the map outputs on disk")
    assert rss.peak < 150 * MB, f"an executor reached {rss.peak / MB:.0f} MB"


def busy_python(seconds: float) -> int:
    """Hold the CPU in Python bytecode (no sleep, no I/O) for ``seconds``."""
    deadline = time.monotonic() + seconds
    spins = 0
    while time.monotonic() < deadline:
        spins += sum(i * i for i in range(200))
    return spins


@pytest.mark.timeout(300)
def test_heartbeats_go_on_while_tasks_hold_the_cpu(own_context):
    ctx = own_context("local[2]", spark__network__timeout="2s",
                      spark__executor__heartbeatInterval="200ms")
    registry = ctx._runtime.endpoint.registry
    before = {e.executor_id for e in registry.alive()}
    spins = ctx.parallelize([6.0, 6.0], 2).map(busy_python).collect()
    assert len(spins) == 2 and all(s > 0 for s in spins)
    assert {e.executor_id for e in registry.alive()} == before
    assert all(e.alive and e.tasks_failed == 0 for e in registry.executors.values())


@pytest.mark.timeout(300)
def test_heartbeats_go_on_while_peers_flood_the_block_service(own_context):
    """Peers asking without pause kept the thread that also heartbeat busy
    for longer than the network timeout: the driver dropped the executor."""
    ctx = own_context("local[2]", spark__network__timeout="2s",
                      spark__executor__heartbeatInterval="200ms")
    registry = ctx._runtime.endpoint.registry
    cached = ctx.parallelize(range(300_000), 2).map(lambda x: (x, str(x))).cache()
    assert cached.count() == 300_000
    block_ids = [f"rdd_{cached.id()}_{split}" for split in range(2)]
    before = {e.executor_id for e in registry.alive()}
    transport = Transport(ctx._runtime.transport.secret)  # local mode authenticates too
    sockets = [transport.connect(zmq.DEALER, e.block_address) for e in registry.alive()]
    try:
        # Each answer serializes a cached partition again (tens of ms); 150 each
        # keep every block service busy for several seconds.
        for request_id in range(150):
            for sock in sockets:
                send(sock, FetchBlocks(request_id, block_ids))
        answered = 0
        deadline = time.monotonic() + 120
        while answered < 150 * len(sockets) and time.monotonic() < deadline:
            for sock in sockets:
                while sock.poll(0, zmq.POLLIN):
                    _, reply = recv(sock)
                    assert isinstance(reply, BlocksReply) and sum(reply.found) == 1
                    answered += 1
            time.sleep(0.01)
        assert answered == 150 * len(sockets)
    finally:
        for sock in sockets:
            sock.close(0)
        transport.close()
    assert {e.executor_id for e in registry.alive()} == before
    assert all(e.alive for e in registry.executors.values())
    assert cached.map(lambda kv: kv[0]).sum() == 300_000 * 299_999 // 2
