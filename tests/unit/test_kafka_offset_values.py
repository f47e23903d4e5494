"""OffsetRange, TopicAndPartition and Broker (driver/streaming/kafka/offset_range.py):
their pickled form is what streaming checkpoints hold, so it must not change."""
import pickle

import pytest

from sluicegate.driver.streaming.kafka.offset_range import Broker, OffsetRange, TopicAndPartition


@pytest.mark.parametrize("value, state", [
    (OffsetRange("t", "1", 2, 5), ("t", 1, 2, 5)),
    (TopicAndPartition("t", "3"), ("t", 3)),
    (Broker("h", "9092"), ("h", 9092)),
])
def test_state_is_the_tuple_of_values_and_restores(value, state):
    assert value.__getstate__() == state
    restored = type(value).__new__(type(value))
    restored.__setstate__(state)  # as a checkpoint written before is read back
    assert repr(restored) == repr(value)
    assert repr(pickle.loads(pickle.dumps(value))) == repr(value)


def test_ranges_and_partitions_compare_by_value_brokers_by_identity():
    tp = TopicAndPartition("t", 1)
    assert tp == TopicAndPartition("t", 1) and not tp != TopicAndPartition("t", 1)
    assert tp != TopicAndPartition("t", 2) and tp != ("t", 1)
    assert hash(tp) == hash(("t", 1))
    r = OffsetRange("t", 1, 0, 10)
    assert r == OffsetRange("t", 1, 0, 10) and {r: 1}[OffsetRange("t", 1, 0, 10)] == 1
    assert r != tp and r.topicAndPartition() == tp and r.count() == 10
    assert Broker("h", 1) != Broker("h", 1)


def test_partition_and_broker_fields_are_read_only():
    tp, broker = TopicAndPartition("t", 1), Broker("h", 2)
    assert (tp.topic, tp.partition, tp._topic, tp._partition) == ("t", 1, "t", 1)
    assert (broker.host, broker.port) == ("h", 2)
    with pytest.raises(AttributeError):
        tp.topic = "u"
    with pytest.raises(AttributeError):
        broker.port = 3
    assert repr(tp) == "TopicAndPartition('t', 1)" and repr(broker) == "Broker('h', 2)"
    assert str(OffsetRange("t", 1, 2, 3)) == "OffsetRange(topic: t, partition: 1, range: [2 -> 3]"
