"""``DStream.saveToKafka``: each batch's records written to a Kafka topic.

An output operation: every batch, each partition's records go to the topic
from the executor that computed them (``common.kafka.WriteToKafka``), with an
idempotent producer (acks=all; its own retries never duplicate a record).
A task returns only once the brokers acknowledged all its records; a record
that cannot be delivered fails the task, which the scheduler retries, so the
sink is at-least-once: a retried task or a batch re-run after a driver crash
writes its records again.

With ``transactional=True`` (or a ``transactional.id`` in kafkaParams, taken
as the prefix of the producers' transactional ids) each partition of each
batch is one Kafka transaction that also commits a marker for that
(batch, partition), so readers with ``isolation.level=read_committed`` see
every record once: a retried task fences the attempt before it, and a batch
re-run after a driver crash skips the partitions it had committed
(``common.kafka.WriteToKafkaInTransactions``).

The configuration and the topic are checked when the output is defined: a
configuration the client refuses or a topic the brokers say does not exist is
an error then; brokers that do not answer are only a warning (they may be up
by the time the stream runs).
"""
from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any, Callable

from sluicegate.common import config as cfg
from sluicegate.common import kafka as ck

from .ops import to_ms

if TYPE_CHECKING:
    from .base import DStream

log = logging.getLogger("sluicegate.kafka")

DEFAULT_DELIVERY_TIMEOUT_MS = 120_000


def check_sink(topic: str, config: dict, timeout_s: float = 5.0) -> None:
    """Raise for a configuration the client refuses or a topic that does not exist."""
    client = ck.client()
    try:
        producer = client.Producer(ck.with_logger(ck.producer_config(config)))
    except client.KafkaException as exc:
        raise ck.KafkaConfigError(f"saveToKafka: the Kafka client refused kafkaParams: "
                                  f"{exc.args[0].str() if exc.args else exc}") from None
    del producer
    looker = client.Consumer(ck.with_logger({**ck.consumer_config(config, "sink-check"),
                                             "allow.auto.create.topics": False}))
    try:
        # A consumer that may not create topics: a producer's (or an admin client's)
        # metadata request may make the broker create the topic it asks about.
        metadata = looker.list_topics(topic, timeout=timeout_s)
    except client.KafkaException as exc:
        log.warning("saveToKafka: cannot check topic %r now (brokers %s: %s)", topic,
                    config.get("bootstrap.servers"), exc)
        return
    finally:
        looker.close()
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        why = "unknown" if found is None else found.error.str()
        raise ValueError(f"saveToKafka: Kafka topic {topic!r} cannot be written at "
                         f"{config.get('bootstrap.servers')}: {why}")


class KafkaOutputs:
    """Mixin of ``DStream``."""

    def saveToKafka(self: "DStream", topic: str, kafkaParams: dict,
                    keyFunc: Callable[[Any], Any] | None = None,
                    valueFunc: Callable[[Any], Any] | None = None,
                    transactional: bool | None = None) -> None:
        """Write every record of each batch to Kafka ``topic`` (at-least-once, with an
        idempotent producer; exactly-once for ``read_committed`` readers with
        ``transactional=True``).

        A record's value is ``valueFunc(record)`` (default: the record), its key
        ``keyFunc(record)`` (default: none); str is sent as UTF-8, bytes as they are,
        anything else as ``str()``. ``kafkaParams`` names the brokers
        (``bootstrap.servers``) and any producer settings (``acks``,
        ``compression.type``, ``message.timeout.ms`` -- how long a record may take
        to be delivered before its task fails, default 120 s, ...).

        ``transactional=True``, or a ``transactional.id`` in kafkaParams (then the
        prefix of the ids, which must be unique to this job), writes each partition
        of each batch in one Kafka transaction, with a deterministic transactional
        id per partition, so a retried task fences the attempt before it and a
        batch re-run after a driver crash writes nothing twice. Needs a broker with
        transactions, ``spark.streaming.concurrentJobs`` 1, and batches whose
        partitions hold the same records when re-run (e.g. the direct Kafka
        stream's)."""
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"saveToKafka: topic must be a topic name, got {topic!r}")
        config = ck.normalize_params(kafkaParams)
        for name, fn in (("keyFunc", keyFunc), ("valueFunc", valueFunc)):
            if fn is not None and not callable(fn):
                raise TypeError(f"saveToKafka: {name} should be a function")
        config.setdefault("message.timeout.ms", DEFAULT_DELIVERY_TIMEOUT_MS)
        check_sink(topic, config)
        timeout_s = float(config["message.timeout.ms"]) / 1000.0 + 5.0
        if transactional is None:
            transactional = "transactional.id" in config
        if not transactional:
            if "transactional.id" in config:
                raise ValueError("saveToKafka: kafkaParams has a transactional.id but "
                                 "transactional=False")
            writer = ck.WriteToKafka(topic, config, keyFunc, valueFunc, timeout_s)

            def save(time, rdd) -> None:
                rdd.foreachPartition(writer)

            self._output(save, "saveToKafka")
            return
        jobs = cfg.get_setting(self._ssc._conf, cfg.STREAMING_CONCURRENT_JOBS)
        if jobs != 1:
            raise ValueError(f"saveToKafka(transactional=True) needs batches written one after "
                             f"another: {cfg.STREAMING_CONCURRENT_JOBS} is {jobs}, not 1")
        # Unique to this job and output, and kept in the metadata checkpoint with the
        # output: a recovered driver writes with the same ids, fencing the old ones.
        base = str(config.get("transactional.id") or f"sluicegate-{uuid.uuid4().hex[:12]}")
        prefix = f"{base}-o{len(self._ssc._graph.outputs)}"
        transactions = ck.WriteToKafkaInTransactions(topic, config, keyFunc, valueFunc,
                                                     timeout_s, prefix)

        def save_in_transactions(time, rdd) -> None:
            rdd.foreachPartition(transactions.at(to_ms(time)))

        self._output(save_in_transactions, "saveToKafka")
