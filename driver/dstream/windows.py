"""Window operations: computations over the last ``windowDuration`` of batches,
every ``slideDuration`` (PySpark's semantics; durations in seconds).

``window`` unions the parent's RDDs in the window. As Spark's windowed stream,
it persists its parent (unless the user chose a storage level), so a record
in many windows is computed once -- a ``map`` before the window runs once per
record, a file is read once -- and the parent releases each RDD once it has
left every window (its remember duration grows by the window length).
``reduceByKeyAndWindow``
with an inverse function is incremental, as Spark's reduced-windowed stream:
the previous window's result, minus the slices that left, plus the slices
that entered. Every RDD involved is hash-partitioned the same way, so those
steps are narrow: the cached window result never moves over the network and
a batch costs the same whatever the window length. Without an inverse, each
batch's per-key reduction is cached on the executors and the window combines
those partial results, so no batch's records are read again.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from sluicegate.common import taskfuncs as tf

from ..rdd.base import RDD
from .ops import StreamOp, duration_ms

if TYPE_CHECKING:
    from .base import DStream

# Below this many slides per window, reducing the window from scratch is cheaper
# than subtracting and adding (Spark uses the same threshold).
INCREMENTAL_MIN_SLIDES = 5


def validate_window(parent: "DStream", window_s, slide_s) -> tuple[int, int]:
    """Window and slide in ms; ``ValueError`` unless both are multiples of the parent's slide."""
    window_ms = duration_ms(window_s, "windowDuration")
    slide_ms = parent._slide_ms if slide_s is None else duration_ms(slide_s, "slideDuration")
    parent_ms = parent._slide_ms
    if window_ms % parent_ms:
        raise ValueError(f"windowDuration must be multiple of the slide duration "
                         f"({window_ms / 1000}s is not a multiple of {parent_ms / 1000}s)")
    if slide_ms % parent_ms:
        raise ValueError(f"slideDuration must be multiple of the slide duration "
                         f"({slide_ms / 1000}s is not a multiple of {parent_ms / 1000}s)")
    return window_ms, slide_ms


def parent_rdds(parent: "DStream", begin_ms: int, end_ms: int) -> list[RDD]:
    """The parent's RDDs with times in ``(begin_ms, end_ms]``."""
    rdds = []
    t = begin_ms + parent._slide_ms
    while t <= end_ms:
        rdd = parent._get_or_compute(t)
        if rdd is not None:
            rdds.append(rdd)
        t += parent._slide_ms
    return rdds


class Windowed(StreamOp):
    """The union of the parent's RDDs over the window ending at each time."""

    def __init__(self, parent: "DStream", window_ms: int, slide_ms: int):
        self.parents = [parent]
        self.window_ms = window_ms
        self.slide = slide_ms
        parent.persist_default()  # each parent RDD is read by every window it is in

    def shape(self) -> tuple[str, dict]:
        return "window", {"window_ms": self.window_ms, "slide_ms": self.slide}

    def slide_ms(self) -> int:
        return self.slide

    def parent_remember_ms(self, remember_ms: int) -> int:
        return remember_ms + self.window_ms

    def compute(self, stream, time_ms):
        rdds = parent_rdds(self.parents[0], time_ms - self.window_ms, time_ms)
        if not rdds:
            return stream._sc.emptyRDD()
        return rdds[0] if len(rdds) == 1 else stream._sc.union(rdds)

    def describe(self):
        return f"Windowed[{self.window_ms}ms/{self.slide}ms]"


