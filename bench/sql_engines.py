"""Which vectorized engine runs a DataFrame partition: DuckDB, DataFusion or Polars.

``python -m bench.sql_engines [--lines N]`` measures, for each engine in its
own process with one thread (an executor has one slot), on the benchmark's
lines cut into Arrow record batches of 64k rows:

* word count: split, explode, group by word, count;
* filter + project + partial aggregate over (k int64, v float64, s string);
* a tiny query (100 rows): the fixed cost a near-empty streaming batch pays.

Each figure is the median of 5 runs after one warm-up. The results decided
the engine (docs/architecture.md, "DataFrames and SQL").
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ENGINES = ("duckdb", "datafusion", "polars")
BATCH_ROWS = 65536


def _tables(lines: int):
    import pyarrow as pa

    from .datagen import zipf_lines
    text = pa.Table.from_pydict({"value": zipf_lines(lines)})
    n = lines
    import numpy as np
    rng = np.random.default_rng(7)
    numbers = pa.Table.from_pydict({
        "k": pa.array(rng.integers(0, 1_000_000, n)),
        "v": pa.array(rng.random(n)),
        "s": pa.array([f"s{i % 1000}" for i in range(n)]),
    })
    tiny = pa.Table.from_pydict({"value": ["a b c d"] * 100})
    return [t.to_batches(BATCH_ROWS) for t in (text, numbers, tiny)]


def _queries(engine: str):
    """(word count, filter/aggregate) as callables over a list of record batches."""
    if engine == "duckdb":
        import duckdb
        con = duckdb.connect(config={"threads": 1})
        import pyarrow as pa

        def run(sql, batches):
            con.register("t", pa.Table.from_batches(batches))
            try:
                return con.sql(sql.replace("{t}", "t")).to_arrow_table()
            finally:
                con.unregister("t")

        wc = ("SELECT word, count(*) AS count FROM "
              "(SELECT unnest(string_split(value, ' ')) AS word FROM {t}) GROUP BY word")
        agg = ("SELECT k % 1000 AS g, sum(v) AS sv, count(*) AS n, max(s) AS ms FROM {t} "
               "WHERE v > 0.5 GROUP BY g")
        return (lambda b: run(wc, b)), (lambda b: run(agg, b))
    if engine == "datafusion":
        import datafusion
        config = datafusion.SessionConfig().with_target_partitions(1)
        ctx = datafusion.SessionContext(config)
        counter = [0]

        def run(sql, batches):
            counter[0] += 1
            name = f"t{counter[0]}"
            ctx.register_record_batches(name, [batches])
            try:
                return ctx.sql(sql.replace("{t}", name)).to_arrow_table()
            finally:
                ctx.deregister_table(name)

        wc = ("SELECT word, count(*) AS count FROM "
              "(SELECT unnest(string_to_array(value, ' ')) AS word FROM {t}) GROUP BY word")
        agg = ("SELECT k % 1000 AS g, sum(v) AS sv, count(*) AS n, max(s) AS ms FROM {t} "
               "WHERE v > 0.5 GROUP BY g")
        return (lambda b: run(wc, b)), (lambda b: run(agg, b))
    import polars as pl
    import pyarrow as pa

    def wc(batches):
        df = pl.from_arrow(pa.Table.from_batches(batches))
        return (df.lazy().select(pl.col("value").str.split(" ").explode().alias("word"))
                .group_by("word").agg(pl.len().alias("count")).collect().to_arrow())

    def agg(batches):
        df = pl.from_arrow(pa.Table.from_batches(batches))
        return (df.lazy().filter(pl.col("v") > 0.5).group_by((pl.col("k") % 1000).alias("g"))
                .agg(pl.col("v").sum().alias("sv"), pl.len().alias("n"), pl.col("s").max().alias("ms"))
                .collect().to_arrow())
    return wc, agg


def _median_ms(fn, arg, runs: int = 5) -> float:
    fn(arg)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn(arg)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def measure(engine: str, lines: int) -> dict:
    started = time.perf_counter()
    wc, agg = _queries(engine)
    import_ms = round((time.perf_counter() - started) * 1000, 1)
    text, numbers, tiny = _tables(lines)
    rows = wc(text).num_rows
    return {"engine": engine, "import_ms": import_ms, "distinct_words": rows,
            "wordcount_ms": _median_ms(wc, text), "filter_agg_ms": _median_ms(agg, numbers),
            "tiny_query_ms": _median_ms(wc, tiny, runs=50)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sql_engines")
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--engine", choices=ENGINES)
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(measure(args.engine, args.lines)))
        return
    env = dict(os.environ, POLARS_MAX_THREADS="1", RAYON_NUM_THREADS="1")
    for engine in ENGINES:
        out = subprocess.run([sys.executable, "-m", "bench.sql_engines", "--engine", engine,
                              "--lines", str(args.lines)], env=env, capture_output=True, text=True)
        print(out.stdout.strip() or f'{{"engine": "{engine}", "error": {json.dumps(out.stderr[-500:])}}}')


if __name__ == "__main__":
    main()
