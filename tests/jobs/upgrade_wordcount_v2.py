"""Version 2 of upgrade_wordcount_v1.py: words are lower-cased before they are
counted, and the state is printed as ``V2 STATE`` and saved under OUT.

With ``WORDCOUNT_UPGRADE=1`` it starts with ``getOrCreate(..., upgrade=True)``:
the new code takes over version 1's checkpointed state and input positions.

Usage: upgrade_wordcount_v2.py CHECKPOINT_DIR INBOX SOURCE OUT (SOURCE is unused)
"""
import os
import sys

from sluicegate.driver import SparkConf, SparkContext
from sluicegate.driver.streaming import StreamingContext

CHECKPOINT, INBOX, _, OUT = sys.argv[1:5]


def add_counts(new_values, last):
    return sum(new_values) + (last or 0)


def show(time, rdd):
    print("V2 STATE", sorted(rdd.collect()), flush=True)


def setup():
    print("SETUP CALLED", flush=True)
    sc = SparkContext(conf=SparkConf().setMaster("local[2]").setAppName("upgrade-test"))
    ssc = StreamingContext(sc, 0.5)
    counts = ssc.textFileStream(INBOX).flatMap(str.split).map(str.lower) \
        .filter(bool).map(lambda w: (w, 1)).updateStateByKey(add_counts)
    counts.foreachRDD(show)
    counts.map(lambda kv: f"{kv[0]}\t{kv[1]}").saveAsTextFiles(os.path.join(OUT, "counts"))
    return ssc


if __name__ == "__main__":
    upgrade = os.environ.get("WORDCOUNT_UPGRADE") == "1"
    ssc = StreamingContext.getOrCreate(CHECKPOINT, setup, upgrade=upgrade)
    ssc.start()
    print("STREAMING STARTED", flush=True)
    ssc.awaitTermination()
