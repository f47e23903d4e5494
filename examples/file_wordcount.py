"""Counts words in new text files that appear in a directory.

Usage: file_wordcount.py <directory>

Files must be moved or written whole into the directory; each one is read
once, in the batch after it stopped changing.
"""
import sys

from sluicegate.driver import SparkContext, StreamingContext

if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("Usage: file_wordcount.py <directory>", file=sys.stderr)
        sys.exit(-1)
    sc = SparkContext(appName="PythonStreamingHDFSWordCount")
    ssc = StreamingContext(sc, 1)

    lines = ssc.textFileStream(sys.argv[1])
    counts = lines.flatMap(lambda line: line.split(" ")) \
                  .map(lambda x: (x, 1)) \
                  .reduceByKey(lambda a, b: a + b)
    counts.pprint()

    ssc.start()
    ssc.awaitTermination()
