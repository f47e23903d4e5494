"""Shuffles stay within executor memory: the pieces, in this process, on real files.

Issue 11, item 5: a reduceByKey from 10,000 to 10,000 partitions grew each
executor to ~4.7 GB (a Python object and a buffer per tiny block), did not
finish, and made executors miss heartbeats. Here: the map output layout, the
spilling merger, the block store's accounting, the driver's map output
tracker. Real executor processes, their RSS and their heartbeats under load:
``tests/engine/test_shuffle_under_load.py``.
"""
from __future__ import annotations

from operator import add

import pytest

from sluicegate.common.serializer import load_records
from sluicegate.common.taskfuncs import identity
from sluicegate.driver.scheduler.map_outputs import MapOutputTracker, MapStatus
from sluicegate.worker.block_store import BlockStore
from sluicegate.worker.block_store.store import ENTRY_OVERHEAD
from sluicegate.worker.shuffle.format import FrameAssembler, encode_index, iter_frames, locate
from sluicegate.worker.shuffle.map_output import write_output
from sluicegate.worker.shuffle.merge import SpillingMerger, frames_of_pairs
from sluicegate.worker.shuffle.reader import FrameBuffer
from sluicegate.worker.shuffle.writer import partitioner_function

MB = 1 << 20


# -- helpers ----------------------------------------------------------------------------------

def segment_records(store: BlockStore, block_id: str, reduce_id: int) -> list:
    with store.reader(block_id) as reader:
        start, length = locate(reader.read_at, reduce_id)
        records = []
        for _, batch in iter_frames(reader.read_at(start, length)):
            records.extend(load_records(batch))
        return records


# -- the pieces, in this process ------------------------------------------------------------------

def test_map_output_index_is_dense_or_sparse_and_locates_every_segment():
    segments = {0: b"abc", 3: b"", 7: b"defgh"}
    ids = [r for r, data in segments.items() if data]
    dense = encode_index(8, ids, [len(segments[r]) for r in ids]) + b"abcdefgh"
    sparse_ids = [5, 9_000]
    sparse = encode_index(10_000, sparse_ids, [2, 3]) + b"xyzzy"
    assert len(sparse) < 100, "a map output with data for 2 of 10,000 partitions stays small"

    def reader(blob):
        return lambda offset, size: blob[offset:offset + size]

    def segment(blob, reduce_id):
        start, length = locate(reader(blob), reduce_id)
        return blob[start:start + length]

    assert [segment(dense, r) for r in range(8)] == [b"abc", b"", b"", b"", b"", b"", b"", b"defgh"]
    assert segment(sparse, 5) == b"xy" and segment(sparse, 9_000) == b"zzy"
    assert segment(sparse, 0) == b"" and segment(sparse, 9_999) == b""
    with pytest.raises(Exception, match="reduce partition 10000"):
        locate(reader(sparse), 10_000)


def test_frames_come_back_whole_from_pieces_of_any_size():
    keys = list(range(40_000))
    frames = frames_of_pairs(keys, [str(k) for k in keys])
    assert len(frames) == 3  # 16,384 records a frame
    segment = b"".join(frames)
    for piece_size in (1, 7, 4096, len(segment)):
        assembler = FrameAssembler()
        records = []
        for at in range(0, len(segment), piece_size):
            for count, batch in assembler.feed(segment[at:at + piece_size]):
                batch_records = load_records(batch)
                assert len(batch_records) == count
                records.extend(batch_records)
        assembler.finish()
        assert records == [(k, str(k)) for k in keys]


def test_a_map_task_writes_one_block_however_many_reduce_partitions(tmp_path):
    store = BlockStore(tmp_path, 64 * MB)
    part_of = partitioner_function("hash", 10_000, None)
    sizes, written = write_output(((i, 1) for i in range(50)), 3, 1, 10_000, part_of,
                                  (identity, add), store, 64 * MB)
    assert store.block_ids() == ["shuffle_3_1"]
    assert written == 50 and len(sizes) == 10_000 and 0 < sum(1 for s in sizes if s) <= 50
    # Before: 10,000 blocks of a few bytes, each a Python object in the store.
    assert store.memory_bytes < 4096
    found = {}
    for reduce_id, size in enumerate(sizes):
        if size:
            found.update(segment_records(store, "shuffle_3_1", reduce_id))
    assert found == {i: 1 for i in range(50)}


