"""Messages of the block service every executor runs for its peers.

Reduce tasks fetch shuffle data straight from the executor that wrote it,
never through the driver. A map task writes one output per task (every
reduce partition's segment, and an index); a reducer asks a peer for its
reduce partition's segment of several map outputs at once, and the peer
answers at most ``max_bytes`` of them, so no reply (and no reducer) holds
more than the reducer asked for.
"""
from __future__ import annotations

from dataclasses import field

from .records import WireRecord, wire_record


@wire_record(40)
class FetchBlocks(WireRecord):
    """Whole blocks by id (cached partitions)."""
    request_id: int
    block_ids: list[str]


@wire_record(41)
class BlocksReply(WireRecord):
    """``payload`` holds the found blocks, in request order."""
    request_id: int
    found: list[bool]
    payload: list = field(default_factory=list)


@wire_record(42)
class FetchShuffleSegments(WireRecord):
    """Reduce partition ``reduce_id``'s segment of each map output in ``map_ids``.

    The first segment is read from byte ``offset`` on (a segment bigger than
    ``max_bytes`` comes in pieces); the reply holds at most ``max_bytes`` of
    data, but always at least one map's answer.
    """
    request_id: int
    shuffle_id: int
    reduce_id: int
    map_ids: list[int]
    offset: int
    max_bytes: int


@wire_record(43)
class ShuffleSegments(WireRecord):
    """The first ``len(found)`` of the requested maps' segments, in request order.

    For each: whether this executor has that map output (``found``), the
    segment's whole length (``lengths``) and how many of its bytes follow
    (``sent``, from the requested offset for the first one); ``payload`` is
    one frame holding the sent bytes back to back.
    """
    request_id: int
    found: list[bool]
    lengths: list[int]
    sent: list[int]
    payload: list = field(default_factory=list)
