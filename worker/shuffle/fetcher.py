"""Fetching blocks from peer executors' block services.

Used from the task thread. One ``DealerLink`` per peer, kept for reuse;
requests to all peers go out at once and replies are taken as they come
(``readable`` waits on all the links at once, a tick at a time, so that the
deadlines and the driver's word that a peer is lost are checked between
waits). A peer the driver declared lost, or one silent past the fetch
timeout, fails the fetch with ``FetchFailed`` so the driver can recompute the
lost map output. The links have no loop of their own: a fetch is an iterator
the reduce task pulls from, so it waits only while its consumer asks for more.

Shuffle segments come in bounded requests (``SegmentFetch``): each asks for
at most a share of ``spark.reducer.maxSizeInFlight`` bytes, and a peer's
next request goes out only once its last answer has been consumed, so a
reduce task never holds more than that budget of fetched, unmerged data.
"""
from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from typing import Callable, Iterator

from sluicegate.common.dealer_link import DealerLink, readable
from sluicegate.common.protocol.block_service import (
    BlocksReply, FetchBlocks, FetchShuffleSegments, ShuffleSegments)
from sluicegate.common.transport import Transport

from .block_ids import FetchFailed

log = logging.getLogger("sluicegate.worker.fetch")

# How long a fetch waits on its peers before it looks at its deadlines and
# at the peers the driver declared lost again.
_POLL_TICK_S = 0.1
MIN_REQUEST_BYTES = 64 << 10
MAX_PARALLEL_REQUESTS = 5     # peers asked at once, each for a share of the in-flight budget
MAX_MAPS_PER_REQUEST = 4096


class PeerFetcher:
    """Requests blocks from peers and yields them as replies arrive."""

    def __init__(self, transport: Transport, fetch_timeout_s: float,
                 is_lost: Callable[[str], bool]):
        self._transport = transport
        self._timeout_s = fetch_timeout_s
        self._is_lost = is_lost
        self._links: dict[str, DealerLink] = {}
        self._request_ids = itertools.count(1)

    def _link(self, address: str) -> DealerLink:
        link = self._links.get(address)
        if link is None:
            link = DealerLink(self._transport, address, peer=f"peer {address}", logger=log)
            link.open()
            self._links[address] = link
        return link

    def forget(self, address: str) -> None:
        link = self._links.pop(address, None)
        if link is not None:
            link.close()

    def fetch(self, wanted: dict[tuple[str, str], list[str]],
              on_missing: Callable[[str, str], FetchFailed]) -> Iterator[tuple[str, bytes]]:
        """Yield ``(block_id, data)`` for every block in ``wanted``.

        ``wanted`` maps (executor_id, address) to block ids; ``on_missing``
        builds the error for a block a peer does not have or cannot give.
        """
        pending: dict[int, tuple[str, str, list[str]]] = {}
        links = []
        for (executor_id, address), block_ids in wanted.items():
            request_id = next(self._request_ids)
            link = self._link(address)
            link.send(FetchBlocks(request_id, block_ids))
            pending[request_id] = (executor_id, address, block_ids)
            links.append(link)
        deadline = time.monotonic() + self._timeout_s
        while pending:
            for executor_id, address, block_ids in list(pending.values()):
                if self._is_lost(executor_id):
                    self.forget(address)
                    raise on_missing(block_ids[0], f"executor {executor_id} was lost")
            if time.monotonic() > deadline:
                executor_id, address, block_ids = next(iter(pending.values()))
                self.forget(address)
                raise on_missing(block_ids[0], f"no reply from {address} within {self._timeout_s:.0f}s")
            for link in readable(links, _POLL_TICK_S):
                for reply in link.receive_waiting():
                    if not isinstance(reply, BlocksReply) or reply.request_id not in pending:
                        continue  # a reply to an earlier, abandoned request
                    executor_id, address, block_ids = pending.pop(reply.request_id)
                    payload = iter(reply.payload)
                    for block_id, found in zip(block_ids, reply.found):
                        if not found:
                            raise on_missing(block_id, f"executor {executor_id} does not have it")
                        yield block_id, bytes(next(payload))

    def fetch_segments(self, shuffle_id: int, reduce_id: int,
                       wanted: dict[tuple[str, str], list[int]],
                       max_bytes_in_flight: int) -> "SegmentFetch":
        """Reduce ``reduce_id``'s segments of the map outputs in ``wanted``
        (``(executor_id, address)`` to map ids); see ``SegmentFetch``."""
        return SegmentFetch(self, shuffle_id, reduce_id, wanted, max_bytes_in_flight)

    def close(self) -> None:
        for address in list(self._links):
            self.forget(address)


