"""The reduce side of a shuffle: gather one partition's blocks and merge them."""
from __future__ import annotations

from itertools import chain
from typing import Callable, Iterator

from sluicegate.common.serializer import load_records
from sluicegate.common.taskfuncs import identity

from .blocks import FetchFailed, shuffle_block_id
from .fetcher import PeerFetcher
from .writer import combine_by_key


class ShuffleReadResult:
    """Blocks of one reduce partition, and how many bytes they were."""

    def __init__(self) -> None:
        self.bytes_read = 0


def fetch_reduce_blocks(shuffle_id: int, reduce_id: int, num_maps: int, locations: list,
                        my_executor_id: str, local_get: Callable[[str], bytes | None],
                        fetcher: PeerFetcher, stats: ShuffleReadResult) -> Iterator[list]:
    """Yield the record lists of every map's block for ``reduce_id``.

    ``locations`` is ``[[map_id, executor_id, block_address], ...]`` as the
    driver's map output tracker knows it.
    """
    by_map = {int(m): (e, a) for m, e, a in locations}
    remote: dict[tuple[str, str], list[str]] = {}
    map_of_block: dict[str, int] = {}
    local: list[str] = []
    for map_id in range(num_maps):
        if map_id not in by_map:
            raise FetchFailed(shuffle_id, map_id, None, "no known output location")
        executor_id, address = by_map[map_id]
        block_id = shuffle_block_id(shuffle_id, map_id, reduce_id)
        map_of_block[block_id] = map_id
        if executor_id == my_executor_id:
            local.append(block_id)
        else:
            remote.setdefault((executor_id, address), []).append(block_id)

    for block_id in local:
        data = local_get(block_id)
        if data is None:
            raise FetchFailed(shuffle_id, map_of_block[block_id], my_executor_id,
                              "local block is gone")
        stats.bytes_read += len(data)
        yield load_records(data)

    def missing(block_id: str, why: str) -> FetchFailed:
        peer = next((e for (e, _), ids in remote.items() if block_id in ids), None)
        return FetchFailed(shuffle_id, map_of_block[block_id], peer, why)

    if remote:
        for _, data in fetcher.fetch(remote, missing):
            stats.bytes_read += len(data)
            yield load_records(data)


def merge_blocks(block_lists: Iterator[list], combiner: tuple[Callable, Callable, Callable] | None,
                 map_side_combined: bool) -> Iterator:
    """Concatenate the blocks, or aggregate them by key with ``combiner``."""
    if combiner is None:
        return chain.from_iterable(block_lists)
    create, merge_value, merge_combiners = combiner
    records = chain.from_iterable(block_lists)
    if map_side_combined:  # the blocks hold combiners already
        merged = combine_by_key(records, identity, merge_combiners)
    else:
        merged = combine_by_key(records, create, merge_value)
    return iter(merged.items())
