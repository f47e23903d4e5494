"""What every DStream operator is, and batch-time helpers.

A ``StreamOp`` says how one kind of DStream makes the RDD of a batch time.
``Transformed`` -- ``func(time, parent_rdds...)`` -- is the one operator
every stateless operation is built on.
"""
from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Callable

from ..rdd.base import RDD

if TYPE_CHECKING:
    from ..checkpoint.rdd_ref import CheckpointedRDD
    from .base import DStream


class StreamOp:
    """How one kind of DStream makes a batch's RDD.

    Besides ``compute``, an operator may take part in forgetting old batches
    (``forget``, ``clear_before``), may start from an ``initial`` RDD that its
    stream's checkpoint must keep, and names itself for the graph's ``shape``.
    The defaults here do nothing; they are class attributes, so an operator
    unpickled from a checkpoint has them too.
    """

    parents: list["DStream"] = []
    # An RDD (or its checkpoint reference) the operator starts from, whose checkpoint
    # files recovery must keep; None if it has none.
    initial: "RDD | CheckpointedRDD | None" = None

    def slide_ms(self) -> int:
        return self.parents[0]._slide_ms

    def compute(self, stream: "DStream", time_ms: int) -> RDD | None:
        raise NotImplementedError

    def forget(self, stream: "DStream", time_ms: int, rdd: RDD | None) -> None:
        """Called once for each batch ``stream`` forgets (``rdd`` is what it generated
        for ``time_ms``, or None): drop what the operator keeps for that batch."""

    def clear_before(self, stream: "DStream", threshold_ms: int) -> None:
        """Called after ``stream`` forgot every batch up to ``threshold_ms``: drop what
        the operator still keeps for such batches that this run never generated."""

    def parent_remember_ms(self, remember_ms: int) -> int:
        """How long parents must keep RDDs when this stream keeps ``remember_ms``."""
        return remember_ms

    def describe(self) -> str:
        return type(self).__name__

    def shape(self) -> tuple[str, dict]:
        """The operator's kind and the parameters that fix its layout (durations in
        ms, partition counts as the user gave them), for the graph's shape that a
        checkpoint records; never paths, hosts or functions."""
        return type(self).__name__, {}


class Transformed(StreamOp):
    """``func(time, rdd_of_parent_0, rdd_of_parent_1, ...)`` every batch.

    ``kind`` and ``params`` name the operation (``"groupByKey"``,
    ``{"numPartitions": None}``) for the graph's shape."""

    # Defaults for operators pickled before they carried a kind (read only).
    kind = "transform"
    params: dict = {}

    def __init__(self, parents: list["DStream"], func: Callable, kind: str = "transform",
                 params: dict | None = None):
        self.parents = parents
        self.func = func
        self.kind = kind
        self.params = dict(params or {})
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

    def shape(self) -> tuple[str, dict]:
        return self.kind, dict(self.params)


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
