"""A cap on the connections of a listening socket that have not authenticated yet.

ZeroMQ accepts every TCP connection and buffers what the peer sends during
the security handshake, up to the socket's maximum frame size, until the
handshake timeout closes it. Nothing in libzmq limits how many such
connections there are at once, so a flood of them could still take memory
(one frame each) and file descriptors. The guard watches each bound socket's
events and shuts a new connection down at once while ``max_pending`` others
are still in their handshake, as sshd's ``MaxStartups`` does. Connections that
completed their handshake are never touched.

libzmq's events do not say which connection a completed handshake belongs
to, so the guard counts: connections accepted within the last window (the
handshake timeout and a margin, after which libzmq has closed every
connection still handshaking) and still open, less the handshakes completed
in that window. That number is never more than the connections really in
their handshake, so a connection is only refused while at least
``max_pending`` others are; refused peers that are real ZeroMQ peers retry
on their own.
"""
from __future__ import annotations

import logging
import os
import queue
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import zmq
from zmq.utils.monitor import parse_monitor_message

log = logging.getLogger("sluicegate.transport")

_EVENTS = (zmq.EVENT_ACCEPTED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
           | zmq.EVENT_MONITOR_STOPPED)
_POLL_MS = 200
_WARN_EVERY_S = 10.0
_WINDOW_MARGIN_S = 2.0


@dataclass
class _Listener:
    """One bound socket's monitor and what it has seen lately."""

    monitor: zmq.Socket
    port: int
    max_pending: int
    window_s: float
    accepted: dict[int, float] = field(default_factory=dict)  # fd -> when (still open)
    succeeded: deque = field(default_factory=deque)  # when each handshake completed
    refused_unreported: int = 0
    last_warning_s: float = 0.0

    def pending(self, now: float) -> int:
        """At most as many connections as are really mid-handshake now."""
        horizon = now - self.window_s
        for fd in [fd for fd, at in self.accepted.items() if at < horizon]:
            del self.accepted[fd]
        while self.succeeded and self.succeeded[0] < horizon:
            self.succeeded.popleft()
        return len(self.accepted) - len(self.succeeded)

    def handle(self, events: list[tuple[int, int]], now: float) -> bool:
        """Apply a run of events in order; False once the monitor stopped."""
        for i, (event, value) in enumerate(events):
            if event == zmq.EVENT_ACCEPTED:
                if self.max_pending > 0 and self.pending(now) >= self.max_pending:
                    # A later event in this run may already say it closed (and its fd
                    # number may be someone else's by now): leave it alone then.
                    closed = any(e == zmq.EVENT_DISCONNECTED and v == value for e, v in events[i + 1:])
                    if not closed and _shut_down(value, self.port):
                        self.refused_unreported += 1
                    continue
                self.accepted[value] = now
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.succeeded.append(now)
            elif event == zmq.EVENT_DISCONNECTED:
                self.accepted.pop(value, None)
            elif event == zmq.EVENT_MONITOR_STOPPED:
                return False
        if self.refused_unreported and now - self.last_warning_s >= _WARN_EVERY_S:
            log.warning("port %s refused %s connection(s): %s others were still in their security "
                        "handshake (spark.sluicegate.network.maxPendingConnections)",
                        self.port, self.refused_unreported, self.max_pending)
            self.refused_unreported = 0
            self.last_warning_s = now
        return True


def _shut_down(fd: int, port: int) -> bool:
    """Shut down the connection on libzmq's ``fd`` if it is still one accepted on
    ``port``; libzmq then sees the peer gone and closes it as usual."""
    try:
        dup = os.dup(fd)
    except OSError:
        return False
    try:
        conn = socket.socket(fileno=dup)
    except OSError:
        os.close(dup)
        return False
    try:
        if conn.getsockname()[1] != port:
            return False
        conn.getpeername()
        # Reset rather than a polite close: nothing more is read from this peer.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.shutdown(socket.SHUT_RDWR)
        return True
    except OSError:
        return False
    finally:
        conn.close()  # our duplicate only; libzmq still owns fd


class HandshakeGuard:
    """Watches the bound sockets of one ZeroMQ context from one thread."""

    def __init__(self, max_pending: int, handshake_timeout_s: float):
        self.max_pending = max_pending
        self.window_s = handshake_timeout_s + _WINDOW_MARGIN_S
        self._new: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # stop() wakes the thread's poll at once
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def monitor(self, sock: zmq.Socket) -> zmq.Socket:
        """Start monitoring ``sock`` (before it binds, so no connection is missed)."""
        return sock.get_monitor_socket(_EVENTS)

    def watch(self, monitor: zmq.Socket, port: int) -> None:
        """Guard the socket behind ``monitor``, bound on ``port``. The monitor socket
        passes to the guard's thread (through a queue, a full memory barrier)."""
        self._new.put(_Listener(monitor, port, self.max_pending, self.window_s))
        with self._lock:
            if self._stop.is_set():
                return  # stop() closes it
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="handshake-guard",
                                                daemon=True)
                self._thread.start()
            else:
                os.write(self._wake_w, b"w")

    def stop(self) -> None:
        """Stop watching and close the monitor sockets (before the context goes)."""
        with self._lock:
            if self._stop.is_set():
                return
            self._stop.set()
            thread = self._thread
        os.write(self._wake_w, b"x")
        if thread is not None:
            thread.join(5.0)
        while True:  # watched after the thread ended, or never started
            try:
                self._new.get_nowait().monitor.close(linger=0)
            except queue.Empty:
                break
        if thread is None or not thread.is_alive():
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._wake_r, zmq.POLLIN)
        by_socket: dict[zmq.Socket, _Listener] = {}
        try:
            while not self._stop.is_set():
                while True:
                    try:
                        listener = self._new.get_nowait()
                    except queue.Empty:
                        break
                    by_socket[listener.monitor] = listener
                    poller.register(listener.monitor, zmq.POLLIN)
                for sock, _ in poller.poll(_POLL_MS):
                    if sock == self._wake_r:
                        os.read(self._wake_r, 4096)  # a new socket to watch, or stopping
                        continue
                    listener = by_socket[sock]
                    events = []
                    while sock.poll(0, zmq.POLLIN):
                        message = parse_monitor_message(sock.recv_multipart(zmq.NOBLOCK))
                        events.append((message["event"], message["value"]))
                    if not listener.handle(events, time.monotonic()):
                        poller.unregister(sock)
                        del by_socket[sock]
                        sock.close(linger=0)
        except zmq.ZMQError as exc:
            if exc.errno != zmq.ETERM:
                log.exception("the handshake guard stopped")
        finally:
            for sock in by_socket:
                sock.close(linger=0)
