"""A single-threaded event loop around one bound ROUTER socket.

The driver's application endpoint and the cluster service are both one of
these: one thread owns the socket and all the state behind it; other
threads hand it typed events (``loop_events``) with ``post`` (a queue, plus
a byte on a pipe that wakes the poll), or ``call`` one and wait for the
answer. Each pass reads what arrived, runs the posted events through
``events`` (type -> handler, counted), fires the timer, then calls
``after_pass``. Frames that are not a valid message are logged and dropped;
an error handling one message or event never stops the loop.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time

import zmq

from sluicegate.common.protocol import ProtocolError
from sluicegate.common.transport import Transport, recv, send

from .loop_events import Barrier, EventHandlers, Inspect

MAX_MESSAGES_PER_PASS = 256


class _Awaited:
    """An event a caller waits on (``call``), and its answer."""

    __slots__ = ("event", "done", "value", "error")

    def __init__(self, event) -> None:
        self.event = event
        self.done = threading.Event()
        self.value = None
        self.error: BaseException | None = None


class RouterLoop(threading.Thread):
    """Subclasses implement ``handle``, add their event handlers to ``events``, and
    may override ``on_timer``, ``after_pass``, ``on_unreachable`` and ``on_shutdown``."""

    log = logging.getLogger("sluicegate.loop")

    def __init__(self, name: str, transport: Transport, host: str, port: int, tick_s: float):
        super().__init__(name=name, daemon=True)
        self.router, self.port = transport.bind(zmq.ROUTER, host, port)
        self.tick_s = tick_s
        self._commands: queue.SimpleQueue = queue.SimpleQueue()  # events, and _Awaited
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self.failure: BaseException | None = None
        self.events = EventHandlers(name, self.log)
        self.events.on({Barrier: _nothing, Inspect: _inspect})

    # -- to override ----------------------------------------------------------------
    def handle(self, identity: bytes, message, now: float) -> None:
        raise NotImplementedError

    def on_timer(self, now: float) -> None:
        """Every ``tick_s``."""

    def after_pass(self, now: float) -> None:
        """After every pass of the loop."""

    def on_unreachable(self, identity: bytes) -> None:
        """A send to ``identity`` failed: its peer disconnected."""

    def on_shutdown(self) -> None:
        """On the loop thread, before the socket closes."""

    # -- for other threads ------------------------------------------------------------
    def post(self, event) -> None:
        """Have the loop thread handle ``event`` soon (a no-op once stopped)."""
        if self._stopped.is_set():
            return
        self._commands.put(event)
        self._wake()

    def call(self, event, timeout_s: float = 30.0):
        """Have the loop thread handle ``event`` and return its handler's answer (or
        raise its error). Events run in the order posted: every event posted before
        this one has run when it answers."""
        self.events.check(event)
        awaited = _Awaited(event)
        self.post(awaited)
        if not awaited.done.wait(timeout_s):
            raise TimeoutError(f"{self.name} did not answer within {timeout_s:.0f}s")
        if awaited.error is not None:
            raise awaited.error
        return awaited.value

    @property
    def event_counts(self) -> dict[str, int]:
        """How many events of each type the loop has handled, by type name."""
        return self.events.counted()

    def _wake(self) -> None:
        try:
            os.write(self._wake_write, b"!")
        except OSError:
            pass  # the pipe is full (the loop is awake anyway) or already closed

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        if not self._stopped.is_set():
            self._wake()
        if self is not threading.current_thread():
            self.join(timeout_s)

    @property
    def running(self) -> bool:
        return self.is_alive() and not self._stopping.is_set()

    # -- on the loop thread ------------------------------------------------------------
    def send(self, identity: bytes, message) -> bool:
        try:
            send(self.router, message, identity=identity)
            return True
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                self.on_unreachable(identity)
            else:
                self.log.info("could not send %s to %r: %s", type(message).__name__, identity, exc)
            return False

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self._wake_read, zmq.POLLIN)
        next_timer = 0.0
        try:
            while not self._stopping.is_set():
                events = dict(poller.poll(int(min(self.tick_s, 0.1) * 1000)))
                now = time.monotonic()
                if self.router in events:
                    self._drain_router(now)
                if self._wake_read in events:
                    self._drain_events(time.monotonic())
                if now >= next_timer:
                    self.on_timer(now)
                    next_timer = now + self.tick_s
                self.after_pass(time.monotonic())
        except BaseException as exc:  # noqa: BLE001 - record why the loop died
            self.failure = exc
            self.log.exception("%s failed", self.name)
        finally:
            self._stopped.set()
            try:
                self.on_shutdown()
            finally:
                self.router.close(linger=500)
                for fd in (self._wake_read, self._wake_write):
                    try:
                        os.close(fd)
                    except OSError:
                        pass

    def _drain_events(self, now: float) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                event = self._commands.get_nowait()
            except queue.Empty:
                return
            if type(event) is _Awaited:
                self._answer(event, now)
                continue
            try:
                self.events.dispatch(event, now)
            except Exception:  # noqa: BLE001 - one bad event must not stop the loop
                self.log.exception("%s: handling %r failed", self.name, event)

    def _answer(self, awaited: _Awaited, now: float) -> None:
        try:
            awaited.value = self.events.dispatch(awaited.event, now)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            awaited.error = exc
        finally:
            awaited.done.set()

    def _drain_router(self, now: float) -> None:
        for _ in range(MAX_MESSAGES_PER_PASS):
            if not self.router.poll(0, zmq.POLLIN):
                return
            try:
                identity, message = recv(self.router, routed=True)
            except ProtocolError as exc:
                self.log.warning("%s: dropped a malformed message: %s", self.name, exc)
                continue
            try:
                self.handle(identity, message, now)
            except Exception:  # noqa: BLE001 - keep serving the other peers
                self.log.exception("%s: error handling %s from %r", self.name,
                                   type(message).__name__, identity)


def _nothing(event: Barrier, now: float) -> None:
    return None  # its answer only says that what was posted before it has run


def _inspect(event: Inspect, now: float):
    return event.read()
