"""Turning a task's plan tree into one iterator over its output.

Narrow operators compose with the builtins ``map``, ``filter`` and
``itertools.chain`` so a pipeline of map/flatMap/filter runs as one C-level
loop calling the user's functions, with no Python frame of ours per record.

Such a loop stops at the first ``StopIteration``, wherever it comes from: a
user function raising one would end the partition early, silently. So each
fused run is a ``Pipeline`` that notes when its source truly ended; a run
whose output ends before that was stopped by user code, and the task fails
(PySpark's ``STOP_ITERATION_OCCURRED``). The check costs no Python call per
record, only a ``chain`` step or two: a consumer that reads everything in
one loop (``collect``, ``count``, caching, a cogroup) checks once when done
(``build(..., full=True)`` and ``PlanContext.verify``); any other consumer (a
user's ``mapPartitions`` function, ``take``, the chunked shuffle writer)
gets the output followed by a check of its own, which also keeps the output
ended once it has ended.
"""
from __future__ import annotations

import copy
from itertools import chain
from typing import Any, Callable, Iterator

from sluicegate.common.keyed_state import StateMap, StateRecord, map_with_state
from sluicegate.common.protocol import plan as p
from sluicegate.common.resultiterable import ResultIterable
from sluicegate.common.stopiteration import (
    UserCodeStopIteration, describe_function, message, raising_from)
from sluicegate.common.serializer import load_records
from sluicegate.common.storagelevel import StorageLevel

from ..block_store import BlockMissing
from ..shuffle.block_ids import FetchFailed
from ..shuffle.reader import ShuffleReadResult, read_reduce_partition
from ..shuffle.writer import combine_by_key
from . import file_sources, kafka_fetch


class PlanContext:
    """What operators need from the executor while one task runs."""

    def __init__(self, functions, store, fetcher, executor_id: str, shuffle_locations: dict,
                 read_block: Callable[[str], bytes]):
        self.functions = functions
        self.store = store
        self.fetcher = fetcher
        self.executor_id = executor_id
        self.shuffle_locations = shuffle_locations
        self.read_block = read_block
        self.shuffle_read = ShuffleReadResult()
        self.cached_blocks: list[str] = []
        self.records_in = 0
        # Pipelines read by a consumer that reads to the end, parents before
        # children: checked when that consumer is done.
        self.pipelines: list[Pipeline] = []

    def read(self, records: list) -> Iterator:
        """A source's records, counted."""
        self.records_in += len(records)
        return iter(records)

    def fn(self, function_id: int) -> Callable:
        return self.functions.get(function_id)

    def mark(self) -> int:
        """Where the pipelines of what is built next begin (for ``verify``)."""
        return len(self.pipelines)

    def verify(self, mark: int) -> None:
        """The pipelines registered since ``mark`` were read to the end: fail if
        one of them was stopped by a user function instead of by its source."""
        pending = self.pipelines[mark:]
        del self.pipelines[mark:]
        for pipeline in pending:  # outermost first: a child is short because its parent stopped
            pipeline.verify()


def build(node: p.PlanNode, ctx: PlanContext, full: bool = False) -> Iterator:
    """The iterator producing ``node``'s records.

    ``full``: the caller reads it in one go up to the first end (or fails),
    never asking again after that end, and then calls ``ctx.verify`` with the
    mark it took before building. (A builtin ``map`` that a StopIteration
    stopped would go on with the next record if asked again; a chunked
    reader that does so must not pass ``full``.)
    """
    try:
        builder = _BUILDERS[type(node)]
    except KeyError:
        raise TypeError(f"executor cannot run plan node {type(node).__name__}") from None
    return builder(node, ctx, full)


def build_all(node: p.PlanNode, ctx: PlanContext) -> list:
    """Every record of ``node``, checked to be all of them."""
    mark = ctx.mark()
    records = list(build(node, ctx, True))
    ctx.verify(mark)
    return records


# -- sources ---------------------------------------------------------------------

def _block(node: p.BlockSource, ctx: PlanContext, full: bool) -> Iterator:
    return ctx.read(load_records(ctx.read_block(node.block_id)))


def _range(node: p.RangeSource, ctx: PlanContext, full: bool) -> Iterator:
    numbers = range(node.start, node.stop, node.step)
    ctx.records_in += len(numbers)
    return iter(numbers)


def _file_split(node: p.FileSplitSource, ctx: PlanContext, full: bool) -> Iterator:
    return ctx.read(file_sources.read_lines(node.path, node.start, node.length))


def _whole_files(node: p.WholeFilesSource, ctx: PlanContext, full: bool) -> Iterator:
    return ctx.read(list(file_sources.read_whole_files(node.paths)))


