"""A streaming job saving each batch with saveAsPickleFiles and saveAsHadoopFiles,
which tests/test_hadoop_formats.py kills with SIGKILL in the middle of a save
and restarts from its checkpoint.

Usage: hadoop_outputs_recovery_job.py CHECKPOINT_DIR INBOX OUT CLOCK_FILE HOLD_FILE

Lines of new files in INBOX become ``(line, len(line))`` pairs. Batch time
comes from CLOCK_FILE (epoch ms written by the test). While HOLD_FILE exists,
partition 1 of every batch waits (after touching ``HOLD_FILE.holding``), so a
save stays half written for as long as the test wants.
"""
import os
import sys
import threading
import time
from pathlib import Path

from sluicegate.driver import SparkConf, SparkContext, StreamingContext

CHECKPOINT, INBOX, OUT, CLOCK, HOLD = sys.argv[1:6]


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


def hold_second_partition(index, records):
    if index == 1 and os.path.exists(HOLD):
        Path(HOLD + ".holding").touch()
        while os.path.exists(HOLD):
            time.sleep(0.02)
    return records


def setup():
    sc = SparkContext(conf=SparkConf().setMaster("local[2]").setAppName("hadoop-outputs-recovery"))
    ssc = StreamingContext(sc, 0.5, clock=FileClock(CLOCK))
    ssc.checkpoint(CHECKPOINT)
    pairs = ssc.textFileStream(INBOX).map(lambda line: (line, len(line)))
    pairs.saveAsHadoopFiles(OUT + "/seq", "seq")
    pairs.mapPartitionsWithIndex(hold_second_partition, True).saveAsPickleFiles(OUT + "/pick")
    return ssc


if __name__ == "__main__":
    ssc = StreamingContext.getOrCreate(CHECKPOINT, setup)
    ssc.start()
    print("STREAMING STARTED", flush=True)
    ssc.awaitTermination()
