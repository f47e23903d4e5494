"""DataFrame word count: sluicegate vs PySpark's DataFrame vs sluicegate's RDD word count.

``python -m bench.sql_wordcount [--lines N] [--runs R] [--no-pyspark]``

One 2,000,000-line file (the benchmark's Zipf lines, 10 words a line); each
engine runs in its own process on local[2] with one warm-up, then ``R``
timed runs; the table shows the medians. The DataFrame job is the same
code on both engines::

    spark.read.text(path).select(explode(split("value", " ")).alias("word"))
         .groupBy("word").count().collect()
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _session(engine: str):
    if engine == "pyspark":
        from pyspark.sql import SparkSession, functions as F
    else:
        from sluicegate.driver.sql import SparkSession, functions as F
    spark = (SparkSession.builder.master("local[2]").appName("sql-bench")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.sluicegate.progress", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark, F


def _time(fn, runs: int) -> dict:
    result = fn()  # warm-up: executors started, file in the page cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return {"median_s": round(statistics.median(times), 3), "runs_s": [round(t, 3) for t in times],
            "distinct_words": result}


def measure(engine: str, path: str, lines: int, runs: int) -> dict:
    spark, F = _session(engine.replace("-rdd", ""))
    out: dict = {"engine": engine}
    if engine.endswith("-rdd"):
        from operator import add
        sc = spark.sparkContext

        def job():
            return sc.textFile(path, 4).flatMap(lambda line: line.split(" ")) \
                .map(lambda w: (w, 1)).reduceByKey(add).count()
    else:
        def job():
            words = spark.read.text(path).select(F.explode(F.split("value", " ")).alias("word"))
            return len(words.groupBy("word").count().collect())
    out.update(_time(job, runs))
    out["lines_per_s"] = round(lines / out["median_s"])
    spark.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sql_wordcount")
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-pyspark", action="store_true")
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(measure(args.engine, args.path, args.lines, args.runs)))
        return
    from .datagen import zipf_lines
    workdir = Path(tempfile.mkdtemp(prefix="sluicegate-sql-bench-"))
    data = workdir / "lines.txt"
    data.write_text("\n".join(zipf_lines(args.lines)) + "\n")
    engines = ["sluicegate", "sluicegate-rdd"] + ([] if args.no_pyspark else ["pyspark"])
    results = {}
    for engine in engines:
        print(f"{engine}...", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, "-m", "bench.sql_wordcount", "--engine", engine,
                               "--path", str(data), "--lines", str(args.lines), "--runs",
                               str(args.runs)], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent.parent)
        last = done.stdout.strip().splitlines()[-1:] or [""]
        try:
            results[engine] = json.loads(last[0])
        except json.JSONDecodeError:
            results[engine] = {"engine": engine, "error": done.stderr[-800:]}
    data.unlink()
    workdir.rmdir()
    ours = results["sluicegate"].get("median_s")
    print(f"\nDataFrame word count, {args.lines:,} lines, local[2], median of {args.runs}:")
    for engine, r in results.items():
        if "median_s" not in r:
            print(f"  {engine:16} failed: {r.get('error')}")
            continue
        ratio = f"  (sluicegate DataFrame is {r['median_s'] / ours:.1f}x faster)" \
            if engine != "sluicegate" and ours else ""
        print(f"  {engine:16} {r['median_s']:7.3f} s  {r['lines_per_s']:>11,} lines/s{ratio}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
