"""Offset ranges, topic-partitions and brokers (PySpark 2.x's classes), and how
the direct stream sizes each batch's ranges.

``batch_ranges`` is a pure function: from where each partition stands and
where it ends now, the next batch's ranges, capped by
``spark.streaming.kafka.maxRatePerPartition`` and by a stream-wide rate (the
backpressure rate, once it exists) shared out in proportion to each
partition's lag, as Spark's ``maxMessagesPerPartition`` does.
"""
from __future__ import annotations

import math
from operator import attrgetter


class _SlotRecord:
    """Values in ``__slots__``, pickled as the tuple of them in slot order (streaming
    checkpoints hold these: the tuple is their stored form)."""

    __slots__ = ()

    def _key(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __getstate__(self):
        return self._key()

    def __setstate__(self, state):
        for name, value in zip(self.__slots__, state):
            setattr(self, name, value)


class _SlotValue(_SlotRecord):
    """A ``_SlotRecord`` equal to another of its class with the same values."""

    __slots__ = ()

    def __eq__(self, other) -> bool:
        return isinstance(other, type(self)) and self._key() == other._key()

    def __ne__(self, other) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self._key())


class OffsetRange(_SlotValue):
    """A range of offsets ``[fromOffset, untilOffset)`` of one Kafka topic-partition."""

    __slots__ = ("topic", "partition", "fromOffset", "untilOffset")

    def __init__(self, topic: str, partition: int, fromOffset: int, untilOffset: int):
        self.topic = topic
        self.partition = int(partition)
        self.fromOffset = int(fromOffset)
        self.untilOffset = int(untilOffset)

    def count(self) -> int:
        """How many offsets the range spans."""
        return self.untilOffset - self.fromOffset

    def topicAndPartition(self) -> "TopicAndPartition":
        return TopicAndPartition(self.topic, self.partition)

    def __str__(self) -> str:
        return (f"OffsetRange(topic: {self.topic}, partition: {self.partition}, range: "
                f"[{self.fromOffset} -> {self.untilOffset}]")

    __repr__ = __str__


class TopicAndPartition(_SlotValue):
    """A Kafka topic and one of its partitions (a key of ``fromOffsets``). As in
    PySpark, the values are kept as ``_topic`` and ``_partition``."""

    __slots__ = ("_topic", "_partition")

    def __init__(self, topic: str, partition: int):
        self._topic = topic
        self._partition = int(partition)

    topic = property(attrgetter("_topic"), doc="The topic's name.")
    partition = property(attrgetter("_partition"), doc="The partition's number.")

    def __repr__(self) -> str:
        return f"TopicAndPartition({self._topic!r}, {self._partition})"


class Broker(_SlotRecord):
    """A Kafka broker's host and port (``createRDD``'s ``leaders``). The client finds
    partition leaders itself, so leaders only add bootstrap brokers. Compared by
    identity, as PySpark's."""

    __slots__ = ("_host", "_port")

    def __init__(self, host: str, port: int):
        self._host = host
        self._port = int(port)

    host = property(attrgetter("_host"), doc="The broker's host name or address.")
    port = property(attrgetter("_port"), doc="The broker's port.")

    def __repr__(self) -> str:
        return f"Broker({self._host!r}, {self._port})"


TP = tuple  # (topic, partition)


def max_records_per_partition(lags: dict[TP, int], batch_s: float, max_rate_per_partition: float,
                              stream_rate: float | None, min_rate_per_partition: float = 1.0
                              ) -> dict[TP, int] | None:
    """How many records each partition may give one batch; None: no limit.

    ``max_rate_per_partition`` (records/s, 0: none) caps every partition;
    ``stream_rate`` (records/s for the whole stream, None: none) is shared out in
    proportion to each partition's lag, never below ``min_rate_per_partition``."""
    if not max_rate_per_partition and stream_rate is None:
        return None
    total_lag = sum(max(0, lag) for lag in lags.values())
    limits: dict[TP, int] = {}
    for tp, lag in lags.items():
        rate = math.inf
        if stream_rate is not None:
            share = stream_rate * (max(0, lag) / total_lag) if total_lag else stream_rate
            rate = max(share, min_rate_per_partition)
        if max_rate_per_partition:
            rate = min(rate, max_rate_per_partition)
        # At least one record per batch, so a slow rate still moves (Spark's floor).
        limits[tp] = max(1, int(rate * batch_s)) if rate != math.inf else -1
    return {tp: n for tp, n in limits.items() if n >= 0} or None


def batch_ranges(positions: dict[TP, int], ends: dict[TP, int],
                 limits: dict[TP, int] | None) -> list[OffsetRange]:
    """One range per partition from its position to its end (capped by ``limits``);
    a partition whose end is behind its position (a broker that lost data) gets an
    empty range and keeps its position."""
    ranges = []
    for tp in sorted(positions):
        start = positions[tp]
        end = max(start, ends.get(tp, start))
        if limits is not None and tp in limits:
            end = min(end, start + limits[tp])
        ranges.append(OffsetRange(tp[0], tp[1], start, end))
    return ranges


def split_ranges(ranges: list[OffsetRange], max_records: int) -> list[OffsetRange]:
    """``ranges`` with each range longer than ``max_records`` (0: no limit) cut into
    the fewest pieces of at most that many offsets, of near-equal size, in offset
    order: a pure function of its arguments, so a batch re-run after recovery gets
    the same pieces. Empty ranges stay (one RDD partition each, as Spark's)."""
    if max_records <= 0:
        return list(ranges)
    out = []
    for r in ranges:
        count = r.count()
        if count <= max_records:
            out.append(r)
            continue
        pieces = -(-count // max_records)  # ceil
        size, extra = divmod(count, pieces)
        start = r.fromOffset
        for i in range(pieces):
            end = start + size + (1 if i < extra else 0)
            out.append(OffsetRange(r.topic, r.partition, start, end))
            start = end
    return out
