"""``operators.build``: a task's plan tree turned into one iterator, with a fake task
context as ``TaskRunner.run`` would make one (functions by id, a block reader, the
shuffle's map outputs in a block store on local files), no executor process."""
from __future__ import annotations

from operator import add

import pytest

from sluicegate.common.protocol import plan as p
from sluicegate.common.serializer import dump_records
from sluicegate.common.stopiteration import UserCodeStopIteration
from sluicegate.worker.block_store import BlockStore
from sluicegate.worker.executor.operators import PlanContext, build, build_all
from sluicegate.worker.shuffle.writer import partitioner_function, write_map_output

EXECUTOR = "exec-1"
MB = 1 << 20


class NoPeers:
    """The fetcher of a task whose every input is local: never asked."""

    def fetch(self, *args, **kwargs):
        raise AssertionError("a local plan fetched from a peer")

    fetch_segments = fetch


def context(functions: dict, blocks: dict | None = None, store=None,
            shuffle_locations: dict | None = None) -> PlanContext:
    """``functions`` by id (``ctx.fn``); ``blocks``: the stored record batches by block id."""
    blocks = blocks or {}
    return PlanContext(functions, store, NoPeers(), EXECUTOR, shuffle_locations or {},
                       lambda block_id: blocks[block_id])


def numbers(n: int) -> p.PlanNode:
    return p.RangeSource(start=0, stop=n, step=1)


# -- narrow operators ---------------------------------------------------------------------

def test_map_filter_flat_map_fuse_into_one_pipeline_over_a_range():
    ctx = context({1: lambda x: x * 10, 2: lambda x: x % 20 == 0, 3: lambda x: [x, -x]})
    plan = p.FlatMapNode(fn=3, child=p.FilterNode(fn=2, child=p.MapNode(fn=1, child=numbers(6))))
    assert build_all(plan, ctx) == [0, 0, 20, -20, 40, -40]
    assert ctx.records_in == 6
    assert ctx.pipelines == []  # verified and let go


def test_a_stored_block_is_read_and_counted():
    ctx = context({1: str.upper}, blocks={"input-0": dump_records(["a", "b", "c"])})
    plan = p.MapNode(fn=1, child=p.BlockSource(block_id="input-0"))
    assert build_all(plan, ctx) == ["A", "B", "C"]
    assert ctx.records_in == 3


def test_map_partitions_gets_the_whole_partition_and_its_index():
    ctx = context({1: lambda it: [sum(it)], 2: lambda i, it: ((i, x) for x in it)})
    assert build_all(p.MapPartitionsNode(fn=1, index=None, child=numbers(5)), ctx) == [10]
    assert build_all(p.MapPartitionsNode(fn=2, index=7, child=numbers(2)), ctx) == \
        [(7, 0), (7, 1)]


def test_map_partitions_returning_none_fails_the_task():
    ctx = context({1: lambda it: None})
    with pytest.raises(TypeError, match="returned None"):
        build(p.MapPartitionsNode(fn=1, index=None, child=numbers(3)), ctx)


def test_pair_operators_over_a_pipeline():
    ctx = context({1: lambda x: (x % 2, x), 2: lambda v: v * 100, 3: lambda v: [v, v]})
    pairs = p.MapNode(fn=1, child=numbers(4))
    assert build_all(p.MapValuesNode(fn=2, child=pairs), ctx) == \
        [(0, 0), (1, 100), (0, 200), (1, 300)]
    assert build_all(p.FlatMapValuesNode(fn=3, child=p.MapNode(fn=1, child=numbers(2))), ctx) \
        == [(0, 0), (0, 0), (1, 1), (1, 1)]


def test_concat_and_sort():
    ctx = context({1: lambda x: (x, -x)})
    both = p.ConcatNode(children=[p.MapNode(fn=1, child=numbers(2)),
                                  p.MapNode(fn=1, child=numbers(3))])
    assert build_all(p.SortNode(key_fn=None, ascending=False, child=both), ctx) == \
        [(2, -2), (1, -1), (1, -1), (0, 0), (0, 0)]


@pytest.mark.parametrize("full", [True, False])
def test_a_user_functions_stop_iteration_fails_instead_of_ending_the_partition(full):
    def stops_at_three(x):
        if x == 3:
            raise StopIteration
        return x

    ctx = context({1: stops_at_three})
    with pytest.raises(UserCodeStopIteration, match="stops_at_three"):
        if full:
            build_all(p.MapNode(fn=1, child=numbers(10)), ctx)
        else:  # a consumer that may stop early: the output checks itself at its end
            list(build(p.MapNode(fn=1, child=numbers(10)), ctx))


def test_a_plan_node_the_executor_does_not_know_is_refused():
    with pytest.raises(TypeError, match="cannot run plan node"):
        build(p.CollectSink(), context({}))


# -- shuffle reads ------------------------------------------------------------------------

def write_maps(store: BlockStore, shuffle_id: int, outputs: list[list], partitions: int,
               combiner=None) -> list[list]:
    """Each map task's output written into ``store``; the locations the driver would send."""
    part_of = partitioner_function("hash", partitions, None)
    for map_id, records in enumerate(outputs):
        write_map_output(iter(records), shuffle_id, map_id, partitions, part_of, combiner, store)
    return [[map_id, EXECUTOR, "local"] for map_id in range(len(outputs))]


def shuffled(ctx: PlanContext, shuffle_id: int, partitions: int, **read) -> dict:
    found: dict = {}
    for reduce_id in range(partitions):
        node = p.ShuffleRead(shuffle_id=shuffle_id, reduce_id=reduce_id, num_maps=2, **read)
        for key, value in build_all(node, ctx):
            found.setdefault(key, []).append(value)
    return found


COMBINER = p.Combiner(create=10, merge_value=11, merge_combiners=12)
SUM = {10: lambda v: v, 11: add, 12: add}
MAPS = [[("a", 1), ("b", 2), ("a", 3)], [("b", 4), ("c", 5)]]


@pytest.mark.parametrize("map_side_combined", [True, False])
def test_a_shuffle_read_merges_the_map_outputs_by_key(tmp_path, map_side_combined):
    store = BlockStore(tmp_path, 64 * MB)
    locations = write_maps(store, 4, MAPS, 3, (SUM[10], SUM[11]) if map_side_combined else None)
    ctx = context(SUM, store=store, shuffle_locations={4: locations})
    assert shuffled(ctx, 4, 3, combiner=COMBINER, map_side_combined=map_side_combined) == \
        {"a": [4], "b": [6], "c": [5]}
    assert ctx.shuffle_read.records_read == ctx.records_in == (4 if map_side_combined else 5)


def test_a_shuffle_read_without_a_combiner_gives_every_pair_to_the_pipeline_after_it(tmp_path):
    store = BlockStore(tmp_path, 64 * MB)
    ctx = context({1: lambda kv: (kv[0], kv[1] * 2)}, store=store,
                  shuffle_locations={5: write_maps(store, 5, MAPS, 2)})
    found = {}
    for reduce_id in range(2):
        read = p.ShuffleRead(shuffle_id=5, reduce_id=reduce_id, num_maps=2, combiner=None,
                             map_side_combined=False)
        for key, value in build_all(p.MapNode(fn=1, child=read), ctx):
            found.setdefault(key, []).append(value)
    assert {k: sorted(v) for k, v in found.items()} == {"a": [2, 6], "b": [4, 8], "c": [10]}
    assert ctx.records_in == 5
