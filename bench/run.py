"""``python -m bench``: sluicegate and PySpark side by side, in one run.

Runs every workload on sluicegate and, when PySpark is importable (``pip
install -e '.[bench]'``, Java 17), on PySpark too, plus the plain two-process
Python loop, on the same data on the same machine; prints one table of
figures and ratios, and writes ``bench/results/<stamp>.json`` and a PNG chart
of per-batch processing and scheduling delay for both engines.

``--quick`` (under two minutes) scales the workloads down; ``--long`` adds
the 10-minute memory run.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from .baseline import plain_loop_rate
from .datagen import zipf_lines

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def plan_for(engine: str, quick: bool, data_file: str, data_lines: int) -> dict:
    ours = engine == "sluicegate"
    plan = {
        "small_job": {"repeats": 10 if quick else 20},
        "near_empty": {"batches": 6 if quick else 20, "batch_s": 0.5},
        "small_batches": {"batch_s": 0.05, "rate": 10_000, "seconds": 4 if quick else 12},
        "wordcount": {"start_rate": (250_000 if ours else 50_000) if quick else (100_000 if ours else 25_000),
                      "trial_s": 5 if quick else 12, "refine_steps": 0 if quick else 3},
        "update_state": {"keys": 200_000 if quick else 1_000_000,
                         "updates_per_batch": 50_000 if quick else 100_000,
                         "batches": 3 if quick else 6, "batch_s": 2.0},
        "window": {"windows": [5, 15] if quick else [10, 30, 60],
                   "params": {"slide_s": 0.25 if quick else 1.0,
                              "words_per_batch": 20_000 if quick else 50_000,
                              "measure_batches": 3 if quick else 8}},
        "batch_wordcount": {"path": data_file, "lines": data_lines},
        # issue 11: P map tasks into P reduce partitions, 100 records a map task at 10,000
        "many_partitions": {"runs": [[100_000, 1_000]] if quick
                            else [[100_000, 1_000], [1_000_000, 10_000]]},
    }
    if not quick:
        plan["timeline"] = {"rate": 40_000, "seconds": 15}
        # A quarter of the state: per-batch time should scale with state size.
        plan["update_state_quarter"] = dict(plan["update_state"], keys=plan["update_state"]["keys"] // 4)
    if ours:
        plan["map_with_state"] = dict(plan["update_state"])
    return plan


def run_engine(engine: str, python: str, plan: dict) -> dict:
    started = time.time()
    process = subprocess.run([python, "-m", "bench.engine_runner", "--engine", engine,
                              "--plan", json.dumps(plan)],
                             cwd=ROOT, capture_output=True, text=True, timeout=3600)
    for line in process.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            result["wall_s"] = round(time.time() - started, 1)
            return result
    return {"engine": engine, "error": (process.stderr or process.stdout)[-2000:]}


def pyspark_python(requested: str | None) -> str | None:
    if requested:
        return requested
    return sys.executable if importlib.util.find_spec("pyspark") else None


def _get(result: dict | None, *path, default=None):
    value = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return default
        value = value[key]
    return value


def _ratio(a, b, higher_is_better: bool) -> str:
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or a <= 0 or b <= 0:
        return "-"
    return f"{(a / b) if higher_is_better else (b / a):.1f}x"


def table(ours: dict, theirs: dict | None, baseline: dict) -> list[tuple]:
    rows = []

    def row(figure, unit, path, higher_is_better, plain=None):
        a = _get(ours, *path)
        b = _get(theirs, *path) if theirs else None
        rows.append((figure, unit, a, b, plain, _ratio(a, b, higher_is_better),
                     _ratio(a, plain, True) if plain else "-"))

    row("network word count, 1 s batches: max rate", "lines/s", ("wordcount", "max_rate"), True,
        baseline["lines_per_s"])
    row("near-empty batch: median processing", "ms", ("near_empty", "median_processing_ms"), False)
    row("near-empty batch: p99 processing", "ms", ("near_empty", "p99_processing_ms"), False)
    row("50 ms batches at 10k lines/s: p99 total delay", "ms", ("small_batches", "p99_total_ms"), False)
    row("50 ms batches: scheduling delay growth", "ms", ("small_batches", "scheduling_growth_ms"), False)
    row("50 ms batches: batches completed", "count", ("small_batches", "batches_completed"), True)
    row("small RDD job (parallelize+reduceByKey+collect)", "ms", ("small_job", "median_ms"), False)
    row(f"updateStateByKey, {_get(ours, 'update_state', 'keys')} keys: per batch", "ms",
        ("update_state", "median_batch_ms"), False)
    if _get(ours, "update_state_quarter"):
        row(f"updateStateByKey, {_get(ours, 'update_state_quarter', 'keys')} keys: per batch", "ms",
            ("update_state_quarter", "median_batch_ms"), False)
    row("mapWithState, same keys: per batch", "ms", ("map_with_state", "median_batch_ms"), False)
    for index, window in enumerate(_get(ours, "window") or []):
        if isinstance(window, dict):
            a = window.get("median_batch_ms")
            b = _get(theirs, "window")[index].get("median_batch_ms") if theirs and \
                isinstance(_get(theirs, "window"), list) else None
            rows.append((f"reduceByKeyAndWindow+inv, window {window['window_slides']} slides: per batch",
                         "ms", a, b, None, _ratio(a, b, False), "-"))
    row("batch word count from a file", "lines/s", ("batch_wordcount", "lines_per_s"), True)
    for index, run in enumerate(_get(ours, "many_partitions") or []):
        if isinstance(run, dict) and "partitions" in run:
            theirs_runs = _get(theirs, "many_partitions") if theirs else None
            other = theirs_runs[index] if isinstance(theirs_runs, list) and \
                len(theirs_runs) > index and isinstance(theirs_runs[index], dict) else {}
            label = f"reduceByKey {run['partitions']:,} -> {run['partitions']:,} partitions, " \
                    f"{run['records']:,} records"
            rows.append((label, "s", run.get("seconds"), other.get("seconds"), None,
                         _ratio(run.get("seconds"), other.get("seconds"), False), "-"))
            rows.append((f"  ... peak RSS of the engine's child processes", "MB",
                         run.get("peak_children_mb"), other.get("peak_children_mb"), None,
                         _ratio(run.get("peak_children_mb"), other.get("peak_children_mb"), False),
                         "-"))
    if _get(ours, "memory"):
        row("10-minute run at 80% of max rate: driver RSS", "MB", ("memory", "driver_mb"), False)
        row("10-minute run: driver RSS growth", "%", ("memory", "driver_growth_pct"), False)
        row("10-minute run: workers' RSS", "MB", ("memory", "children_mb"), False)
        row("10-minute run: workers' RSS growth", "%", ("memory", "children_growth_pct"), False)
    return rows


def workload_errors(result: dict | None) -> list[tuple[str, str]]:
    """(workload, error) for every workload of an engine's run that failed."""
    if not result:
        return []
    if "error" in result:
        return [("run", result["error"])]
    failed = []
    for name, value in result.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and "error" in item:
                failed.append((name, item["error"]))
    return failed


