"""Messages of the block service every executor runs for its peers.

Reduce tasks fetch shuffle blocks straight from the executor that wrote
them, never through the driver.
"""
from __future__ import annotations

from dataclasses import field

from .records import WireRecord, wire_record


@wire_record(40)
class FetchBlocks(WireRecord):
    request_id: int
    block_ids: list[str]


@wire_record(41)
class BlocksReply(WireRecord):
    """``payload`` holds the found blocks, in request order."""
    request_id: int
    found: list[bool]
    payload: list = field(default_factory=list)
