"""The DStream: a sequence of RDDs, one per batch time, defined by its operator.

A ``DStream`` keeps what every stream has: the RDD it generated for each
batch time (computed once, then reused by every output that needs it), its
storage level and checkpoint interval, and how long it must remember old
RDDs. Its ``StreamOp`` says how a batch's RDD is made: from input, from the
parents' RDDs (``Transformed``, the one operator every stateless operation
is built on), or over a window of them.

Times are integer epoch milliseconds inside; users see ``datetime``.
"""
from __future__ import annotations

import datetime
import threading
from typing import TYPE_CHECKING, Callable

from sluicegate.common.storagelevel import StorageLevel

from ..rdd.base import RDD
from .output import Outputs
from .pairs import PairOperations
from .stateless import StatelessOperations

if TYPE_CHECKING:
    from ..context.streaming_context import StreamingContext


class StreamOp:
    """How one kind of DStream makes a batch's RDD."""

    parents: list["DStream"] = []

    def slide_ms(self) -> int:
        return self.parents[0]._slide_ms

    def compute(self, stream: "DStream", time_ms: int) -> RDD | None:
        raise NotImplementedError

    def parent_remember_ms(self, remember_ms: int) -> int:
        """How long parents must keep RDDs when this stream keeps ``remember_ms``."""
        return remember_ms

    def describe(self) -> str:
        return type(self).__name__


class Transformed(StreamOp):
    """``func(time, rdd_of_parent_0, rdd_of_parent_1, ...)`` every batch."""

    def __init__(self, parents: list["DStream"], func: Callable):
        self.parents = parents
        self.func = func
        slides = {p._slide_ms for p in parents}
        if len(slides) > 1:
            raise ValueError("the two DStream should have same slide duration")

    def compute(self, stream, time_ms):
        rdds = [p._get_or_compute(time_ms) for p in self.parents]
        if any(r is None for r in rdds):
            return None
        result = self.func(to_datetime(time_ms), *rdds)
        if result is not None and not isinstance(result, RDD):
            raise TypeError(f"a DStream transform function must return an RDD, "
                            f"got {type(result).__name__}")
        return result


def to_datetime(time_ms: int) -> datetime.datetime:
    """A batch time as PySpark shows it: local time from epoch milliseconds."""
    return datetime.datetime.fromtimestamp(time_ms / 1000.0)


def to_ms(value) -> int:
    """A datetime or epoch seconds as epoch milliseconds."""
    if isinstance(value, datetime.datetime):
        return int(round(value.timestamp() * 1000))
    return int(round(float(value) * 1000))


def duration_ms(seconds, what: str) -> int:
    if seconds is None:
        raise ValueError(f"{what} must be given")
    ms = int(round(float(seconds) * 1000))
    if ms <= 0:
        raise ValueError(f"{what} must be positive, got {seconds}s")
    return ms


