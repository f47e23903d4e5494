"""ZeroMQ sockets, made one way everywhere, and typed send/receive on them.

A ``Transport`` owns one ZeroMQ context. With cluster keys every socket it
makes speaks CURVE: bound sockets as the server, connecting sockets as the
client. Without keys it refuses to bind anything but loopback.

``send`` and ``recv`` move protocol messages; they are the only callers of
``protocol.encode``/``decode`` on sockets. Every receive takes a timeout.

Limits against peers that never authenticate (they can reach a bound port,
but not get past the handshake):

* no frame may be longer than ``MAX_FRAME_BYTES`` (plus the encryption's
  overhead): libzmq buffers a frame the peer announces before the handshake
  completes, so this is what one unauthenticated connection can make us hold.
  Messages have no size limit: ``send`` cuts longer frames into pieces and
  ``recv`` joins them again;
* a connection that has not completed its handshake within
  ``spark.sluicegate.network.handshakeTimeout`` is closed;
* at most ``spark.sluicegate.network.maxPendingConnections`` connections of a
  bound socket may be in their handshake at once (``HandshakeGuard``).
"""
from __future__ import annotations

import logging
import socket
import threading
from typing import Any, Mapping

import msgpack
import zmq
from zmq.utils.monitor import recv_monitor_message

from . import config as cfg
from .auth import ClusterKeys, check_bind_allowed, start_authenticator
from .constants import SOCKET_RECONNECT_MAX_MS, SOCKET_RECONNECT_MIN_MS
from .handshake_guard import HandshakeGuard
from .protocol import ProtocolError, WireRecord, decode, encode

log = logging.getLogger("sluicegate.transport")

# The longest frame on the wire. Bigger frames (shuffle segments, task results, input
# blocks, files) travel in pieces of this size; 256 KiB pieces cost nothing in
# throughput (they pipeline better than one huge frame).
MAX_FRAME_BYTES = 256 * 1024
# What a socket accepts: a piece plus CURVE's envelope (command name, nonce, MAC).
FRAME_LIMIT_BYTES = MAX_FRAME_BYTES + 1024
HIGH_WATER_MARK = 100_000
# First byte of the extra frame that says which frames were cut into pieces. It is
# msgpack's one never-used byte, so no message header can start with it.
_PIECES_MARK = b"\xc1"


class Transport:
    """A ZeroMQ context whose sockets all authenticate with the cluster keys."""

    def __init__(self, secret: bytes | None, conf: Mapping[str, Any] | None = None):
        """``conf``: the settings that limit unauthenticated peers
        (``spark.sluicegate.network.*``); their defaults without it."""
        self.secret = secret
        self.keys = ClusterKeys.from_secret(secret) if secret else None
        conf = conf or {}
        self.handshake_timeout_s = cfg.get_setting(conf, cfg.NETWORK_HANDSHAKE_TIMEOUT)
        self.guard = HandshakeGuard(cfg.get_setting(conf, cfg.NETWORK_MAX_PENDING_CONNECTIONS),
                                    self.handshake_timeout_s)
        self.context = zmq.Context()
        self._authenticator = None
        self._lock = threading.Lock()

    def _ensure_authenticator(self) -> None:
        with self._lock:
            if self.keys is not None and self._authenticator is None:
                self._authenticator = start_authenticator(self.context, self.keys)

    def _configure(self, sock: zmq.Socket, server: bool) -> None:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
        sock.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
        sock.setsockopt(zmq.MAXMSGSIZE, FRAME_LIMIT_BYTES)
        sock.setsockopt(zmq.HANDSHAKE_IVL, max(1, int(self.handshake_timeout_s * 1000)))
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
        if self.keys is None:
            return
        if server:
            sock.curve_server = True
            sock.curve_publickey = self.keys.server_public
            sock.curve_secretkey = self.keys.server_secret
        else:
            sock.curve_serverkey = self.keys.server_public
            sock.curve_publickey = self.keys.client_public
            sock.curve_secretkey = self.keys.client_secret

    def bind(self, kind: int, host: str, port: int = 0) -> tuple[zmq.Socket, int]:
        """Bind a socket of ``kind`` on ``host:port`` (0: any free port)."""
        check_bind_allowed(host, self.secret)
        self._ensure_authenticator()
        sock = self.context.socket(kind)
        self._configure(sock, server=True)
        if kind == zmq.ROUTER:
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        bind_host = "*" if host in ("0.0.0.0", "") else host
        monitor = self.guard.monitor(sock)  # before binding: no connection goes unseen
        try:
            if port:
                sock.bind(f"tcp://{bind_host}:{port}")
                bound = port
            else:
                bound = sock.bind_to_random_port(f"tcp://{bind_host}")
        except zmq.ZMQError:
            monitor.close(0)
            sock.close(0)
            raise
        self.guard.watch(monitor, bound)
        return sock, bound

    def connect(self, kind: int, endpoint: str, identity: bytes | None = None) -> zmq.Socket:
        """Connect a socket of ``kind`` to ``endpoint`` (``tcp://host:port``)."""
        sock = self.context.socket(kind)
        self._configure(sock, server=False)
        if identity is not None:
            sock.setsockopt(zmq.IDENTITY, identity)
        sock.setsockopt(zmq.RECONNECT_IVL, SOCKET_RECONNECT_MIN_MS)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, SOCKET_RECONNECT_MAX_MS)
        sock.connect(endpoint)
        return sock

    def close(self) -> None:
        self.guard.stop()  # its monitor sockets must be closed by its own thread first
        if self._authenticator is not None:
            try:
                self._authenticator.stop()
            except Exception:  # noqa: BLE001 - shutting down anyway
                pass
            self._authenticator = None
        self.context.destroy(linger=0)


