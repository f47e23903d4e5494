"""The plain-Python yardstick: split, (w, 1), dict combine, in N processes.

No engine at all: each process counts words of its share of the same lines;
the rate is lines over the slowest process's time.
"""
from __future__ import annotations

import multiprocessing as mp
import time
from typing import Callable, Sequence

from .datagen import zipf_lines


def timed_in_processes(target: Callable, args_per_process: Sequence[tuple],
                       timeout_s: float) -> list[float]:
    """Runs ``target(*args, ready, go, out)`` in one forked process per ``args``.

    Each process gets ready (outside the timing), waits at the ``ready`` barrier
    and then for ``go``, which is set once all are ready, so they run at the same
    time; each puts its seconds on ``out``. Returns those seconds.
    """
    context = mp.get_context("fork")
    ready = context.Barrier(len(args_per_process) + 1)
    go = context.Event()
    out = context.Queue()
    workers = [context.Process(target=target, args=(*args, ready, go, out))
               for args in args_per_process]
    for worker in workers:
        worker.start()
    ready.wait()
    go.set()
    times = [out.get(timeout=timeout_s) for _ in workers]
    for worker in workers:
        worker.join()
    return times


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
    shares = [(lines[i::processes],) for i in range(processes)]
    times = timed_in_processes(_count, shares, timeout_s=300)
    return {"processes": processes, "lines": total_lines,
            "lines_per_s": round(total_lines / max(times))}