class ReducedWindowed(Windowed):
    """reduceByKeyAndWindow with an inverse function, updated incrementally.

    ``reduce(previous, new_rdd)`` and ``inverse(previous, old_rdd)`` combine
    co-partitioned RDDs; ``parent`` is the per-batch reduced stream.
    """

    # The class default serves operators pickled before they recorded it.
    num_partitions: int | None = None

    def __init__(self, parent: "DStream", reduce: Callable, inverse: Callable,
                 window_ms: int, slide_ms: int, num_partitions: int | None = None):
        super().__init__(parent, window_ms, slide_ms)
        self.reduce = reduce
        self.inverse = inverse
        self.num_partitions = num_partitions  # as the user gave it (None: the default)

    def shape(self) -> tuple[str, dict]:
        return "reduceByKeyAndWindow", {"window_ms": self.window_ms, "slide_ms": self.slide,
                                        "numPartitions": self.num_partitions}

    def compute(self, stream, time_ms):
        parent = self.parents[0]
        sc = stream._sc
        previous = stream._get_or_compute(time_ms - self.slide)
        if previous is not None and self.window_ms >= self.slide * INCREMENTAL_MIN_SLIDES:
            old = parent_rdds(parent, time_ms - self.slide - self.window_ms, time_ms - self.window_ms)
            result = self.inverse(previous, sc.union(old)) if old else previous
            new = parent_rdds(parent, time_ms - self.slide, time_ms)
            return self.reduce(result, sc.union(new)) if new else result
        current = parent_rdds(parent, time_ms - self.window_ms, time_ms)
        if not current:
            return None
        return self.reduce(None, sc.union(current))

    def describe(self):
        return f"ReducedWindowed[{self.window_ms}ms/{self.slide}ms]"


class WindowOperations:
    def window(self: "DStream", windowDuration, slideDuration=None) -> "DStream":
        """A stream of the union of the RDDs in each window."""
        window_ms, slide_ms = validate_window(self, windowDuration, slideDuration)
        return self._stream(Windowed(self, window_ms, slide_ms))

    def reduceByWindow(self: "DStream", reduceFunc: Callable, invReduceFunc: Callable | None,
                       windowDuration, slideDuration) -> "DStream":
        """One element per window: its elements reduced by ``reduceFunc``."""
        keyed = self.map(tf.one_key)
        reduced = keyed.reduceByKeyAndWindow(reduceFunc, invReduceFunc, windowDuration,
                                             slideDuration, 1)
        return reduced.map(tf.second)

    def countByWindow(self: "DStream", windowDuration, slideDuration) -> "DStream":
        """One element per window: how many elements it holds."""
        return self.map(tf.one).reduceByWindow(tf.add, tf.sub, windowDuration, slideDuration)

    def countByValueAndWindow(self: "DStream", windowDuration, slideDuration,
                              numPartitions: int | None = None) -> "DStream":
        """``(value, count in window)`` for every value in the window."""
        keyed = self.map(tf.with_one)
        counted = keyed.reduceByKeyAndWindow(tf.add, tf.sub, windowDuration, slideDuration,
                                             numPartitions)
        return counted.filter(tf.positive_value)

    def groupByKeyAndWindow(self: "DStream", windowDuration, slideDuration,
                            numPartitions: int | None = None) -> "DStream":
        """``(key, values in window)`` as a ResultIterable."""
        grouped = self.mapValues(tf.group_create).reduceByKeyAndWindow(
            tf.concat_lists, tf.drop_prefix, windowDuration, slideDuration, numPartitions)
        return grouped.mapValues(tf.to_result_iterable)

    def reduceByKeyAndWindow(self: "DStream", func: Callable, invFunc: Callable | None,
                             windowDuration, slideDuration=None, numPartitions: int | None = None,
                             filterFunc: Callable | None = None) -> "DStream":
        """Reduce each key's values over the window.

        With ``invFunc`` the window is kept incrementally (``func`` adds the
        newest slide, ``invFunc`` takes off the oldest); keys whose value
        became the "zero" stay until ``filterFunc`` drops them, as in PySpark.
        """
        window_ms, slide_ms = validate_window(self, windowDuration, slideDuration)
        n = numPartitions if numPartitions is not None else self._sc.defaultParallelism
        # Per-batch reductions are cached, so a window never re-reads a batch's records.
        reduced = self.reduceByKey(func, numPartitions).persist_default()
        if not invFunc:
            return reduced.window(windowDuration, slideDuration).reduceByKey(func, numPartitions)

        def add(previous: RDD | None, new: RDD) -> RDD:
            new = new.reduceByKey(func, n)
            result = previous.union(new).reduceByKey(func, n) if previous is not None else new
            return result.filter(filterFunc) if filterFunc else result

        def subtract(previous: RDD, old: RDD) -> RDD:
            old = old.reduceByKey(func, n)
            return previous.leftOuterJoin(old, n).mapValues(tf.InverseOrKeep(invFunc))

        stream = self._stream(ReducedWindowed(reduced, add, subtract, window_ms, slide_ms,
                                              numPartitions))
        stream.persist_default()
        stream._must_checkpoint = True
        return stream
