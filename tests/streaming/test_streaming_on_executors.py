"""How batches use the executor processes: how many batch jobs run at once
(``spark.streaming.concurrentJobs``), input blocks cut every
``spark.streaming.blockInterval`` and pushed to executors ahead of their batch,
closures shipped once per executor (not every batch), and each batch's shuffle
dropped from the executors once the batch is forgotten.

Everything runs on real executor processes; ``MessageTap`` watches what the
driver sends them. Tests wait for conditions with generous timeouts (the suite
runs on a loaded two-core machine); the only timings asserted are orderings of
recorded intervals.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict

import pytest
from streaming_sources import CountingReceiver
from waiting import wait_until

from sluicegate.common import config as cfg
from sluicegate.common.protocol.executor import DropBlocks, LaunchTask, PushBlock
from sluicegate.driver import ManualClock, StreamingContext
from sluicegate.driver.rdd.lineage import Blocks
from streaming_harness import BatchWaiter, Collector, batch_ms_of

pytestmark = pytest.mark.usefixtures("no_streaming_leftovers")


class MessageTap:
    """Watches what the driver loop sends to executors (a test-only wrap of
    ``DriverEndpoint.send``): closures shipped with each ``LaunchTask``, blocks
    attached to launches, and input blocks pushed ahead of their batch."""

    def __init__(self, sc):
        self.endpoint = sc._runtime.endpoint
        self._original = self.endpoint.send
        self.lock = threading.Lock()
        self.shipped: dict[str, list[int]] = defaultdict(list)  # executor -> function ids
        self.launches: Counter = Counter()                       # executor -> LaunchTasks
        self.attached: list[str] = []                             # blocks sent with a task
        self.pushed: dict[str, str] = {}                          # block id -> executor
        self.dropped_shuffles: dict[str, set[int]] = defaultdict(set)  # executor -> shuffle ids
        self.endpoint.send = self._send

    def _send(self, identity: bytes, message) -> bool:
        sent = self._original(identity, message)
        if sent:
            executor = identity.decode()
            with self.lock:
                if isinstance(message, LaunchTask):
                    self.launches[executor] += 1
                    self.shipped[executor].extend(message.function_ids)
                    self.attached.extend(message.block_ids)
                elif isinstance(message, PushBlock):
                    self.pushed[message.block_id] = executor
                elif isinstance(message, DropBlocks):
                    self.dropped_shuffles[executor].update(message.shuffle_ids)
        return sent

    def shipped_snapshot(self) -> dict[str, list[int]]:
        with self.lock:
            return {e: list(ids) for e, ids in self.shipped.items()}

    def close(self) -> None:
        self.endpoint.__dict__.pop("send", None)

    def __enter__(self) -> "MessageTap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- spark.streaming.concurrentJobs ------------------------------------------------------------------

class SlowOutput:
    """foreachRDD target: counts the RDD, then holds its job for ``hold_s``;
    records (batch ms, start, end) on the monotonic clock."""

    def __init__(self, hold_s: float):
        self.hold_s = hold_s
        self.runs: list[tuple[int, float, float]] = []
        self.counts: dict[int, int] = {}
        self.lock = threading.Lock()

    def __call__(self, t, rdd) -> None:
        start = time.monotonic()
        count = rdd.count()
        time.sleep(self.hold_s)
        with self.lock:
            self.counts[batch_ms_of(t)] = count
            self.runs.append((batch_ms_of(t), start, time.monotonic()))


def run_three_batches_at_once(sc, hold_s: float) -> SlowOutput:
    """Three batches due at once (the manual clock jumps), each with a slow output."""
    clock = ManualClock(0)
    ssc = StreamingContext(sc, 1.0, clock=clock)
    output = SlowOutput(hold_s)
    ssc.queueStream([[1], [2, 2], [3, 3, 3]]).foreachRDD(output)
    waiter = BatchWaiter()
    ssc.addStreamingListener(waiter)
    ssc.start()
    try:
        clock.set_ms(3000)
        for time_ms in (1000, 2000, 3000):
            assert waiter.wait_for(time_ms, 60), waiter.completed
    finally:
        ssc.stop(stopSparkContext=False)
    assert output.counts == {1000: 1, 2000: 2, 3000: 3}
    return output


def test_one_concurrent_job_by_default_batches_never_overlap(sc):
    assert cfg.get_setting(sc._conf.as_dict(), cfg.STREAMING_CONCURRENT_JOBS) == 1
    output = run_three_batches_at_once(sc, hold_s=0.4)
    runs = sorted(output.runs, key=lambda r: r[1])
    assert [t for t, _, _ in runs] == [1000, 2000, 3000]  # in time order
    for (_, _, end), (_, next_start, _) in zip(runs, runs[1:]):
        assert end <= next_start, runs


def test_two_concurrent_jobs_let_batches_overlap(own_context):
    sc = own_context("local[2]", spark__streaming__concurrentJobs="2")
    output = run_three_batches_at_once(sc, hold_s=1.5)
    runs = output.runs
    overlaps = [(a[0], b[0]) for i, a in enumerate(runs) for b in runs[i + 1:]
                if a[1] < b[2] and b[1] < a[2]]
    assert overlaps, runs


# -- spark.streaming.blockInterval, and blocks pushed ahead of their batch -------------------------------



def test_block_interval_cuts_batches_into_blocks_pushed_to_executors(own_context):
    sc = own_context("local[2]", spark__streaming__blockInterval="100ms")
    locations = sc._runtime.dag.block_locations
    alive = {info.executor_id for info in sc._runtime.endpoint.registry.alive()}
    seen: list[dict] = []
    problems: list[str] = []

    def inspect(t, rdd):
        lineage = rdd._lineage
        block_ids = list(lineage.block_ids) if isinstance(lineage, Blocks) else []
        # before this batch's job runs, its blocks already sit on executors
        try:
            wait_until(lambda: all(locations.holders(b) for b in block_ids), 10,
                       "the batch's blocks to be on executors")
        except AssertionError as exc:
            problems.append(str(exc))
        holders = {b: set(locations.holders(b)) for b in block_ids}
        seen.append(dict(time=batch_ms_of(t), partitions=rdd.getNumPartitions(),
                         blocks=block_ids, holders=holders, count=rdd.count()))

    receiver = CountingReceiver(pause_s=0.003)
    ssc = StreamingContext(sc, 1.0)
    ssc.receiverStream(receiver).foreachRDD(inspect)
    with MessageTap(sc) as tap:
        ssc.start()
        try:
            wait_until(lambda: len(seen) >= 4, 60, "four batches")
        finally:
            ssc.stop(stopSparkContext=False, stopGraceFully=True)
    assert not problems, problems
    # batches 2-4 ran while the receiver stored steadily (the first may be partial, and
    # so may those after the stop)
    full = seen[1:4]
    for batch in full:
        # one partition per block; ten 100 ms blocks in a 1 s batch (loosely: a busy host)
        assert batch["partitions"] == len(batch["blocks"])
        assert 1 < batch["partitions"] <= 12, [(b["time"], b["partitions"]) for b in seen]
        for block_id, holders in batch["holders"].items():
            assert holders and holders <= alive, (block_id, holders, alive)
            # they got there by a PushBlock as the block was cut, not with a task
            assert tap.pushed.get(block_id) in holders
    batch_blocks = {b for batch in seen for b in batch["blocks"]}
    assert not batch_blocks & set(tap.attached), "input blocks were attached to task launches"
    assert sum(batch["count"] for batch in seen) <= receiver.stored


# -- closures: shipped once per executor, not every batch -------------------------------------------------

def test_closures_are_shipped_once_per_executor_not_every_batch(own_context):
    sc = own_context("local[2]")
    factor = 3
    clock = ManualClock(0)
    ssc = StreamingContext(sc, 1.0, clock=clock)
    waiter = BatchWaiter()
    ssc.addStreamingListener(waiter)
    batches = [[f"w{i % 5}" for i in range(n, n + 40)] for n in range(12)]
    words = ssc.queueStream([sc.parallelize(b, 4) for b in batches])
    counts = (words.map(lambda w: (w, factor)).filter(lambda kv: kv[1] > 0)
              .reduceByKey(lambda a, b: a + b))
    collector = Collector(counts)

    def step_to(batch_index: int) -> None:
        due = batch_index * 1000
        clock.set_ms(due)
        assert waiter.wait_for(due, 60), waiter.completed

    with MessageTap(sc) as tap:
        ssc.start()
        try:
            for i in range(1, 3):
                step_to(i)
            after_two = tap.shipped_snapshot()
            launches_after_two = sum(tap.launches.values())
            for i in range(3, 13):
                step_to(i)
            after_twelve = tap.shipped_snapshot()
            launches_after_twelve = sum(tap.launches.values())
        finally:
            ssc.stop(stopSparkContext=False)
    assert [sum(c for _, c in batch) for batch in collector.in_order()] == [120] * 12
    # ten more batches ran their tasks on the executors ...
    assert launches_after_twelve >= launches_after_two + 10 * 4
    # ... with no closure shipped twice to the same executor ...
    for executor, ids in after_twelve.items():
        assert len(ids) == len(set(ids)), (executor, Counter(ids).most_common(3))
    # ... and no new closure ids: the batches' functions are the first batches' ones
    first_ids = {f for ids in after_two.values() for f in ids}
    all_ids = {f for ids in after_twelve.values() for f in ids}
    assert first_ids and all_ids == first_ids, (sorted(first_ids), sorted(all_ids))
    # so what each executor received is bounded, whatever the number of batches
    assert all(len(ids) <= len(first_ids) for ids in after_twelve.values())


# -- shuffles of finished batches are dropped ------------------------------------------------------------

def test_each_batch_shuffle_is_dropped_once_the_batch_is_forgotten(sc):
    """A streaming job makes a shuffle every batch; its blocks must leave the
    executors once no RDD refers to it, or executors grow without bound."""
    import gc

    clock = ManualClock(0)
    ssc = StreamingContext(sc, 1.0, clock=clock)
    waiter = BatchWaiter()
    ssc.addStreamingListener(waiter)
    batches = [[f"w{i % 7}" for i in range(50)] for _ in range(15)]
    counts = ssc.queueStream([sc.parallelize(b, 3) for b in batches]) \
        .map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b)
    collector = Collector(counts)
    dag = sc._runtime.dag
    before = set(dag.map_outputs.shuffle_ids())
    made: set[int] = set()

    def ours() -> set[int]:
        return set(dag.map_outputs.shuffle_ids()) - before

    def settled_to(most: int) -> bool:
        gc.collect()  # shuffles are dropped when their dependency is garbage
        return len(ours()) <= most

    with MessageTap(sc) as tap:
        ssc.start()
        try:
            for i in range(1, 16):
                clock.set_ms(i * 1000)
                assert waiter.wait_for(i * 1000, 60), waiter.completed
                made |= ours()
            wait_until(lambda: settled_to(3), 30, "old batches' shuffles to be dropped")
        finally:
            ssc.stop(stopSparkContext=False)
        executors = {info.executor_id for info in sc._runtime.endpoint.registry.alive()}
        dropped = {e: set(ids) for e, ids in tap.dropped_shuffles.items()}
    assert [sorted(batch) for batch in collector.in_order()] == \
        [sorted((f"w{k}", 50 // 7 + (k < 50 % 7)) for k in range(7))] * 15
    assert len(made) >= 12, made  # one shuffle a batch
    gone = made - ours()
    assert len(gone) >= 12, (sorted(made), sorted(ours()))
    for executor in executors:  # ... and every executor was told to drop their blocks
        assert gone <= dropped.get(executor, set()), (executor, sorted(gone - dropped.get(executor, set())))
