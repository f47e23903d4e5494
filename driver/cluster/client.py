"""Talking to a driver service from the command line: requests and job streams."""
from __future__ import annotations

import errno
import itertools
import os
import socket
import time
import uuid

import zmq

from sluicegate.common.auth import default_secret_path
from sluicegate.common.protocol import ProtocolError, WireRecord
from sluicegate.common.transport import HandshakeWatch, Transport, recv_within, send


class ServiceUnavailable(Exception):
    """The driver service did not answer."""


def check_reachable(address: str, timeout_s: float = 2.0) -> None:
    """Whether anything accepts TCP connections at ``address`` (``HOST:PORT``): ZeroMQ
    retries a refused connection silently, so without this a stopped or unreachable
    driver would only show as a long wait. ``ServiceUnavailable`` saying each address
    tried and what happened, within about ``timeout_s``."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        found = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ServiceUnavailable(f"the driver's host name {host!r} does not resolve "
                                 f"({exc.strerror})") from None
    tried = []
    deadline = time.monotonic() + timeout_s
    for index, (family, kind, proto, _, target) in enumerate(found):
        # Each address gets its share of the time left (a silent one must not take it all).
        left = (deadline - time.monotonic()) / (len(found) - index)
        shown = f"[{target[0]}]:{target[1]}" if family == socket.AF_INET6 else f"{target[0]}:{target[1]}"
        if left <= 0:
            tried.append(f"{shown} (not tried: out of time)")
            continue
        with socket.socket(family, kind, proto) as probe:
            probe.settimeout(left)
            try:
                probe.connect(target)
                return
            except socket.timeout:
                tried.append(f"{shown}: no answer within {left:.1f}s")
            except OSError as exc:
                why = "connection refused" if exc.errno == errno.ECONNREFUSED else \
                    (exc.strerror or str(exc)).lower()
                tried.append(f"{shown}: {why}")
    raise ServiceUnavailable(
        f"cannot reach the driver service at {address}: tried {'; '.join(tried)} "
        "(is `sluicegate driver` running there, and is the port open?)")


class ServiceClient:
    def __init__(self, address: str, secret: bytes | None, handshake_timeout_s: float = 2.0):
        """``handshake_timeout_s``: a peer that accepts the connection but has not completed
        sluicegate's handshake this long after it was made is not a driver service."""
        self.address = address
        self._created = time.monotonic()
        self._handshake_deadline = self._created + handshake_timeout_s
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
            if not self._handshakes.succeeded and time.monotonic() > self._handshake_deadline:
                raise ServiceUnavailable(
                    f"no sluicegate driver answered at {self.address}: tried tcp://{self.address}, "
                    "which accepted the connection but completed no handshake within "
                    f"{self._handshake_deadline - self._created:.1f}s (another program on that "
                    "port, or a firewall that accepts every connection?)")
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
