"""Word counts of every one-second batch with DataFrames and SQL, plus the top words so far.

Usage: sql_network_wordcount.py <hostname> <port>

Run a text server first, e.g. ``nc -lk 9999``, then
``python examples/sql_network_wordcount.py localhost 9999``.

Each batch's words become a DataFrame (``createDataFrame`` of the batch's
RDD), registered as the temporary view ``words`` and counted with
``spark.sql``; the batch counts are added to a running table kept as a
cached DataFrame, whose top five words are printed with the DataFrame API.
The counting runs in the vectorized engine on the executors, over Arrow
batches.
"""
import sys

from sluicegate.driver import SparkContext, StreamingContext
from sluicegate.driver.sql import Row, SparkSession
from sluicegate.driver.sql import functions as F

if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("Usage: sql_network_wordcount.py <hostname> <port>", file=sys.stderr)
        sys.exit(-1)
    host, port = sys.argv[1:]
    sc = SparkContext(appName="SqlNetworkWordCount")
    ssc = StreamingContext(sc, 1)
    spark = SparkSession.builder.getOrCreate()
    totals = {"df": None}

    def count_batch(time, rdd):
        if rdd.isEmpty():
            return
        words = spark.createDataFrame(rdd.map(lambda word: Row(word=word)))
        words.createOrReplaceTempView("words")
        counts = spark.sql("SELECT word, count(*) AS total FROM words WHERE word <> '' "
                           "GROUP BY word ORDER BY total DESC, word")
        print(f"========= {time} =========")
        counts.show()
        running = counts if totals["df"] is None else totals["df"].unionByName(counts)
        running = running.groupBy("word").agg(F.sum("total").alias("total")).cache()
        running.count()  # computed once, then read from the cache
        if totals["df"] is not None:
            totals["df"].unpersist()
        totals["df"] = running
        print("top words so far:")
        running.orderBy(F.desc("total"), "word").limit(5).show()

    lines = ssc.socketTextStream(host, int(port))
    lines.flatMap(lambda line: line.split(" ")).foreachRDD(count_batch)
    ssc.start()
    ssc.awaitTermination()
