"""The driver's view of the brokers: which partitions exist, where each one
starts and ends, what a consumer group committed, and committing.

One consumer that never subscribes (so it never joins the group and never
fetches records for itself) answers metadata and offset requests, and commits
for the user's ``group.id``.

Where a partition ends: a broker's ListOffsets answer is the end. Some
Kafka-protocol brokers report less -- Tansu's memory store answers the newest
record batch's base offset plus one, so the rest of that batch is fetchable
but not counted (a producer's last batch would wait for the next one). A
fetch response's high watermark is right on every broker, so for each
partition whose reported end moved since it was last looked at, a second
consumer fetches the one record batch at ``end - 1`` and takes the fetch's
high watermark. An end that did not move costs nothing more.
"""
from __future__ import annotations

import collections
import logging
import re
import threading
import time
from typing import Callable, Iterable

from sluicegate.common.kafka import client, consumer_config, with_logger

log = logging.getLogger("sluicegate.kafka")

TP = tuple  # (topic, partition)


class KafkaUnavailable(RuntimeError):
    """The brokers did not answer in time."""


class BrokerOffsets:
    def __init__(self, config: dict, timeout_s: float,
                 on_commit: Callable[[dict, list, Exception | None], None] | None = None):
        self.config = config
        self.timeout_s = timeout_s
        self.on_commit = on_commit
        self._commits_in_flight: collections.deque = collections.deque()  # (offsets, callbacks)
        self._consumer = None
        self._prober = None
        self._listed_and_true: dict[TP, tuple[int, int]] = {}
        self._lock = threading.RLock()

    # -- clients ------------------------------------------------------------------------
    def consumer(self):
        with self._lock:
            if self._consumer is None:
                config = with_logger(consumer_config(self.config, "driver"))
                config["on_commit"] = self._commit_done
                self._consumer = client().Consumer(config)
            return self._consumer

    def _probe_consumer(self):
        if self._prober is None:
            config = with_logger(consumer_config(self.config, "probe"))
            # One record batch per partition and little prefetch: only its watermark is wanted.
            config.update({"max.partition.fetch.bytes": 1, "queued.min.messages": 1,
                           "fetch.wait.max.ms": 10, "queued.max.messages.kbytes": 1024})
            self._prober = client().Consumer(config)
        return self._prober

    def close(self) -> None:
        with self._lock:
            for consumer in (self._consumer, self._prober):
                if consumer is not None:
                    try:
                        consumer.close()
                    except Exception:  # noqa: BLE001 - a broker that is gone
                        pass
            self._consumer = self._prober = None

    # -- metadata ------------------------------------------------------------------------
    def _metadata(self, topic: str | None):
        """The brokers' cluster metadata (of every topic, or of ``topic``)."""
        ck = client()
        try:
            return self.consumer().list_topics(topic, timeout=self.timeout_s)
        except ck.KafkaException as exc:
            raise KafkaUnavailable(f"no metadata from the brokers "
                                   f"{self.config.get('bootstrap.servers')} within "
                                   f"{self.timeout_s:g}s: {exc}") from None

    def topics(self, topic: str | None = None) -> dict[str, int]:
        """Topic name -> partition count, of every topic (or of ``topic``); topics the
        broker reports an error for are left out."""
        metadata = self._metadata(topic)
        return {name: len(t.partitions) for name, t in metadata.topics.items()
                if t.error is None and t.partitions and not name.startswith("__")}

    def topic_error(self, topic: str) -> str | None:
        """Why ``topic`` cannot be read (it does not exist, no access), or None."""
        metadata = self._metadata(topic)
        found = metadata.topics.get(topic)
        if found is None:
            return "the broker does not know it"
        if found.error is not None:
            return str(found.error.str() if hasattr(found.error, "str") else found.error)
        if not found.partitions:
            return "it has no partitions"
        return None

    def partitions(self, names: Iterable[str] | None = None,
                   pattern: "re.Pattern | None" = None) -> list[TP]:
        """The partitions of the named topics (those that exist) or of every topic
        whose whole name matches ``pattern``."""
        counts = self.topics()
        if pattern is not None:
            chosen = [t for t in counts if pattern.fullmatch(t)]
        else:
            chosen = [t for t in names or () if t in counts]
        return sorted((t, p) for t in chosen for p in range(counts[t]))

    # -- offsets --------------------------------------------------------------------------
    def _list(self, tps: list[TP], which: int) -> dict[TP, int]:
        ck = client()
        if not tps:
            return {}
        try:
            found = self.consumer().offsets_for_times(
                [ck.TopicPartition(t, p, which) for t, p in tps], timeout=self.timeout_s)
        except ck.KafkaException as exc:
            raise KafkaUnavailable(f"no offsets from the brokers "
                                   f"{self.config.get('bootstrap.servers')} within "
                                   f"{self.timeout_s:g}s: {exc}") from None
        out = {}
        for tp in found:
            if tp.error is not None:
                raise KafkaUnavailable(f"offsets of {tp.topic}-{tp.partition}: {tp.error}")
            out[(tp.topic, tp.partition)] = tp.offset
        return out

    def earliest(self, tps: list[TP]) -> dict[TP, int]:
        return self._list(tps, client().OFFSET_BEGINNING)

    def latest(self, tps: list[TP]) -> dict[TP, int]:
        """Where each partition ends now (the offset after its newest record)."""
        listed = self._list(tps, client().OFFSET_END)
        with self._lock:
            return self._true_ends(listed)

    def forget_ends(self) -> None:
        """Probe every partition's end again next time."""
        with self._lock:
            self._listed_and_true.clear()

    def _true_ends(self, listed: dict[TP, int]) -> dict[TP, int]:
        ends = {}
        probe = {}
        for tp, end in listed.items():
            known = self._listed_and_true.get(tp)
            if known is not None and known[0] == end:
                ends[tp] = known[1]
            elif end > 0:
                probe[tp] = end
            else:
                ends[tp] = end
        if probe:
            found = self._probe(probe)
            for tp, end in probe.items():
                true_end = max(end, found.get(tp, end))
                if tp in found:
                    self._listed_and_true[tp] = (end, true_end)
                ends[tp] = true_end
        return ends

    def _probe(self, listed: dict[TP, int]) -> dict[TP, int]:
        """The fetch high watermark of each partition, read with one fetch at ``end - 1``."""
        ck = client()
        prober = self._probe_consumer()
        wanted = set(listed)
        seen: set[TP] = set()
        try:
            prober.assign([ck.TopicPartition(t, p, end - 1) for (t, p), end in listed.items()])
            deadline = time.monotonic() + min(self.timeout_s, 2.0)
            while seen != wanted and time.monotonic() < deadline:
                for message in prober.consume(len(wanted), 0.05):
                    if message.error() is None:
                        seen.add((message.topic(), message.partition()))
            found = {}
            for topic, partition in seen:
                _, high = prober.get_watermark_offsets(ck.TopicPartition(topic, partition),
                                                       cached=True)
                if high is not None and high >= 0:
                    found[(topic, partition)] = high
            return found
        except ck.KafkaException as exc:
            log.debug("probing partition ends failed: %s", exc)
            return {}
        finally:
            try:
                prober.unassign()
            except ck.KafkaException:
                pass

    def committed(self, tps: list[TP]) -> dict[TP, int]:
        """The group's committed offsets (partitions with none are left out)."""
        ck = client()
        if not tps or not self.config.get("group.id"):
            return {}
        try:
            found = self.consumer().committed([ck.TopicPartition(t, p) for t, p in tps],
                                              timeout=self.timeout_s)
        except ck.KafkaException as exc:
            raise KafkaUnavailable(f"no committed offsets for group "
                                   f"{self.config.get('group.id')!r} within "
                                   f"{self.timeout_s:g}s: {exc}") from None
        return {(tp.topic, tp.partition): tp.offset for tp in found
                if tp.error is None and tp.offset >= 0}

    def commit(self, offsets: dict[TP, int], callbacks: list | None = None) -> None:
        """Commit ``offsets`` (the next offset to read, per partition) for the group,
        asynchronously: ``on_commit(offsets, callbacks, error)`` hears the outcome
        during a later ``serve()``."""
        ck = client()
        self.serve()
        if not offsets:
            return
        with self._lock:
            consumer = self.consumer()
            self._commits_in_flight.append((dict(offsets), list(callbacks or ())))
            try:
                consumer.commit(offsets=[ck.TopicPartition(t, p, o)
                                         for (t, p), o in sorted(offsets.items())],
                                asynchronous=True)
            except ck.KafkaException:
                self._commits_in_flight.pop()
                raise

    def serve(self) -> None:
        """Deliver the outcomes of finished commits."""
        with self._lock:
            if self._consumer is not None and self._commits_in_flight:
                self._consumer.poll(0)

    def wait_for_commits(self) -> None:
        """Deliver the outcomes of every commit made, waiting up to the timeout."""
        deadline = time.monotonic() + self.timeout_s
        with self._lock:
            while self._consumer is not None and self._commits_in_flight and \
                    time.monotonic() < deadline:
                self._consumer.poll(0.05)

    def _commit_done(self, error, partitions) -> None:
        # librdkafka answers commits in the order they were made.
        if not self._commits_in_flight:
            return
        offsets, callbacks = self._commits_in_flight.popleft()
        if error is None:
            failed = [tp for tp in partitions or () if tp.error is not None]
            if failed:
                error = failed[0].error
        problem = None if error is None else RuntimeError(f"Kafka commit failed: {error}")
        if self.on_commit is not None:
            self.on_commit(offsets, callbacks, problem)
