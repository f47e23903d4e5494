"""Fetching one Kafka offset range on the executor (``KafkaRangeSource``).

The driver decided the range ``[from, until)`` of one topic-partition and
wrote it into the batch's metadata checkpoint; this task reads exactly those
records straight from the brokers, whatever else the partition holds. Offsets
may have gaps (transaction markers, compaction): the range ends when the
consumer's position reaches ``until``, not when a record with offset
``until - 1`` was seen.

Consumers are cached per executor, one per (configuration, topic, partition),
as Spark's executors cache theirs: a stream's next batch usually starts where
the last one ended, and the records after it are then already prefetched. A
consumer never commits and never resets its offset on its own
(``auto.offset.reset=error``): a range that is not on the broker (a broker
restarted empty, a log truncated) is retried until the broker has it or the
poll timeout passes without progress, then the task fails saying which range.
A broker that is down is waited for the same way (librdkafka reconnects with
backoff); the scheduler retries a failed task.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Iterator

from sluicegate.common.kafka import KafkaMessageAndMetadata, client, consumer_config, with_logger
from sluicegate.common.protocol import plan as p

log = logging.getLogger("sluicegate.executor.kafka")

MAX_CACHED_CONSUMERS = 16
MAX_RECORDS_PER_POLL = 10_000
POLL_S = 0.1
RESEEK_BACKOFF_S = (0.1, 2.0)  # first and longest wait before asking again for a missing range


class KafkaFetchError(RuntimeError):
    """A range that could not be read within the poll timeout."""


class _Cached:
    """A consumer assigned to one topic-partition; ``next_offset`` is where its local
    queue continues, when the last range it read ended cleanly (else None)."""

    def __init__(self, consumer: Any, topic: str, partition: int):
        self.consumer = consumer
        self.topic = topic
        self.partition = partition
        self.next_offset: int | None = None
        self.leftover: list = []  # records past the last range, pulled with it

    def seek(self, offset: int) -> None:
        ck = client()
        self.consumer.assign([ck.TopicPartition(self.topic, self.partition, offset)])
        self.next_offset = None
        self.leftover = []

    def position(self) -> int | None:
        ck = client()
        try:
            found = self.consumer.position([ck.TopicPartition(self.topic, self.partition)])
        except Exception:  # noqa: BLE001 - unknown yet: the caller polls again
            return None
        offset = found[0].offset if found else -1
        return offset if offset >= 0 else None

    def close(self) -> None:
        try:
            self.consumer.close()
        except Exception:  # noqa: BLE001 - closing a consumer of a dead broker may fail
            pass


_CONSUMERS: "OrderedDict[tuple, _Cached]" = OrderedDict()
_LOCK = threading.Lock()


def _config(node: p.KafkaRangeSource) -> dict:
    config = consumer_config(node.config, "executor")
    config.setdefault("queued.max.messages.kbytes", 8192)  # prefetch per cached consumer
    # A cached consumer that read to the end of the log keeps a fetch waiting at the
    # broker; seeking it elsewhere (a range another executor continued, a split range)
    # waits for that fetch to come back: up to fetch.wait.max.ms (librdkafka: 500 ms).
    config.setdefault("fetch.wait.max.ms", 100)
    return config


def _checkout(node: p.KafkaRangeSource) -> tuple[tuple, _Cached]:
    config = _config(node)
    key = (tuple(sorted((k, repr(v)) for k, v in config.items())), node.topic, node.partition)
    with _LOCK:
        cached = _CONSUMERS.pop(key, None)
    if cached is None:
        cached = _Cached(client().Consumer(with_logger(config)), node.topic, node.partition)
    return key, cached


def _checkin(key: tuple, cached: _Cached) -> None:
    evicted = []
    with _LOCK:
        _CONSUMERS[key] = cached
        while len(_CONSUMERS) > MAX_CACHED_CONSUMERS:
            evicted.append(_CONSUMERS.popitem(last=False)[1])
    for old in evicted:
        old.close()


def build(node: p.KafkaRangeSource, ctx, full: bool) -> Iterator:
    """The plan node's records (counted as the task's input), read lazily chunk by chunk."""
    if node.until_offset <= node.from_offset:
        return iter(())
    return _records(node, ctx)


def _records(node: p.KafkaRangeSource, ctx) -> Iterator:
    key, cached = _checkout(node)
    done = False
    try:
        for chunk in _RangeReader(node, cached).chunks():
            ctx.records_in += len(chunk)
            yield from chunk
        done = True
    finally:
        if done:
            cached.next_offset = node.until_offset
            _checkin(key, cached)
        else:
            # Failed, or its reader stopped early (take): the next range seeks afresh.
            cached.next_offset = None
            cached.leftover = []
            _checkin(key, cached)


class _RangeReader:
    """Reads one range ``[from, until)`` through a cached consumer, a chunk (a list of
    records) at a time: waits out a broker that does not have the offsets yet, and
    fails once nothing came for the poll timeout."""

    def __init__(self, node: p.KafkaRangeSource, cached: _Cached):
        ck = client()
        self.node = node
        self.cached = cached
        self.position = node.from_offset  # the next offset the range needs
        self.convert = _CONVERTERS[node.form]
        self.timeout_s = node.poll_timeout_ms / 1000.0
        self.last_progress = time.monotonic()
        self.last_error: str | None = None
        self.backoff = RESEEK_BACKOFF_S[0]
        self.out_of_range = (ck.KafkaError._AUTO_OFFSET_RESET, ck.KafkaError.OFFSET_OUT_OF_RANGE)

    def chunks(self) -> Iterator[list]:
        node, cached, until = self.node, self.cached, self.node.until_offset
        if cached.next_offset != self.position:
            cached.seek(self.position)
        while self.position < until:
            if cached.leftover:
                messages, cached.leftover = cached.leftover, []
            else:
                messages = cached.consumer.consume(
                    min(until - self.position, MAX_RECORDS_PER_POLL), POLL_S)
            fast = _fast_chunk(messages, self.position, until, node.form) if messages else None
            if fast is not None:  # the usual case: records only, all inside the range
                self.position = messages[-1].offset() + 1
                chunk, reseek = fast, False
            else:
                chunk, reseek = self._sort_out(messages)
            if chunk:
                self.last_progress = time.monotonic()
                self.backoff = RESEEK_BACKOFF_S[0]
                yield chunk
                continue
            if cached.leftover or (not reseek and (cached.position() or -1) >= until):
                break  # the rest of the range is offsets without records (markers, compaction)
            self._wait(reseek)

    def _sort_out(self, messages: list) -> tuple[list, bool]:
        """The records of ``messages`` inside the range, one by one, and whether the
        broker said an offset is out of range; errors are noted, records before the range
        skipped, the next range's kept as the consumer's leftover."""
        node, convert, leftover = self.node, self.convert, self.cached.leftover
        until = node.until_offset
        chunk: list = []
        reseek = False
        position = self.position
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() in self.out_of_range:
                    reseek = True
                self.last_error = str(error)
                continue
            offset = message.offset()
            if offset < position:
                continue  # before the range: a batch the broker returned whole
            if offset >= until:
                leftover.append(message)  # the next range's, already here
                continue
            chunk.append(convert(message, node.topic, node.partition))
            position = offset + 1
        self.position = position
        return chunk, reseek

    def _wait(self, reseek: bool) -> None:
        """Nothing came: fail past the poll timeout; after an out-of-range answer, wait
        (doubling) and seek again."""
        node = self.node
        if time.monotonic() - self.last_progress > self.timeout_s:
            raise KafkaFetchError(
                f"Kafka topic {node.topic!r} partition {node.partition}: got offsets "
                f"[{node.from_offset}, {self.position}) of [{node.from_offset}, "
                f"{node.until_offset}) and then nothing for {self.timeout_s:g}s "
                "(spark.streaming.kafka.consumer.poll.ms)"
                + (f"; last error: {self.last_error}" if self.last_error else ""))
        if reseek:
            # The broker does not have these offsets (yet): ask again after a while.
            log.warning("Kafka %s-%d: offset %d out of range on the broker (%s); retrying in "
                        "%.1fs", node.topic, node.partition, self.position, self.last_error,
                        self.backoff)
            time.sleep(self.backoff)
            self.backoff = min(self.backoff * 2, RESEEK_BACKOFF_S[1])
            self.cached.seek(self.position)


def _fast_chunk(messages: list, position: int, until: int, form: str) -> list | None:
    """The records of ``messages`` converted with C-level loops (no Python call per
    record), when they are all records (no errors) with offsets inside the range;
    else None (the per-record path sorts them out)."""
    if form == "messages":
        return None
    message_type = type(messages[0])
    if messages[0].offset() < position or messages[-1].offset() >= until or \
            any(map(message_type.error, messages)):
        return None
    keys = list(map(message_type.key, messages))
    values = list(map(message_type.value, messages))
    if form == "utf8":
        keys = [None] * len(keys) if keys.count(None) == len(keys) else \
            [None if k is None else k.decode("utf-8") for k in keys]
        values = list(map(bytes.decode, values)) if None not in values else \
            [None if v is None else v.decode("utf-8") for v in values]
    return list(zip(keys, values))


def _utf8_pair(message, topic: str, partition: int) -> tuple:
    key = message.key()
    value = message.value()
    return (None if key is None else key.decode("utf-8"),
            None if value is None else value.decode("utf-8"))


def _raw_pair(message, topic: str, partition: int) -> tuple:
    return message.key(), message.value()


def _full(message, topic: str, partition: int) -> KafkaMessageAndMetadata:
    kind, stamp = message.timestamp()
    headers = message.headers()
    return KafkaMessageAndMetadata(topic, partition, message.offset(), message.key(),
                                   message.value(), stamp if kind else None, kind,
                                   list(headers) if headers is not None else None)


_CONVERTERS = {"utf8": _utf8_pair, "raw": _raw_pair, "messages": _full}
