"""The benchmark workloads, written once against PySpark's API.

Each function takes an engine ``E`` -- a namespace holding that engine's
``SparkConf``, ``SparkContext``, ``StreamingContext`` and
``StreamingListener`` -- and runs identical job code on it: the jobs below
run unchanged on PySpark and on sluicegate, which is the point.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from operator import add, sub
from pathlib import Path

from .datagen import zipf_lines


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def make_context(E, cores: int = 2):
    # Each engine's console progress off: PySpark's bar, sluicegate's per-batch line.
    conf = (E.SparkConf().setMaster(f"local[{cores}]").setAppName("bench")
            .set("spark.ui.enabled", "false").set("spark.ui.showConsoleProgress", "false")
            .set("spark.sluicegate.progress", "false"))
    sc = E.SparkContext(conf=conf)
    sc.setLogLevel("ERROR")
    return sc


def batch_recorder(E):
    """A StreamingListener collecting every completed batch's figures."""

    class Recorder(E.StreamingListener):
        def __init__(self):
            super().__init__()
            self.batches: list[dict] = []

        def onBatchCompleted(self, batchCompleted):
            info = batchCompleted.batchInfo()
            self.batches.append({
                "time_ms": int(info.batchTime().milliseconds()),
                "records": int(info.numRecords()),
                "processing_ms": int(info.processingDelay()),
                "scheduling_ms": int(info.schedulingDelay()),
                "total_ms": int(info.totalDelay()),
            })

    return Recorder()


class TextServer:
    """``bench.text_server`` in its own process, so it never competes for our GIL."""

    def __init__(self, rate: int):
        self.process = subprocess.Popen([sys.executable, "-m", "bench.text_server", "--rate", str(rate)],
                                        stdout=subprocess.PIPE, text=True,
                                        cwd=Path(__file__).resolve().parent.parent)
        self.port = int(self.process.stdout.readline().split()[1])
        self.pid = self.process.pid

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _settle(batches: list[dict], warmup: int) -> list[dict]:
    return batches[warmup:] if len(batches) > warmup + 2 else batches


# -- 1. network word count ------------------------------------------------------------

def wordcount_trial(E, sc, rate: int, seconds: float, batch_s: float = 1.0) -> dict:
    """Count words from a server sending ``rate`` lines/s; does processing keep up?"""
    server = TextServer(rate)
    ssc = E.StreamingContext(sc, batch_s)
    recorder = batch_recorder(E)
    ssc.addStreamingListener(recorder)
    lines = ssc.socketTextStream("127.0.0.1", server.port)
    counts = lines.flatMap(lambda line: line.split(" ")) \
                  .map(lambda word: (word, 1)) \
                  .reduceByKey(lambda a, b: a + b)
    counts.foreachRDD(lambda rdd: rdd.count())
    ssc.start()
    time.sleep(seconds)
    ssc.stop(stopSparkContext=False, stopGraceFully=False)
    server.stop()
    batches = _settle(recorder.batches, 2)
    batch_ms = batch_s * 1000
    processing = [b["processing_ms"] for b in batches]
    scheduling = [b["scheduling_ms"] for b in batches]
    received = statistics.mean(b["records"] for b in batches) / batch_s if batches else 0
    # Keeping up means every batch but a rare outlier finishes inside the interval,
    # no batch waits a whole interval to start, and the source is not throttled.
    keeps_up = bool(batches) and percentile(processing, 0.9) < batch_ms \
        and max(scheduling) < batch_ms and received >= 0.9 * rate
    return {"rate": rate, "keeps_up": keeps_up, "received_per_s": round(received),
            "median_processing_ms": percentile(processing, 0.5),
            "max_scheduling_ms": max(scheduling) if scheduling else None,
            "batches": recorder.batches}


MIN_RATE, MAX_RATE = 1_000, 8_000_000


