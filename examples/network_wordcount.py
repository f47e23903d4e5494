"""Counts words in UTF-8 text received from the network every second.

Usage: network_wordcount.py <hostname> <port>

Run a text server first, e.g. ``nc -lk 9999``, then
``python examples/network_wordcount.py localhost 9999`` (local mode), or
``sluicegate submit --driver HOST:PORT examples/network_wordcount.py localhost 9999``.
This is PySpark's example with only the imports changed.
"""
import sys

from sluicegate.driver import SparkContext, StreamingContext

if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("Usage: network_wordcount.py <hostname> <port>", file=sys.stderr)
        sys.exit(-1)
    sc = SparkContext(appName="PythonStreamingNetworkWordCount")
    ssc = StreamingContext(sc, 1)

    lines = ssc.socketTextStream(sys.argv[1], int(sys.argv[2]))
    counts = lines.flatMap(lambda line: line.split(" ")) \
                  .map(lambda word: (word, 1)) \
                  .reduceByKey(lambda a, b: a + b)
    counts.pprint()

    ssc.start()
    ssc.awaitTermination()
