"""Answering peers' block requests from this executor's block store."""
from __future__ import annotations

import logging

from sluicegate.common.protocol.block_service import (
    BlocksReply, FetchBlocks, FetchShuffleSegments, ShuffleSegments)

from ..block_store import BlockStore
from .block_ids import map_output_id
from .format import CorruptOutput, locate

log = logging.getLogger("sluicegate.worker.shuffle")

# The most one answer holds, whatever a reducer asks: answers wait in this
# executor's memory until sent.
MAX_ANSWER_BYTES = 64 << 20


def answer_fetch(request: FetchBlocks, store: BlockStore) -> BlocksReply:
    found, payload = [], []
    for block_id in request.block_ids:
        data = store.get_bytes(block_id)
        found.append(data is not None)
        if data is not None:
            payload.append(data)
    return BlocksReply(request.request_id, found, payload=payload)


def answer_segments(request: FetchShuffleSegments, store: BlockStore) -> ShuffleSegments:
    """The requested segments, up to ``max_bytes`` of them: the first map's
    from ``offset`` (cut to the budget if it is bigger), then each following
    one only if it fits whole. The first map output this executor lacks (or
    cannot read) ends the answer with ``found`` false."""
    budget = min(max(1, request.max_bytes), MAX_ANSWER_BYTES)
    found, lengths, sent, chunks = [], [], [], []
    total = 0
    offset = max(0, request.offset)
    for map_id in request.map_ids:
        reader = store.reader(map_output_id(request.shuffle_id, map_id))
        if reader is None:
            _not_found(found, lengths, sent)
            break
        try:
            with reader:
                start, length = locate(reader.read_at, request.reduce_id)
                if offset > length:
                    raise CorruptOutput(f"offset {offset} past the segment's {length} bytes")
                if found and total + length > budget:
                    break  # does not fit whole: the next request starts with it
                take = min(length - offset, budget - total)
                chunks.append(reader.read_at(start + offset, take) if take else b"")
        except (CorruptOutput, EOFError, OSError) as exc:
            log.warning("shuffle %s map %s: cannot serve reduce %s: %s", request.shuffle_id,
                        map_id, request.reduce_id, exc)
            _not_found(found, lengths, sent)
            break
        found.append(True)
        lengths.append(length)
        sent.append(take)
        total += take
        offset = 0
        if total >= budget:
            break
    return ShuffleSegments(request.request_id, found, lengths, sent, payload=[b"".join(chunks)])


def _not_found(found: list, lengths: list, sent: list) -> None:
    found.append(False)
    lengths.append(0)
    sent.append(0)
