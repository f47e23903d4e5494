"""A stateful streaming job whose load the elasticity tests step, in local mode or on
a cluster (``sluicegate submit``).

A receiver offers records ``k0``..``k6`` at the rate written in ``OUT/rate``
(records/s; 0 or no file: none); each record costs ``ELASTIC_COST_MS`` of
sleep on an executor, so the job's capacity grows with its executors whatever
the machine's load. ``updateStateByKey`` counts them. Every batch the job
writes ``OUT/progress.json`` (batches done, records stored so far, executors
alive). When ``OUT/stop`` appears it stops offering, finishes everything
stored (a graceful stop) and writes ``OUT/final.json``: what was stored per
key and the final state.

Usage: elastic_job.py OUT [--dynamic MAX] [--master M] [--cost-ms MS]

``--dynamic MAX`` turns on streaming dynamic allocation (scaling every 2 s,
1..MAX executors); ``--master`` defaults to local[3] (a cluster's submit
overrides it); each record costs ``--cost-ms`` (1).
"""
import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from sluicegate.driver import Receiver, SparkConf, SparkContext, StreamingContext

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--dynamic", type=int, default=0)
parser.add_argument("--master", default="local[3]")
parser.add_argument("--cost-ms", type=float, default=1.0)
ARGS = parser.parse_args(sys.argv[1:])
OUT = Path(ARGS.out)
COST_S = ARGS.cost_ms / 1000.0
KEYS = 7


class SteppedReceiver(Receiver):
    def __init__(self):
        super().__init__()
        self.stored = Counter()
        self.stopping = threading.Event()

    def onStart(self):
        threading.Thread(target=self._run, daemon=True).start()

    def _rate(self) -> float:
        try:
            return float((OUT / "rate").read_text() or 0)
        except (OSError, ValueError):
            return 0.0

    def _run(self):
        n = sum(self.stored.values())
        while not self.isStopped() and not self.stopping.is_set():
            rate = self._rate()
            if rate <= 0:
                time.sleep(0.05)
                continue
            chunk = [f"k{(n + i) % KEYS}" for i in range(20)]
            try:
                self.store(chunk)
            except Exception:  # noqa: BLE001 - refused after the stop
                return
            self.stored.update(chunk)
            n += len(chunk)
            time.sleep(len(chunk) / rate)


def costly(records):
    out = []
    for record in records:
        time.sleep(COST_S)
        out.append((record, 1))
    return out


def add(values, last):
    return sum(values) + (last or 0)


def write_json(name, value):
    staging = OUT / f".{name}.tmp"
    staging.write_text(json.dumps(value))
    os.replace(staging, OUT / name)


def main():
    conf = SparkConf().setMaster(ARGS.master) \
        .setAppName("elastic-test").set("spark.sluicegate.progress", "false")
    if ARGS.dynamic:
        conf.set("spark.streaming.dynamicAllocation.enabled", "true") \
            .set("spark.streaming.dynamicAllocation.scalingInterval", "2s") \
            .set("spark.streaming.dynamicAllocation.minExecutors", "1") \
            .set("spark.streaming.dynamicAllocation.maxExecutors", str(ARGS.dynamic))
    sc = SparkContext(conf=conf)
    ssc = StreamingContext(sc, 0.5)
    sc.setCheckpointDir(str(OUT / "checkpoint"))  # state checkpoints (no recovery here)
    receiver = SteppedReceiver()
    state = ssc.receiverStream(receiver).repartition(4).mapPartitions(costly) \
        .updateStateByKey(add, 4)
    state.checkpoint(2)
    latest = {}
    batches = [0]

    def record(t, rdd):
        latest.clear()
        latest.update(dict(rdd.collect()))
        batches[0] += 1
        write_json("progress.json", {"batches": batches[0], "stored": sum(receiver.stored.values()),
                                     "counted": sum(latest.values()),
                                     "executors": len(sc._runtime.endpoint.registry.alive())})

    state.foreachRDD(record)
    ssc.start()
    print("STREAMING STARTED", flush=True)
    while not (OUT / "stop").exists():
        time.sleep(0.1)
    receiver.stopping.set()
    time.sleep(0.2)  # the last chunk's store returns
    ssc.stop(stopSparkContext=False, stopGraceFully=True)
    write_json("final.json", {"stored": dict(receiver.stored), "state": latest})
    sc.stop()
    print("FINISHED", flush=True)


if __name__ == "__main__":
    main()
