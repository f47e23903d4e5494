"""Running word counts over text from the network, kept across batches.

Usage: stateful_wordcount.py <hostname> <port> [<checkpoint-directory>]

Every second, the words received are added to each word's running count
(``updateStateByKey``), which starts from an initial state, and the counts are
printed. State needs a checkpoint directory: as in PySpark,
``SparkContext.setCheckpointDir`` is enough (``StreamingContext.checkpoint``
also writes the metadata that ``getOrCreate`` recovers from: see
recoverable_wordcount.py). Run a text server first, e.g. ``nc -lk 9999``.
"""
import sys
import tempfile
from typing import Iterable, Optional

from sluicegate.driver import SparkContext
from sluicegate.driver.streaming import StreamingContext


def update_count(new_values: Iterable[int], last_count: Optional[int]) -> int:
    return sum(new_values) + (last_count or 0)


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        print("Usage: stateful_wordcount.py <hostname> <port> [<checkpoint-directory>]",
              file=sys.stderr)
        sys.exit(-1)
    sc = SparkContext(appName="StatefulWordCount")
    sc.setCheckpointDir(sys.argv[3] if len(sys.argv) == 4 else tempfile.mkdtemp())
    ssc = StreamingContext(sc, 1)

    initial = sc.parallelize([("hello", 1), ("world", 1)])
    running = ssc.socketTextStream(sys.argv[1], int(sys.argv[2])) \
        .flatMap(lambda line: line.split()) \
        .map(lambda word: (word, 1)) \
        .updateStateByKey(update_count, initialRDD=initial)
    running.pprint(20)

    ssc.start()
    ssc.awaitTermination()