class HandshakeWatch:
    """Counts the security handshakes of a connecting socket.

    A peer that holds another secret (or is no sluicegate service at all)
    fails every CURVE handshake, which on the socket itself only shows as
    silence; this tells a caller so, so it can say why instead of waiting.
    """

    FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
              | zmq.EVENT_HANDSHAKE_FAILED_AUTH)

    def __init__(self, sock: zmq.Socket):
        self._sock = sock
        self._monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | self.FAILED)
        self.failures = 0
        self.succeeded = False

    def _update(self) -> None:
        while self._monitor.poll(0, zmq.POLLIN):
            event = recv_monitor_message(self._monitor, zmq.NOBLOCK)["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.succeeded = True
            elif event & self.FAILED:
                self.failures += 1

    @property
    def refused(self) -> bool:
        """Handshakes keep failing and none ever succeeded."""
        self._update()
        return self.failures >= 2 and not self.succeeded

    def close(self) -> None:
        try:
            self._sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self._monitor.close(linger=0)


def send(sock: zmq.Socket, message: WireRecord, identity: bytes | None = None,
         flags: int = 0) -> None:
    """Send ``message`` (to ``identity`` on a ROUTER)."""
    frames = _in_pieces(encode(message))
    if identity is not None:
        frames = [identity, *frames]
    sock.send_multipart(frames, flags=flags, copy=len(frames) < 3)


def _in_pieces(frames: list) -> list:
    """``frames``, each longer than ``MAX_FRAME_BYTES`` cut into pieces, after a
    first frame ``_PIECES_MARK + msgpack([frame count, [[index, pieces], ...]])``."""
    pieces_of = {}
    for i, frame in enumerate(frames):
        size = len(frame) if type(frame) is bytes else memoryview(frame).nbytes
        if size > MAX_FRAME_BYTES:
            pieces_of[i] = -(-size // MAX_FRAME_BYTES)
    if not pieces_of:
        return frames
    out = [_PIECES_MARK + msgpack.packb([len(frames), [[i, n] for i, n in pieces_of.items()]])]
    if len(out[0]) > MAX_FRAME_BYTES:
        raise ValueError(f"a message of {len(frames)} frames is too large to send")
    for i, frame in enumerate(frames):
        if i not in pieces_of:
            out.append(frame)
            continue
        view = memoryview(frame).cast("B")
        pieces = (view[start:start + MAX_FRAME_BYTES] for start in range(0, view.nbytes, MAX_FRAME_BYTES))
        # Pieces of bytes go without a copy; a buffer the caller may change is copied now.
        out.extend(pieces if isinstance(frame, bytes) else map(bytes, pieces))
    return out


def _joined(frames: list[bytes]) -> list[bytes]:
    """The frames ``_in_pieces`` cut, joined again; ``ProtocolError`` if the list
    of pieces does not describe these frames."""
    if not frames or not frames[0].startswith(_PIECES_MARK):
        return frames
    try:
        count, cut = msgpack.unpackb(frames[0][1:])
        valid = (isinstance(count, int) and isinstance(cut, list)
                 and all(isinstance(c, list) and len(c) == 2 and all(type(v) is int for v in c)
                         for c in cut))
    except Exception:  # noqa: BLE001 - whatever is wrong with it, it is garbage
        valid = False
    if valid:
        indexes = [i for i, _ in cut]
        valid = (indexes == sorted(set(indexes)) and all(0 <= i < count and n >= 2 for i, n in cut)
                 and len(frames) - 1 == count + sum(n - 1 for _, n in cut))
    if not valid:
        raise ProtocolError("malformed list of frame pieces")
    pieces_of = dict(cut)
    joined, at = [], 1
    for i in range(count):
        n = pieces_of.get(i, 1)
        joined.append(frames[at] if n == 1 else b"".join(frames[at:at + n]))
        at += n
    return joined


def recv(sock: zmq.Socket, routed: bool = False) -> tuple[bytes | None, WireRecord]:
    """Receive one message without waiting; raise ``ProtocolError`` on garbage.

    Call after a poll says the socket is readable. On a ROUTER (``routed``) the
    sender's identity comes first.
    """
    frames = sock.recv_multipart(flags=zmq.NOBLOCK, copy=True)
    identity = None
    if routed:
        if len(frames) < 2:
            raise ProtocolError("routed message without a body")
        identity, frames = frames[0], frames[1:]
    return identity, decode(_joined(frames))


def recv_within(sock: zmq.Socket, timeout_s: float,
                routed: bool = False) -> tuple[bytes | None, WireRecord] | None:
    """Wait up to ``timeout_s`` for one message; ``None`` when none came."""
    if not sock.poll(int(timeout_s * 1000), zmq.POLLIN):
        return None
    return recv(sock, routed=routed)


def advertised_host(bind_host: str) -> str:
    """The address peers should use for a socket bound on ``bind_host``."""
    if bind_host in ("0.0.0.0", "*", ""):
        return socket.gethostbyname(socket.gethostname())
    return bind_host


def endpoint(host: str, port: int) -> str:
    return f"tcp://{host}:{port}"
