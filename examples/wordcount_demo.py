"""Batch word count over a bundled text, on three local executor processes."""
from operator import add
from pathlib import Path

from sluicegate.driver import SparkConf, SparkContext

TEXT = Path(__file__).parent / "data" / "two_cities.txt"

if __name__ == "__main__":
    sc = SparkContext(conf=SparkConf().setMaster("local[3]").setAppName("wordcount"))
    counts = (sc.textFile(str(TEXT))
              .flatMap(lambda line: line.lower().replace(",", " ").split())
              .map(lambda word: (word, 1))
              .reduceByKey(add)
              .sortBy(lambda kv: -kv[1]))
    for word, count in counts.take(10):
        print(f"{word:>12} {count}")
    sc.stop()
