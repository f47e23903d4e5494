"""Turning a task's plan tree into one iterator over its output.

Narrow operators compose with the builtins ``map``, ``filter`` and
``itertools.chain`` so a pipeline of map/flatMap/filter runs as one C-level
loop calling the user's functions, with no Python frame of ours per record.
"""
from __future__ import annotations

import copy
from itertools import chain
from typing import Callable, Iterator

from sluicegate.common.keyed_state import StateMap, StateRecord, map_with_state
from sluicegate.common.protocol import plan as p
from sluicegate.common.resultiterable import ResultIterable
from sluicegate.common.serializer import load_records
from sluicegate.common.storagelevel import StorageLevel

from ..blocks import BlockMissing
from ..shuffle.blocks import FetchFailed
from ..shuffle.reader import ShuffleReadResult, fetch_reduce_blocks, merge_blocks
from ..shuffle.writer import combine_by_key
from . import file_sources


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

    def read(self, records: list) -> Iterator:
        """A source's records, counted."""
        self.records_in += len(records)
        return iter(records)

    def fn(self, function_id: int) -> Callable:
        return self.functions.get(function_id)


def build(node: p.PlanNode, ctx: PlanContext) -> Iterator:
    """The iterator producing ``node``'s records."""
    try:
        builder = _BUILDERS[type(node)]
    except KeyError:
        raise TypeError(f"executor cannot run plan node {type(node).__name__}") from None
    return builder(node, ctx)


# -- sources ---------------------------------------------------------------------

def _block(node: p.BlockSource, ctx: PlanContext) -> Iterator:
    return ctx.read(load_records(ctx.read_block(node.block_id)))


def _range(node: p.RangeSource, ctx: PlanContext) -> Iterator:
    numbers = range(node.start, node.stop, node.step)
    ctx.records_in += len(numbers)
    return iter(numbers)


def _file_split(node: p.FileSplitSource, ctx: PlanContext) -> Iterator:
    return ctx.read(file_sources.read_lines(node.path, node.start, node.length))


def _whole_files(node: p.WholeFilesSource, ctx: PlanContext) -> Iterator:
    return ctx.read(list(file_sources.read_whole_files(node.paths)))


def _binary_records(node: p.BinaryRecordsSource, ctx: PlanContext) -> Iterator:
    return ctx.read(list(file_sources.read_fixed_records(node.path, node.record_length)))


def _checkpoint(node: p.CheckpointSource, ctx: PlanContext) -> Iterator:
    return ctx.read(file_sources.read_checkpoint(node.path))


def _empty(node: p.EmptySource, ctx: PlanContext) -> Iterator:
    return iter(())


def _combiner(spec: p.Combiner | None, ctx: PlanContext):
    if spec is None:
        return None
    return ctx.fn(spec.create), ctx.fn(spec.merge_value), ctx.fn(spec.merge_combiners)


def _shuffle_read(node: p.ShuffleRead, ctx: PlanContext) -> Iterator:
    locations = ctx.shuffle_locations.get(node.shuffle_id, [])
    # Fetch everything before any user code iterates, so a fetch failure can
    # never be swallowed by a user's try/except.
    blocks = list(fetch_reduce_blocks(node.shuffle_id, node.reduce_id, node.num_maps, locations,
                                      ctx.executor_id, ctx.store.get_bytes, ctx.fetcher,
                                      ctx.shuffle_read))
    ctx.records_in += sum(len(b) for b in blocks)
    return merge_blocks(iter(blocks), _combiner(node.combiner, ctx), node.map_side_combined)


# -- narrow transformations ---------------------------------------------------------

def _map(node: p.MapNode, ctx: PlanContext) -> Iterator:
    return map(ctx.fn(node.fn), build(node.child, ctx))


def _flat_map(node: p.FlatMapNode, ctx: PlanContext) -> Iterator:
    return chain.from_iterable(map(ctx.fn(node.fn), build(node.child, ctx)))


def _filter(node: p.FilterNode, ctx: PlanContext) -> Iterator:
    return filter(ctx.fn(node.fn), build(node.child, ctx))


def _map_partitions(node: p.MapPartitionsNode, ctx: PlanContext) -> Iterator:
    fn = ctx.fn(node.fn)
    source = build(node.child, ctx)
    result = fn(source) if node.index is None else fn(node.index, source)
    if result is None:
        raise TypeError(f"the function given to mapPartitions ({getattr(fn, '__name__', fn)}) "
                        "returned None; it must return an iterable")
    return iter(result)


