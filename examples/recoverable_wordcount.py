"""Running word counts of new files in a directory that survive a driver crash.

Usage: recoverable_wordcount.py <input-directory> <checkpoint-directory> <output-directory>

Counts the words of every file that appears in <input-directory>, keeps each
word's running total (``updateStateByKey``), and saves the totals after every
batch as ``<output-directory>/counts-<batch time>``. Kill it (even with
``kill -9``) and start it again with the same arguments: ``getOrCreate`` finds
the checkpoint, does not call ``create_context`` again, and goes on from the
totals it had, reading no file twice and missing none; a batch cut short by
the crash is run again and its directory written whole (saveAsTextFiles is
exactly-once). It prints "Creating new context" only when it starts afresh.

To deploy changed code without losing the totals, start the new version with
``StreamingContext.getOrCreate(checkpoint, create_context, upgrade=True)``.
"""
import os
import sys

from sluicegate.driver import SparkContext
from sluicegate.driver.streaming import StreamingContext


def add_counts(new_counts, total):
    return sum(new_counts) + (total or 0)


def create_context(input_dir: str, output_dir: str) -> StreamingContext:
    print("Creating new context", flush=True)
    sc = SparkContext(appName="RecoverableWordCount")
    ssc = StreamingContext(sc, 1)
    totals = ssc.textFileStream(input_dir) \
        .flatMap(lambda line: line.split()) \
        .map(lambda word: (word, 1)) \
        .updateStateByKey(add_counts)
    totals.checkpoint(5)  # the state's lineage is cut every 5 batches
    totals.map(lambda kv: f"{kv[0]}\t{kv[1]}").saveAsTextFiles(os.path.join(output_dir, "counts"))
    totals.foreachRDD(lambda time, rdd: print(f"Totals at {time}: {rdd.count()} words",
                                              flush=True))
    return ssc


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print("Usage: recoverable_wordcount.py <input-directory> <checkpoint-directory> "
              "<output-directory>", file=sys.stderr)
        sys.exit(-1)
    input_dir, checkpoint, output_dir = sys.argv[1:]
    ssc = StreamingContext.getOrCreate(checkpoint, lambda: create_context(input_dir, output_dir))
    ssc.start()
    ssc.awaitTermination()
