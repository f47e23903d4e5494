"""``python -m bench.overload``: flow control under overload, sluicegate and PySpark
side by side, both with ``spark.streaming.backpressure.enabled``.

Two runs per engine, each in a process of its own, on the same job code:

* **converge** -- a socket source sends ``3 x capacity`` lines/s to a job
  whose output costs ``1 / capacity`` s per line (a sleep, so the capacity
  holds whatever else the machine runs). Reported: the rate the job settled
  at (mean of the last third of its batches), after how many batches the
  three-batch average stayed within 20% of the capacity, the largest scheduling delay in
  the last third, and whether every line the server sent was processed.
* **stall** -- the source sends as fast as loopback allows, and the output
  stalls (sleeps) for ``--stall-s`` (300 s by default: the issue's five
  minutes), then resumes. Reported: the driver's and the engine's other
  processes' (executors; PySpark: the JVM and its Python workers) peak RSS
  and its growth over the start, the lines sent while stalled, and whether
  every line sent was processed in the end.

``--quick`` shortens both (a 30 s stall). Results go to
``bench/results/overload-<stamp>.json``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
LINE_CHUNK = 500


# -- the source (its own process: it must not share the engine's GIL) ----------------------

def serve(rate: int) -> None:
    """Numbered lines at ``rate`` lines/s (0: as fast as the client reads). SIGTERM stops
    it after the chunk in hand and closes the connection cleanly; it prints ``SENT n``."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server = socket.create_server(("127.0.0.1", 0))
    print(f"PORT {server.getsockname()[1]}", flush=True)
    conn, _ = server.accept()
    sent, started = 0, time.monotonic()
    try:
        while not stop.is_set():
            if rate > 0:
                ahead = sent - (time.monotonic() - started) * rate
                if ahead > 0:
                    time.sleep(min(0.01, ahead / rate))
                    continue
            chunk = "".join(f"line {n}\n" for n in range(sent, sent + LINE_CHUNK)).encode()
            conn.sendall(chunk)
            sent += LINE_CHUNK
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(60)
        while conn.recv(1 << 16):  # until the reader has everything and goes
            pass
    except OSError:
        pass
    finally:
        print(f"SENT {sent}", flush=True)