def _map_values(node: p.MapValuesNode, ctx: PlanContext) -> Iterator:
    fn = ctx.fn(node.fn)
    return ((k, fn(v)) for k, v in build(node.child, ctx))


def _flat_map_values(node: p.FlatMapValuesNode, ctx: PlanContext) -> Iterator:
    fn = ctx.fn(node.fn)
    return ((k, x) for k, v in build(node.child, ctx) for x in fn(v))


def _concat(node: p.ConcatNode, ctx: PlanContext) -> Iterator:
    return chain.from_iterable(build(child, ctx) for child in node.children)


def _cartesian(node: p.CartesianNode, ctx: PlanContext) -> Iterator:
    right = list(build(node.right, ctx))
    return ((a, b) for a in build(node.left, ctx) for b in right)


def _cogroup(node: p.CoGroupNode, ctx: PlanContext) -> Iterator:
    width = len(node.children)
    groups: dict = {}
    for position, child in enumerate(node.children):
        for key, value in build(child, ctx):
            slots = groups.get(key)
            if slots is None:
                slots = groups[key] = [[] for _ in range(width)]
            slots[position].append(value)
    return ((k, tuple(ResultIterable(v) for v in slots)) for k, slots in groups.items())


def _combine(node: p.CombineNode, ctx: PlanContext) -> Iterator:
    create, merge_value, merge_combiners = _combiner(node.combiner, ctx)
    if node.values_are_combiners:
        return iter(combine_by_key(build(node.child, ctx), _identity, merge_combiners).items())
    return iter(combine_by_key(build(node.child, ctx), create, merge_value).items())


def _identity(x):
    return x


def _sort(node: p.SortNode, ctx: PlanContext) -> Iterator:
    records = list(build(node.child, ctx))
    if node.key_fn is None:
        records.sort(key=_first, reverse=not node.ascending)
    else:
        key_fn = ctx.fn(node.key_fn)
        records.sort(key=lambda kv: key_fn(kv[0]), reverse=not node.ascending)
    return iter(records)


def _first(kv):
    return kv[0]


def _cached_block(node: p.CachedBlockRef, ctx: PlanContext) -> Iterator:
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


def _persist(node: p.PersistNode, ctx: PlanContext) -> Iterator:
    cached = ctx.store.get_records(node.block_id)
    if cached is not None:
        return ctx.read(cached)
    records = list(build(node.child, ctx))
    level = StorageLevel.from_wire(node.level)
    # In memory a cached partition stays a live list (no decode on reuse).
    if ctx.store.put_records(node.block_id, records, True, level.useMemory, level.useDisk):
        ctx.cached_blocks.append(node.block_id)
    return iter(records)


def _map_with_state(node: p.MapWithStateNode, ctx: PlanContext) -> Iterator:
    previous = list(build(node.previous, ctx))
    if node.previous_is_state:
        if len(previous) != 1 or not isinstance(previous[0], StateRecord):
            raise TypeError("mapWithState: the previous state partition is malformed")
        base = previous[0].state_map
    else:
        base = StateMap.from_pairs(previous, node.time_ms)
    record = map_with_state(base, node.time_ms, node.keep_versions, build(node.data, ctx),
                            ctx.fn(node.fn), node.timeout_ms)
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


def _update_state(node: p.UpdateStateNode, ctx: PlanContext) -> Iterator:
    update = ctx.fn(node.fn)
    new: dict = {}
    for key, value in build(node.data, ctx):
        values = new.get(key)
        if values is None:
            new[key] = [value]
        else:
            values.append(value)
    previous = build(node.previous, ctx)
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
    for key, values in new.items():
        state = update(values, None)
        if state is not None:
            append((key, state))
    return iter(out)


_BUILDERS: dict[type, Callable[[p.PlanNode, PlanContext], Iterator]] = {
    p.BlockSource: _block,
    p.RangeSource: _range,
    p.FileSplitSource: _file_split,
    p.WholeFilesSource: _whole_files,
    p.BinaryRecordsSource: _binary_records,
    p.CheckpointSource: _checkpoint,
    p.EmptySource: _empty,
    p.ShuffleRead: _shuffle_read,
    p.MapNode: _map,
    p.FlatMapNode: _flat_map,
    p.FilterNode: _filter,
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
