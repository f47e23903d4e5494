"""Per-partition functions behind zip, histogram, pipe, the tree aggregations,
the approximate actions and local checkpoints.

Like ``taskfuncs``, they are pickled by reference, so executors import them
from here and never import the driver.
"""
from __future__ import annotations

import bisect
import math
import shlex
import subprocess
import threading
from typing import Any, Callable, Iterable, Iterator

from .accumulators import AccumulatorParam
from .statcounter import StatCounter
from .taskcontext import TaskContext, set_current

# -- zip ------------------------------------------------------------------------------

ZIP_SIZES_DIFFER = "Can only zip RDDs with same number of elements in each partition"


class _RightHalf:
    """Where the other RDD's partition begins in a zipped task's input."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<start of the zipped RDD's partition>"


RIGHT_HALF = _RightHalf()


def mark_right_half(iterator: Iterable) -> Iterator:
    yield RIGHT_HALF
    yield from iterator


def zip_halves(iterator: Iterable) -> Iterator:
    """Pair the records before ``RIGHT_HALF`` with those after it, in order.

    The first RDD's partition is held in memory while the second streams.
    """
    left: list = []
    records = iter(iterator)
    for record in records:
        if record is RIGHT_HALF:
            break
        left.append(record)
    paired = 0
    for record in records:
        if paired == len(left):
            raise ValueError(f"{ZIP_SIZES_DIFFER} (the second RDD has more records here)")
        yield left[paired], record
        paired += 1
    if paired != len(left):
        raise ValueError(f"{ZIP_SIZES_DIFFER} (the first RDD has {len(left)} records here, "
                         f"the second {paired})")


# -- histogram ------------------------------------------------------------------------

def comparable(x: Any) -> bool:
    """histogram ignores None and NaN."""
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def min_max_pair(x: Any) -> tuple:
    return x, x


def merge_min_max(a: tuple, b: tuple) -> tuple:
    return min(a[0], b[0]), max(a[1], b[1])


def add_counts(a: list, b: list) -> list:
    return [x + y for x, y in zip(a, b)]


class HistogramPartition:
    """Bucket counts of one partition; buckets are ``[b0, b1), ... [b(n-1), bn]``.

    Evenly spaced buckets are found by division, others by binary search.
    """

    def __init__(self, buckets: list, even: bool, increment: Any):
        self.buckets = list(buckets)
        self.even = even
        self.increment = increment

    def __call__(self, iterator: Iterable) -> list:
        buckets = self.buckets
        low, high = buckets[0], buckets[-1]
        last = len(buckets) - 2
        counts = [0] * (last + 1)
        for x in iterator:
            if x is None or (isinstance(x, float) and math.isnan(x)) or x > high or x < low:
                continue
            if self.even:
                index = int((x - low) / self.increment)
            else:
                index = bisect.bisect_right(buckets, x) - 1
            counts[min(index, last)] += 1  # the last bucket is closed on the right
        return [counts]


# -- pipe ---------------------------------------------------------------------------------

class PipeThrough:
    """``pipe``: feed a partition's records, one per line, to ``command``'s
    stdin and return its stdout lines.

    ``env`` is the command's whole environment, as in PySpark (an empty dict
    gives an empty environment). A writer thread feeds stdin while this
    thread reads stdout, so neither side can block the other; an error while
    producing the input fails the task instead of being lost.
    """

    def __init__(self, command: str, env: dict | None, check_code: bool):
        self.command = command
        self.env = env
        self.check_code = check_code

    def __call__(self, iterator: Iterable) -> Iterator[str]:
        argv = shlex.split(self.command)
        proc = subprocess.Popen(argv, env=dict(self.env or {}), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)
        failure: list[BaseException] = []
        writer = threading.Thread(target=_feed_lines,
                                  args=(iterator, proc.stdin, failure, TaskContext.get()),
                                  name=f"pipe to {argv[0] if argv else self.command}", daemon=True)
        writer.start()
        try:
            for line in iter(proc.stdout.readline, b""):
                yield line.rstrip(b"\n").decode("utf-8")
            proc.wait()
            writer.join()
        finally:
            if proc.poll() is None:  # the consumer stopped early (take) or failed
                proc.kill()
                proc.wait()
            proc.stdout.close()
        if failure:
            raise failure[0]
        if self.check_code and proc.returncode:
            raise RuntimeError(f"Pipe function `{self.command}` exited with error code "
                               f"{proc.returncode}.")


def _feed_lines(records: Iterable, stdin, failure: list, task: TaskContext | None) -> None:
    set_current(task)  # the records are computed here: their functions see their task
    try:
        for record in records:
            stdin.write((str(record).rstrip("\n") + "\n").encode("utf-8"))
    except BrokenPipeError:
        pass  # the command stopped reading; what it wrote is the answer
    except BaseException as exc:  # noqa: BLE001 - re-raised by the reading thread
        failure.append(exc)
    finally:
        try:
            stdin.close()
        except BrokenPipeError:
            pass


# -- tree aggregation -----------------------------------------------------------------

class KeyByPartitionModulo:
    """treeAggregate: send partition i's partial result to group ``i % groups``."""

    def __init__(self, groups: int):
        self.groups = groups

    def __call__(self, split: int, iterator: Iterable) -> Iterator:
        key = split % self.groups
        for value in iterator:
            yield key, value


def as_real(x: Any) -> tuple:
    """treeReduce: a value, flagged as not the placeholder zero."""
    return x, False


class MergeReal:
    """treeReduce's ``(value, is_placeholder)`` combiner around the user's ``f``."""

    def __init__(self, f: Callable):
        self.f = f

    def __call__(self, a: tuple, b: tuple) -> tuple:
        if a[1]:
            return b
        if b[1]:
            return a
        return self.f(a[0], b[0]), False


# -- approximate actions --------------------------------------------------------------

class PartialResultsParam(AccumulatorParam):
    """Collects ``[partition, value]`` entries as each task finishes."""

    def zero(self, value: list) -> list:
        return []

    def addInPlace(self, value1: list, value2: list) -> list:
        value1 += value2
        return value1


class ReportPartition:
    """Compute one partition's share of an approximate action and report it
    through an accumulator, which the driver reads as each task finishes.

    ``kind``: ``count`` (records), ``sum`` (their sum, as a float) or
    ``stats`` (count, mean and M2 of the records as floats).
    """

    def __init__(self, kind: str, accumulator):
        if kind not in ("count", "sum", "stats"):
            raise ValueError(f"unknown partial result kind {kind!r}")
        self.kind = kind
        self.accumulator = accumulator

    def __call__(self, split: int, iterator: Iterable) -> list:
        if self.kind == "count":
            value: Any = sum(1 for _ in iterator)
        elif self.kind == "sum":
            value = float(sum(iterator))
        else:
            stats = StatCounter(float(x) for x in iterator)
            value = [stats.n, stats.mu, stats.m2]
        self.accumulator.add([[split, value]])
        return []


# -- local checkpoints ------------------------------------------------------------------

class CheckpointBlockLost:
    """Stands for a locally checkpointed partition whose block is gone: there
    is no lineage left to recompute it from, so the task fails (as Spark's)."""

    def __init__(self, block_id: str):
        self.block_id = block_id

    def __call__(self, iterator: Iterable) -> list:
        raise RuntimeError(
            f"Checkpoint block {self.block_id} not found! Either the executor that originally "
            "checkpointed this partition is no longer alive, or the original RDD is "
            "unpersisted. If this problem persists, you may consider using `rdd.checkpoint()` "
            "instead, which is slower than local checkpointing but more fault-tolerant.")