class DStream(StatelessOperations, PairOperations, Outputs):
    """A Discretized Stream (PySpark's ``DStream``): a continuous sequence of
    RDDs of the same type, one per batch interval."""

    def __init__(self, ssc: "StreamingContext", op: StreamOp):
        ssc._check_can_define()
        self._ssc = ssc
        self._sc = ssc.sparkContext
        self._op = op
        self._generated: dict[int, RDD | None] = {}
        self._storage_level: StorageLevel | None = None
        self._checkpoint_interval_ms: int | None = None
        self._must_checkpoint = False
        self._remember_ms = 0
        self._zero_ms: int | None = None
        self._lock = threading.RLock()

    def _derive(self, func: Callable, *others: "DStream") -> "DStream":
        """A stream whose batch RDD is ``func(time, rdd, other_rdds...)``."""
        return DStream(self._ssc, Transformed([self, *others], func))

    # -- structure ------------------------------------------------------------------
    def context(self) -> "StreamingContext":
        return self._ssc

    @property
    def _parents(self) -> list["DStream"]:
        return self._op.parents

    @property
    def _slide_ms(self) -> int:
        return self._op.slide_ms()

    def __repr__(self) -> str:
        return f"DStream[{self._op.describe()}]"

    # -- lifecycle (called by the graph) ------------------------------------------------
    def _initialize(self, zero_ms: int) -> None:
        if self._zero_ms is not None:
            return
        self._zero_ms = zero_ms
        if self._must_checkpoint and self._checkpoint_interval_ms is None:
            slide = self._slide_ms
            self._checkpoint_interval_ms = slide * max(1, -(-10_000 // slide))
        for parent in self._parents:
            parent._initialize(zero_ms)

    def _remember(self, remember_ms: int) -> None:
        need = max(remember_ms, self._slide_ms)
        if self._checkpoint_interval_ms:
            need = max(need, 2 * self._checkpoint_interval_ms)
        if need <= self._remember_ms:
            return
        self._remember_ms = need
        for parent in self._parents:
            parent._remember(self._op.parent_remember_ms(need))

    # -- generating RDDs --------------------------------------------------------------
    def _is_valid_time(self, time_ms: int) -> bool:
        return (self._zero_ms is not None and time_ms > self._zero_ms
                and (time_ms - self._zero_ms) % self._slide_ms == 0)

    def _get_or_compute(self, time_ms: int) -> RDD | None:
        """This stream's RDD for ``time_ms``, made at most once."""
        with self._lock:
            if time_ms in self._generated:
                return self._generated[time_ms]
            if not self._is_valid_time(time_ms):
                return None
            rdd = self._op.compute(self, time_ms)
            if rdd is not None:
                if self._storage_level is not None and not rdd.is_cached:
                    rdd.persist(self._storage_level)
                interval = self._checkpoint_interval_ms
                if interval and (time_ms - self._zero_ms) % interval == 0:
                    rdd.checkpoint()
            self._generated[time_ms] = rdd
            return rdd

    def _clear_old(self, time_ms: int) -> None:
        """Forget RDDs older than the remember window (unpersisting them)."""
        with self._lock:
            old = [t for t in self._generated if t <= time_ms - self._remember_ms]
            for t in old:
                rdd = self._generated.pop(t)
                if rdd is not None and rdd.is_cached:
                    rdd.unpersist()
                forget = getattr(self._op, "forget", None)
                if forget is not None:
                    forget(t, rdd)
        for parent in self._parents:
            parent._clear_old(time_ms)

    def _generated_times(self) -> list[int]:
        with self._lock:
            return sorted(self._generated)

    # -- persistence and checkpointing ----------------------------------------------------
    def cache(self) -> "DStream":
        """Persist each RDD of this stream (MEMORY_ONLY)."""
        return self.persist(StorageLevel.MEMORY_ONLY)

    def persist(self, storageLevel: StorageLevel) -> "DStream":
        self._storage_level = storageLevel
        return self

    def checkpoint(self, interval) -> "DStream":
        """Checkpoint this stream's RDDs every ``interval`` seconds (a multiple of
        the slide), cutting their lineage."""
        interval_ms = duration_ms(interval, "checkpoint interval")
        if interval_ms % self._slide_ms:
            raise ValueError(f"checkpoint interval {interval}s is not a multiple of the "
                             f"slide duration {self._slide_ms / 1000}s")
        self._checkpoint_interval_ms = interval_ms
        self._must_checkpoint = True
        return self

    def slice(self, begin, end) -> list[RDD]:
        """The RDDs generated between two times (datetime or epoch seconds), inclusive."""
        begin_ms, end_ms = to_ms(begin), to_ms(end)
        if self._zero_ms is None:
            raise ValueError("slice() needs a started StreamingContext")
        slide = self._slide_ms
        first = self._zero_ms + max(0, -(-(begin_ms - self._zero_ms) // slide)) * slide
        rdds = []
        t = max(first, self._zero_ms + slide)
        while t <= end_ms:
            rdd = self._get_or_compute(t)
            if rdd is not None:
                rdds.append(rdd)
            t += slide
        return rdds
