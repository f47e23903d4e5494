"""Mirrors the thread helpers of ``pyspark.util``: threads that inherit the
local properties (job group, job tags, description) of the thread that
starts them. A plain ``threading.Thread`` starts with none, as in PySpark.
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable

__all__ = ["InheritableThread", "inheritable_thread_target"]


def _active_context():
    from .context.spark_context import SparkContext
    return SparkContext._active_spark_context


def _snapshot() -> dict[str, str] | None:
    sc = _active_context()
    return sc._job_properties() if sc is not None else None


def _install(properties: dict[str, str] | None) -> None:
    sc = _active_context()
    if sc is not None and properties is not None:
        sc._set_thread_properties(properties)


def inheritable_thread_target(f: Callable) -> Callable:
    """Wrap a thread target so that it runs with the local properties the caller
    has now (when this is called, not when the thread starts)."""
    properties = _snapshot()

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        _install(properties)
        return f(*args, **kwargs)
    return wrapped


class InheritableThread(threading.Thread):
    """A thread that starts with a copy of the local properties of the thread
    that calls ``start()``."""

    def __init__(self, target: Callable, *args: Any, session: Any = None, **kwargs: Any):
        def with_properties(*a: Any, **k: Any) -> Any:
            _install(self._properties)
            return target(*a, **k)

        self._properties: dict[str, str] | None = None
        super().__init__(*args, target=with_properties, **kwargs)

    def start(self) -> None:
        self._properties = _snapshot()
        super().start()
