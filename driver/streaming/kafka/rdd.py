"""KafkaRDD: an RDD whose partition ``i`` is offset range ``i``, read by the
executor that runs it straight from the brokers (``KafkaRangeSource``).

One offset range is one RDD partition: a batch's range of one Kafka
topic-partition, or a piece of it when the range was longer than
``spark.sluicegate.kafka.maxRecordsPerPartition``. Records come out as PySpark's
direct stream gives them: ``(key, value)`` decoded by the key and value
decoders (UTF-8 by default, decoded inline on the executor), or whatever a
``messageHandler`` makes of a ``KafkaMessageAndMetadata``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from sluicegate.common.kafka import DecodePair, HandleMessage, utf8_decoder
from sluicegate.common.protocol import plan as p

from ...rdd.base import RDD
from ...rdd.lineage import Lineage
from .offset_range import OffsetRange

if TYPE_CHECKING:
    from ...scheduler.planner import TaskPlanner


class RecordForm:
    """How a stream's records leave the executor: ``form`` of the plan node, and the
    function (a ``DecodePair`` or ``HandleMessage``) applied to each, if any. Made
    once per stream, so its closure keeps one id and ships once per executor."""

    def __init__(self, key_decoder: Callable | None, value_decoder: Callable | None,
                 message_handler: Callable | None):
        key_decoder = key_decoder or utf8_decoder
        value_decoder = value_decoder or utf8_decoder
        for name, fn in (("keyDecoder", key_decoder), ("valueDecoder", value_decoder),
                         ("messageHandler", message_handler)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} should be a function, got {type(fn).__name__}")
        if message_handler is not None:
            self.form, self.convert = "messages", HandleMessage(message_handler, key_decoder,
                                                                value_decoder)
        elif key_decoder is utf8_decoder and value_decoder is utf8_decoder:
            self.form, self.convert = "utf8", None  # decoded in the fetch loop: no call per record
        else:
            self.form, self.convert = "raw", DecodePair(key_decoder, value_decoder)


class KafkaRanges(Lineage):
    def __init__(self, ranges: list[OffsetRange], config: dict, records: RecordForm,
                 poll_timeout_ms: int, description: str = "KafkaRDD"):
        self.ranges = list(ranges)
        self.config = config
        self.records = records
        self.poll_timeout_ms = int(poll_timeout_ms)
        self.description = description
        self.dependencies = []

    def num_partitions(self) -> int:
        return len(self.ranges)

    def closures(self) -> list[Callable]:
        return [self.records.convert] if self.records.convert is not None else []

    def plan(self, split: int, planner: "TaskPlanner") -> p.PlanNode:
        r = self.ranges[split]
        node: p.PlanNode = p.KafkaRangeSource(
            topic=r.topic, partition=r.partition, from_offset=r.fromOffset,
            until_offset=r.untilOffset, config=self.config, form=self.records.form,
            poll_timeout_ms=self.poll_timeout_ms)
        if self.records.convert is not None:
            node = p.MapNode(planner.register(self.records.convert), node)
        return node

    def describe(self) -> str:
        return self.description


class KafkaRDD(RDD):
    """An RDD of Kafka records with the offset ranges it reads (PySpark's KafkaRDD)."""

    def offsetRanges(self) -> list[OffsetRange]:
        """The ``OffsetRange`` of each partition, in partition order (so
        ``offsetRanges()[TaskContext.get().partitionId()]`` is the running task's; a
        Kafka partition whose range was split has several, consecutive)."""
        return [OffsetRange(r.topic, r.partition, r.fromOffset, r.untilOffset)
                for r in self._lineage.ranges]
