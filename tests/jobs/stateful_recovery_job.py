"""A stateful streaming job the recovery tests kill with SIGKILL and restart.

Counts words from new files in INBOX and from a reliable receiver that reads
numbered lines of SOURCE, resuming exactly after the last block it stored
(the offset travels with each block in the write-ahead log; the receiver
prints ``STORED <offset>`` once a block is stored). Prints the full state
every batch, then saves it under OUT; the state is checkpointed every second.

Usage: stateful_recovery_job.py CHECKPOINT_DIR INBOX SOURCE OUT

Options, from the environment (the tests' knobs):

* ``RECOVERY_JOB_CLOCK=<file>``: batch time comes from that file (epoch ms,
  written by the test), not the wall clock, so every batch holds the same data
  in every run. A recovered context keeps the clock its setup function built.
* ``RECOVERY_JOB_HOLD=<file>``: while that file exists, the save of the state's
  second partition waits (after touching ``<file>.holding``): the batch stays
  unfinished, half saved, for as long as the test wants.
* ``RECOVERY_JOB_ENTRY=getActiveOrCreate``: start with
  ``StreamingContext.getActiveOrCreate`` instead of ``getOrCreate``.
* ``RECOVERY_JOB_PARTITIONS=<n>``: updateStateByKey with ``numPartitions=n``
  (a graph of another shape, the same code).
"""
import os
import sys
import threading
import time
from pathlib import Path

from sluicegate.driver import Receiver, SparkConf, SparkContext, StreamingContext

CHECKPOINT, INBOX, SOURCE, OUT = sys.argv[1:5]
CLOCK = os.environ.get("RECOVERY_JOB_CLOCK", "")
HOLD = os.environ.get("RECOVERY_JOB_HOLD", "")
PARTITIONS = os.environ.get("RECOVERY_JOB_PARTITIONS", "")


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
                print(f"STORED {offset}", flush=True)
            else:
                time.sleep(0.05)


class FileClock:
    """The time (epoch ms) written in a file; 0 while there is none."""

    def __init__(self, path: str):
        self.path = path

    def now_ms(self) -> int:
        try:
            return int(Path(self.path).read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def wait_until(self, target_ms: int, stop: threading.Event) -> bool:
        while not stop.is_set():
            if self.now_ms() >= target_ms:
                return True
            stop.wait(0.01)
        return False


def add_counts(new_values, last):
    return sum(new_values) + (last or 0)


def hold_second_partition(index, records):
    """Identity; but partition 1 waits while the hold file exists."""
    if HOLD and index == 1 and os.path.exists(HOLD):
        Path(HOLD + ".holding").touch()
        while os.path.exists(HOLD):
            time.sleep(0.02)
    return records


def print_batch(t, rdd):
    print("BATCH", t, sorted(rdd.collect()), flush=True)


def setup():
    conf = (SparkConf().setMaster("local[2]").setAppName("recovery-test")
            .set("spark.streaming.receiver.writeAheadLog.enable", "true"))
    sc = SparkContext(conf=conf)
    ssc = StreamingContext(sc, 0.5, clock=FileClock(CLOCK) if CLOCK else None)
    ssc.checkpoint(CHECKPOINT)
    words = ssc.textFileStream(INBOX).flatMap(str.split)
    received = ssc.receiverStream(OffsetReceiver(SOURCE))
    counts = words.union(received).map(lambda w: (w, 1)) \
        .updateStateByKey(add_counts, int(PARTITIONS) if PARTITIONS else None)
    counts.checkpoint(1)
    counts.foreachRDD(print_batch)  # first: the state is checkpointed after this job
    counts.mapPartitionsWithIndex(hold_second_partition, True).saveAsTextFiles(OUT + "/state")
    return ssc


if __name__ == "__main__":
    if os.environ.get("RECOVERY_JOB_ENTRY") == "getActiveOrCreate":
        ssc = StreamingContext.getActiveOrCreate(CHECKPOINT, setup)
        ssc.start()
        print("ACTIVE IS THE SAME:", StreamingContext.getActiveOrCreate(CHECKPOINT, setup) is ssc,
              flush=True)
    else:
        ssc = StreamingContext.getOrCreate(CHECKPOINT, setup)
        ssc.start()
    print("STREAMING STARTED", flush=True)
    ssc.awaitTermination()
