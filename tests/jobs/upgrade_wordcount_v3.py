"""Version 3 of upgrade_wordcount_v1.py: a second stateful operator (running counts
of word lengths) joins the graph. Its state is not in the checkpoint, so an
upgrade to it must be refused. Starts with plain ``getOrCreate``; the tests ask
for the upgrade with ``SLUICEGATE_CONF_spark_sluicegate_streaming_upgrade=true``.

Usage: upgrade_wordcount_v3.py CHECKPOINT_DIR INBOX SOURCE OUT (SOURCE is unused)
"""
import sys

from sluicegate.driver import SparkConf, SparkContext
from sluicegate.driver.streaming import StreamingContext

CHECKPOINT, INBOX, _, OUT = sys.argv[1:5]


def add_counts(new_values, last):
    return sum(new_values) + (last or 0)


def setup():
    print("SETUP CALLED", flush=True)
    sc = SparkContext(conf=SparkConf().setMaster("local[2]").setAppName("upgrade-test"))
    ssc = StreamingContext(sc, 0.5)
    words = ssc.textFileStream(INBOX).flatMap(str.split).map(str.lower)
    counts = words.map(lambda w: (w, 1)).updateStateByKey(add_counts)
    counts.checkpoint(0.5)
    counts.pprint()
    lengths = words.map(lambda w: (len(w), 1)).updateStateByKey(add_counts)
    lengths.checkpoint(0.5)
    lengths.pprint()
    return ssc


if __name__ == "__main__":
    ssc = StreamingContext.getOrCreate(CHECKPOINT, setup)
    ssc.start()
    print("STREAMING STARTED", flush=True)
    ssc.awaitTermination()
