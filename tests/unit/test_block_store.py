"""The executor's ``BlockStore``: spilling past its memory limit, least
recently used first; evicting cached partitions to disk or dropping them, as
their storage level says; and blocks it does not have."""
from __future__ import annotations

import pytest

from sluicegate.common.serializer import dump_records, load_records
from sluicegate.worker.block_store import BlockMissing, BlockStore
from sluicegate.worker.block_store.store import ENTRY_OVERHEAD

KB = 1024
ENTRY = KB + ENTRY_OVERHEAD  # what a 1 KiB bytes block costs in memory


def in_memory(store: BlockStore, block_id: str) -> bool:
    entry = store._entries[block_id]
    return entry.data is not None or entry.records is not None


def test_bytes_blocks_past_the_limit_spill_the_least_recently_used_first(tmp_path):
    store = BlockStore(tmp_path, 3 * ENTRY)
    for i in range(3):
        store.put_bytes(f"b{i}", bytes([i]) * KB)
    assert store.memory_bytes == 3 * ENTRY and store.disk_bytes == 0
    assert store.get_bytes("b0") == b"\0" * KB  # b0 is now the most recently used
    store.put_bytes("b3", b"\3" * KB)
    assert not in_memory(store, "b1"), "the least recently used block went to disk"
    assert all(in_memory(store, b) for b in ("b0", "b2", "b3"))
    assert store.memory_bytes == 3 * ENTRY and store.disk_bytes == KB
    assert store.spilled_blocks == 1
    assert store.get_bytes("b1") == b"\1" * KB  # read back from its file
    assert (tmp_path / "blocks" / "b1").is_file()


def test_a_block_bigger_than_the_limit_goes_straight_to_disk(tmp_path):
    store = BlockStore(tmp_path, 2 * ENTRY)
    store.put_bytes("small", b"s" * KB)
    store.put_bytes("huge", b"h" * (10 * KB))
    assert not in_memory(store, "huge")
    # ... after making what room it could: the small block went first.
    assert not in_memory(store, "small") and store.memory_bytes == 0
    assert store.disk_bytes == 11 * KB
    with store.reader("huge") as reader:
        assert reader.read_at(KB, 4) == b"hhhh"
        with pytest.raises(EOFError):
            reader.read_at(10 * KB - 2, 4)


def test_replacing_a_block_releases_what_the_old_one_held(tmp_path):
    store = BlockStore(tmp_path, 10 * ENTRY)
    store.put_bytes("b", b"x" * KB)
    store.put_bytes("b", b"y" * 10)
    assert store.memory_bytes == 10 + ENTRY_OVERHEAD
    assert store.get_bytes("b") == b"y" * 10


def cached(n: int) -> list:
    return [(i, "v" * 20) for i in range(n)]


def test_cached_partitions_are_evicted_after_bytes_blocks_spill(tmp_path):
    store = BlockStore(tmp_path, 64 * KB)
    assert store.put_records("rdd_1_0", cached(200), deserialized=True, use_memory=True,
                             use_disk=False)
    store.put_bytes("shuffle_0_0", b"z" * KB)
    held = store.memory_bytes
    # Room for a block as big as the free memory plus the bytes block: that one spills,
    # the cached partition stays.
    store.put_bytes("input-1", b"i" * (64 * KB - held))
    assert not in_memory(store, "shuffle_0_0")
    assert in_memory(store, "rdd_1_0")


def test_a_memory_only_partition_is_dropped_when_memory_runs_out(tmp_path):
    store = BlockStore(tmp_path, 64 * KB)
    records = cached(200)
    assert store.put_records("rdd_1_0", records, deserialized=True, use_memory=True,
                             use_disk=False)
    assert store.get_records("rdd_1_0") is records  # live, not a copy
    store.put_bytes("input-1", b"i" * (60 * KB))
    assert not store.contains("rdd_1_0"), "recomputed from lineage when next needed"
    assert store.get_records("rdd_1_0") is None and store.disk_bytes == 0
    assert store.get_bytes("input-1") == b"i" * (60 * KB)


