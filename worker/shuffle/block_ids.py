"""Names of shuffle blocks, shared by the writer, the reader and the block service."""


def map_output_id(shuffle_id: int, map_id: int) -> str:
    """The block holding one map task's output: every reduce partition's
    segment and their index (see ``format``)."""
    return f"shuffle_{shuffle_id}_{map_id}"


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
