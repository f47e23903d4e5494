"""The reduce side of a shuffle in this process: ``read_reduce_partition``
gathering one partition's segments from several map outputs (local ones
from the store, remote ones from a fake fetcher, whole or in pieces),
merging them with a combiner or keeping them as they were written, within
its memory budget; and the fetch failures it raises.

(The spilling merger and the frame buffer on their own are tested in
test_shuffle_memory.py.)
"""
from __future__ import annotations

from operator import add

import pytest

from sluicegate.common.taskfuncs import identity
from sluicegate.worker.block_store import BlockStore
from sluicegate.worker.shuffle.block_ids import FetchFailed, map_output_id
from sluicegate.worker.shuffle.format import locate
from sluicegate.worker.shuffle.limits import ShuffleLimits
from sluicegate.worker.shuffle import reader
from sluicegate.worker.shuffle.map_output import write_output
from sluicegate.worker.shuffle.reader import ShuffleReadResult, read_reduce_partition
from sluicegate.worker.shuffle.writer import partitioner_function

MB = 1 << 20
SHUFFLE, REDUCERS = 4, 3
PART_OF = partitioner_function("hash", REDUCERS, None)
ROOMY = ShuffleLimits(max_bytes_in_flight=48 * MB, merge_memory_bytes=64 * MB)
GROUPS = (lambda v: [v], lambda group, v: group + [v], add)  # groupByKey's combiner


class FakeFetcher:
    """Serves remote map outputs from a peer's store, in pieces of ``piece`` bytes
    (0: each segment whole), as ``PeerFetcher.fetch_segments`` yields them."""

    def __init__(self, peer_store: BlockStore, piece: int = 0, corrupt: bool = False):
        self.peer_store = peer_store
        self.piece = piece
        self.corrupt = corrupt
        self.asked: dict = {}

    def fetch_segments(self, shuffle_id, reduce_id, wanted, max_bytes_in_flight):
        self.asked = wanted
        return _FakeFetch(self, shuffle_id, reduce_id, wanted)


class _FakeFetch:
    def __init__(self, fetcher, shuffle_id, reduce_id, wanted):
        self.fetcher, self.shuffle_id, self.reduce_id, self.wanted = \
            fetcher, shuffle_id, reduce_id, wanted
        self.started = False

    def start(self):
        self.started = True

    def __iter__(self):
        assert self.started, "the reader sends its requests before reading local segments"
        for (executor_id, _), map_ids in self.wanted.items():
            for map_id in map_ids:
                with self.fetcher.peer_store.reader(map_output_id(self.shuffle_id, map_id)) as r:
                    start, length = locate(r.read_at, self.reduce_id)
                    segment = bytes(r.read_at(start, length))
                if self.fetcher.corrupt:
                    segment = b"\xff" * len(segment)
                piece = self.fetcher.piece or len(segment)
                for at in range(0, len(segment), piece):
                    chunk = segment[at:at + piece]
                    yield (map_id, executor_id, chunk, len(chunk) == len(segment),
                           at + piece >= len(segment))


def write_maps(store: BlockStore, maps: dict[int, list], combiner=None) -> None:
    for map_id, records in maps.items():
        write_output(iter(records), SHUFFLE, map_id, REDUCERS, PART_OF, combiner, store, 64 * MB)


def locations(local: list[int], remote: list[int]) -> list:
    return ([[m, "exec-1", "tcp://me:1"] for m in local]
            + [[m, "exec-2", "tcp://peer:2"] for m in remote])


def read_all(store, fetcher, local, remote, combiner=None, combined=False, limits=ROOMY,
             stats=None) -> dict:
    """Every reduce partition's records, by reduce id."""
    stats = stats or ShuffleReadResult()
    return {reduce_id: list(read_reduce_partition(
        SHUFFLE, reduce_id, locations(local, remote), "exec-1", store, fetcher, stats,
        combiner, combined, limits)) for reduce_id in range(REDUCERS)}


@pytest.fixture
def stores(tmp_path):
    return BlockStore(tmp_path / "me", 64 * MB), BlockStore(tmp_path / "peer", 64 * MB)


@pytest.mark.parametrize("piece", [0, 5, 4096])
def test_records_of_local_and_remote_map_outputs_all_come_back(stores, piece):
    mine, peer = stores
    maps = {m: [(f"k{i % 13}", m * 1000 + i) for i in range(200)] for m in range(4)}
    write_maps(mine, {0: maps[0], 1: maps[1]})
    write_maps(peer, {2: maps[2], 3: maps[3]})
    fetcher = FakeFetcher(peer, piece)
    stats = ShuffleReadResult()
    got = read_all(mine, fetcher, [0, 1], [2, 3], stats=stats)
    assert fetcher.asked == {("exec-2", "tcp://peer:2"): [2, 3]}
    for reduce_id, records in got.items():
        assert all(PART_OF(k) == reduce_id for k, _ in records)
    assert sorted(r for records in got.values() for r in records) == \
        sorted(r for records in maps.values() for r in records)
    assert stats.records_read == 800 and stats.bytes_read > 0


