"""Live SQL over a 1,000,000-key state while the stream runs: how long does a query take?

``python -m bench.sql_live [--keys 1000000] [--batch-s 5] [--queries 5] [--updates 10000]``

A local[2] stream keeps a ``updateStateByKey`` word-count-like state of
``--keys`` keys (``initialRDD``), each batch updating ``--updates`` of them, and
exposes it with ``asTable("state")``; the job's own output counts the state each
batch (so the state is computed and cached on the executors by the stream). Once the state is up, ``--queries``
top-10 queries go through the status server's API (``/api/v1/sql``, as an
operator would ask), one every batch interval; the figure is the median time
to answer (the first query on a batch makes that batch's Arrow copy; the same
query asked again on the same batch is timed separately). Alongside: whether the stream kept up meanwhile (90% of the batches
processed within the interval, and no growing scheduling delay).
"""
from __future__ import annotations

import argparse
import json
import time
import urllib.parse
import urllib.request

from . import workloads as w

QUERY = "SELECT key, count FROM state ORDER BY count DESC, key LIMIT 10"


def ask(base: str, query: str) -> tuple[float, dict]:
    url = f"{base}/api/v1/sql?" + urllib.parse.urlencode({"q": query, "timeout": "120"})
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=180) as reply:
        body = json.loads(reply.read())
    return time.perf_counter() - started, body


def run(keys: int, batch_s: float, queries: int, updates: int) -> dict:
    from sluicegate.driver import SparkConf, SparkContext, StreamingContext, StreamingListener
    from sluicegate.driver.sql import SparkSession
    import tempfile
    import types

    conf = (SparkConf().setMaster("local[2]").setAppName("sql-live-bench")
            .set("spark.ui.port", "0").set("spark.sluicegate.progress", "false"))
    sc = SparkContext(conf=conf)
    sc.setCheckpointDir(tempfile.mkdtemp(prefix="sql-live-bench-"))
    spark = SparkSession(sc)
    ssc = StreamingContext(sc, batch_s)
    recorder = w.batch_recorder(types.SimpleNamespace(StreamingListener=StreamingListener))
    ssc.addStreamingListener(recorder)
    initial = sc.range(keys, numSlices=2).map(lambda i: (f"k{i:07d}", i % 1000))
    step = max(1, keys // updates)
    batch = sc.range(0, keys, step, numSlices=2).map(lambda i: (f"k{i:07d}", 1)).cache()
    state = ssc.queueStream([], default=batch).updateStateByKey(
        lambda new, last: sum(new) + (last or 0), initialRDD=initial)
    # the job's own output, as a real job has one: it computes (and caches) the state every
    # batch, so a query reads the state where it lives instead of computing it
    state.foreachRDD(lambda rdd: rdd.count())
    table = state.asTable("state", ["key", "count"], session=spark)
    ssc.start()
    try:
        deadline = time.monotonic() + 300
        while table.current is None and time.monotonic() < deadline:
            time.sleep(0.1)
        base = sc.uiWebUrl
        warm_s, _ = ask(base, "SELECT count(*) AS n FROM state")  # the first batch's Arrow
        times, answers, again = [], [], []
        for _ in range(queries):
            time.sleep(batch_s)  # a new batch each time: its Arrow copy is made by this query
            took, body = ask(base, QUERY)
            times.append(took)
            answers.append(body["batches"]["state"])
            took, repeat = ask(base, QUERY)  # asked again: mostly the same batch, in Arrow
            if repeat["batches"]["state"] == body["batches"]["state"]:
                again.append(took)
        count = ask(base, "SELECT count(*) AS n FROM state")[1]["rows"][0][0]
        time.sleep(batch_s)
    finally:
        ssc.stop(stopSparkContext=False, stopGraceFully=False)
    sc.stop()
    batches = w._settle(recorder.batches, 1)
    processing = [b["processing_ms"] for b in batches]
    scheduling = [b["scheduling_ms"] for b in batches]
    keeps = bool(batches) and w.percentile(processing, 0.9) < batch_s * 1000 \
        and scheduling[-1] < batch_s * 1000
    return {"keys": keys, "state_rows": count, "batch_s": batch_s, "updates_per_batch": updates,
            "query": QUERY, "query_s": [round(t, 3) for t in times],
            "median_query_s": round(sorted(times)[len(times) // 2], 3),
            "first_query_s": round(warm_s, 3),
            "same_batch_again_s": [round(t, 3) for t in again], "distinct_batches_queried": len(set(answers)),
            "keeps_up": keeps, "median_processing_ms": w.percentile(processing, 0.5),
            "max_scheduling_ms": max(scheduling, default=0), "batches": len(batches)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sql_live")
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--batch-s", type=float, default=5.0)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--updates", type=int, default=10_000)
    args = parser.parse_args()
    result = run(args.keys, args.batch_s, args.queries, args.updates)
    print(f"live SQL over {result['state_rows']:,} keys: median {result['median_query_s']} s "
          f"({result['query_s']}); stream keeps up: {result['keeps_up']} (median processing "
          f"{result['median_processing_ms']} ms per {args.batch_s:g} s batch)", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
