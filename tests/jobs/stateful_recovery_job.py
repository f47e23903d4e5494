"""A stateful streaming job the recovery tests kill with SIGKILL and restart.

Counts words from new files in INBOX and from a reliable receiver that reads
numbered lines of SOURCE, resuming exactly after the last block it stored
(the offset travels with each block in the write-ahead log). Saves the full
state every batch under OUT and prints it.

Usage: stateful_recovery_job.py CHECKPOINT_DIR INBOX SOURCE OUT
"""
import sys
import threading
import time
from pathlib import Path

from sluicegate.driver import Receiver, SparkConf, SparkContext, StreamingContext

CHECKPOINT, INBOX, SOURCE, OUT = sys.argv[1:5]


class OffsetReceiver(Receiver):
    """Reads SOURCE's complete lines ten at a time from the last stored offset."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def onStart(self):
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        offset = self.lastStoredMetadata() or 0
        while not self.isStopped():
            try:
                text = Path(self.path).read_text()
            except FileNotFoundError:
                text = ""
            lines = text.split("\n")[:-1]  # only newline-terminated lines are complete
            if offset < len(lines):
                chunk = lines[offset:offset + 10]
                self.store(chunk, metadata=offset + len(chunk))
                offset += len(chunk)
            else:
                time.sleep(0.05)


def add_counts(new_values, last):
    return sum(new_values) + (last or 0)


def setup():
    conf = (SparkConf().setMaster("local[2]").setAppName("recovery-test")
            .set("spark.streaming.receiver.writeAheadLog.enable", "true"))
    sc = SparkContext(conf=conf)
    ssc = StreamingContext(sc, 0.5)
    ssc.checkpoint(CHECKPOINT)
    words = ssc.textFileStream(INBOX).flatMap(str.split)
    received = ssc.receiverStream(OffsetReceiver(SOURCE))
    counts = words.union(received).map(lambda w: (w, 1)).updateStateByKey(add_counts)
    counts.checkpoint(2)
    counts.saveAsTextFiles(OUT + "/state")
    counts.foreachRDD(lambda t, rdd: print("BATCH", t, sorted(rdd.collect()), flush=True))
    return ssc


if __name__ == "__main__":
    ssc = StreamingContext.getOrCreate(CHECKPOINT, setup)
    ssc.start()
    ssc.awaitTermination()
