"""Waiting for a condition in tests: poll, never sleep-and-hope."""
from __future__ import annotations

import time


def wait_until(predicate, timeout_s: float, what: str = "a condition", interval_s: float = 0.05,
               tolerate: tuple[type[BaseException], ...] = ()):
    """Poll ``predicate`` until it returns something truthy and return that value.

    On timeout raise an AssertionError naming ``what``. Exceptions of the types
    in ``tolerate`` count as "not yet" (and the last one is reported).
    """
    deadline = time.monotonic() + timeout_s
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except tolerate as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}"
                                 + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(interval_s)
