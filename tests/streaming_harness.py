"""Deterministic streaming test runs, in the spirit of Spark's ``testOperation``.

``run_batches(sc, inputs, op)`` feeds ``inputs[i]`` as batch ``i`` of a
``queueStream``, applies ``op`` to it, and returns what each batch of the
resulting stream held. Batches are stepped with a ``ManualClock``: the clock
moves one batch duration, and the harness waits until that batch has
completed (a listener tells it) before moving again, so every run is the
same whatever the machine's load. ``run_streams`` does the same for several
input streams (join, cogroup, union, transformWith...).

With the manual clock starting at 0, batch ``i`` (0-based) is due at
``(i + 1) * batch_s`` seconds.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Sequence

from sluicegate.driver import ManualClock, SparkContext, StreamingContext, StreamingListener


class BatchWaiter(StreamingListener):
    """Records completed batch times; ``wait_for(time_ms)`` blocks until one completes."""

    def __init__(self) -> None:
        self.completed: list[int] = []
        self.infos: list = []
        self._changed = threading.Condition()

    def onBatchCompleted(self, batchCompleted) -> None:
        info = batchCompleted.batchInfo()
        with self._changed:
            self.completed.append(info.batchTime().milliseconds())
            self.infos.append(info)
            self._changed.notify_all()

    def wait_for(self, time_ms: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while time_ms not in self.completed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True


def _normalise(records: list, sort: bool | Callable | None) -> list:
    if not sort:
        return records
    if callable(sort):
        return sorted(records, key=sort)
    return sorted(records)


def batch_ms_of(time) -> int:
    """A batch time (``datetime``, as foreachRDD passes it) in epoch milliseconds."""
    return int(round(time.timestamp() * 1000))


class Collector:
    """``foreachRDD`` target: each batch's collected records by batch time (ms)."""

    def __init__(self, stream=None) -> None:
        self.batches: dict[int, list] = {}
        self._changed = threading.Condition()
        if stream is not None:
            stream.foreachRDD(self)

    def __call__(self, time, rdd) -> None:
        records = rdd.collect()
        with self._changed:
            self.batches[batch_ms_of(time)] = records
            self._changed.notify_all()

    def in_order(self, sort: bool | Callable = False) -> list[list]:
        with self._changed:
            return [_normalise(self.batches[t], sort) for t in sorted(self.batches)]

    def all_records(self) -> list:
        with self._changed:
            return [r for t in sorted(self.batches) for r in self.batches[t]]

    def wait_for(self, predicate: Callable[[list], bool], timeout_s: float) -> bool:
        """Wait until ``predicate(all records so far)`` holds."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not predicate([r for t in sorted(self.batches) for r in self.batches[t]]):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.5))
        return True


class ManualBatches:
    """A StreamingContext on a ManualClock at 0, stepped one batch at a time.

    ``step()`` moves the clock to the next batch time and waits until that
    batch has completed. ``stop()`` stops the streaming context only. Use as
    a context manager to always stop it.
    """

    def __init__(self, sc: SparkContext, batch_s: float = 1.0, timeout_s: float = 60.0):
        self.clock = ManualClock(0)
        self.ssc = StreamingContext(sc, batch_s, clock=self.clock)
        self.batch_ms = self.ssc.batch_duration_ms
        self.timeout_s = timeout_s
        self.waiter = BatchWaiter()
        self.ssc.addStreamingListener(self.waiter)
        self.batches_run = 0

    def start(self) -> "ManualBatches":
        self.ssc.start()
        return self

    def step(self, count: int = 1) -> None:
        for _ in range(count):
            due_ms = (self.batches_run + 1) * self.batch_ms
            self.clock.set_ms(due_ms)
            if not self.waiter.wait_for(due_ms, self.timeout_s):
                raise TimeoutError(f"the batch due at {due_ms} ms did not complete within "
                                   f"{self.timeout_s}s; completed: {self.waiter.completed}")
            self.batches_run += 1

    def stop(self) -> None:
        self.ssc.stop(stopSparkContext=False)

    def __enter__(self) -> "ManualBatches":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def run_streams(sc: SparkContext, inputs: Sequence[Sequence], op: Callable[..., Any],
                batch_s: float = 1.0, num_batches: int | None = None, timeout_s: float = 60.0,
                sort: bool | Callable = False, one_at_a_time: bool = True,
                default: Any = None, configure: Callable[[StreamingContext], None] | None = None,
                after: Callable[[StreamingContext, Any], Any] | None = None) -> list[list]:
    """Run ``op(stream_0, stream_1, ...)`` over one queueStream per entry of ``inputs``.

    ``inputs[k][i]`` is batch ``i`` of stream ``k`` (a list or an RDD). Runs
    ``num_batches`` batches (default: the longest input) and returns, in batch
    order, the collected contents of every batch for which ``op``'s stream
    produced an RDD (sorted if ``sort`` is true, or by ``sort`` as a key).
    ``configure(ssc)`` runs before the streams are defined; ``after(ssc,
    result_stream)`` runs after the last batch, before the context stops (its
    return value is ignored). The first error of a batch job is raised.
    """
    if num_batches is None:
        num_batches = max((len(i) for i in inputs), default=0)
    with ManualBatches(sc, batch_s, timeout_s) as run:
        ssc = run.ssc
        if configure is not None:
            configure(ssc)
        streams = [ssc.queueStream([b if hasattr(b, "collect") else list(b) for b in batches],
                                   oneAtATime=one_at_a_time, default=default)
                   for batches in inputs]
        result = op(*streams)
        collector = Collector(result)
        run.start()
        run.step(num_batches)
        if after is not None:
            after(ssc, result)
        ssc.awaitTerminationOrTimeout(0)  # raises the first failed batch's error, if any
    return collector.in_order(sort)


def run_batches(sc: SparkContext, inputs: Sequence, op: Callable[[Any], Any],
                batch_s: float = 1.0, num_batches: int | None = None, timeout_s: float = 60.0,
                **kwargs) -> list[list]:
    """``op(stream)`` over a queueStream of ``inputs`` (batch i = inputs[i]); see ``run_streams``."""
    return run_streams(sc, [inputs], op, batch_s=batch_s, num_batches=num_batches,
                       timeout_s=timeout_s, **kwargs)


def run_batches2(sc: SparkContext, inputs1: Sequence, inputs2: Sequence,
                 op: Callable[[Any, Any], Any], batch_s: float = 1.0,
                 num_batches: int | None = None, timeout_s: float = 60.0, **kwargs) -> list[list]:
    """``op(stream1, stream2)`` over two queueStreams; see ``run_streams``."""
    return run_streams(sc, [inputs1, inputs2], op, batch_s=batch_s, num_batches=num_batches,
                       timeout_s=timeout_s, **kwargs)
