"""A recoverable job for tests/test_kafka_sink.py: the direct stream's values
written to a sink topic with saveToKafka(transactional=True), then a slow
second output.

    python kafka_transactional_sink_job.py CHECKPOINT_DIR MARK_DIR BOOTSTRAP SOURCE SINK

The second output creates ``MARK_DIR/slow-<batch ms>-<n>`` and sleeps 0.8 s:
by then the batch's sink transactions are committed, and a driver killed
while the file is fresh dies before the batch is done, so recovery re-runs
the batch, sink included. Nothing may be written twice.
"""
import os
import sys
import time

from sluicegate.driver import SparkConf, SparkContext, StreamingContext
from sluicegate.driver.streaming.kafka import KafkaUtils

checkpoint, marks, bootstrap, source, sink = sys.argv[1:6]


def setup():
    conf = (SparkConf().setMaster("local[2]").setAppName("kafka-transactional-sink")
            .set("spark.streaming.kafka.maxRatePerPartition", "200")
            .set("spark.sluicegate.kafka.metadataTimeout", "2s")
            .set("spark.sluicegate.progress", "false")
            .set("spark.ui.enabled", "false"))
    ssc = StreamingContext(SparkContext(conf=conf), 0.5)
    stream = KafkaUtils.createDirectStream(
        ssc, [source], {"bootstrap.servers": bootstrap, "auto.offset.reset": "smallest"})
    values = stream.map(lambda kv: kv[1])
    values.saveToKafka(sink, {"bootstrap.servers": bootstrap}, transactional=True)

    def slowly(time_, rdd):
        if rdd.isEmpty():
            return
        n = len(os.listdir(marks))
        open(os.path.join(marks, f"slow-{int(time_.timestamp() * 1000)}-{n}"), "w").close()
        time.sleep(0.8)

    values.foreachRDD(slowly)
    return ssc


ssc = StreamingContext.getOrCreate(checkpoint, setup)
ssc.start()
print("started", flush=True)
ssc.awaitTermination()
