"""SQL on every batch vs the RDD DStream word count: which keeps up at a higher rate?

``python -m bench.sql_streaming [--rates 200000,400000,800000] [--seconds 12]``

A text server sends the benchmark's lines at each rate to a 1 s batch
socket stream on local[2]; one job counts words with RDDs
(``flatMap/map/reduceByKey``), the other with SQL on each batch::

    spark.createDataFrame(rdd, "string").createOrReplaceTempView("lines")
    spark.sql("SELECT word, count(*) FROM (SELECT explode(split(value, ' ')) AS word
               FROM lines) GROUP BY word").collect()

A rate is kept up with when 90% of batches finish inside the interval (the
same rule as ``bench``'s network word count).
"""
from __future__ import annotations

import argparse
import json
import time

from . import workloads as w


def trial(kind: str, sc, spark, rate: int, seconds: float) -> dict:
    from sluicegate.driver import StreamingContext, StreamingListener
    import types
    E = types.SimpleNamespace(StreamingContext=StreamingContext, StreamingListener=StreamingListener)
    server = w.TextServer(rate)
    ssc = StreamingContext(sc, 1.0)
    recorder = w.batch_recorder(E)
    ssc.addStreamingListener(recorder)
    lines = ssc.socketTextStream("127.0.0.1", server.port)
    if kind == "rdd":
        lines.flatMap(lambda line: line.split(" ")).map(lambda word: (word, 1)) \
            .reduceByKey(lambda a, b: a + b).foreachRDD(lambda rdd: rdd.count())
    else:
        def by_sql(rdd):
            df = spark.createDataFrame(rdd, "string")  # one "value" column, no row objects
            df.createOrReplaceTempView("lines")
            spark.sql("SELECT word, count(*) AS n FROM (SELECT explode(split(value, ' ')) AS word "
                      "FROM lines) GROUP BY word").collect()
        lines.foreachRDD(by_sql)
    ssc.start()
    time.sleep(seconds)
    ssc.stop(stopSparkContext=False, stopGraceFully=False)
    server.stop()
    batches = w._settle(recorder.batches, 2)
    processing = [b["processing_ms"] for b in batches]
    received = sum(b["records"] for b in batches) / len(batches) if batches else 0
    keeps = bool(batches) and w.percentile(processing, 0.9) < 1000 and received >= 0.9 * rate
    return {"kind": kind, "rate": rate, "keeps_up": keeps, "received_per_s": round(received),
            "median_processing_ms": w.percentile(processing, 0.5)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sql_streaming")
    parser.add_argument("--rates", default="200000,400000,800000")
    parser.add_argument("--seconds", type=float, default=12)
    args = parser.parse_args()
    from sluicegate.driver import SparkConf, SparkContext
    from sluicegate.driver.sql import SparkSession
    sc = SparkContext(conf=SparkConf().setMaster("local[2]").setAppName("sql-streaming-bench")
                      .set("spark.ui.enabled", "false").set("spark.sluicegate.progress", "false"))
    spark = SparkSession(sc)
    results = []
    for rate in [int(r) for r in args.rates.split(",")]:
        for kind in ("rdd", "sql"):
            result = trial(kind, sc, spark, rate, args.seconds)
            results.append(result)
            print(f"{kind:4} {rate:>9,} lines/s: keeps up {result['keeps_up']!s:5} "
                  f"median processing {result['median_processing_ms']} ms", flush=True)
    sc.stop()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