class Source:
    def __init__(self, rate: int):
        self.process = subprocess.Popen([sys.executable, "-m", "bench.overload", "--serve",
                                         str(rate)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self.port = int(self.process.stdout.readline().split()[1])

    def stop(self) -> int:
        """Stop sending; how many lines were sent (all of them reach the reader)."""
        self.process.send_signal(signal.SIGTERM)
        for line in self.process.stdout:
            if line.startswith("SENT "):
                return int(line.split()[1])
        return -1

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


# -- one engine, one run --------------------------------------------------------------------

def load_engine(name: str):
    if name == "pyspark":
        from pyspark import SparkConf, SparkContext
        from pyspark.streaming import StreamingContext, StreamingListener
    else:
        from sluicegate.driver import SparkConf, SparkContext, StreamingContext, StreamingListener
    return SparkConf, SparkContext, StreamingContext, StreamingListener


def rss_mb(me: psutil.Process) -> tuple[float, float]:
    children = 0
    for child in me.children(recursive=True):
        try:
            if "bench.overload" not in " ".join(child.cmdline()):
                children += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return me.memory_info().rss / 2**20, children / 2**20


def run(engine: str, mode: str, capacity: int, seconds: float, stall_s: float,
        batch_s: float) -> dict:
    SparkConf, SparkContext, StreamingContext, StreamingListener = load_engine(engine)
    conf = (SparkConf().setMaster("local[2]").setAppName(f"overload-{mode}")
            .set("spark.ui.enabled", "false").set("spark.ui.showConsoleProgress", "false")
            .set("spark.sluicegate.progress", "false")
            .set("spark.streaming.backpressure.enabled", "true"))
    sc = SparkContext(conf=conf)
    sc.setLogLevel("ERROR")
    batches: list[dict] = []

    class Recorder(StreamingListener):
        def onBatchCompleted(self, batchCompleted):
            info = batchCompleted.batchInfo()
            batches.append({"time_ms": int(info.batchTime().milliseconds()),
                            "records": int(info.numRecords()),
                            "processing_ms": int(info.processingDelay()),
                            "scheduling_ms": int(info.schedulingDelay())})

    source = Source(3 * capacity if mode == "converge" else 0)
    ssc = StreamingContext(sc, batch_s)
    ssc.addStreamingListener(Recorder())
    processed = [0]
    stall_until = [0.0]
    cost_s = 1.0 / capacity if mode == "converge" else 0.0

    def output(rdd):
        n = rdd.count()
        processed[0] += n
        while time.time() < stall_until[0]:
            time.sleep(0.05)
        time.sleep(n * cost_s)

    ssc.socketTextStream("127.0.0.1", source.port).foreachRDD(output)
    me = psutil.Process()
    samples: list[tuple[float, float, float]] = []
    sampling = threading.Event()

    def sample():
        started = time.monotonic()
        while not sampling.wait(1.0):
            samples.append((round(time.monotonic() - started), *rss_mb(me)))

    base = rss_mb(me)
    if mode == "stall":
        stall_until[0] = time.time() + stall_s
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    ssc.start()
    try:
        time.sleep(stall_s + seconds if mode == "stall" else seconds)
        sent = source.stop()
        deadline = time.monotonic() + 180
        while processed[0] < sent and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        sampling.set()
        sampler.join()
        ssc.stop(stopSparkContext=False, stopGraceFully=True)
        source.close()
        sc.stop()
    result = {"engine": engine, "mode": mode, "lines_sent": sent, "lines_processed": processed[0],
              "lost": sent - processed[0],
              "driver_base_mb": round(base[0]), "children_base_mb": round(base[1]),
              "driver_peak_mb": round(max(s[1] for s in samples)),
              "children_peak_mb": round(max(s[2] for s in samples)),
              "batches": len(batches)}
    if mode == "converge":
        # The batches of the run (not the drain after the source stopped); a socket
        # receiver takes whole reads (64 KB: thousands of short lines), so single batches
        # jitter by a read: "settled" is judged on a three-batch moving average.
        rates = [b["records"] / batch_s for b in batches][:int(seconds / batch_s)]
        last = rates[len(rates) * 2 // 3:] or rates
        smooth = [statistics.mean(rates[max(0, i - 2):i + 1]) for i in range(len(rates))]
        settled = next((i for i in range(len(smooth)) if all(
            abs(r - capacity) <= 0.2 * capacity for r in smooth[i:])), None)
        result.update(capacity=capacity, offered=3 * capacity,
                      converged_rate=round(statistics.mean(last)) if last else None,
                      batches_to_converge=settled,
                      max_scheduling_ms_last_third=max(
                          (b["scheduling_ms"] for b in batches[len(batches) * 2 // 3:]), default=None),
                      rates=[round(r) for r in rates])
    else:
        during = [s for s in samples if s[0] <= stall_s]
        result.update(stall_s=stall_s,
                      driver_peak_stalled_mb=round(max(s[1] for s in during)) if during else None,
                      children_peak_stalled_mb=round(max(s[2] for s in during)) if during else None,
                      rss_samples=samples[::max(1, len(samples) // 60)])
    return result


# -- the side-by-side run --------------------------------------------------------------------

def child(engine: str, mode: str, args) -> dict:
    """One run in a process (group) of its own; a run that hangs (a JVM out of heap
    collects garbage for ever) is killed with everything it started, and reported."""
    command = [sys.executable, "-m", "bench.overload", "--engine", engine, "--mode", mode,
               "--capacity", str(args.capacity), "--seconds", str(args.seconds),
               "--stall-s", str(args.stall_s), "--batch-s", str(args.batch_s)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    timeout_s = (args.stall_s if mode == "stall" else 0) + args.seconds + 300
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        err = f"did not finish within {timeout_s:.0f}s and was killed" + (
            " (java.lang.OutOfMemoryError: Java heap space in its log)"
            if "OutOfMemoryError" in err else "") + "\n" + err[-1500:]
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    if "OutOfMemoryError" in err and "OutOfMemoryError" not in err[:200]:
        err = "java.lang.OutOfMemoryError: Java heap space (in its log)\n" + err[-1500:]
    return {"engine": engine, "mode": mode, "error": (err or out)[-2000:]}


def table(results: list[dict]) -> str:
    rows = [f"{'engine':11} {'run':9} {'sent':>10} {'lost':>6} {'driver peak MB':>15} "
            f"{'others peak MB':>15}  notes"]
    for r in results:
        if "error" in r:
            rows.append(f"{r['engine']:11} {r['mode']:9} ERROR {r['error'].splitlines()[0][:200]}")
            continue
        if r["mode"] == "converge":
            notes = (f"capacity {r['capacity']:,}/s, offered {r['offered']:,}/s, settled at "
                     f"{r['converged_rate'] or 0:,}/s after {r['batches_to_converge']} batches, "
                     f"max scheduling delay (last third) {r['max_scheduling_ms_last_third']} ms")
        else:
            notes = (f"stalled {r['stall_s']:.0f}s: driver {r['driver_base_mb']} -> "
                     f"{r['driver_peak_stalled_mb']} MB, others {r['children_base_mb']} -> "
                     f"{r['children_peak_stalled_mb']} MB")
        rows.append(f"{r['engine']:11} {r['mode']:9} {r['lines_sent']:>10,} {r['lost']:>6} "
                    f"{r['driver_peak_mb']:>15} {r['children_peak_mb']:>15}  {notes}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 30 s stall, shorter runs")
    parser.add_argument("--engines", default="sluicegate,pyspark")
    parser.add_argument("--capacity", type=int, default=20_000, help="lines/s the job can take")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--stall-s", type=float, default=None)
    parser.add_argument("--batch-s", type=float, default=1.0)
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return
    args.seconds = args.seconds if args.seconds is not None else (30.0 if args.quick else 60.0)
    args.stall_s = args.stall_s if args.stall_s is not None else (30.0 if args.quick else 300.0)
    if args.engine:
        print("RESULT " + json.dumps(run(args.engine, args.mode, args.capacity, args.seconds,
                                         args.stall_s, args.batch_s)), flush=True)
        return
    results = []
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"overload-{stamp}.json"
    for engine in [e for e in args.engines.split(",") if e]:
        for mode in ("converge", "stall"):
            started = time.time()
            results.append(child(engine, mode, args))
            print(f"[{engine}] {mode}: {time.time() - started:.0f}s", file=sys.stderr, flush=True)
            path.write_text(json.dumps({  # after every run: a later one may take long
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "args": {k: v for k, v in vars(args).items()
                         if k in ("quick", "capacity", "seconds", "stall_s", "batch_s")},
                "results": results}, indent=1))
    print(table(results))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
