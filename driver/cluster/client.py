"""Talking to a driver service from the command line: requests and job streams."""
from __future__ import annotations

import itertools
import os
import time
import uuid

import zmq

from sluicegate.common.auth import default_secret_path
from sluicegate.common.protocol import ProtocolError, WireRecord
from sluicegate.common.transport import HandshakeWatch, Transport, recv_within, send


class ServiceUnavailable(Exception):
    """The driver service did not answer."""


class ServiceClient:
    def __init__(self, address: str, secret: bytes | None):
        self.address = address
        self.transport = Transport(secret)
        self.sock = self.transport.connect(
            zmq.DEALER, f"tcp://{address}", f"cli-{os.getpid()}-{uuid.uuid4().hex[:8]}".encode())
        self._handshakes = HandshakeWatch(self.sock)
        self._nonces = itertools.count(1)

    def send(self, message: WireRecord) -> None:
        send(self.sock, message)

    def receive(self, timeout_s: float) -> WireRecord | None:
        """The next message within ``timeout_s``; ``ServiceUnavailable`` as soon as the
        service is known to refuse us (another secret)."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                got = recv_within(self.sock, max(0.0, min(remaining, 0.2)))
            except ProtocolError as exc:
                raise ServiceUnavailable(f"garbled answer from {self.address}: {exc}") from None
            if got is not None:
                return got[1]
            if self._handshakes.refused:
                raise ServiceUnavailable(
                    f"the driver service at {self.address} refused the connection: it does not "
                    "use this secret (pass the cluster's --secret-file, or on the driver's own "
                    f"machine use its default secret {default_secret_path()})")
            if remaining <= 0:
                return None

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
        self._handshakes.close()
        self.sock.close(linger=200)
        self.transport.close()