def wordcount_max_rate(E, sc, start_rate: int, trial_s: float, refine_steps: int) -> dict:
    """The highest rate whose processing stays under the batch interval."""
    trials = []

    def keeps_up(rate: int) -> bool:
        result = wordcount_trial(E, sc, rate, trial_s)
        trials.append(result)
        return result["keeps_up"]

    # Bracket the highest rate that keeps up: double from the start rate until
    # one fails, or halve until one passes; then bisect the bracket.
    low, high = 0, start_rate
    if keeps_up(start_rate):
        low, high = start_rate, start_rate * 2
        while high <= MAX_RATE and keeps_up(high):
            low, high = high, high * 2
    else:
        while high // 2 >= MIN_RATE:
            if keeps_up(high // 2):
                low = high // 2
                break
            high //= 2
    for _ in range(refine_steps):
        if not low or high - low <= max(5000, low // 10):
            break
        middle = (low + high) // 2
        low, high = (middle, high) if keeps_up(middle) else (low, middle)
    return {"max_rate": low, "trials": [{k: v for k, v in t.items() if k != "batches"} for t in trials]}


# -- 2. near-empty batches --------------------------------------------------------------

def near_empty(E, sc, batches: int, batch_s: float) -> dict:
    """map + reduceByKey + output on a few records per batch: the per-batch floor."""
    ssc = E.StreamingContext(sc, batch_s)
    recorder = batch_recorder(E)
    ssc.addStreamingListener(recorder)
    queue = [sc.parallelize(["a b c", "b c"], 2) for _ in range(batches + 4)]
    ssc.queueStream(queue).flatMap(lambda line: line.split(" ")) \
        .map(lambda w: (w, 1)).reduceByKey(add).foreachRDD(lambda rdd: rdd.collect())
    ssc.start()
    deadline = time.time() + batches * batch_s * 4 + 30
    while len(recorder.batches) < batches + 2 and time.time() < deadline:
        time.sleep(0.05)
    ssc.stop(stopSparkContext=False, stopGraceFully=False)
    processing = [b["processing_ms"] for b in _settle(recorder.batches, 2)]
    return {"median_processing_ms": percentile(processing, 0.5),
            "p99_processing_ms": percentile(processing, 0.99), "batches": len(processing)}


# -- 3. fast batches ---------------------------------------------------------------------

def small_batches(E, sc, batch_s: float, rate: int, seconds: float) -> dict:
    """Word count at ``rate`` lines/s in ``batch_s`` batches: does scheduling delay grow?"""
    result = wordcount_trial(E, sc, rate, seconds, batch_s)
    batches = _settle(result["batches"], 4)
    scheduling = [b["scheduling_ms"] for b in batches]
    quarter = max(1, len(scheduling) // 4)
    growth = statistics.mean(scheduling[-quarter:]) - statistics.mean(scheduling[:quarter]) \
        if scheduling else float("nan")
    expected = seconds / batch_s
    return {"batch_ms": batch_s * 1000, "rate": rate,
            "batches_completed": len(result["batches"]), "batches_due": int(expected),
            "p99_total_ms": percentile([b["total_ms"] for b in batches], 0.99),
            "scheduling_growth_ms": round(growth, 1),
            "keeps_up": len(result["batches"]) >= 0.8 * expected and growth < batch_s * 1000,
            "series": result["batches"]}


# -- 4. keyed state -------------------------------------------------------------------

def _keyed_inputs(sc, keys: int, updates_per_batch: int, batches: int) -> list:
    import random

    rng = random.Random(7)
    return [sc.parallelize([(f"k{rng.randrange(keys)}", 1) for _ in range(updates_per_batch)], 4)
            for _ in range(batches)]


def _wait_for_batches(recorder, batches: int, timeout_s: float = 600) -> None:
    deadline = time.time() + timeout_s
    while len(recorder.batches) < batches and time.time() < deadline:
        time.sleep(0.1)


def update_state(E, sc, keys: int, updates_per_batch: int, batches: int, batch_s: float) -> dict:
    """updateStateByKey over ``keys`` keys: time per batch."""
    checkpoint = tempfile.mkdtemp(prefix="bench-ckpt-")
    ssc = E.StreamingContext(sc, batch_s)
    ssc.checkpoint(checkpoint)
    recorder = batch_recorder(E)
    ssc.addStreamingListener(recorder)
    initial = sc.parallelize([(f"k{i}", 1) for i in range(keys)], 4)
    inputs = _keyed_inputs(sc, keys, updates_per_batch, batches)
    state = ssc.queueStream(inputs).updateStateByKey(
        lambda new, last: sum(new) + (last or 0), initialRDD=initial)
    sizes = []
    state.foreachRDD(lambda rdd: sizes.append(rdd.count()))
    ssc.start()
    _wait_for_batches(recorder, batches)
    ssc.stop(stopSparkContext=False, stopGraceFully=False)
    processing = [b["processing_ms"] for b in recorder.batches[1:batches]]
    return {"keys": keys, "state_sizes": sizes[:3], "median_batch_ms": percentile(processing, 0.5),
            "batch_ms": processing}


def map_with_state(E, sc, keys: int, updates_per_batch: int, batches: int, batch_s: float) -> dict:
    """mapWithState (sluicegate only: PySpark has none) over ``keys`` keys."""
    from sluicegate.driver import StateSpec

    ssc = E.StreamingContext(sc, batch_s)
    ssc.checkpoint(tempfile.mkdtemp(prefix="bench-ckpt-"))
    recorder = batch_recorder(E)
    ssc.addStreamingListener(recorder)

    def count(key, value, state):
        total = (state.getOption() or 0) + value
        state.update(total)
        return total

    spec = StateSpec.function(count).initialState(
        sc.parallelize([(f"k{i}", 1) for i in range(keys)], 4))
    inputs = _keyed_inputs(sc, keys, updates_per_batch, batches)
    ssc.queueStream(inputs).mapWithState(spec).foreachRDD(lambda rdd: rdd.count())
    ssc.start()
    _wait_for_batches(recorder, batches)
    ssc.stop(stopSparkContext=False, stopGraceFully=False)
    processing = [b["processing_ms"] for b in recorder.batches[1:batches]]
    return {"keys": keys, "median_batch_ms": percentile(processing, 0.5), "batch_ms": processing}


# -- 5. windows -------------------------------------------------------------------------

def windowed(E, sc, window_slides: int, slide_s: float, words_per_batch: int,
             measure_batches: int) -> dict:
    """reduceByKeyAndWindow with invFunc: time per batch once the window is full."""
    ssc = E.StreamingContext(sc, slide_s)
    ssc.checkpoint(tempfile.mkdtemp(prefix="bench-ckpt-"))
    recorder = batch_recorder(E)
    ssc.addStreamingListener(recorder)
    lines = zipf_lines(words_per_batch // 10)
    total = window_slides + measure_batches + 2
    inputs = [sc.parallelize(lines, 2) for _ in range(total)]
    counts = ssc.queueStream(inputs).flatMap(lambda line: line.split(" ")).map(lambda w: (w, 1)) \
        .reduceByKeyAndWindow(add, sub, window_slides * slide_s, slide_s)
    counts.foreachRDD(lambda rdd: rdd.count())
    ssc.start()
    deadline = time.time() + 900
    while len(recorder.batches) < total and time.time() < deadline:
        time.sleep(0.1)
    ssc.stop(stopSparkContext=False, stopGraceFully=False)
    steady = [b["processing_ms"] for b in recorder.batches[window_slides + 1:total]]
    return {"window_slides": window_slides, "median_batch_ms": percentile(steady, 0.5)}


# -- 6. batch word count ------------------------------------------------------------------

def batch_wordcount(E, sc, path: str, lines: int) -> dict:
    """Word count over a text file with RDDs: lines per second."""
    sc.textFile(path, 4).count()  # warm the file cache and the executors
    started = time.perf_counter()
    distinct = sc.textFile(path, 4).flatMap(lambda line: line.split(" ")) \
        .map(lambda w: (w, 1)).reduceByKey(add).count()
    elapsed = time.perf_counter() - started
    return {"lines": lines, "seconds": round(elapsed, 3), "lines_per_s": round(lines / elapsed),
            "distinct_words": distinct}


def small_job_latency(E, sc, repeats: int) -> dict:
    """The issue's reference job: parallelize(range(1000), 4).map.reduceByKey.collect."""
    for _ in range(3):
        sc.parallelize(range(1000), 4).map(lambda x: (x % 10, 1)).reduceByKey(add).collect()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        sc.parallelize(range(1000), 4).map(lambda x: (x % 10, 1)).reduceByKey(add).collect()
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(percentile(times, 0.5), 2), "p99_ms": round(percentile(times, 0.99), 2)}


# -- 7. a shuffle into many partitions ----------------------------------------------------

def many_partition_shuffle(E, sc, records: int, partitions: int) -> dict:
    """``parallelize(range(records), P).map(x -> (x, 1)).reduceByKey(add, P).count()``:
    P map tasks each writing P reduce partitions (issue 11's 10,000 x 10,000)."""
    started = time.perf_counter()
    distinct = sc.parallelize(range(records), partitions).map(lambda x: (x, 1)) \
        .reduceByKey(add, partitions).count()
    elapsed = time.perf_counter() - started
    if distinct != records:
        raise AssertionError(f"{distinct} keys, expected {records}")
    return {"records": records, "partitions": partitions, "seconds": round(elapsed, 2)}
