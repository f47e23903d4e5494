"""Counts words in new text files that appear in a directory.

Usage: file_wordcount.py <directory>

Files must be moved or written whole into the directory; each one is read
once, in the batch after it stopped changing.
"""
import sys
from operator import add

from sluicegate.driver import SparkContext, StreamingContext

if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("Usage: file_wordcount.py <directory>", file=sys.stderr)
        sys.exit(-1)
    ssc = StreamingContext(SparkContext(appName="PythonStreamingHDFSWordCount"), 1)
    ssc.textFileStream(sys.argv[1]) \
        .flatMap(lambda line: line.split(" ")) \
        .map(lambda word: (word, 1)) \
        .reduceByKey(add) \
        .pprint()

    ssc.start()
    ssc.awaitTermination()
