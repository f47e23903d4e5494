"""A TPC-H-like aggregate + join (Q3's shape) on sluicegate and PySpark, same data, same run.

``python -m bench.sql_tpch [--scale ROWS] [--runs R] [--no-pyspark]``

Generates ``lineitem`` (ROWS rows) and ``orders`` (ROWS / 4) and
``customer`` (ROWS / 40) as Parquet with a fixed seed, then runs on local[2]::

    SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue,
           o_orderdate, o_shippriority
    FROM customer JOIN orders ON c_custkey = o_custkey
                  JOIN lineitem ON l_orderkey = o_orderkey
    WHERE c_mktsegment = 'BUILDING' AND o_orderdate < DATE '1995-03-15'
          AND l_shipdate > DATE '1995-03-15'
    GROUP BY l_orderkey, o_orderdate, o_shippriority
    ORDER BY revenue DESC, o_orderdate LIMIT 10

Each engine runs in its own process: one warm-up, then R timed runs (median shown).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from .sql_side_by_side import argument_parser, local_session, run_engine, timed_runs

QUERY = """
SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue, o_orderdate, o_shippriority
FROM customer JOIN orders ON c_custkey = o_custkey JOIN lineitem ON l_orderkey = o_orderkey
WHERE c_mktsegment = 'BUILDING' AND o_orderdate < DATE '1995-03-15'
  AND l_shipdate > DATE '1995-03-15'
GROUP BY l_orderkey, o_orderdate, o_shippriority
ORDER BY revenue DESC, o_orderdate LIMIT 10
"""


def generate(directory: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    rng = np.random.default_rng(1995)
    orders, customers = rows // 4, rows // 40
    epoch = np.datetime64("1992-01-01")
    segments = np.array(["AUTOMOBILE", "BUILDING", "FURNITURE", "HOUSEHOLD", "MACHINERY"])
    pq.write_table(pa.table({
        "c_custkey": np.arange(customers, dtype=np.int64),
        "c_mktsegment": segments[rng.integers(0, 5, customers)],
    }), directory / "customer.parquet")
    order_dates = epoch + rng.integers(0, 2400, orders).astype("timedelta64[D]")
    pq.write_table(pa.table({
        "o_orderkey": np.arange(orders, dtype=np.int64),
        "o_custkey": rng.integers(0, customers, orders),
        "o_orderdate": pa.array(order_dates.astype("datetime64[D]"), pa.date32()),
        "o_shippriority": rng.integers(0, 2, orders).astype(np.int32),
    }), directory / "orders.parquet")
    keys = rng.integers(0, orders, rows)
    ship = order_dates[keys] + rng.integers(1, 120, rows).astype("timedelta64[D]")
    pq.write_table(pa.table({
        "l_orderkey": keys,
        "l_extendedprice": rng.uniform(900, 100_000, rows).round(2),
        "l_discount": rng.integers(0, 11, rows) / 100.0,
        "l_shipdate": pa.array(ship.astype("datetime64[D]"), pa.date32()),
    }), directory / "lineitem.parquet")


def measure(engine: str, directory: str, runs: int) -> dict:
    spark = local_session(engine, "tpch-bench")
    for name in ("customer", "orders", "lineitem"):
        spark.read.parquet(f"{directory}/{name}.parquet").createOrReplaceTempView(name)
    first, timing = timed_runs(lambda: [tuple(r) for r in spark.sql(QUERY).collect()], runs)
    spark.stop()
    return {"engine": engine, **timing,
            "top": [str(r[0]) + ":" + str(round(r[1], 2)) for r in first[:3]]}


def main() -> None:
    parser = argument_parser("bench.sql_tpch")
    parser.add_argument("--scale", type=int, default=2_000_000, help="lineitem rows")
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(measure(args.engine, args.dir, args.runs)))
        return
    workdir = Path(tempfile.mkdtemp(prefix="sluicegate-tpch-"))
    generate(workdir, args.scale)
    results = {}
    for engine in ["sluicegate"] + ([] if args.no_pyspark else ["pyspark"]):
        results[engine] = run_engine("bench.sql_tpch", engine,
                                     ["--dir", str(workdir), "--runs", str(args.runs)])
    for path in workdir.iterdir():
        path.unlink()
    workdir.rmdir()
    print(f"\nTPC-H Q3-like join + aggregate, lineitem {args.scale:,} rows, local[2], "
          f"median of {args.runs}:")
    for engine, r in results.items():
        print(f"  {engine:11} " + (f"{r['median_s']:7.3f} s   top: {r['top']}" if "median_s" in r
                                    else f"failed: {r.get('error')}"))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
