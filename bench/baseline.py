"""The plain-Python yardstick: split, (w, 1), dict combine, in N processes.

No engine at all: each process counts words of its share of the same lines;
the rate is lines over the slowest process's time.
"""
from __future__ import annotations

import multiprocessing as mp
import time

from .datagen import zipf_lines


def _count(lines, ready, go, out) -> None:
    ready.wait()
    go.wait()
    started = time.perf_counter()
    counts: dict = {}
    for line in lines:
        for word, one in map(lambda w: (w, 1), line.split(" ")):
            counts[word] = counts.get(word, 0) + one
    out.put(time.perf_counter() - started)


def plain_loop_rate(total_lines: int, processes: int) -> dict:
    lines = zipf_lines(total_lines)
    shares = [lines[i::processes] for i in range(processes)]
    context = mp.get_context("fork")
    ready = context.Barrier(processes + 1)
    go = context.Event()
    out = context.Queue()
    workers = [context.Process(target=_count, args=(share, ready, go, out)) for share in shares]
    for worker in workers:
        worker.start()
    ready.wait()
    go.set()
    times = [out.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join()
    return {"processes": processes, "lines": total_lines,
            "lines_per_s": round(total_lines / max(times))}
