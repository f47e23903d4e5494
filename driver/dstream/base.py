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

import threading
from typing import TYPE_CHECKING, Callable

from sluicegate.common.storagelevel import StorageLevel

from ..checkpoint.rdd_ref import CheckpointedRDD
from ..rdd.base import RDD
from .ops import StreamOp, Transformed, duration_ms, to_ms
from .hadoop_output import HadoopFileOutputs
from .kafka_output import KafkaOutputs
from .output import Outputs
from .pairs import PairOperations
from .stateful import StatefulOperations
from .stateless import StatelessOperations
from .windows import WindowOperations

if TYPE_CHECKING:
    from ..context.streaming_context import StreamingContext


class DStream(StatelessOperations, PairOperations, WindowOperations, StatefulOperations, Outputs,
              HadoopFileOutputs, KafkaOutputs):
    """A Discretized Stream (PySpark's ``DStream``): a continuous sequence of
    RDDs of the same type, one per batch interval."""

    # The state stream behind the stream mapWithState returns (for stateSnapshots).
    _state_stream: "DStream | None" = None

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
        self._checkpointed: dict[int, CheckpointedRDD] = {}  # newest state checkpoints
        self._owned: set[int] = set()  # ids of the RDDs this stream persisted (it releases them)

    # -- checkpointing the graph -----------------------------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        for transient in ("_ssc", "_sc", "_generated", "_lock", "_owned"):
            state.pop(transient, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._generated = {}
        self._owned = set()
        self._lock = threading.RLock()

    def _attach(self, ssc: "StreamingContext") -> None:
        """After recovery: belong to ``ssc`` and take back the checkpointed state."""
        self._ssc = ssc
        self._sc = ssc.sparkContext
        for time_ms, ref in self._checkpointed.items():
            rdd = ref.restore(self._sc)
            if self._storage_level is not None:
                rdd.persist(self._storage_level)
                self._owned.add(rdd.id())
            self._generated[time_ms] = rdd

    def _checkpoint_paths(self) -> set[str]:
        """The checkpoint directories this stream's restored state lives in."""
        paths = {ref.path for ref in self._checkpointed.values()}
        if isinstance(self._op.initial, CheckpointedRDD):
            paths.add(self._op.initial.path)
        return paths

    def _note_checkpoints(self) -> list[str]:
        """Record RDDs checkpointed since; return state directories now superseded."""
        with self._lock:
            done = {t: r for t, r in self._generated.items()  # written to files, not local
                    if r is not None and r.getCheckpointFile() is not None
                    and t not in self._checkpointed}
            if not done:
                return []
            for t, rdd in done.items():
                self._checkpointed[t] = CheckpointedRDD.of(rdd)
            newest = sorted(self._checkpointed)
            stale = newest[:-2]  # keep two: the newest metadata may be unreadable
            return [self._checkpointed.pop(t).path for t in stale]

    def _derive(self, func: Callable, *others: "DStream", kind: str = "transform",
                params: dict | None = None) -> "DStream":
        """A stream whose batch RDD is ``func(time, rdd, other_rdds...)``; ``kind`` and
        ``params`` name the operation in the graph's shape."""
        return DStream(self._ssc, Transformed([self, *others], func, kind, params))

    def _stream(self, op: StreamOp) -> "DStream":
        """A new stream in this context, made by ``op``."""
        return DStream(self._ssc, op)

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
        self._checkpoint_interval_ms = self._effective_checkpoint_interval_ms()
        for parent in self._parents:
            parent._initialize(zero_ms)

    def _effective_checkpoint_interval_ms(self) -> int | None:
        """The checkpoint interval given, or for a stream that must checkpoint, the
        default: the first multiple of its slide of at least 10 s."""
        if self._must_checkpoint and self._checkpoint_interval_ms is None:
            slide = self._slide_ms
            return slide * max(1, -(-10_000 // slide))
        return self._checkpoint_interval_ms

    def _shape(self) -> dict:
        """What kind of stream this is, for the graph's shape (see DStreamGraph.shape)."""
        kind, params = self._op.shape()
        return {"op": kind, "params": params, "slide_ms": self._slide_ms,
                "checkpoint_ms": self._effective_checkpoint_interval_ms()}

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
                    self._owned.add(rdd.id())
                interval = self._checkpoint_interval_ms
                if interval and (time_ms - self._zero_ms) % interval == 0:
                    rdd.checkpoint()
            self._generated[time_ms] = rdd
            return rdd

    def _clear_old(self, time_ms: int) -> None:
        """Forget RDDs older than the remember window, unpersisting those this stream
        persisted. An RDD this stream got from elsewhere (a window of one batch is its
        parent's RDD; a transform may return any RDD) is left to its owner, and one
        this stream still holds for a later time (a state that did not change) stays."""
        threshold = time_ms - self._remember_ms
        with self._lock:
            old = [t for t in self._generated if t <= threshold]
            forgotten = [(t, self._generated.pop(t)) for t in old]
            still_held = {id(r) for r in self._generated.values() if r is not None}
            for t, rdd in forgotten:
                if rdd is not None and id(rdd) not in still_held and rdd.id() in self._owned:
                    self._owned.discard(rdd.id())
                    if rdd.is_cached:
                        rdd.unpersist()
                self._op.forget(self, t, rdd)
            self._op.clear_before(self, threshold)
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

    def persist_default(self) -> "DStream":
        """Cache in memory unless the user chose a level (windows and state need it)."""
        if self._storage_level is None:
            self._storage_level = StorageLevel.MEMORY_ONLY
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
        """The RDDs generated between two times (datetime or epoch seconds), inclusive.

        As in Spark, times that are not batch times are floored to one."""
        begin_ms, end_ms = to_ms(begin), to_ms(end)
        if self._zero_ms is None:
            raise ValueError("slice() needs a started StreamingContext")
        slide = self._slide_ms
        first = self._zero_ms + ((begin_ms - self._zero_ms) // slide) * slide
        rdds = []
        t = max(first, self._zero_ms + slide)
        while t <= end_ms:
            rdd = self._get_or_compute(t)
            if rdd is not None:
                rdds.append(rdd)
            t += slide
        return rdds