def print_table(rows: list[tuple], machine: str) -> None:
    print(f"\nsluicegate vs PySpark -- {machine}")
    header = ("figure", "unit", "sluicegate", "PySpark", "plain 2-proc loop", "ours vs PySpark",
              "ours vs plain")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = "  ".join(h.ljust(widths[i]) for i, h in enumerate(header))
    print(line)
    print("-" * len(line))
    for r in rows:
        cells = ["-" if v is None else (f"{v:,.0f}" if isinstance(v, (int, float)) and v >= 100
                                        else str(v)) for v in r]
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(cells)))


def chart(ours: dict, theirs: dict | None, path: Path) -> Path | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no chart; pip install -e '.[bench]')")
        return None
    figure, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    source = "timeline" if _get(ours, "timeline") else "small_batches"
    series_key = "batches" if source == "timeline" else "series"
    for result, label in ((ours, "sluicegate"), (theirs, "PySpark")):
        series = _get(result, source, series_key) or []
        if not series:
            continue
        t0 = series[0]["time_ms"]
        xs = [(b["time_ms"] - t0) / 1000 for b in series]
        axes[0].plot(xs, [b["processing_ms"] for b in series], marker="o", label=label)
        axes[1].plot(xs, [b["scheduling_ms"] for b in series], marker="o", label=label)
    rate = _get(ours, source, "rate")
    batch = "1 s" if source == "timeline" else "50 ms"
    axes[0].set_ylabel("processing delay (ms)")
    axes[1].set_ylabel("scheduling delay (ms)")
    axes[1].set_xlabel("batch time (s)")
    axes[0].set_title(f"network word count, {rate:,} lines/s, {batch} batches, local[2]" if rate else "")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="scaled-down run, under two minutes")
    parser.add_argument("--long", action="store_true", help="add the 10-minute memory run")
    parser.add_argument("--pyspark-python", help="interpreter that has pyspark (default: this one)")
    parser.add_argument("--no-pyspark", action="store_true", help="measure sluicegate alone")
    parser.add_argument("--only", help="comma-separated workloads to run, e.g. many_partitions")
    args = parser.parse_args(argv)

    machine = (f"{platform.node()}: {psutil.cpu_count()} cores, "
               f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}, "
               f"{datetime.date.today()}")
    data_lines = 500_000 if args.quick else 2_000_000
    workdir = Path(tempfile.mkdtemp(prefix="sluicegate-bench-"))
    data_file = workdir / "lines.txt"
    data_file.write_text("\n".join(zipf_lines(data_lines)) + "\n")

    only = set(args.only.split(",")) if args.only else None

    def plan(engine: str) -> dict:
        full = plan_for(engine, args.quick, str(data_file), data_lines)
        return {k: v for k, v in full.items() if only is None or k in only}

    baseline = {"lines_per_s": None}
    if only is None or "wordcount" in only:
        print("plain two-process Python loop...", file=sys.stderr, flush=True)
        baseline = plain_loop_rate(400_000 if args.quick else 1_000_000, 2)
    print("sluicegate...", file=sys.stderr, flush=True)
    ours = run_engine("sluicegate", sys.executable, plan("sluicegate"))
    theirs = None
    interpreter = None if args.no_pyspark else pyspark_python(args.pyspark_python)
    if interpreter:
        print("PySpark...", file=sys.stderr, flush=True)
        theirs = run_engine("pyspark", interpreter, plan("pyspark"))
    else:
        print("(PySpark not importable: pip install -e '.[bench]'; showing sluicegate only)",
              file=sys.stderr)
    if args.long:
        for result, engine, python in ((ours, "sluicegate", sys.executable), (theirs, "pyspark", interpreter)):
            if result is None:
                continue
            rate = int(0.8 * (_get(result, "wordcount", "max_rate") or 50_000))
            memory = run_engine(engine, python, {"memory": {"rate": rate, "seconds": 600, "sample_s": 10}})
            result["memory"] = memory.get("memory", memory)

    rows = table(ours, theirs, baseline)
    print_table(rows, machine)
    for result, engine in ((ours, "sluicegate"), (theirs, "PySpark")):
        for name, error in workload_errors(result):
            print(f"\n{engine} {name} failed: {error}")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"{stamp}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps({"machine": machine, "baseline": baseline, "sluicegate": ours,
                               "pyspark": theirs, "table": rows}, indent=1, default=str))
    png = chart(ours, theirs, out.with_suffix(".png"))
    print(f"\nresults: {out}" + (f"\nchart:   {png}" if png else ""))
    for path in workdir.iterdir():
        path.unlink()
    workdir.rmdir()
    return 1 if workload_errors(ours) else 0
