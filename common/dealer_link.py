"""A DEALER connected to one peer, and the loop that serves it.

Every process keeps its links to the process above it the same way (the
ZeroMQ Guide's Paranoid Pirate, on the client side): a connected DEALER, a
``tick`` that sends what is due (registrations, heartbeats, reports) and
judges the peer's silence, a handler called for each message that arrives,
and a poll that never waits longer than ``poll_s`` (no receive without a
timeout). Any message from the peer counts as a heartbeat (``last_heard``).
Other threads hand messages to the loop through its outbox (``post``), which
wakes the poll; a malformed message is logged and dropped, never fatal.

The configurations:

* the application driver's link to the cluster service
  (``driver/cluster/cluster_backend.py``): registration that doubles as
  heartbeat, status reports, and an outbox for what other threads send;
* the worker daemon's link to the service (``worker/daemon.py``): registration
  and heartbeats, a silence past the heartbeat timeout ends the session, and
  the daemon reconnects on a fresh link after a ``Backoff`` wait;
* the executor's control link and its heartbeat link to its driver
  (``worker/executor/driver_link.py``): the control link also serves the
  block service's ROUTER (``watch``), the heartbeat link only sends;
* the shuffle fetcher's links to peers (``worker/shuffle/fetcher.py``): no
  loop, as the fetch is an iterator on the task thread; it sends on its
  links, waits on many at once with ``readable`` and takes replies with
  ``receive_waiting``;
* the executor's task link to its driver (``worker/executor/process.py``):
  no loop either; the task thread sends results on it and ``ask``s the
  driver for blocks and added files (``worker/executor/user_files.py``);
* a receiver process's link to its driver
  (``driver/cluster/receiver_process.py``): a tick that watches the driver's
  process and the receiver's start, a handler for the driver's orders and
  acknowledgements, and an outbox for what the receiver's threads send.

A link's socket belongs to the thread that opens it (``open``, or ``serve``
on first use); only ``post``, ``wake`` and reading ``last_heard`` are for
other threads.
"""
from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
from typing import Callable, Iterable, Iterator

import zmq

from .protocol import ProtocolError, WireRecord
from .transport import Transport, recv, send

_log = logging.getLogger("sluicegate.dealer_link")


