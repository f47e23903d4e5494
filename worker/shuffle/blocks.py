"""Names of shuffle blocks, shared by the writer, the reader and the block service."""


def shuffle_block_id(shuffle_id: int, map_id: int, reduce_id: int) -> str:
    return f"shuffle_{shuffle_id}_{map_id}_{reduce_id}"


def is_shuffle_block_of(block_id: str, shuffle_id: int) -> bool:
    return block_id.startswith(f"shuffle_{shuffle_id}_")


def is_rdd_block_of(block_id: str, rdd_id: int) -> bool:
    return block_id.startswith(f"rdd_{rdd_id}_")


class FetchFailed(Exception):
    """A shuffle block could not be had from the executor that wrote it."""

    def __init__(self, shuffle_id: int, map_id: int, peer_executor: str | None, why: str):
        super().__init__(f"shuffle {shuffle_id} map {map_id} from executor {peer_executor}: {why}")
        self.shuffle_id = shuffle_id
        self.map_id = map_id
        self.peer_executor = peer_executor
