"""Clocks for the streaming job generator, in epoch milliseconds.

The system clock is wall time. A manual clock only moves when told, so a
test can advance it one batch at a time and get deterministic batches; it is
passed to ``StreamingContext`` as a constructor argument, not chosen by name
in configuration.
"""
from __future__ import annotations

import threading
import time


class SystemClock:
    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def wait_until(self, target_ms: int, stop: threading.Event) -> bool:
        """Sleep until ``target_ms``; False if ``stop`` was set first."""
        while not stop.is_set():
            remaining = (target_ms - time.time() * 1000) / 1000.0
            if remaining <= 0:
                return True
            stop.wait(min(remaining, 0.5))
        return False


class ManualClock:
    def __init__(self, start_ms: int = 0):
        self._now = start_ms
        self._changed = threading.Condition()

    def now_ms(self) -> int:
        with self._changed:
            return self._now

    def set_ms(self, value_ms: int) -> None:
        with self._changed:
            self._now = value_ms
            self._changed.notify_all()

    def advance_ms(self, delta_ms: int) -> None:
        with self._changed:
            self._now += delta_ms
            self._changed.notify_all()

    def wait_until(self, target_ms: int, stop: threading.Event) -> bool:
        with self._changed:
            while self._now < target_ms:
                if stop.is_set():
                    return False
                self._changed.wait(0.05)
        return not stop.is_set()
