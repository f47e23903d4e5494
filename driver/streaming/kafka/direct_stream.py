"""The direct Kafka stream: no receiver, offsets decided by the driver.

Each batch, the driver (``KafkaDirectInput.compute``, on the streaming scheduler's
thread) finds the subscribed topics' partitions, asks the brokers where each
one ends, and cuts one ``OffsetRange`` per partition from where the last
batch stopped -- capped by ``spark.streaming.kafka.maxRatePerPartition`` and by
``rate_limit_per_s``, the stream-wide rate the backpressure controller sets
(``set_rate_limit``, called by ``streaming_scheduler.flow_control`` when
``spark.streaming.backpressure.enabled``). A range longer than
``spark.sluicegate.kafka.maxRecordsPerPartition`` is cut into several, one RDD
partition each. The ranges are part of this input's state, so the batch's
metadata checkpoint records them before any of its jobs run; executors then
fetch exactly those ranges from the brokers (``KafkaRDD``).

After a driver crash, ``getOrCreate`` restores the ranges: a batch that was
pending re-runs on the very same ranges, so an idempotent output (each
batch's ``saveAsTextFiles`` directory is replaced, never added to) holds
every record exactly once. Batches the downtime skipped start where the
last checkpointed batch stopped.

Where a stream starts (fresh, not recovered): ``fromOffsets`` for the
partitions it names, else the group's committed offset (with a
``group.id``), else ``auto.offset.reset`` -- ``latest`` (``largest``) by
default, or ``earliest`` (``smallest``); ``none`` makes a partition without a
committed offset an error. Partitions that appear later (a new partition, a
new topic matching a pattern) are read from their first offset.

Brokers that do not answer: the batch gets empty ranges (nothing is skipped;
the next batch starts where this one would have), the error goes to the log,
the batch's input info and the status pages, and the stream goes on when the
brokers are back. While they stay away the driver asks them again with
backoff (``spark.sluicegate.kafka.retryBackoff``, doubling up to
``retryBackoffMax``): the batches in between get empty ranges at once instead
of each waiting ``spark.sluicegate.kafka.metadataTimeout`` for an answer.

Offsets go back to the consumer group with ``KafkaDStream.commitAsync``
(the 0.10 integration's ``CanCommitOffsets``), or by themselves after each
batch whose outputs all succeeded when ``enable.auto.commit`` is true; either
way they are committed at the start of the next batch, asynchronously.
"""
from __future__ import annotations

import collections
import logging
import re
import threading
import time
from typing import TYPE_CHECKING, Callable

from sluicegate.common import kafka as ck

from ...dstream.base import DStream
from ...dstream.inputs import InputOp
from ...streaming_scheduler.streaming_listener import StreamingListener
from .offset_range import (TP, OffsetRange, batch_ranges, max_records_per_partition,
                           split_ranges)
from .offsets import BrokerOffsets, KafkaUnavailable
from .rdd import KafkaRanges, KafkaRDD, RecordForm

if TYPE_CHECKING:
    from ...context.streaming_context import StreamingContext

log = logging.getLogger("sluicegate.kafka")