def _binary_records(node: p.BinaryRecordsSource, ctx: PlanContext, full: bool) -> Iterator:
    return ctx.read(list(file_sources.read_fixed_records(node.path, node.record_length)))


def _checkpoint(node: p.CheckpointSource, ctx: PlanContext, full: bool) -> Iterator:
    return ctx.read(file_sources.read_checkpoint(node.path))


def _empty(node: p.EmptySource, ctx: PlanContext, full: bool) -> Iterator:
    return iter(())


def _combiner(spec: p.Combiner | None, ctx: PlanContext):
    if spec is None:
        return None
    return ctx.fn(spec.create), ctx.fn(spec.merge_value), ctx.fn(spec.merge_combiners)


def _shuffle_read(node: p.ShuffleRead, ctx: PlanContext, full: bool) -> Iterator:
    locations = ctx.shuffle_locations.get(node.shuffle_id, [])
    # Every segment is fetched (and merged, with a combiner) before any user
    # code iterates, so a fetch failure can never be swallowed by a user's try/except.
    before = ctx.shuffle_read.records_read
    records = read_reduce_partition(node.shuffle_id, node.reduce_id, locations, ctx.executor_id,
                                    ctx.store, ctx.fetcher, ctx.shuffle_read,
                                    _combiner(node.combiner, ctx), node.map_side_combined)
    ctx.records_in += ctx.shuffle_read.records_read - before
    return records


# -- narrow transformations ---------------------------------------------------------

_FUSED = {p.MapNode: "map", p.FilterNode: "filter", p.FlatMapNode: "flatMap"}
_UNKNOWN = object()
_SELF_REPORTING = frozenset(type(iter(x)) for x in ([], ()))
_SEQUENCE_ITERATORS = _SELF_REPORTING | {type(iter(range(0))), type(iter(range(1 << 64)))}


class Pipeline:
    """One fused run of map/filter/flatMap over a source, and whether the source ended.

    If the run's output ends before its source did, a user function raised
    ``StopIteration``: ``verify`` raises ``UserCodeStopIteration`` naming it.
    A list or tuple iterator tells by itself that it has reported its end
    (it lets go of its sequence then), at no cost per record; any other
    source is followed by a marker that notes its end.
    """

    __slots__ = ("ops", "source", "source_done")

    def __init__(self, ops: list[tuple[str, Callable]]):
        self.ops = ops
        self.source: Iterator | None = None
        self.source_done = False

    def run(self, source: Iterator) -> Iterator:
        self.source = source
        records: Iterator = source
        if type(source) not in _SELF_REPORTING:
            records = chain(source, _SourceEnd(self))
        return _fused(self.ops, records)

    def verify(self) -> None:
        """Called when the output was read to its end."""
        if not (self.source_done or _reported_end(self.source)):
            raise self._error()

    def _error(self) -> UserCodeStopIteration:
        # The record being processed when the run stopped is the one its source
        # yielded last; run it through the functions again, each checked, to
        # name the one that raises and show its traceback. A source that cannot
        # say which record that was, or functions that do not raise again, get
        # an error naming every function of the run.
        record = _last_pulled(self.source)
        if record is not _UNKNOWN:
            try:
                self._replay(record)
            except UserCodeStopIteration as error:
                return error
            except Exception:  # noqa: BLE001 - user code may differ on a second call
                pass
        if len(self.ops) == 1:
            what, fn = self.ops[0]
            culprit = f"the function given to {what}, {describe_function(fn)}, raised it"
        else:
            names = ", ".join(f"{what} {describe_function(fn)}" for what, fn in self.ops)
            culprit = f"one of the functions given to {names} raised it"
        return UserCodeStopIteration(message(
            None, f"{culprit}, which would have ended the partition early"))

    def _replay(self, record: Any) -> None:
        checked = [(what, _Checked(what, fn)) for what, fn in self.ops]
        for _ in _fused(checked, iter((record,))):
            pass


def _fused(ops: list[tuple[str, Callable]], records: Iterator) -> Iterator:
    """``records`` through each of ``ops`` (map, filter or flatMap) in turn, lazily."""
    for what, fn in ops:
        if what == "map":
            records = map(fn, records)
        elif what == "filter":
            records = filter(fn, records)
        else:
            records = chain.from_iterable(map(fn, records))
    return records


class _SourceEnd:
    """Reached only when the source itself is exhausted."""

    __slots__ = ("pipeline",)

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

    def __iter__(self):
        return self

    def __next__(self):
        self.pipeline.source_done = True
        raise StopIteration


class _OutputEnd(_SourceEnd):
    """After a pipeline's output, for a consumer that may stop early: check there."""

    __slots__ = ()

    def __next__(self):
        self.pipeline.verify()
        raise StopIteration


