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
import importlib
import json
import tempfile
from pathlib import Path

from .sql_side_by_side import argument_parser, local_session, run_engine, timed_runs


def measure(engine: str, path: str, lines: int, runs: int) -> dict:
    spark = local_session(engine.replace("-rdd", ""), "sql-bench")
    out: dict = {"engine": engine}
    if engine.endswith("-rdd"):
        from operator import add
        sc = spark.sparkContext

        def job():
            return sc.textFile(path, 4).flatMap(lambda line: line.split(" ")) \
                .map(lambda w: (w, 1)).reduceByKey(add).count()
    else:
        F = importlib.import_module("pyspark.sql.functions" if engine == "pyspark"
                                    else "sluicegate.driver.sql.functions")

        def job():
            words = spark.read.text(path).select(F.explode(F.split("value", " ")).alias("word"))
            return len(words.groupBy("word").count().collect())
    distinct_words, timing = timed_runs(job, runs)
    out.update(timing, distinct_words=distinct_words)
    out["lines_per_s"] = round(lines / out["median_s"])
    spark.stop()
    return out


def main() -> None:
    parser = argument_parser("bench.sql_wordcount")
    parser.add_argument("--lines", type=int, default=2_000_000)
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
        results[engine] = run_engine("bench.sql_wordcount", engine, [
            "--path", str(data), "--lines", str(args.lines), "--runs", str(args.runs)])
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
