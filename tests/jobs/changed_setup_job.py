"""stateful_recovery_job.py after an application change: its setup function now
lower-cases the words. Started on the original job's checkpoint directory it
must be refused (recovering would run the old graph), not recover.

Usage: changed_setup_job.py CHECKPOINT_DIR INBOX SOURCE OUT
"""
from sluicegate.driver import SparkConf, SparkContext, StreamingContext
from stateful_recovery_job import (
    CHECKPOINT,
    INBOX,
    OUT,
    SOURCE,
    OffsetReceiver,
    add_counts,
)


def setup():
    conf = (SparkConf().setMaster("local[2]").setAppName("recovery-test")
            .set("spark.streaming.receiver.writeAheadLog.enable", "true"))
    sc = SparkContext(conf=conf)
    ssc = StreamingContext(sc, 0.5)
    ssc.checkpoint(CHECKPOINT)
    words = ssc.textFileStream(INBOX).flatMap(str.split).map(str.lower)
    received = ssc.receiverStream(OffsetReceiver(SOURCE)).map(str.lower)
    counts = words.union(received).map(lambda w: (w, 1)).updateStateByKey(add_counts)
    counts.checkpoint(2)
    counts.saveAsTextFiles(OUT + "/state")
    return ssc


if __name__ == "__main__":
    ssc = StreamingContext.getOrCreate(CHECKPOINT, setup)
    ssc.start()
    ssc.awaitTermination()
