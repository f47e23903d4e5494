"""KafkaUtils: the Kafka sources, with PySpark 2.x's names and arguments.

``createDirectStream`` is the receiver-less direct stream (see
``direct_stream``); ``createRDD`` reads given offset ranges once. Both take
``kafkaParams`` in the 0.8 style PySpark users wrote (``metadata.broker.list``,
``auto.offset.reset=smallest|largest``) or the 0.10 style (``bootstrap.servers``,
``group.id``, ``enable.auto.commit``, security settings), handed to the
librdkafka client (``confluent-kafka``).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable

from sluicegate.common import kafka as ck
from sluicegate.common.config import parse_duration_s

from .direct_stream import KafkaDStream, new_direct_stream
from .offset_range import TP, Broker, OffsetRange, TopicAndPartition
from .rdd import KafkaRanges, KafkaRDD, RecordForm

if TYPE_CHECKING:
    from ...context.spark_context import SparkContext
    from ...context.streaming_context import StreamingContext

utf8_decoder = ck.utf8_decoder


def _setting(conf: dict, key: str, default: Any, parse: Callable[[Any], Any]) -> Any:
    raw = conf.get(key, default)
    try:
        return parse(raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad value for {key}: {raw!r} ({exc})") from None


def _settings(conf: dict) -> dict:
    settings = {
        "maxRatePerPartition": _setting(conf, ck.MAX_RATE_PER_PARTITION, 0, float),
        "minRatePerPartition": _setting(conf, ck.MIN_RATE_PER_PARTITION, 1, float),
        "pollTimeoutMs": _setting(conf, ck.POLL_TIMEOUT, ck.DEFAULT_POLL_TIMEOUT_MS,
                                  lambda v: int(parse_duration_s(v, "ms") * 1000)),
        "metadataTimeoutS": _setting(conf, ck.METADATA_TIMEOUT, ck.DEFAULT_METADATA_TIMEOUT_S,
                                     lambda v: parse_duration_s(v, "s")),
        "maxRecordsPerPartition": _setting(conf, ck.MAX_RECORDS_PER_PARTITION, 0, int),
        "retryBackoffS": _setting(conf, ck.RETRY_BACKOFF, ck.DEFAULT_RETRY_BACKOFF_S,
                                  lambda v: parse_duration_s(v, "s")),
        "retryBackoffMaxS": _setting(conf, ck.RETRY_BACKOFF_MAX, ck.DEFAULT_RETRY_BACKOFF_MAX_S,
                                     lambda v: parse_duration_s(v, "s")),
    }
    for key, name in (("maxRatePerPartition", ck.MAX_RATE_PER_PARTITION),
                      ("minRatePerPartition", ck.MIN_RATE_PER_PARTITION),
                      ("maxRecordsPerPartition", ck.MAX_RECORDS_PER_PARTITION),
                      ("retryBackoffS", ck.RETRY_BACKOFF), ("retryBackoffMaxS", ck.RETRY_BACKOFF_MAX)):
        if settings[key] < 0:
            raise ValueError(f"{name} must not be negative, got {settings[key]}")
    if settings["pollTimeoutMs"] <= 0 or settings["metadataTimeoutS"] <= 0:
        raise ValueError(f"{ck.POLL_TIMEOUT} and {ck.METADATA_TIMEOUT} must be positive")
    return settings


def _topic_partition(key: Any) -> TP:
    if isinstance(key, TopicAndPartition):
        return key.topic, key.partition
    if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str):
        return key[0], int(key[1])
    raise TypeError(f"fromOffsets keys should be TopicAndPartition, got {key!r}")


class KafkaUtils:
    """Kafka sources (PySpark 2.x's ``pyspark.streaming.kafka.KafkaUtils``)."""

    @staticmethod
    def createDirectStream(ssc: "StreamingContext", topics, kafkaParams: dict,
                           fromOffsets: dict | None = None,
                           keyDecoder: Callable = utf8_decoder,
                           valueDecoder: Callable = utf8_decoder,
                           messageHandler: Callable | None = None) -> KafkaDStream:
        """A stream that reads Kafka directly, without a receiver: each batch's offset
        ranges are decided by the driver and kept in the metadata checkpoint, so a
        recovered stream re-runs a batch on exactly the records it read (exactly-once
        with an idempotent output).

        :param ssc: StreamingContext object.
        :param topics: list of topic names, or a compiled regular expression: every
            topic whose whole name matches, including topics created later.
        :param kafkaParams: Kafka parameters; the brokers (``bootstrap.servers`` or
            ``metadata.broker.list``) are required.
        :param fromOffsets: ``{TopicAndPartition: offset}``, where those partitions
            start (inclusive); others start at the group's committed offset or by
            ``auto.offset.reset`` (default ``largest``/``latest``).
        :param keyDecoder: decodes each key (default UTF-8).
        :param valueDecoder: decodes each value (default UTF-8).
        :param messageHandler: makes each record out of a ``KafkaMessageAndMetadata``
            (topic, partition, offset, key, message, timestamp, headers); default:
            ``(key, value)`` pairs.
        :return: a KafkaDStream.
        """
        pattern = None
        names = None
        if isinstance(topics, re.Pattern):
            pattern = topics
        elif isinstance(topics, (list, tuple, set, frozenset)):
            names = sorted(set(topics))
            if not names or not all(isinstance(t, str) and t for t in names):
                raise ValueError(f"topics should be a non-empty list of topic names, got {topics!r}")
        else:
            raise TypeError("topics should be list (or a compiled re pattern)")
        if not isinstance(kafkaParams, dict):
            raise TypeError("kafkaParams should be dict")
        config = ck.normalize_params(kafkaParams)
        if fromOffsets is None:
            fromOffsets = {}
        if not isinstance(fromOffsets, dict):
            raise TypeError("fromOffsets should be dict")
        starts: dict[TP, int] = {}
        for key, offset in fromOffsets.items():
            tp = _topic_partition(key)
            if not (pattern.fullmatch(tp[0]) if pattern is not None else tp[0] in names):
                raise ValueError(f"fromOffsets names topic {tp[0]!r}, which is not subscribed "
                                 f"(topics: {topics!r})")
            if not isinstance(offset, int) or offset < 0:
                raise ValueError(f"fromOffsets[{tp[0]}-{tp[1]}] must be an offset >= 0, "
                                 f"got {offset!r}")
            starts[tp] = offset
        records = RecordForm(keyDecoder, valueDecoder, messageHandler)
        return new_direct_stream(ssc, {
            "topics": names, "pattern": pattern, "config": config, "from_offsets": starts,
            "records": records, "settings": _settings(ssc._conf)})

    @staticmethod
    def createRDD(sc: "SparkContext", kafkaParams: dict, offsetRanges: list,
                  leaders: dict | None = None, keyDecoder: Callable = utf8_decoder,
                  valueDecoder: Callable = utf8_decoder,
                  messageHandler: Callable | None = None) -> KafkaRDD:
        """An RDD of the records in ``offsetRanges`` (one partition per range).

        :param sc: SparkContext object.
        :param kafkaParams: Kafka parameters (the brokers are required).
        :param offsetRanges: list of OffsetRange, ``topic:partition:[from, until)`` each.
        :param leaders: ``{TopicAndPartition: Broker}``; the client finds leaders itself,
            so these brokers are only added to the bootstrap list.
        :param keyDecoder: decodes each key (default UTF-8).
        :param valueDecoder: decodes each value (default UTF-8).
        :param messageHandler: makes each record out of a ``KafkaMessageAndMetadata``.
        :return: a KafkaRDD.
        """
        if not isinstance(kafkaParams, dict):
            raise TypeError("kafkaParams should be dict")
        if not isinstance(offsetRanges, list):
            raise TypeError("offsetRanges should be list")
        params = dict(kafkaParams)
        extra = []
        for tp, broker in (leaders or {}).items():
            if not isinstance(broker, Broker):
                raise TypeError(f"leaders values should be Broker, got {type(broker).__name__}")
            extra.append(f"{broker.host}:{broker.port}")
        if extra:
            known = params.get("bootstrap.servers") or params.get("metadata.broker.list")
            params["bootstrap.servers"] = ",".join(([known] if known else []) + extra)
        config = ck.normalize_params(params)
        for r in offsetRanges:
            if not isinstance(r, OffsetRange):
                raise TypeError(f"offsetRanges should hold OffsetRange, got {type(r).__name__}")
            if r.fromOffset < 0 or r.untilOffset < r.fromOffset:
                raise ValueError(f"{r}: offsets must satisfy 0 <= fromOffset <= untilOffset")
        records = RecordForm(keyDecoder, valueDecoder, messageHandler)
        settings = _settings(sc._conf.as_dict())
        return KafkaRDD(sc, KafkaRanges(offsetRanges, config, records, settings["pollTimeoutMs"]))