def test_a_memory_and_disk_partition_goes_to_disk_when_memory_runs_out(tmp_path):
    store = BlockStore(tmp_path, 64 * KB)
    records = cached(200)
    store.put_records("rdd_2_0", records, deserialized=True, use_memory=True, use_disk=True)
    store.put_bytes("input-1", b"i" * (60 * KB))
    assert store.contains("rdd_2_0") and not in_memory(store, "rdd_2_0")
    assert store.get_records("rdd_2_0") == records  # loaded from its file
    assert store.disk_bytes == len(dump_records(records))


def test_the_least_recently_used_partition_is_evicted_first(tmp_path):
    store = BlockStore(tmp_path, 64 * KB)
    for rdd in (1, 2):
        store.put_records(f"rdd_{rdd}_0", cached(150), deserialized=True, use_memory=True,
                          use_disk=False)
    store.get_records("rdd_1_0")  # rdd 2's partition is now the least recently used
    store.put_records("rdd_3_0", cached(150), deserialized=True, use_memory=True,
                      use_disk=False)
    assert store.contains("rdd_1_0") and store.contains("rdd_3_0")
    assert not store.contains("rdd_2_0")


def test_storage_levels_without_deserialized_memory(tmp_path):
    store = BlockStore(tmp_path, 64 * KB)
    records = cached(10)
    assert store.put_records("rdd_1_0", records, deserialized=False, use_memory=True,
                             use_disk=False)
    assert store._entries["rdd_1_0"].data == dump_records(records)  # MEMORY_ONLY_SER
    assert store.put_records("rdd_1_1", records, deserialized=True, use_memory=False,
                             use_disk=True)
    assert not in_memory(store, "rdd_1_1")  # DISK_ONLY
    assert load_records(store.get_bytes("rdd_1_1")) == records
    assert not store.put_records("rdd_1_2", records, deserialized=True, use_memory=False,
                                 use_disk=False)
    assert not store.contains("rdd_1_2")
    # A deserialized partition too big for memory at all: to disk if its level allows.
    assert not store.put_records("big", cached(5000), deserialized=True, use_memory=True,
                                 use_disk=False)
    assert store.put_records("big", cached(5000), deserialized=True, use_memory=True,
                             use_disk=True)
    assert not in_memory(store, "big")


def test_a_missing_block_is_none_everywhere_and_removal_frees_its_bytes(tmp_path):
    store = BlockStore(tmp_path, 2 * ENTRY)
    assert store.get_bytes("nope") is None and store.get_records("nope") is None
    assert store.reader("nope") is None and not store.contains("nope")
    store.put_bytes("a", b"a" * KB)
    store.put_bytes("b", b"b" * KB)
    store.put_bytes("c", b"c" * KB)  # "a" spills
    assert store.remove_where(lambda block_id: block_id in ("a", "b")) == 2
    assert store.block_ids() == ["c"]
    assert store.disk_bytes == 0 and store.memory_bytes == ENTRY
    store.remove("c")
    store.remove("c")  # twice is fine
    assert store.memory_bytes == 0 and store.block_ids() == []
    store.put_bytes("d", b"d")
    store.clear()
    assert store.block_ids() == [] and not (tmp_path / "blocks").exists()
    assert str(BlockMissing("input-9", "is gone")) == "block input-9 is gone"


def test_a_file_written_elsewhere_becomes_a_block_on_disk(tmp_path):
    store = BlockStore(tmp_path, 64 * KB)
    run = store.scratch_dir() / "run-1"
    run.write_bytes(b"r" * 100)
    store.put_file("shuffle_1_1", run)
    assert not run.exists() and store.disk_bytes == 100
    assert store.get_bytes("shuffle_1_1") == b"r" * 100
