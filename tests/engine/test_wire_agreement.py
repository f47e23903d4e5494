"""What both sides must agree on, across real processes and sockets:

* ``portable_hash`` is the same in processes with different hash seeds;
* a peer without the shared secret never gets a message through (CURVE);
* nothing binds beyond loopback without a secret.

The pure rest (protocol round trips and garbage, serializer, hashing, secrets)
is in ``tests/unit/test_protocol_and_hashing.py``.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import zmq

from sluicegate.common.auth import SecurityError, check_bind_allowed, is_loopback
from sluicegate.common.protocol import executor as ex
from sluicegate.common.transport import Transport, endpoint, recv_within, send

SECRET = b"0123456789abcdef-the-cluster-secret"
OTHER_SECRET = b"fedcba9876543210-another-secret!!"


_HASH_VALUES = r"""
import datetime, json, sys
from collections import namedtuple
from sluicegate.common.hashing import portable_hash
Point = namedtuple("Point", "x y")
values = [
    "", "a", "spark", "sluicegate", "héllo wörld", "中文字符", "emoji \U0001f600", "\udcff",
    b"", b"bytes", b"\x00\xff" * 10, bytearray(b"ba"),
    None, 0, 1, -1, 2 ** 100, -(2 ** 70), 1.5, -0.0, float("inf"), True, False,
    ("a", None), (None, None, "b"), ("k", ("nested", b"x", None)), (), ("x",), Point("p", 1),
    datetime.datetime(2024, 1, 2, 3, 4, 5, 6), datetime.date(2020, 2, 29), datetime.time(23, 59),
    datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
    datetime.timedelta(days=3, seconds=7),
    frozenset(), frozenset({"a", "b", "c", "d", "e", "f"}), frozenset({("x", 1), ("y", 2), None}),
    ("user-17", frozenset({"t1", "t2"}), datetime.date(2021, 5, 6)),
]
json.dump({"portable": [portable_hash(v) for v in values],
           "builtin": hash("sluicegate-salted"),
           "order": list(frozenset({"a", "b", "c", "d", "e", "f"}))}, sys.stdout)
"""


def _hashes_with_seed(seed: str) -> dict:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    out = subprocess.run([sys.executable, "-c", _HASH_VALUES], env=env, capture_output=True,
                         timeout=60, check=True)
    return json.loads(out.stdout)


def test_portable_hash_is_identical_across_hash_seeds():
    runs = {seed: _hashes_with_seed(seed) for seed in ("1", "2", "random", "4242")}
    # The test means something: builtin hash() really differs between these processes.
    assert runs["1"]["builtin"] != runs["2"]["builtin"]
    reference = runs["1"]["portable"]
    for seed, run in runs.items():
        assert run["portable"] == reference, f"PYTHONHASHSEED={seed} hashed differently"
    # ...and so does this process.
    namespace: dict = {}
    code = _HASH_VALUES.replace("json.dump(", "result = (").replace(", sys.stdout)", ")")
    exec(compile(code, "<hash values>", "exec"), namespace)
    assert namespace["result"]["portable"] == reference
    assert all(isinstance(h, int) for h in reference)


@pytest.fixture
def server():
    transport = Transport(SECRET)
    sock, port = transport.bind(zmq.ROUTER, "127.0.0.1")
    yield sock, port
    sock.close(0)
    transport.close()


class _Peer:
    """A connecting peer holding ``secret`` (or none) that sends one message."""

    def __init__(self, secret: bytes | None, port: int, message):
        self.transport = Transport(secret)
        # Keep the socket referenced: a collected socket closes with LINGER 0.
        self.sock = self.transport.connect(zmq.DEALER, endpoint("127.0.0.1", port), b"peer")
        send(self.sock, message)

    def close(self) -> None:
        self.sock.close(0)
        self.transport.close()


def _send_from(secret: bytes | None, port: int, message) -> _Peer:
    return _Peer(secret, port, message)


def test_a_peer_with_the_wrong_secret_never_gets_a_message_through(server):
    sock, port = server
    impostors = [_send_from(OTHER_SECRET, port, ex.StopExecutor("from the wrong secret")),
                 _send_from(None, port, ex.StopExecutor("from a plain socket"))]
    try:
        # Plain TCP garbage straight at the port, too.
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        raw.sendall(b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7fGET / HTTP/1.0\r\n\r\n" * 20)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            assert recv_within(sock, 0.1, routed=True) is None, "an unauthenticated message got in"
        raw.close()
        # The right secret gets through on the same socket: the server was listening all along.
        good = _send_from(SECRET, port, ex.StopExecutor("from a holder of the secret"))
        try:
            received = None
            deadline = time.monotonic() + 10.0
            while received is None and time.monotonic() < deadline:
                received = recv_within(sock, 0.2, routed=True)
            assert received is not None
            identity, message = received
            assert identity == b"peer" and message == ex.StopExecutor("from a holder of the secret")
            # Still nothing from the impostors, who kept retrying meanwhile.
            assert recv_within(sock, 0.5, routed=True) is None
        finally:
            good.close()
    finally:
        for transport in impostors:
            transport.close()


def test_binding_beyond_loopback_needs_a_secret():
    with pytest.raises(SecurityError, match="without a shared secret"):
        check_bind_allowed("0.0.0.0", None)
    with pytest.raises(SecurityError):
        check_bind_allowed("::", None)
    with pytest.raises(SecurityError):
        check_bind_allowed("8.8.8.8", None)
    for every_interface in ("", "*"):
        assert not is_loopback(every_interface)
        with pytest.raises(SecurityError):
            check_bind_allowed(every_interface, None)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_bind_allowed(host, None)
        assert is_loopback(host)
    check_bind_allowed("0.0.0.0", SECRET)
    plain = Transport(None)
    try:
        with pytest.raises(SecurityError):
            plain.bind(zmq.ROUTER, "0.0.0.0")
        sock, port = plain.bind(zmq.ROUTER, "127.0.0.1")
        assert port > 0
        sock.close(0)
    finally:
        plain.close()
