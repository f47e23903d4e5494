"""Answering peers' block requests from this executor's block store."""
from __future__ import annotations

from sluicegate.common.protocol.blocks import BlocksReply, FetchBlocks

from ..blocks import BlockStore


def answer_fetch(request: FetchBlocks, store: BlockStore) -> BlocksReply:
    found, payload = [], []
    for block_id in request.block_ids:
        data = store.get_bytes(block_id)
        found.append(data is not None)
        if data is not None:
            payload.append(data)
    return BlocksReply(request.request_id, found, payload=payload)