class _Peer:
    __slots__ = ("executor_id", "address", "maps", "offset")

    def __init__(self, executor_id: str, address: str, maps: list[int]):
        self.executor_id = executor_id
        self.address = address
        self.maps = deque(maps)
        self.offset = 0  # into the first map's segment, when it comes in pieces


class SegmentFetch:
    """Iterates ``(map_id, executor_id, piece, whole, last)``: ``piece`` is
    bytes of a segment, ``whole`` when it is the entire segment, ``last``
    when it ends it. Call ``start`` to send the first requests early."""

    def __init__(self, fetcher: PeerFetcher, shuffle_id: int, reduce_id: int,
                 wanted: dict[tuple[str, str], list[int]], max_bytes_in_flight: int):
        self._fetcher = fetcher
        self._shuffle_id = shuffle_id
        self._reduce_id = reduce_id
        self._idle = deque(_Peer(e, a, maps) for (e, a), maps in wanted.items() if maps)
        parallel = max(1, min(len(self._idle), MAX_PARALLEL_REQUESTS))
        self._request_bytes = max(MIN_REQUEST_BYTES, max_bytes_in_flight // parallel)
        self._budget = max(max_bytes_in_flight, self._request_bytes)
        self._in_flight = 0
        self._out: dict[int, tuple[_Peer, float, int]] = {}  # request id -> peer, deadline, maps
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._send_more()

    def _send_more(self) -> None:
        while self._idle and (not self._out
                              or self._in_flight + self._request_bytes <= self._budget):
            peer = self._idle.popleft()
            request_id = next(self._fetcher._request_ids)
            maps = list(itertools.islice(peer.maps, MAX_MAPS_PER_REQUEST))
            self._fetcher._link(peer.address).send(FetchShuffleSegments(
                request_id=request_id, shuffle_id=self._shuffle_id, reduce_id=self._reduce_id,
                map_ids=maps, offset=peer.offset, max_bytes=self._request_bytes))
            self._out[request_id] = (peer, time.monotonic() + self._fetcher._timeout_s, len(maps))
            self._in_flight += self._request_bytes

    def _failed(self, peer: _Peer, why: str) -> FetchFailed:
        self._fetcher.forget(peer.address)
        return FetchFailed(self._shuffle_id, peer.maps[0], peer.executor_id, why)

    def __iter__(self) -> Iterator[tuple[int, str, bytes, bool, bool]]:
        self.start()
        fetcher = self._fetcher
        while self._out:
            now = time.monotonic()
            for peer, deadline, _ in list(self._out.values()):
                if fetcher._is_lost(peer.executor_id):
                    raise self._failed(peer, f"executor {peer.executor_id} was lost")
                if now > deadline:
                    raise self._failed(peer, f"no reply from {peer.address} within "
                                             f"{fetcher._timeout_s:.0f}s")
            links = [fetcher._link(address)
                     for address in {peer.address for peer, _, _ in self._out.values()}]
            for link in readable(links, _POLL_TICK_S):
                for reply in link.receive_waiting():
                    if not self._out:
                        break
                    if not isinstance(reply, ShuffleSegments) or reply.request_id not in self._out:
                        continue  # a reply to an earlier, abandoned request
                    peer, _, asked = self._out.pop(reply.request_id)
                    yield from self._pieces(peer, reply, asked)
                    # Consumed: its budget is free for the next request.
                    self._in_flight -= self._request_bytes
                    if peer.maps:
                        self._idle.append(peer)
                    self._send_more()

    def _pieces(self, peer: _Peer, reply: ShuffleSegments, asked: int) -> Iterator:
        if not 0 < len(reply.found) <= asked or len(reply.payload) != 1 \
                or not (len(reply.found) == len(reply.lengths) == len(reply.sent)):
            raise self._failed(peer, "malformed shuffle reply")
        data = memoryview(reply.payload[0])
        at = 0
        for found, length, sent in zip(reply.found, reply.lengths, reply.sent):
            map_id = peer.maps[0]
            if not found:
                raise self._failed(peer, f"executor {peer.executor_id} does not have it")
            if sent < 0 or at + sent > len(data) or peer.offset + sent > length \
                    or (sent == 0 and peer.offset < length):
                raise self._failed(peer, "malformed shuffle reply")
            piece = data[at:at + sent]
            at += sent
            whole = peer.offset == 0 and sent == length
            last = peer.offset + sent == length
            if last:
                peer.maps.popleft()
                peer.offset = 0
            else:
                peer.offset += sent
            if sent:
                yield map_id, peer.executor_id, piece, whole, last
