"""Mirrors PySpark 2.x's ``pyspark.streaming.kafka`` (removed in PySpark 3):
``from sluicegate.driver.streaming.kafka import KafkaUtils, OffsetRange,
TopicAndPartition, Broker``.

Needs the ``confluent-kafka`` client: ``pip install 'sluicegate[kafka]'``.
"""
from sluicegate.common.kafka import KafkaMessageAndMetadata, utf8_decoder

from .direct_stream import KafkaDStream
from .offset_range import Broker, OffsetRange, TopicAndPartition
from .rdd import KafkaRDD
from .utils import KafkaUtils

__all__ = ["Broker", "KafkaDStream", "KafkaMessageAndMetadata", "KafkaRDD", "KafkaUtils",
           "OffsetRange", "TopicAndPartition", "utf8_decoder"]
