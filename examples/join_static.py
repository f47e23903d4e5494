"""Joins each batch of words from the network with a static RDD: word sentiments.

Usage: join_static.py <hostname> <port> <sentiments-file>

<sentiments-file> has one "word score" pair a line. Every two seconds the words
received are counted, joined (inside ``transform``) with the sentiment RDD,
which is read once and cached, and the words are printed from the happiest to
the saddest with their total score. Run a text server first, e.g.
``nc -lk 9999``.
"""
import sys

from sluicegate.driver import RDD, SparkContext
from sluicegate.driver.streaming import StreamingContext


def parse_sentiment(line: str):
    word, score = line.split()
    return word, int(score)


def print_happiest(time, rdd: RDD) -> None:
    ranked = rdd.collect()
    print(f"Happiest words at {time} ({len(ranked)} scored):", flush=True)
    for score, word in ranked:
        print(f"  {word}: {score}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print("Usage: join_static.py <hostname> <port> <sentiments-file>", file=sys.stderr)
        sys.exit(-1)
    host, port, sentiments_file = sys.argv[1:]
    sc = SparkContext(appName="JoinWithStaticRDD")
    ssc = StreamingContext(sc, 2)

    sentiments = sc.textFile(sentiments_file).filter(str.strip).map(parse_sentiment).cache()

    counts = ssc.socketTextStream(host, int(port)) \
        .flatMap(lambda line: line.split()) \
        .map(lambda word: (word, 1)) \
        .reduceByKey(lambda a, b: a + b)
    # (word, (count, score)) -> (count * score, word), happiest first
    happiest = counts.transform(lambda rdd: rdd.join(sentiments)) \
        .map(lambda kv: (kv[1][0] * kv[1][1], kv[0])) \
        .transform(lambda rdd: rdd.sortByKey(False))
    happiest.foreachRDD(print_happiest)

    ssc.start()
    ssc.awaitTermination()
