"""What a receiver may store right now: a bounded buffer and a rate limit.

Every ``store()`` (and every chunk the socket receiver reads) passes through
its receiver's ``ReceiverIntake`` before it is buffered (the block generator
calls ``take`` first). ``take`` returns when

* the receiver's data that no batch has finished with -- blocks handed on
  and not yet processed, plus what waits for the next cut -- is below
  ``spark.sluicegate.receiver.maxBufferBytes``; otherwise the caller waits.
  So a source faster than the job, or a stalled output, holds the receiver
  (the socket receiver stops reading, so TCP pushes back on the sender)
  instead of growing the driver. Nothing already stored is ever dropped.
* the rate limit allows it: ``spark.streaming.receiver.maxRate``, lowered by
  the backpressure controller (``set_rate``; never above ``maxRate``).

The rate is a token bucket that holds at most ``burst_s`` seconds of records,
and a large ``store(list)`` goes through whole and then owes the time it used
(so the long-run rate holds however data is grouped). A wait is always
cut short when the receiver stops.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Callable

# A record waiting for the next cut costs about this much more in the driver's
# memory than in its serialized block (the Python object and the list slot).
RECORD_OVERHEAD_BYTES = 56
WAIT_SLICE_S = 0.1
CHECK_EVERY_RECORDS = 512


class ReceiverIntake:
    """One receiver's gate: buffer room first, then the rate."""

    def __init__(self, stream_id: int, max_rate: float, max_buffer_bytes: int,
                 burst_s: float = 1.0, buffered: Callable[[], tuple[int, int]] = lambda: (0, 0)):
        """``buffered()``: the records and text bytes waiting for the next cut."""
        self.stream_id = stream_id
        self.max_rate = float(max_rate) if max_rate and max_rate > 0 else 0.0
        self.max_buffer_bytes = max_buffer_bytes
        self.burst_s = max(0.05, burst_s)
        self.buffered = buffered
        self.rate = self.max_rate  # records/s now (0: no limit)
        self._allowance = 0.0
        self._last = time.monotonic()
        self._blocks: dict[str, int] = {}  # block id -> bytes, until its batch is done
        self.unprocessed_bytes = 0
        self._record_bytes = 16.0  # running estimate of a record's serialized size
        self._changed = threading.Condition()
        self.full_waits = 0  # times a store() had to wait for room
        self.full_wait_s = 0.0
        self.waiting = False
        self._unchecked = CHECK_EVERY_RECORDS  # records taken since the room was measured

    # -- the limit -----------------------------------------------------------------------
    def set_rate(self, rate: float | None) -> float:
        """Backpressure's new rate (records/s), capped by maxRate; returns the limit in
        force. ``None`` or <= 0 is ignored (as Spark's ``updateRate``)."""
        if rate is None or rate <= 0 or math.isnan(rate):
            return self.rate
        with self._changed:
            self.rate = min(rate, self.max_rate) if self.max_rate else float(rate)
            self._allowance = min(self._allowance, self.rate * self.burst_s)
            self._changed.notify_all()
        return self.rate

    @property
    def limit(self) -> float | None:
        return self.rate or None

    # -- the buffer ------------------------------------------------------------------------
    def block_stored(self, block_id: str, num_bytes: int, records: int) -> None:
        with self._changed:
            if block_id in self._blocks:
                return
            self._blocks[block_id] = num_bytes
            self.unprocessed_bytes += num_bytes
            if records > 0:
                self._record_bytes = 0.8 * self._record_bytes + 0.2 * (num_bytes / records)

    def release(self, block_ids) -> None:
        """These blocks' batch has finished: their room is free again."""
        with self._changed:
            for block_id in block_ids:
                self.unprocessed_bytes -= self._blocks.pop(block_id, 0)
            self._changed.notify_all()

    def buffer_bytes(self) -> int:
        """Bytes held for this receiver: unprocessed blocks and what waits for the cut."""
        records, text_bytes = self.buffered()
        return int(self.unprocessed_bytes + text_bytes
                   + records * (self._record_bytes + RECORD_OVERHEAD_BYTES))

    def has_room(self) -> bool:
        return self.buffer_bytes() < self.max_buffer_bytes

    # -- the caller's wait ---------------------------------------------------------------------
    def take(self, count: int, stopped: Callable[[], bool]) -> None:
        """Wait until ``count`` records may be buffered (or the receiver stops)."""
        # The room is measured every CHECK_EVERY_RECORDS records, so that a receiver storing
        # one record at a time pays next to nothing here (it overshoots by at most that many).
        self._unchecked += count
        if self._unchecked >= CHECK_EVERY_RECORDS:
            self._unchecked = 0
            self._wait_for_room(stopped)
        if self.rate > 0:
            self._wait_for_rate(count, stopped)

    def _wait_for_room(self, stopped: Callable[[], bool]) -> None:
        if self.has_room():
            return
        started = time.monotonic()
        with self._changed:
            self.full_waits += 1
            self.waiting = True
            try:
                while not self.has_room() and not stopped():
                    self._changed.wait(WAIT_SLICE_S)
            finally:
                self.waiting = False
                self.full_wait_s += time.monotonic() - started

    def _wait_for_rate(self, count: int, stopped: Callable[[], bool]) -> None:
        while True:
            with self._changed:
                rate = self.rate
                if rate <= 0:
                    return
                now = time.monotonic()
                burst = rate * self.burst_s
                self._allowance = min(burst, self._allowance + (now - self._last) * rate)
                self._last = now
                need = min(float(count), burst)
                if self._allowance >= need:
                    self._allowance -= count  # a big chunk goes through and is owed
                    return
                wait_s = (need - self._allowance) / rate
            if stopped():
                return
            with self._changed:  # a new rate wakes the wait
                self._changed.wait(min(wait_s, WAIT_SLICE_S))
