"""What the benchmarks that run one DataFrame job on sluicegate and on PySpark share.

Each engine runs in its own process (``python -m bench.<module> --engine E ...``),
which prints its result as JSON on its last line; the parent collects the
results. In the child, ``local_session`` starts the engine the same way for
both, and ``timed_runs`` times a job after one warm-up run.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable


def argument_parser(module: str) -> argparse.ArgumentParser:
    """The options of both processes: ``--runs`` and ``--no-pyspark`` for the parent, the
    hidden ``--engine`` that makes a process the child measuring that engine."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-pyspark", action="store_true")
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    return parser


def local_session(engine: str, app_name: str):
    """A quiet local[2] SparkSession of PySpark (``engine == "pyspark"``) or of sluicegate."""
    if engine == "pyspark":
        from pyspark.sql import SparkSession
    else:
        from sluicegate.driver.sql import SparkSession
    spark = (SparkSession.builder.master("local[2]").appName(app_name)
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.sluicegate.progress", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def timed_runs(job: Callable[[], Any], runs: int) -> tuple[Any, dict]:
    """``job()`` once as a warm-up (executors started, files in the page cache), then ``runs``
    timed runs: the warm-up's result, and ``{"median_s", "runs_s"}``."""
    result = job()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        job()
        times.append(time.perf_counter() - started)
    return result, {"median_s": round(statistics.median(times), 3),
                    "runs_s": [round(t, 3) for t in times]}


def run_engine(module: str, engine: str, args: list[str]) -> dict:
    """``python -m <module> --engine <engine> <args>`` in its own process, from the repository
    root: the JSON it prints last, or ``{"engine", "error"}`` with the end of its stderr."""
    print(f"{engine}...", file=sys.stderr, flush=True)
    done = subprocess.run([sys.executable, "-m", module, "--engine", engine] + args,
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    last = done.stdout.strip().splitlines()[-1:] or [""]
    try:
        return json.loads(last[0])
    except json.JSONDecodeError:
        return {"engine": engine, "error": done.stderr[-800:]}
