"""Functions the driver's RDD operations put into task plans.

They are pickled by reference (module and name), so executors import them
from here instead of receiving their code, and a DStream that rebuilds the
same operation every batch reuses one cached function id. Helpers that
capture a value are small classes with that value as state; any zero value
is deep-copied before use, because an executor reuses a cached closure for
every task and a shared mutable zero would leak between tasks.

A partition function marked ``reads_whole_partition`` has read all of its
input whenever it returns normally, and keeps nothing but its result; the
executor then checks that input once, after the call, for a ``StopIteration``
that ended it early (writers are not marked: they must fail before writing).
"""
from __future__ import annotations

import bisect
import copy
import heapq
import random
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from . import storage
from .resultiterable import ResultIterable


def reads_whole_partition(fn: Callable) -> Callable:
    """Mark a partition function that reads its whole input before it returns."""
    fn.reads_whole_partition = True
    return fn


def identity(x):
    return x


def first(kv):
    return kv[0]


def second(kv):
    return kv[1]


def swap(kv):
    return kv[1], kv[0]


def key_with_none(x):
    return x, None


def first_of_pair_arg(a, _b):
    return a


def one_key(x):
    return 1, x


def one(_x):
    return 1


def sub(a, b):
    return a - b


def positive_value(kv) -> bool:
    return kv[1] > 0


def concat_lists(a: list, b: list) -> list:
    # Never extend in place: ``a`` may be a cached window's live value.
    return a + b


def drop_prefix(a: list, b: list) -> list:
    return a[len(b):]


class InverseOrKeep:
    """reduceByKeyAndWindow's subtraction over ``leftOuterJoin`` output."""

    def __init__(self, inverse: Callable):
        self.inverse = inverse

    def __call__(self, values):
        current, old = values
        return self.inverse(current, old) if old is not None else current


def mapped_records(record) -> list:
    return record.mapped


def state_snapshot(record):
    return record.state_map.items()


class WithTime:
    """A 4-argument mapWithState function ``f(time, key, value, state)`` as a 3-argument one."""

    def __init__(self, fn: Callable, time):
        self.fn = fn
        self.time = time

    def __call__(self, key, value, state):
        return self.fn(self.time, key, value, state)


def none_key(x):
    return None, x


def add(a, b):
    return a + b


def with_one(x):
    return x, 1


def count_and_value(x):
    return 1, x


def add_pairs(a, b):
    return a[0] + b[0], a[1] + b[1]


def max_by(key, a, b):
    return a if key(a) >= key(b) else b


def min_by(key, a, b):
    return a if key(a) <= key(b) else b


@reads_whole_partition
def count_partition(iterator: Iterable) -> list[int]:
    n = 0
    for _ in iterator:
        n += 1
    return [n]


@reads_whole_partition
def sum_partition(iterator: Iterable) -> list:
    return [sum(iterator)]


@reads_whole_partition
def glom_partition(iterator: Iterable) -> list[list]:
    return [list(iterator)]


@reads_whole_partition
def nothing(iterator: Iterable) -> list:
    for _ in iterator:
        pass
    return []


# -- groupByKey combiners ---------------------------------------------------------

def group_create(value) -> list:
    return [value]


def group_merge_value(group: list, value) -> list:
    group.append(value)
    return group


def group_merge_groups(a: list, b: list) -> list:
    a.extend(b)
    return a


def to_result_iterable(values: list) -> ResultIterable:
    return ResultIterable(values)


# -- callables carrying a value ---------------------------------------------------

class TakeUpTo:
    """At most ``n`` records of a partition (``take``)."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, iterator: Iterable) -> list:
        return list(islice(iterator, self.n))


class FoldPartition:
    """``fold``/``aggregate`` of one partition from a fresh copy of the zero."""

    reads_whole_partition = True

    def __init__(self, zero: Any, op: Callable):
        self.zero = zero
        self.op = op

    def __call__(self, iterator: Iterable) -> list:
        acc = copy.deepcopy(self.zero)
        op = self.op
        for x in iterator:
            acc = op(acc, x)
        return [acc]


class ReducePartition:
    """``reduce`` of one partition; an empty partition yields nothing."""

    reads_whole_partition = True

    def __init__(self, op: Callable):
        self.op = op

    def __call__(self, iterator: Iterable) -> list:
        iterator = iter(iterator)
        try:
            acc = next(iterator)
        except StopIteration:
            return []
        op = self.op
        for x in iterator:
            acc = op(acc, x)
        return [acc]


class ZeroThen:
    """aggregateByKey/foldByKey createCombiner: ``op(copy(zero), value)``."""

    def __init__(self, zero: Any, op: Callable):
        self.zero = zero
        self.op = op

    def __call__(self, value):
        return self.op(copy.deepcopy(self.zero), value)


class ForeachRecord:
    reads_whole_partition = True

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, iterator: Iterable) -> list:
        fn = self.fn
        for x in iterator:
            fn(x)
        return []


class ForeachPartition:
    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, iterator: Iterable) -> list:
        self.fn(iterator)
        return []


class KeyBy:
    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, x):
        return self.fn(x), x


class TopOf:
    """The ``n`` largest (``largest``) or smallest records of a partition."""

    def __init__(self, n: int, key: Callable | None, largest: bool):
        self.n = n
        self.key = key
        self.largest = largest

    def __call__(self, iterator: Iterable) -> list:
        pick = heapq.nlargest if self.largest else heapq.nsmallest
        return [pick(self.n, iterator, key=self.key)]


class RangePartition:
    """sortByKey's partition function: which range of sampled bounds a key is in."""

    def __init__(self, bounds: list, ascending: bool, keyfunc: Callable):
        self.bounds = bounds
        self.ascending = ascending
        self.keyfunc = keyfunc

    def __call__(self, key) -> int:
        p = bisect.bisect_left(self.bounds, self.keyfunc(key))
        return p if self.ascending else len(self.bounds) - p

    def __eq__(self, other) -> bool:
        return (isinstance(other, RangePartition) and self.bounds == other.bounds
                and self.ascending == other.ascending and self.keyfunc == other.keyfunc)

    def __hash__(self) -> int:
        return hash((len(self.bounds), self.ascending))