class _Checked:
    """A function as PySpark runs every one: ``StopIteration`` becomes an error."""

    __slots__ = ("what", "fn")

    def __init__(self, what: str, fn: Callable):
        self.what = what
        self.fn = fn

    def __call__(self, record):
        try:
            return self.fn(record)
        except StopIteration as stop:
            raise raising_from(stop, self.what, self.fn, record) from stop


def _reported_end(source: Iterator | None) -> bool:
    """Has this list or tuple iterator answered StopIteration? Pickling data
    shows it: ``(iter, (sequence,), position)`` until then, ``(iter, ((),))`` after."""
    return type(source) in _SELF_REPORTING and len(source.__reduce__()) < 3


def _last_pulled(source: Iterator | None) -> Any:
    """The record a list, tuple or range iterator yielded last, else ``_UNKNOWN``."""
    if type(source) not in _SEQUENCE_ITERATORS:
        return _UNKNOWN
    reduced = source.__reduce__()  # (iter, (sequence,), position) until exhausted
    if len(reduced) < 3 or not reduced[2]:
        return _UNKNOWN
    return reduced[1][0][reduced[2] - 1]


def _pipeline(node: p.PlanNode, ctx: PlanContext, full: bool) -> Iterator:
    """A run of consecutive map/filter/flatMap nodes, fused."""
    ops = []
    while type(node) in _FUSED:
        ops.append((_FUSED[type(node)], ctx.fn(node.fn)))
        node = node.child
    ops.reverse()
    pipeline = Pipeline(ops)
    if full:
        ctx.pipelines.append(pipeline)  # before its source's: parents first
    output = pipeline.run(build(node, ctx, full))
    return output if full else chain(output, _OutputEnd(pipeline))


def _map_partitions(node: p.MapPartitionsNode, ctx: PlanContext, full: bool) -> Iterator:
    fn = ctx.fn(node.fn)
    # Our functions that read all of their input before returning (count,
    # sum, fold, reduce, foreach, glom) have it checked once, after the call;
    # a user's function may stop reading early, so its input checks itself.
    reads_all = getattr(fn, "reads_whole_partition", False) is True
    mark = ctx.mark()
    source = build(node.child, ctx, reads_all)
    result = fn(source) if node.index is None else fn(node.index, source)
    if reads_all:
        ctx.verify(mark)
    if result is None:
        raise TypeError(f"the function given to mapPartitions ({getattr(fn, '__name__', fn)}) "
                        "returned None; it must return an iterable")
    return iter(result)


def _map_values(node: p.MapValuesNode, ctx: PlanContext, full: bool) -> Iterator:
    fn = ctx.fn(node.fn)
    return ((k, fn(v)) for k, v in build(node.child, ctx, full))


def _flat_map_values(node: p.FlatMapValuesNode, ctx: PlanContext, full: bool) -> Iterator:
    fn = ctx.fn(node.fn)
    return ((k, x) for k, v in build(node.child, ctx, full) for x in fn(v))


def _concat(node: p.ConcatNode, ctx: PlanContext, full: bool) -> Iterator:
    return chain.from_iterable(build(child, ctx, full) for child in node.children)


def _cartesian(node: p.CartesianNode, ctx: PlanContext, full: bool) -> Iterator:
    right = build_all(node.right, ctx)
    return ((a, b) for a in build(node.left, ctx, full) for b in right)


def _cogroup(node: p.CoGroupNode, ctx: PlanContext, full: bool) -> Iterator:
    width = len(node.children)
    groups: dict = {}
    mark = ctx.mark()
    for position, child in enumerate(node.children):
        for key, value in build(child, ctx, True):
            slots = groups.get(key)
            if slots is None:
                slots = groups[key] = [[] for _ in range(width)]
            slots[position].append(value)
    ctx.verify(mark)
    return ((k, tuple(ResultIterable(v) for v in slots)) for k, slots in groups.items())


def _combine(node: p.CombineNode, ctx: PlanContext, full: bool) -> Iterator:
    create, merge_value, merge_combiners = _combiner(node.combiner, ctx)
    if node.values_are_combiners:
        create, merge_value = _identity, merge_combiners
    mark = ctx.mark()
    combined = combine_by_key(build(node.child, ctx, True), create, merge_value)
    ctx.verify(mark)
    return iter(combined.items())


def _identity(x):
    return x


def _sort(node: p.SortNode, ctx: PlanContext, full: bool) -> Iterator:
    records = build_all(node.child, ctx)
    if node.key_fn is None:
        records.sort(key=_first, reverse=not node.ascending)
    else:
        key_fn = ctx.fn(node.key_fn)
        records.sort(key=lambda kv: key_fn(kv[0]), reverse=not node.ascending)
    return iter(records)


