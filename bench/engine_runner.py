"""Run the benchmark plan on one engine, in this process; print the results as JSON.

``python -m bench.engine_runner --engine pyspark --plan '<json>'``. One
SparkContext serves every workload of the plan (PySpark's JVM start-up is
not what we measure).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import types

import psutil

from . import workloads as w


def load_engine(name: str):
    if name == "pyspark":
        from pyspark import SparkConf, SparkContext
        from pyspark.streaming import StreamingContext, StreamingListener
    else:
        from sluicegate.driver import SparkConf, SparkContext, StreamingContext, StreamingListener
    return types.SimpleNamespace(name=name, SparkConf=SparkConf, SparkContext=SparkContext,
                                 StreamingContext=StreamingContext, StreamingListener=StreamingListener)


def tree_rss_mb(root: psutil.Process) -> dict:
    """RSS of this driver and of its child processes (executors, JVM, Python workers).

    The benchmark's own text server is a child too, but it is not the engine's.
    """
    children = 0
    for child in root.children(recursive=True):
        try:
            if "bench.text_server" in " ".join(child.cmdline()):
                continue
            children += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return {"driver_mb": root.memory_info().rss / 2**20, "children_mb": children / 2**20}


def sustained_memory(E, sc, rate: int, seconds: float, sample_s: float) -> dict:
    samples = []
    me = psutil.Process()
    stop = threading.Event()

    def sample():
        started = time.time()
        while not stop.wait(sample_s):
            samples.append({"t_s": round(time.time() - started), **tree_rss_mb(me)})

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result = w.wordcount_trial(E, sc, rate, seconds)
    stop.set()
    sampler.join()
    steady = samples[len(samples) // 5:] or samples  # after warm-up
    edge = max(1, len(steady) // 5)

    def growth(key):
        # The steady phase's last fifth against its first: one noisy sample decides nothing.
        first = statistics.median(s[key] for s in steady[:edge])
        last = statistics.median(s[key] for s in steady[-edge:])
        return round(100.0 * (last - first) / first, 1) if first else None

    return {"rate": rate, "seconds": seconds, "samples": samples,
            "driver_mb": round(steady[-1]["driver_mb"]), "children_mb": round(steady[-1]["children_mb"]),
            "driver_growth_pct": growth("driver_mb"), "children_growth_pct": growth("children_mb"),
            "keeps_up": result["keeps_up"]}


def with_peak_rss(fn) -> dict:
    """Run ``fn`` (returning a dict) and add the peak RSS of the engine's
    child processes while it ran (executors; PySpark: the JVM and its Python workers)."""
    me = psutil.Process()
    peak = {"children_mb": 0.0}
    stop = threading.Event()

    def sample():
        while not stop.wait(0.1):
            peak["children_mb"] = max(peak["children_mb"], tree_rss_mb(me)["children_mb"])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = fn()
    finally:
        stop.set()
        sampler.join()
    return {**result, "peak_children_mb": round(peak["children_mb"])}


def run_plan(engine: str, plan: dict) -> dict:
    E = load_engine(engine)
    sc = w.make_context(E)
    results: dict = {"engine": engine}
    steps = {
        "small_job": lambda p: w.small_job_latency(E, sc, **p),
        "wordcount": lambda p: w.wordcount_max_rate(E, sc, **p),
        "timeline": lambda p: w.wordcount_trial(E, sc, **p),
        "near_empty": lambda p: w.near_empty(E, sc, **p),
        "small_batches": lambda p: w.small_batches(E, sc, **p),
        "update_state": lambda p: w.update_state(E, sc, **p),
        "update_state_quarter": lambda p: w.update_state(E, sc, **p),
        "map_with_state": lambda p: w.map_with_state(E, sc, **p),
        "window": lambda p: [w.windowed(E, sc, window_slides=n, **p["params"]) for n in p["windows"]],
        "batch_wordcount": lambda p: w.batch_wordcount(E, sc, **p),
        "memory": lambda p: sustained_memory(E, sc, **p),
        "many_partitions": lambda p: [
            with_peak_rss(lambda n=n, parts=parts: w.many_partition_shuffle(E, sc, n, parts))
            for n, parts in p["runs"]],
    }
    for name, params in plan.items():
        if name not in steps:
            continue
        started = time.time()
        try:
            results[name] = steps[name](params)
        except Exception as exc:  # noqa: BLE001 - report the failure in the table, go on
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"[{engine}] {name}: {time.time() - started:.1f}s", file=sys.stderr, flush=True)
    sc.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["sluicegate", "pyspark"], required=True)
    parser.add_argument("--plan", required=True)
    args = parser.parse_args()
    results = run_plan(args.engine, json.loads(args.plan))
    print("RESULT " + json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