class RoundRobinKeys:
    """repartition: key records by position so a shuffle spreads them evenly."""

    def __call__(self, index: int, iterator: Iterable) -> Iterator:
        position = random.Random(index).randrange(1 << 16)
        for x in iterator:
            yield position, x
            position += 1


def int_key(k: int) -> int:
    return k


class WithIndexOffset:
    """zipWithIndex: number records from the partition's starting offset."""

    def __init__(self, starts: list[int]):
        self.starts = starts

    def __call__(self, index: int, iterator: Iterable) -> Iterator:
        for i, x in enumerate(iterator, self.starts[index]):
            yield x, i


class WithUniqueId:
    def __init__(self, num_partitions: int):
        self.n = num_partitions

    def __call__(self, index: int, iterator: Iterable) -> Iterator:
        for i, x in enumerate(iterator):
            yield x, i * self.n + index


class Equals:
    def __init__(self, value):
        self.value = value

    def __call__(self, kv) -> bool:
        return kv[0] == self.value


# -- joins over cogrouped values -----------------------------------------------

def join_values(groups) -> list:
    left, right = groups
    return [(v, w) for v in left for w in right]


def left_outer_join_values(groups) -> list:
    left, right = groups
    rights = list(right) or [None]
    return [(v, w) for v in left for w in rights]


def right_outer_join_values(groups) -> list:
    left, right = groups
    lefts = list(left) or [None]
    return [(v, w) for v in lefts for w in right]


def full_outer_join_values(groups) -> list:
    left, right = groups
    lefts = list(left) or [None]
    rights = list(right) or [None]
    return [(v, w) for v in lefts for w in rights]


def kv_only_in_first(kv) -> bool:
    groups = kv[1]
    return len(groups[0]) > 0 and len(groups[1]) == 0


def kv_in_both(kv) -> bool:
    groups = kv[1]
    return len(groups[0]) > 0 and len(groups[1]) > 0


def first_group(groups):
    return groups[0]


# -- saving ------------------------------------------------------------------------

def write_part_atomically(directory: str, index: int, write: Callable) -> str:
    """Write ``part-NNNNN`` in ``directory`` via a temporary name, so a reader
    never sees half a part; ``write(file)`` writes the content."""
    if storage.is_remote(directory):  # an fsspec URL: one whole upload (common.storage)
        name = f"part-{index:05d}"
        storage.write_file(storage.join(directory, name), write)
        return name
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"part-{index:05d}"
    tmp = folder / f".part-{index:05d}.{random.getrandbits(48):x}.tmp"
    with open(tmp, "wb") as f:
        write(f)
    tmp.replace(final)
    return final.name


class WriteTextPartition:
    """Write one partition as ``part-NNNNN`` under a staging directory.

    The driver moves the finished directory into place with ``_SUCCESS`` only
    when every partition succeeded, so a half-written output never looks
    complete.
    """

    def __init__(self, staging_dir: str):
        self.staging_dir = staging_dir

    def __call__(self, index: int, iterator: Iterable) -> list:
        def write(f) -> None:
            for x in iterator:
                f.write(x if isinstance(x, bytes) else str(x).encode("utf-8"))
                f.write(b"\n")

        return [write_part_atomically(self.staging_dir, index, write)]


class WriteCheckpointPartition:
    def __init__(self, directory: str):
        self.directory = directory

    def __call__(self, index: int, iterator: Iterable) -> list:
        from .serializer import dump_records

        data = dump_records(list(iterator))
        return [write_part_atomically(self.directory, index, lambda f: f.write(data))]

