"""A stream fed from a queue of RDDs: one RDD per one-second batch.

Usage: queue_stream.py

Handy for trying operations out. Five RDDs of the numbers 1..1000 are queued;
each batch counts them by their last digit. Once the queue is empty, each
batch is an empty RDD (of one partition, as in PySpark), so ``count()`` prints
0 and the count over a three-second window falls to 0. Stops by itself,
gracefully, after eight seconds.
"""
import time

from sluicegate.driver import SparkContext
from sluicegate.driver.streaming import StreamingContext

if __name__ == "__main__":
    sc = SparkContext(appName="QueueStream")
    ssc = StreamingContext(sc, 1)

    queue = [sc.parallelize(range(1, 1001), 10) for _ in range(5)]
    numbers = ssc.queueStream(queue)
    numbers.map(lambda x: (x % 10, 1)).reduceByKey(lambda a, b: a + b).pprint()
    numbers.count().map(lambda n: f"batch count: {n}").pprint()
    numbers.window(3, 1).count().map(lambda n: f"window count: {n}").pprint()

    ssc.start()
    time.sleep(8)
    ssc.stop(stopSparkContext=True, stopGraceFully=True)
