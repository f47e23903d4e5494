"""A recoverable Kafka job for tests/test_kafka.py: the direct stream's values,
each batch saved with saveAsTextFiles (atomic, replaced on replay).

    python kafka_exactly_once_job.py CHECKPOINT_DIR OUT_DIR BOOTSTRAP TOPIC MAX_RATE

Each partition's task takes 0.2 s more, so a batch is running most of the time
and a kill at a random moment usually lands in the middle of one. Ranges longer
than 60 records are split (spark.sluicegate.kafka.maxRecordsPerPartition), so a
re-run batch must get the same pieces.
"""
import sys
import time

from sluicegate.driver import SparkConf, SparkContext, StreamingContext
from sluicegate.driver.streaming.kafka import KafkaUtils

checkpoint, out, bootstrap, topic, max_rate = sys.argv[1:6]


def slowly(values):
    time.sleep(0.2)
    return values


def setup():
    conf = (SparkConf().setMaster("local[2]").setAppName("kafka-exactly-once")
            .set("spark.streaming.kafka.maxRatePerPartition", max_rate)
            .set("spark.sluicegate.kafka.maxRecordsPerPartition", "60")
            .set("spark.sluicegate.kafka.metadataTimeout", "2s")
            .set("spark.sluicegate.progress", "false")
            .set("spark.ui.enabled", "false"))
    ssc = StreamingContext(SparkContext(conf=conf), 0.5)
    stream = KafkaUtils.createDirectStream(
        ssc, [topic], {"bootstrap.servers": bootstrap, "auto.offset.reset": "smallest"})
    stream.map(lambda kv: kv[1]).mapPartitions(slowly).saveAsTextFiles(out + "/batch")
    return ssc


ssc = StreamingContext.getOrCreate(checkpoint, setup)
ssc.start()
print("started", flush=True)
ssc.awaitTermination()