def _first(kv):
    return kv[0]


def _cached_block(node: p.CachedBlockRef, ctx: PlanContext, full: bool) -> Iterator:
    records = ctx.store.get_records(node.block_id)
    if records is not None:
        return ctx.read(records)
    for executor_id, address in node.holders:
        if executor_id == ctx.executor_id:
            continue

        def missing(block_id: str, why: str) -> FetchFailed:
            return FetchFailed(-1, -1, executor_id, why)

        try:
            for _, data in ctx.fetcher.fetch({(executor_id, address): [node.block_id]}, missing):
                return ctx.read(load_records(data))
        except FetchFailed:
            continue
    raise BlockMissing(node.block_id, "is no longer cached where the driver thought")


def _persist(node: p.PersistNode, ctx: PlanContext, full: bool) -> Iterator:
    cached = ctx.store.get_records(node.block_id)
    if cached is not None:
        return ctx.read(cached)
    records = build_all(node.child, ctx)  # checked before it is cached
    level = StorageLevel.from_wire(node.level)
    # In memory a cached partition stays a live list (no decode on reuse).
    if ctx.store.put_records(node.block_id, records, True, level.useMemory, level.useDisk):
        ctx.cached_blocks.append(node.block_id)
    return iter(records)


def _map_with_state(node: p.MapWithStateNode, ctx: PlanContext, full: bool) -> Iterator:
    previous = build_all(node.previous, ctx)
    if node.previous_is_state:
        if len(previous) != 1 or not isinstance(previous[0], StateRecord):
            raise TypeError("mapWithState: the previous state partition is malformed")
        base = previous[0].state_map
    else:
        base = StateMap.from_pairs(previous, node.time_ms)
    mark = ctx.mark()
    record = map_with_state(base, node.time_ms, node.keep_versions, build(node.data, ctx, True),
                            ctx.fn(node.fn), node.timeout_ms)
    ctx.verify(mark)
    return iter([record])


_IMMUTABLE = frozenset({int, float, complex, bool, str, bytes, type(None)})


def _own_copy(state):
    """The update function's own copy of a previous state.

    The previous state partition is cached as live objects, and update
    functions often change their argument in place (PySpark's examples extend
    a list): that must not alter the previous batch's state, which a window
    over the state stream or a recomputed batch reads again. Immutable states
    (the common counts and sums) are passed as they are.
    """
    kind = type(state)
    if kind in _IMMUTABLE or (kind is tuple and all(type(x) in _IMMUTABLE for x in state)):
        return state
    return copy.deepcopy(state)


def _update_state(node: p.UpdateStateNode, ctx: PlanContext, full: bool) -> Iterator:
    update = ctx.fn(node.fn)
    new: dict = {}
    mark = ctx.mark()
    for key, value in build(node.data, ctx, True):
        values = new.get(key)
        if values is None:
            new[key] = [value]
        else:
            values.append(value)
    ctx.verify(mark)
    previous = build(node.previous, ctx, True)
    if not node.previous_is_state:
        first: dict = {}
        for key, state in previous:
            first.setdefault(key, state)
        previous = iter(first.items())
    out = []
    append = out.append
    take = new.pop
    for key, last in previous:
        state = update(take(key, None) or [], _own_copy(last))
        if state is not None:
            append((key, state))
    ctx.verify(mark)
    for key, values in new.items():
        state = update(values, None)
        if state is not None:
            append((key, state))
    return iter(out)


_BUILDERS: dict[type, Callable[[p.PlanNode, PlanContext, bool], Iterator]] = {
    p.BlockSource: _block,
    p.RangeSource: _range,
    p.FileSplitSource: _file_split,
    p.WholeFilesSource: _whole_files,
    p.BinaryRecordsSource: _binary_records,
    p.CheckpointSource: _checkpoint,
    p.EmptySource: _empty,
    p.KafkaRangeSource: kafka_fetch.build,
    p.ShuffleRead: _shuffle_read,
    p.MapNode: _pipeline,
    p.FlatMapNode: _pipeline,
    p.FilterNode: _pipeline,
    p.MapPartitionsNode: _map_partitions,
    p.MapValuesNode: _map_values,
    p.FlatMapValuesNode: _flat_map_values,
    p.ConcatNode: _concat,
    p.CartesianNode: _cartesian,
    p.CoGroupNode: _cogroup,
    p.CombineNode: _combine,
    p.SortNode: _sort,
    p.PersistNode: _persist,
    p.CachedBlockRef: _cached_block,
    p.MapWithStateNode: _map_with_state,
    p.UpdateStateNode: _update_state,
}
