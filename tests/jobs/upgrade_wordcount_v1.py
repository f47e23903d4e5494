"""Version 1 of a word count the code-upgrade tests deploy three times.

Counts the words of new files in INBOX with updateStateByKey (its state is
checkpointed at the default interval, 10 s, and by a graceful stop) and prints
the whole state every batch as ``V1 STATE <sorted pairs>``. Started with plain
``getOrCreate``: a restart recovers it, PySpark's way.

Usage: upgrade_wordcount_v1.py CHECKPOINT_DIR INBOX SOURCE OUT (SOURCE is unused)
"""
import sys

from sluicegate.driver import SparkConf, SparkContext
from sluicegate.driver.streaming import StreamingContext

CHECKPOINT, INBOX, _, OUT = sys.argv[1:5]


def add_counts(new_values, last):
    return sum(new_values) + (last or 0)


def show(time, rdd):
    print("V1 STATE", sorted(rdd.collect()), flush=True)


def setup():
    print("SETUP CALLED", flush=True)
    sc = SparkContext(conf=SparkConf().setMaster("local[2]").setAppName("upgrade-test"))
    ssc = StreamingContext(sc, 0.5)
    counts = ssc.textFileStream(INBOX).flatMap(str.split).map(lambda w: (w, 1)) \
        .updateStateByKey(add_counts)
    counts.foreachRDD(show)
    return ssc


if __name__ == "__main__":
    ssc = StreamingContext.getOrCreate(CHECKPOINT, setup)
    ssc.start()
    print("STREAMING STARTED", flush=True)
    ssc.awaitTermination()