class KafkaDirectInput(InputOp):
    """The direct stream's input operator (Spark's DirectKafkaInputDStream)."""

    def __init__(self, batch_ms: int, stream_id: int, topics: list[str] | None,
                 pattern: "re.Pattern | None", config: dict, from_offsets: dict[TP, int],
                 records: RecordForm, settings: dict):
        super().__init__(batch_ms, stream_id)
        self.topics = topics
        self.pattern = pattern
        self.config = config
        self.from_offsets = dict(from_offsets)
        self.records = records
        self.max_rate_per_partition = float(settings["maxRatePerPartition"])
        self.min_rate_per_partition = float(settings["minRatePerPartition"])
        self.poll_timeout_ms = int(settings["pollTimeoutMs"])
        self.metadata_timeout_s = float(settings["metadataTimeoutS"])
        self.max_records_per_split = int(settings.get("maxRecordsPerPartition", 0))
        self.retry_backoff_s = float(settings.get("retryBackoffS", ck.DEFAULT_RETRY_BACKOFF_S))
        self.retry_backoff_max_s = float(settings.get("retryBackoffMaxS",
                                                      ck.DEFAULT_RETRY_BACKOFF_MAX_S))
        self.auto_commit = ck.wants_auto_commit(config)
        self.rate_limit_per_s: float | None = None
        self.positions: dict[TP, int] = {}  # next offset to read, per partition
        self.ranges_by_batch: dict[int, list[OffsetRange]] = {}
        self.errors_by_batch: dict[int, str] = {}
        self.lag_by_batch: dict[int, dict[str, int]] = {}  # records left behind, per partition
        self._init_transient()

    def _init_transient(self) -> None:
        self._broker: BrokerOffsets | None = None
        self._commits: collections.deque = collections.deque()  # (offsets, callback)
        self._uncommitted: dict[int, list[OffsetRange]] = {}  # auto-commit: batches in flight
        self._listening_to = None
        self._behind: set[TP] = set()  # partitions ending before our position (warned once)
        self._failures = 0  # batches in a row the brokers did not answer
        self._retry_at = 0.0  # monotonic time before which they are not asked again
        self._last_error = ""
        self._lock = threading.RLock()

    def __getstate__(self):
        state = self.__dict__.copy()
        for transient in ("_broker", "_commits", "_uncommitted", "_listening_to", "_lock",
                          "_behind", "_failures", "_retry_at", "_last_error"):
            state.pop(transient, None)
        return state

    def __setstate__(self, state):
        # Checkpoints written before these settings existed: their defaults.
        state.setdefault("max_records_per_split", 0)
        state.setdefault("retry_backoff_s", ck.DEFAULT_RETRY_BACKOFF_S)
        state.setdefault("retry_backoff_max_s", ck.DEFAULT_RETRY_BACKOFF_MAX_S)
        self.__dict__.update(state)
        self._init_transient()

    # -- the brokers ------------------------------------------------------------------------
    def broker(self) -> BrokerOffsets:
        if self._broker is None:
            self._broker = BrokerOffsets(self.config, self.metadata_timeout_s,
                                         on_commit=self._committed)
        return self._broker

    def _partitions(self) -> list[TP]:
        return self.broker().partitions(self.topics, self.pattern)

    def start(self, stream: DStream) -> None:
        """Check the configuration and the topics, and fix where each partition starts:
        errors here are raised by ``StreamingContext.start()``."""
        try:
            self._start(stream)
        except BaseException:
            self.close()  # the context does not start: nothing else would close the clients
            raise

    def _start(self, stream: DStream) -> None:
        broker = self.broker()
        try:
            broker.consumer()
        except ck.client().KafkaException as exc:
            raise ck.KafkaConfigError(f"createDirectStream: the Kafka client refused kafkaParams: "
                                      f"{exc.args[0].str() if exc.args else exc}") from None
        try:
            for topic in self.topics or ():
                problem = broker.topic_error(topic)
                if problem is not None:
                    raise ValueError(f"createDirectStream: Kafka topic {topic!r} cannot be read "
                                     f"from {self.config['bootstrap.servers']}: {problem}")
            partitions = self._partitions()
            self.positions = self._starting_positions(partitions)
        except KafkaUnavailable as exc:
            raise ConnectionError(f"createDirectStream: {exc}") from None
        self._listen(stream)
        log.info("Kafka direct stream %d starts at %s", self.stream_id,
                 ", ".join(f"{t}-{p}@{o}" for (t, p), o in sorted(self.positions.items())) or
                 "no partitions yet")

    def _starting_positions(self, partitions: list[TP]) -> dict[TP, int]:
        positions = {tp: o for tp, o in self.from_offsets.items()}
        rest = [tp for tp in partitions if tp not in positions]
        if not rest:
            return positions
        broker = self.broker()
        committed = broker.committed(rest)
        positions.update(committed)
        rest = [tp for tp in rest if tp not in committed]
        reset = self.config.get("auto.offset.reset", "latest")
        if rest and reset == "none":
            raise ValueError("createDirectStream: auto.offset.reset is none and group "
                             f"{self.config.get('group.id')!r} has no committed offset for "
                             + ", ".join(f"{t}-{p}" for t, p in rest))
        if rest:
            found = broker.earliest(rest) if reset == "earliest" else broker.latest(rest)
            positions.update(found)
        return positions

    # -- each batch ---------------------------------------------------------------------------
    def compute(self, stream: DStream, time_ms: int):
        with self._lock:
            self._listen(stream)
            ranges = self.ranges_by_batch.get(time_ms)
            if ranges is None:  # a new batch (not one re-run after recovery)
                self._flush_commits()
                ranges = self._next_ranges(time_ms)
                self.ranges_by_batch[time_ms] = ranges
            if self.auto_commit:
                self._uncommitted[time_ms] = ranges
            self.records_by_batch[time_ms] = sum(r.count() for r in ranges)
        lineage = KafkaRanges(ranges, self.config, self.records, self.poll_timeout_ms,
                              f"KafkaRDD[{self.describe_topics()} @ {time_ms}]")
        return KafkaRDD(stream._sc, lineage)

    def _next_ranges(self, time_ms: int) -> list[OffsetRange]:
        broker = self.broker()
        wait_s = self._retry_at - time.monotonic()
        if wait_s > 0:  # backing off: the brokers did not answer the last batches
            self.errors_by_batch[time_ms] = (f"{self._last_error} (no answer {self._failures} "
                                             f"times in a row; asking again in {wait_s:.1f}s)")
            return self._standing_still()
        try:
            present = self._partitions()
            for tp in present:
                if tp not in self.positions:  # appeared since the stream started
                    start = self.from_offsets.get(tp)
                    self.positions[tp] = start if start is not None else broker.earliest([tp])[tp]
                    log.info("Kafka direct stream %d: new partition %s-%d from offset %d",
                             self.stream_id, tp[0], tp[1], self.positions[tp])
            reading = {tp: self.positions[tp] for tp in present}
            ends = broker.latest(list(reading))
        except KafkaUnavailable as exc:
            self._failures += 1
            backoff = min(self.retry_backoff_max_s,
                          self.retry_backoff_s * 2 ** min(self._failures - 1, 30))
            self._retry_at = time.monotonic() + backoff
            self._last_error = str(exc)
            log.warning("Kafka direct stream %d: batch %s: %s; no new records this batch, "
                        "asking the brokers again in %.1fs", self.stream_id, time_ms, exc, backoff)
            self.errors_by_batch[time_ms] = str(exc)
            broker.forget_ends()  # a broker that comes back may hold other batches
            return self._standing_still()
        if self._failures:
            log.info("Kafka direct stream %d: the brokers answer again (after %d batches without)",
                     self.stream_id, self._failures)
            self._failures, self._retry_at, self._last_error = 0, 0.0, ""
        lags = {tp: ends.get(tp, pos) - pos for tp, pos in reading.items()}
        limits = max_records_per_partition(lags, self.batch_ms / 1000.0,
                                           self.max_rate_per_partition, self.rate_limit_per_s,
                                           self.min_rate_per_partition)
        ranges = batch_ranges(reading, ends, limits)
        self.lag_by_batch[time_ms] = {f"{r.topic}-{r.partition}":
                                      max(0, ends.get((r.topic, r.partition), 0) - r.untilOffset)
                                      for r in ranges}
        for r in ranges:
            tp = (r.topic, r.partition)
            behind = ends.get(tp, r.fromOffset) < r.fromOffset
            if behind and tp not in self._behind:
                log.warning("Kafka %s-%d ends at %d, before this stream's position %d (a broker "
                            "that lost data?): waiting for it to get there", r.topic, r.partition,
                            ends[tp], r.fromOffset)
            if behind:
                self._behind.add(tp)
            else:
                self._behind.discard(tp)
            self.positions[tp] = r.untilOffset
        return split_ranges(ranges, self.max_records_per_split)

    def _standing_still(self) -> list[OffsetRange]:
        """Empty ranges where every partition stands (a batch without the brokers)."""
        return [OffsetRange(t, p, o, o) for (t, p), o in sorted(self.positions.items())]

    def set_rate_limit(self, records_per_s: float | None) -> None:
        """The stream-wide ingestion rate (records/s) from the next batch on, shared out
        over the partitions by their lag; None: no limit but maxRatePerPartition."""
        self.rate_limit_per_s = None if records_per_s is None else max(0.0, float(records_per_s))

    def input_metadata(self, time_ms: int) -> dict:
        """The batch's input info metadata, as Spark's direct stream reports it."""
        ranges = self.ranges_by_batch.get(time_ms, [])
        notes: dict = {
            "offsets": [(r.topic, r.partition, r.fromOffset, r.untilOffset) for r in ranges],
            "Description": "\n".join(f"topic: {r.topic}\tpartition: {r.partition}\toffsets: "
                                     f"{r.fromOffset} to {r.untilOffset}" for r in ranges)}
        lag = self.lag_by_batch.get(time_ms)
        if lag is not None:
            notes["lag"] = dict(lag)  # what the brokers held beyond the batch's ranges
            notes["totalLag"] = sum(lag.values())
        notes[ck.PARTITIONS_KEY] = _per_partition(ranges, lag)
        if time_ms in self.errors_by_batch:
            notes["error"] = self.errors_by_batch[time_ms]
        return notes

    # -- committing ---------------------------------------------------------------------------
    def commit_async(self, offset_ranges: list[OffsetRange], callback: Callable | None) -> None:
        offsets: dict[TP, int] = {}
        for r in offset_ranges:
            if not isinstance(r, OffsetRange):
                raise TypeError(f"commitAsync takes OffsetRanges, got {type(r).__name__}")
            tp = (r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.untilOffset)
        if not self.config.get("group.id"):
            raise ValueError("commitAsync needs a consumer group: set group.id in kafkaParams")
        self._commits.append((offsets, callback))

    def _flush_commits(self) -> None:
        if not self._commits:
            if self._broker is not None:
                self._broker.serve()
            return
        merged: dict[TP, int] = {}
        callbacks = []
        while self._commits:
            offsets, callback = self._commits.popleft()
            for tp, offset in offsets.items():
                merged[tp] = max(merged.get(tp, 0), offset)
            if callback is not None:
                callbacks.append(callback)
        try:
            self.broker().commit(merged, callbacks)
        except Exception as exc:  # noqa: BLE001 - a failed commit must not stop the stream
            log.warning("Kafka direct stream %d: committing %s failed: %s", self.stream_id,
                        merged, exc)
            for callback in callbacks:
                _call_back(callback, merged, exc)

    def _committed(self, merged: dict, callbacks: list, error: Exception | None) -> None:
        if error is not None:
            log.warning("Kafka direct stream %d: commit of %s failed: %s", self.stream_id,
                        merged, error)
        for callback in callbacks:
            _call_back(callback, merged, error)

    def _listen(self, stream: DStream) -> None:
        """With auto-commit: hear of completed batches (again after a recovery)."""
        if not self.auto_commit or self._listening_to is stream._ssc:
            return
        self._listening_to = stream._ssc
        stream._ssc.addStreamingListener(_CommitAfterOutputs(self))

    def batch_completed(self, time_ms: int, failed: bool) -> None:
        with self._lock:
            ranges = self._uncommitted.pop(time_ms, None)
            for t in [t for t in self._uncommitted if t < time_ms - 100 * self.batch_ms]:
                self._uncommitted.pop(t)  # never completed (a stop): bounded
        if ranges and not failed:
            self._commits.append(({(r.topic, r.partition): r.untilOffset for r in ranges}, None))

    # -- the input's life ---------------------------------------------------------------------
    def close(self) -> None:
        """The context stopped: commit what is queued, let go of the broker connections."""
        with self._lock:
            broker, self._broker = self._broker, None
            if broker is None:
                return
            self._broker = broker
            try:
                self._flush_commits()
                broker.wait_for_commits()
            finally:
                self._broker = None
                broker.close()

    def forget(self, stream: DStream, time_ms: int, rdd) -> None:
        super().forget(stream, time_ms, rdd)
        self.ranges_by_batch.pop(time_ms, None)
        self.errors_by_batch.pop(time_ms, None)
        self.lag_by_batch.pop(time_ms, None)

    def _remembered_times(self) -> set[int]:
        return super()._remembered_times() | set(self.ranges_by_batch)

    def take_position(self, old: InputOp) -> None:
        super().take_position(old)
        self.positions = dict(old.positions)
        self.ranges_by_batch = {t: list(r) for t, r in old.ranges_by_batch.items()}

    def shape(self) -> tuple[str, dict]:
        return "kafkaDirectStream", {}

    def describe_topics(self) -> str:
        return self.pattern.pattern if self.pattern is not None else ",".join(self.topics or ())

    def describe(self) -> str:
        return f"DirectKafkaInputDStream[{self.stream_id}: {self.describe_topics()}]"