@pytest.mark.parametrize("combined", [True, False])
def test_the_map_side_spills_runs_past_its_budget_and_keeps_every_record(tmp_path, combined):
    store = BlockStore(tmp_path, 64 * MB)
    part_of = partitioner_function("hash", 7, None)
    records = [(i // 3, 1) for i in range(90_000)]  # each key three times in a row
    sizes, written = write_output(iter(records), 0, 0, 7, part_of,
                                  (identity, add) if combined else None, store, 256 * 1024)
    # The output was assembled from runs straight into a file of the store.
    assert store.disk_bytes == sum(sizes) + len(encode_index(7, list(range(7)), sizes))
    assert store.memory_bytes == 0
    assert not list((tmp_path / "blocks" / "scratch").iterdir()), "no run file is left behind"
    totals: dict = {}
    for reduce_id in range(7):
        for key, value in segment_records(store, "shuffle_0_0", reduce_id):
            assert part_of(key) == reduce_id
            totals[key] = totals.get(key, 0) + value
    assert totals == {k: 3 for k in range(30_000)}
    # With a combiner each key was combined (a key split across two runs is written twice).
    assert (30_000 <= written < 31_000) if combined else written == 90_000


def test_the_spilling_merger_stays_in_budget_and_merges_exactly(tmp_path):
    budget = 256 * 1024
    merger = SpillingMerger(identity, add, add, budget, tmp_path)
    merger.add((i % 50_000, i) for i in range(200_000))
    assert merger.spills, "200,000 pairs over 50,000 keys do not fit in 256 KiB"
    merged = dict(merger.items())
    assert merged == {k: sum(range(k, 200_000, 50_000)) for k in range(50_000)}
    assert merger.spilled_bytes > budget and not merger.spills

    groups = SpillingMerger(lambda v: [v], lambda g, v: g + [v], lambda a, b: a + b,
                            budget, tmp_path)
    groups.add((i % 5_000, i) for i in range(60_000))
    assert {k: sorted(g) for k, g in groups.items()} == \
        {k: list(range(k, 60_000, 5_000)) for k in range(5_000)}
    assert not list(tmp_path.iterdir()), "spill files are anonymous and gone when merged"


def test_records_without_a_combiner_wait_on_disk_past_the_budget(tmp_path):
    buffer = FrameBuffer(64 * 1024, tmp_path)
    for start in range(0, 100_000, 1000):
        batch = frames_of_pairs(list(range(start, start + 1000)), ["x" * 20] * 1000)[0]
        (count, body), = iter_frames(batch)
        buffer.add(count, body)
    assert buffer.held <= 64 * 1024 and buffer.spilled_bytes > 1 * MB
    assert [k for k, _ in buffer.records()] == list(range(100_000))


def test_the_block_store_counts_what_each_entry_costs(tmp_path):
    store = BlockStore(tmp_path, 100 * ENTRY_OVERHEAD)
    for i in range(1000):
        store.put_bytes(f"b{i}", b"0123456789")
    # Before: 10,000 bytes of data "fit" a 40,000-byte limit, with 1,000 entries' overhead uncounted.
    assert store.memory_bytes <= 100 * ENTRY_OVERHEAD
    assert store.spilled_blocks >= 900
    assert all(store.get_bytes(f"b{i}") == b"0123456789" for i in range(1000))


def test_map_statuses_stay_small_and_reducers_hear_only_of_outputs_with_their_data():
    tracker = MapOutputTracker()
    tracker.register_shuffle(1, 4)
    sizes = [0] * 10_000
    sizes[5] = sizes[7_000] = 40
    status = MapStatus("e1", "tcp://a:1", sizes)
    assert list(status.nonempty) == [5, 7_000] and status.total_bytes == 80
    tracker.add(1, 0, status)
    tracker.add(1, 1, MapStatus("e2", "tcp://b:1", [3] * 10_000))  # data everywhere
    tracker.add(1, 2, MapStatus("e2", "tcp://b:1", [0] * 10_000))  # no data at all
    assert not tracker.is_available(1)
    assert tracker.reduce_locations(1, [5]) == [[0, "e1", "tcp://a:1"], [1, "e2", "tcp://b:1"],
                                                [3, None, None]]
    tracker.add(1, 3, MapStatus("e1", "tcp://a:1", [0] * 6_999 + [9] + [0] * 3_000))
    assert tracker.is_available(1)
    assert tracker.reduce_locations(1, [6]) == [[1, "e2", "tcp://b:1"]]
    assert tracker.reduce_locations(1, [6_999, 7_000]) == [
        [0, "e1", "tcp://a:1"], [1, "e2", "tcp://b:1"], [3, "e1", "tcp://a:1"]]
    tracker.remove_executor("e2")
    assert tracker.reduce_locations(1, [6]) == [[1, None, None], [2, None, None]]