class DealerLink:
    """A connected DEALER socket with a loop: tick, outbox, poll, handler per message."""

    def __init__(self, transport: Transport, endpoint: str, identity: bytes | None = None,
                 on_message: Callable[[WireRecord, float], None] | None = None, *,
                 tick: Callable[[float], None] | None = None, poll_s: float = 0.1,
                 silence_s: float | None = None, outbox: bool = False,
                 peer: str = "the peer", logger: logging.Logger | None = None):
        """``on_message(message, now)`` is called on the loop's thread for every
        message; ``tick(now)`` once per pass of the loop, before its poll.
        ``silence_s``: ``serve`` returns once the peer has said nothing for this
        long (None: never). ``outbox``: make ``post``/``wake`` available.
        ``peer`` names the other side in log lines, written to ``logger``."""
        self.transport = transport
        self.endpoint = endpoint
        self.identity = identity
        self.on_message = on_message or _ignore
        self.tick = tick
        self.poll_s = poll_s
        self.silence_s = silence_s
        self.peer = peer
        self.sock: zmq.Socket | None = None
        self.last_heard = time.monotonic()
        self._log = logger or _log
        self._watched: dict[zmq.Socket, Callable[[], None]] = {}
        self._outbox: queue.SimpleQueue | None = queue.SimpleQueue() if outbox else None
        self._wake_lock = threading.Lock()
        self._wake_r = self._wake_w = -1  # a pipe, while ``serve`` runs

    # -- the link's own thread ------------------------------------------------------
    def open(self) -> zmq.Socket:
        """Connect the socket (from the thread that will use it)."""
        if self.sock is None:
            self.sock = self.transport.connect(zmq.DEALER, self.endpoint, self.identity)
            self.last_heard = time.monotonic()
        return self.sock

    def watch(self, sock: zmq.Socket, on_readable: Callable[[], None]) -> None:
        """Poll ``sock`` too (from ``serve``'s start), calling ``on_readable()``
        when it has input."""
        self._watched[sock] = on_readable

    def send(self, message: WireRecord, wait: bool = True) -> bool:
        """Send to the peer; without ``wait``, False when the socket would block."""
        try:
            send(self.sock, message, flags=0 if wait else zmq.NOBLOCK)
        except zmq.Again:
            if wait:
                raise
            return False
        return True

    def send_posted(self) -> None:
        """Send what was posted and not sent yet (the loop does at every pass; this is
        for last words after ``serve`` returned)."""
        outbox = self._outbox
        while True:
            try:
                message = outbox.get_nowait()
            except queue.Empty:
                return
            send(self.sock, message)

    def receive_waiting(self) -> Iterator[WireRecord]:
        """The messages waiting now, without blocking; malformed ones are dropped."""
        sock = self.sock
        while sock.poll(0, zmq.POLLIN):
            try:
                _, message = recv(sock)
            except ProtocolError as exc:
                self._log.warning("dropped a malformed message from %s: %s", self.peer, exc)
                continue
            yield message

    def ask(self, request: WireRecord, reply_type: type, timeout_s: float) -> WireRecord | None:
        """Send ``request`` and wait up to ``timeout_s`` for its reply: the first
        ``reply_type`` message with the request's ``request_id`` (None: none came in
        time). What else arrives meanwhile -- replies to requests given up on -- is
        dropped. For a link without a loop, asked on the thread that opened it."""
        self.send(request)
        request_id = request.request_id
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.sock.poll(100, zmq.POLLIN):
                continue
            for message in self.receive_waiting():
                if isinstance(message, reply_type) and message.request_id == request_id:
                    return message
        return None

    def drain(self) -> None:
        """Hand every message waiting now to the handler."""
        on_message = self.on_message
        for message in self.receive_waiting():
            self.last_heard = now = time.monotonic()
            on_message(message, now)

    def serve(self, stop: threading.Event) -> bool:
        """Run the loop until ``stop`` is set (True) or the peer was silent past
        ``silence_s`` (False)."""
        sock = self.open()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        for watched in self._watched:
            poller.register(watched, zmq.POLLIN)
        if self._outbox is not None:
            poller.register(self._open_wake_pipe(), zmq.POLLIN)
        tick, watched = self.tick, self._watched
        while not stop.is_set():
            now = time.monotonic()
            if tick is not None:
                tick(now)
            if self.silence_s is not None and now - self.last_heard > self.silence_s:
                return False
            if self._outbox is not None:
                self.send_posted()
            for ready, _ in poller.poll(int(self.poll_s * 1000)):
                if ready is sock:
                    self.drain()
                elif ready in watched:
                    watched[ready]()
                else:
                    self._clear_wake()
        return True

    def close(self, linger_ms: int = 0) -> None:
        """Close the socket (after ``linger_ms`` for what is still queued) and the outbox."""
        if self.sock is not None:
            self.sock.close(linger=linger_ms)
        with self._wake_lock:
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    os.close(fd)
            self._wake_r = self._wake_w = -1

    def _open_wake_pipe(self) -> int:
        # (What was posted before the pipe existed goes out at the loop's first pass.)
        with self._wake_lock:
            if self._wake_r < 0:
                self._wake_r, self._wake_w = os.pipe()
                os.set_blocking(self._wake_r, False)
                os.set_blocking(self._wake_w, False)
            return self._wake_r

    def _clear_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    # -- any thread ------------------------------------------------------------------
    def post(self, message: WireRecord) -> None:
        """Have the loop send ``message`` (from any thread), at once."""
        self._outbox.put(message)
        self.wake()

    def wake(self) -> None:
        """Cut the loop's current poll short (from any thread): it ticks at once."""
        with self._wake_lock:  # never a byte into a descriptor ``close`` gave back
            if self._wake_w >= 0:
                try:
                    os.write(self._wake_w, b"\0")
                except BlockingIOError:
                    pass  # full of wake-ups already


def _ignore(message: WireRecord, now: float) -> None:
    """The handler of a link that only sends: whatever comes back needs no answer."""


def readable(links: Iterable[DealerLink], timeout_s: float) -> list[DealerLink]:
    """Those of ``links`` with input, waiting at most ``timeout_s`` for any."""
    poller = zmq.Poller()
    by_socket = {}
    for link in links:
        by_socket[link.sock] = link
        poller.register(link.sock, zmq.POLLIN)
    return [by_socket[sock] for sock, _ in poller.poll(int(timeout_s * 1000))]


class Every:
    """A repeating deadline: ``due(now)`` is true once it has come, and then
    again ``interval_s`` later (changing ``interval_s`` takes effect from the
    next time it comes)."""

    __slots__ = ("interval_s", "next_at")

    def __init__(self, interval_s: float, first_at: float = 0.0):
        self.interval_s = interval_s
        self.next_at = first_at

    def due(self, now: float) -> bool:
        if now < self.next_at:
            return False
        self.next_at = now + self.interval_s
        return True

    def make_due(self) -> None:
        """Be due at the next check."""
        self.next_at = 0.0


class Backoff:
    """The wait before reconnecting: ``min_s`` after a connection that worked,
    doubling up to ``max_s`` while they fail, each jittered by +-50% so that
    many clients of one restarted service do not come back at once."""

    def __init__(self, min_s: float, max_s: float,
                 uniform: Callable[[float, float], float] = random.uniform):
        self.min_s = min_s
        self.max_s = max_s
        self.current_s = min_s
        self._uniform = uniform

    def next_wait(self, connected: bool) -> float:
        self.current_s = self.min_s if connected else min(self.current_s * 2, self.max_s)
        return self.current_s * self._uniform(0.5, 1.5)