def _per_partition(ranges: list[OffsetRange], lag: dict | None) -> list[dict]:
    """One entry per topic-partition (its pieces merged, when a range was split)."""
    merged: dict[TP, dict] = {}
    for r in ranges:
        entry = merged.get((r.topic, r.partition))
        if entry is None:
            merged[(r.topic, r.partition)] = {
                "topic": r.topic, "partition": r.partition, "fromOffset": r.fromOffset,
                "untilOffset": r.untilOffset, "records": r.count(), "splits": 1,
                "lag": (lag or {}).get(f"{r.topic}-{r.partition}")}
        else:
            entry["fromOffset"] = min(entry["fromOffset"], r.fromOffset)
            entry["untilOffset"] = max(entry["untilOffset"], r.untilOffset)
            entry["records"] += r.count()
            entry["splits"] += 1
    return [merged[tp] for tp in sorted(merged)]


def _call_back(callback: Callable, offsets: dict, error: Exception | None) -> None:
    ranges = {(t, p): o for (t, p), o in offsets.items()}
    try:
        callback(ranges, error)
    except Exception:  # noqa: BLE001 - user code: log it, the stream goes on
        log.exception("commitAsync callback failed")


class _CommitAfterOutputs(StreamingListener):
    def __init__(self, op: KafkaDirectInput):
        self.op = op

    def onBatchCompleted(self, batchCompleted) -> None:
        info = batchCompleted.batchInfo()
        self.op.batch_completed(info.batch_time_ms, info.failed())


class KafkaDStream(DStream):
    """The direct stream (PySpark's KafkaDStream): its RDDs are ``KafkaRDD``s, whose
    ``offsetRanges()`` say what each batch read; ``commitAsync`` stores offsets in
    the consumer group (the 0.10 integration's ``CanCommitOffsets``)."""

    def commitAsync(self, offsetRanges: list[OffsetRange],
                    callback: Callable[[dict, Exception | None], None] | None = None) -> None:
        """Queue ``offsetRanges``' ends to be committed to the consumer group
        (``group.id``) at the start of the next batch, asynchronously; thread-safe.
        Call it after the batch's outputs are done, e.g. last in ``foreachRDD``.
        ``callback(offsets, error)`` hears how it went: offsets as
        ``{(topic, partition): offset}``, error None on success."""
        self._op.commit_async(list(offsetRanges), callback)


def new_direct_stream(ssc: "StreamingContext", op_args: dict) -> KafkaDStream:
    """Register a direct stream as an input of ``ssc``."""
    ssc._check_can_define()
    op = KafkaDirectInput(ssc.batch_duration_ms, next(ssc._stream_ids), **op_args)
    stream = KafkaDStream(ssc, op)
    ssc._graph.add_input(stream)
    return stream