def test_map_side_combined_outputs_are_merged_with_the_combiners_merge(stores):
    mine, peer = stores
    maps = {m: [(i % 50, 1) for i in range(1000)] for m in range(3)}
    write_maps(mine, {0: maps[0], 1: maps[1]}, combiner=(identity, add))
    write_maps(peer, {2: maps[2]}, combiner=(identity, add))
    got = read_all(mine, FakeFetcher(peer, 64), [0, 1], [2], combiner=(identity, add, add),
                   combined=True)
    merged = {k: v for records in got.values() for k, v in records}
    assert merged == {k: 60 for k in range(50)}
    assert sum(len(records) for records in got.values()) == 50, "one record per key"


def test_raw_pairs_are_combined_on_the_reduce_side(stores):
    mine, peer = stores
    maps = {m: [(i % 7, m * 100 + i) for i in range(100)] for m in range(2)}
    write_maps(mine, {0: maps[0]})
    write_maps(peer, {1: maps[1]})
    got = read_all(mine, FakeFetcher(peer), [0], [1], combiner=GROUPS, combined=False)
    groups = {k: sorted(v) for records in got.values() for k, v in records}
    assert groups == {k: sorted(v for m in maps.values() for key, v in m if key == k)
                      for k in range(7)}


def test_a_merge_past_its_budget_spills_and_stays_exact(stores, monkeypatch):
    mine, _ = stores
    made = []

    def recorded(cls):
        return lambda *args: made.append(cls(*args)) or made[-1]

    monkeypatch.setattr(reader, "SpillingMerger", recorded(reader.SpillingMerger))
    monkeypatch.setattr(reader, "FrameBuffer", recorded(reader.FrameBuffer))
    maps = {m: [(i, m) for i in range(m, 30_000, 2)] for m in range(4)}
    write_maps(mine, maps)
    tight = ShuffleLimits(max_bytes_in_flight=64 * 1024, merge_memory_bytes=64 * 1024)
    got = read_all(mine, FakeFetcher(mine), [0, 1, 2, 3], [], combiner=(identity, add, add),
                   limits=tight)
    assert len(made) == REDUCERS and all(merger.spilled_bytes > 0 for merger in made), \
        "each partition's merge spilled"
    merged = dict(r for records in got.values() for r in records)
    assert merged == {i: sum(m for m in maps if i in range(m, 30_000, 2)) for i in range(30_000)}
    # Without a combiner the raw frames wait in a file past the budget.
    made.clear()
    raw = read_all(mine, FakeFetcher(mine), [0, 1, 2, 3], [], limits=tight)
    assert len(made) == REDUCERS and all(buffer.spilled_bytes > 0 for buffer in made)
    assert sorted(r for records in raw.values() for r in records) == \
        sorted(r for records in maps.values() for r in records)
    assert not list(mine.scratch_dir().iterdir()), "spill files are anonymous and gone"


def test_a_partition_with_no_map_outputs_is_empty(stores):
    mine, _ = stores
    assert read_all(mine, FakeFetcher(mine), [], []) == {r: [] for r in range(REDUCERS)}


def test_missing_or_corrupt_map_outputs_fail_the_fetch_before_user_code_runs(stores):
    mine, peer = stores
    write_maps(peer, {1: [(i, i) for i in range(100)]})
    stats = ShuffleReadResult()
    with pytest.raises(FetchFailed, match="no known output location"):
        read_reduce_partition(SHUFFLE, 0, [[5, None, None]], "exec-1", mine, FakeFetcher(peer),
                              stats, None, False, ROOMY)
    with pytest.raises(FetchFailed, match="local map output is gone") as failed:
        read_reduce_partition(SHUFFLE, 0, locations([0], []), "exec-1", mine,
                              FakeFetcher(peer), stats, None, False, ROOMY)
    assert (failed.value.map_id, failed.value.peer_executor) == (0, "exec-1")
    for piece in (0, 3):
        with pytest.raises(FetchFailed, match="corrupt segment") as failed:
            # A corrupt segment fails the read itself, not the iteration of its records.
            for reduce_id in range(REDUCERS):
                read_reduce_partition(SHUFFLE, reduce_id, locations([], [1]), "exec-1", mine,
                                      FakeFetcher(peer, piece, corrupt=True), stats,
                                      (identity, add, add), False, ROOMY)
        assert (failed.value.map_id, failed.value.peer_executor) == (1, "exec-2")
