"""Cutting received records into blocks.

A ``BlockGenerator`` buffers what one receiver stores and cuts it into a
block every block interval (and when stopped, so nothing is lost). Text from
the socket receiver is kept as raw bytes: the driver never splits lines, the
executors do. A large interval's data becomes one block per executor rather
than one: each block is a task, and five blocks a batch on two executors
would keep one of them idle for a fifth of every batch. The streaming
scheduler's ``ReceivedBlockTracker`` (``streaming_scheduler.block_tracker``)
holds each stream's blocks until a batch time claims them.

Text that was not clean is counted on the way (lines with invalid UTF-8,
lines dropped for being too long); the counts go to the batch that gets the
interval's data, for its ``StreamInputInfo.metadata()`` and the metrics.
"""
from __future__ import annotations

import logging
import uuid
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from sluicegate.common.serializer import dump_lines, dump_records

log = logging.getLogger("sluicegate.streaming.receiver")

# StreamInputInfo.metadata() keys of a receiver stream's batch input that was not clean.
INVALID_UTF8_KEY = "invalidUtf8Lines"  # lines decoded with U+FFFD
DROPPED_LINES_KEY = "droppedLongLines"  # lines longer than the maximum, dropped


@dataclass(frozen=True)
class ReceivedBlock:
    block_id: str
    stream_id: int
    num_records: int
    data: bytes
    metadata: Any = None  # the receiver's note for it, e.g. the source offset after it


def new_block_id(stream_id: int) -> str:
    """Unique across driver restarts, and sorting by the time it was made."""
    return f"input_{stream_id}_{time.time_ns():020d}_{uuid.uuid4().hex[:8]}"


class RateLimiter:
    """At most ``rate`` records per second (0: unlimited); ``take`` blocks."""

    def __init__(self, rate: int):
        self.rate = rate
        self._allowance = float(rate)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self, count: int, stopped: Callable[[], bool]) -> None:
        if self.rate <= 0:
            return
        while True:
            with self._lock:
                now = time.monotonic()
                self._allowance = min(float(self.rate), self._allowance + (now - self._last) * self.rate)
                self._last = now
                if self._allowance >= min(count, self.rate):
                    self._allowance -= count
                    return
                wait_s = (min(count, self.rate) - self._allowance) / self.rate
            if stopped():
                return
            time.sleep(min(wait_s, 0.1))


class BlockGeneratorStopped(RuntimeError):
    """Data offered after the block generator stopped: it would reach no batch."""


# Below these sizes an interval's data stays one block: a task per executor
# would cost more than it spreads.
SPREAD_MIN_BYTES = 64 * 1024
SPREAD_MIN_RECORDS = 2_000


def split_text(text: bytes, pieces: int) -> list[bytes]:
    """``text`` (complete lines) in up to ``pieces`` runs of whole lines of about
    equal size."""
    parts, start = [], 0
    for i in range(1, pieces):
        end = text.find(b"\n", max(start, len(text) * i // pieces)) + 1
        if end <= start:  # no newline left
            break
        parts.append(text[start:end])
        start = end
    if start < len(text):
        parts.append(text[start:])
    return parts


class BlockGenerator:
    """Buffers one receiver's data and emits a block every ``interval_s``.

    Once stopped it refuses data (as Spark's does), so a ``store`` that
    returned always reaches a batch, even one racing a (graceful) stop.
    """

    def __init__(self, stream_id: int, interval_s: float, max_rate: int,
                 on_block: Callable[[ReceivedBlock], None], spread: Callable[[], int] = lambda: 1,
                 on_notes: Callable[[int, dict], None] = lambda stream_id, notes: None):
        self.stream_id = stream_id
        self.interval_s = interval_s
        self.on_block = on_block
        self.on_notes = on_notes  # counts of text that was not clean, once per cut
        self.spread = spread  # how many blocks a large interval becomes (the executors)
        self.limiter = RateLimiter(max_rate)
        self._records: list = []
        self._text = bytearray()
        self._text_lines = 0
        self._notes: dict[str, int] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._closed = False  # refusing data: stopped
        self._in_flight = 0  # add_block_now calls handing over a block right now
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"block-generator-{stream_id}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def buffered(self) -> tuple[int, int]:
        """Records and text bytes waiting for the next cut (read by flow control)."""
        return len(self._records), len(self._text)

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise BlockGeneratorStopped(f"Cannot add data: the block generator of stream "
                                        f"{self.stream_id} has been stopped")

    def add_records(self, records: list) -> None:
        self.limiter.take(len(records), self._stop.is_set)
        with self._lock:
            self._refuse_if_closed()
            self._records.extend(records)

    def add_block_now(self, records: list, metadata: Any = None) -> None:
        """Make ``records`` a block of their own, now (a reliable store)."""
        self.limiter.take(len(records), self._stop.is_set)
        with self._lock:
            self._refuse_if_closed()
            if not records:
                return
            self._in_flight += 1
        try:
            self._emit(dump_records(records), len(records), swallow=False, metadata=metadata)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._idle.notify_all()

    def add_text(self, text: bytes, lines: int, invalid_utf8_lines: int = 0,
                 dropped_lines: int = 0) -> None:
        """Complete newline-terminated lines, as received; how many of them hold
        invalid UTF-8, and how many lines were dropped before them."""
        self.limiter.take(lines, self._stop.is_set)
        with self._lock:
            self._refuse_if_closed()
            self._text += text
            self._text_lines += lines
            for key, count in ((INVALID_UTF8_KEY, invalid_utf8_lines), (DROPPED_LINES_KEY, dropped_lines)):
                if count:
                    self._notes[key] = self._notes.get(key, 0) + count

    def _run(self) -> None:
        next_cut = time.monotonic() + self.interval_s
        while not self._stop.wait(max(0.0, next_cut - time.monotonic())):
            next_cut += self.interval_s
            self.cut()

    def cut(self) -> None:
        with self._lock:
            records, self._records = self._records, []
            text, self._text = self._text, bytearray()
            lines, self._text_lines = self._text_lines, 0
            notes, self._notes = self._notes, {}
        if notes:  # before the blocks: a batch that gets them gets their counts too
            self.on_notes(self.stream_id, notes)
        if records:
            pieces = max(1, min(self.spread(), len(records) // SPREAD_MIN_RECORDS))
            step = -(-len(records) // pieces)
            for i in range(0, len(records), step):
                part = records[i:i + step]
                self._emit(dump_records(part), len(part))
        if text:
            pieces = max(1, min(self.spread(), len(text) // SPREAD_MIN_BYTES))
            if pieces == 1:
                self._emit(dump_lines(bytes(text)), lines)
            else:
                for part in split_text(bytes(text), pieces):
                    self._emit(dump_lines(part), part.count(b"\n"))

    def _emit(self, data: bytes, count: int, swallow: bool = True, metadata: Any = None) -> None:
        block = ReceivedBlock(new_block_id(self.stream_id), self.stream_id, count, data, metadata)
        try:
            self.on_block(block)
        except Exception:  # noqa: BLE001 - losing the timer thread would lose all later data
            if not swallow:
                raise
            log.exception("could not hand over block %s", block.block_id)

    def stop(self) -> None:
        """Refuse further data, then stop cutting on a timer after one last cut of
        what is buffered (and of blocks being handed over right now)."""
        with self._lock:
            self._closed = True
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=30.0)
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self.cut()


@dataclass(frozen=True)
class BlockInfo:
    block_id: str
    num_records: int
