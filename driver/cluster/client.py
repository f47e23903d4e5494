"""Talking to a driver service from the command line: requests and job streams."""
from __future__ import annotations

import itertools
import os
import uuid

import zmq

from sluicegate.common.protocol import ProtocolError, WireRecord
from sluicegate.common.transport import Transport, recv_within, send


class ServiceUnavailable(Exception):
    """The driver service did not answer."""


class ServiceClient:
    def __init__(self, address: str, secret: bytes | None):
        self.address = address
        self.transport = Transport(secret)
        self.sock = self.transport.connect(
            zmq.DEALER, f"tcp://{address}", f"cli-{os.getpid()}-{uuid.uuid4().hex[:8]}".encode())
        self._nonces = itertools.count(1)

    def send(self, message: WireRecord) -> None:
        send(self.sock, message)

    def receive(self, timeout_s: float) -> WireRecord | None:
        try:
            got = recv_within(self.sock, timeout_s)
        except ProtocolError as exc:
            raise ServiceUnavailable(f"garbled answer from {self.address}: {exc}") from None
        return None if got is None else got[1]

    def request(self, message: WireRecord, timeout_s: float = 10.0) -> WireRecord:
        """Send ``message`` and return the first answer."""
        self.send(message)
        answer = self.receive(timeout_s)
        if answer is None:
            raise ServiceUnavailable(
                f"no answer from the driver service at {self.address} within {timeout_s:.0f}s "
                "(is `sluicegate driver` running there, with the same secret?)")
        return answer

    def next_nonce(self) -> int:
        return next(self._nonces)

    def close(self) -> None:
        self.sock.close(linger=200)
        self.transport.close()
