"""Fetching blocks from peer executors' block services.

Used from the task thread. One DEALER per peer, kept for reuse; requests to
all peers go out at once and replies are taken as they come. A peer the
driver declared lost, or one silent past the fetch timeout, fails the fetch
with ``FetchFailed`` so the driver can recompute the lost map output.
"""
from __future__ import annotations

import itertools
import logging
import time
from typing import Callable, Iterator

import zmq

from sluicegate.common.protocol import ProtocolError
from sluicegate.common.protocol.blocks import BlocksReply, FetchBlocks
from sluicegate.common.transport import Transport, recv, send

from .blocks import FetchFailed

log = logging.getLogger("sluicegate.worker.fetch")

_POLL_TICK_MS = 100


class PeerFetcher:
    """Requests blocks from peers and yields them as replies arrive."""

    def __init__(self, transport: Transport, fetch_timeout_s: float,
                 is_lost: Callable[[str], bool]):
        self._transport = transport
        self._timeout_s = fetch_timeout_s
        self._is_lost = is_lost
        self._sockets: dict[str, zmq.Socket] = {}
        self._request_ids = itertools.count(1)

    def _socket(self, address: str) -> zmq.Socket:
        sock = self._sockets.get(address)
        if sock is None:
            sock = self._transport.connect(zmq.DEALER, address)
            self._sockets[address] = sock
        return sock

    def forget(self, address: str) -> None:
        sock = self._sockets.pop(address, None)
        if sock is not None:
            sock.close(0)

    def fetch(self, wanted: dict[tuple[str, str], list[str]],
              on_missing: Callable[[str, str], FetchFailed]) -> Iterator[tuple[str, bytes]]:
        """Yield ``(block_id, data)`` for every block in ``wanted``.

        ``wanted`` maps (executor_id, address) to block ids; ``on_missing``
        builds the error for a block a peer does not have or cannot give.
        """
        pending: dict[int, tuple[str, str, list[str]]] = {}
        poller = zmq.Poller()
        for (executor_id, address), block_ids in wanted.items():
            request_id = next(self._request_ids)
            sock = self._socket(address)
            send(sock, FetchBlocks(request_id, block_ids))
            pending[request_id] = (executor_id, address, block_ids)
            poller.register(sock, zmq.POLLIN)
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
            for sock, _ in poller.poll(_POLL_TICK_MS):
                while sock.poll(0, zmq.POLLIN):
                    try:
                        _, reply = recv(sock)
                    except ProtocolError as exc:
                        log.warning("garbage reply from a peer: %s", exc)
                        continue
                    if not isinstance(reply, BlocksReply) or reply.request_id not in pending:
                        continue  # a reply to an earlier, abandoned request
                    executor_id, address, block_ids = pending.pop(reply.request_id)
                    payload = iter(reply.payload)
                    for block_id, found in zip(block_ids, reply.found):
                        if not found:
                            raise on_missing(block_id, f"executor {executor_id} does not have it")
                        yield block_id, bytes(next(payload))

    def close(self) -> None:
        for address in list(self._sockets):
            self.forget(address)
