"""A ``StopIteration`` raised by a user function must fail its task, never end a partition.

Python's iterators stop at the first ``StopIteration``, so one raised inside
a function given to ``map`` looks exactly like the end of the data: the rest
of the partition would be dropped without a word. PySpark turns it into an
error (``STOP_ITERATION_OCCURRED``); so do we, with the same message and the
user's code named. Executors report a task that fails this way with it;
``fail_on_stopiteration`` is PySpark's per-call wrapper, for a user function
called a few times rather than per record (a final merge on the driver).
"""
from __future__ import annotations

import functools
import reprlib
import traceback
from pathlib import Path
from typing import Any, Callable

MESSAGE = "[STOP_ITERATION_OCCURRED] Caught StopIteration thrown from user's code; failing the task"
"""PySpark's message for this error (its ``STOP_ITERATION_OCCURRED`` condition)."""

_GENERATOR_STOP = "raised StopIteration"  # PEP 479: "generator raised StopIteration"


class UserCodeStopIteration(RuntimeError):
    """A user function raised ``StopIteration`` (PySpark's ``STOP_ITERATION_OCCURRED``).

    It is a ``RuntimeError``, so no loop mistakes it for the end of the data.
    """


def describe_function(fn: Any) -> str:
    """``name (file.py:line)`` of a user function, looking through our own wrappers
    (``keyBy``'s, ``foreach``'s, ``functools.partial``)."""
    for _ in range(4):
        if isinstance(fn, functools.partial):
            fn = fn.func
        elif type(fn).__module__ == __package__ + ".taskfuncs" and callable(getattr(fn, "fn", None)):
            fn = fn.fn
        else:
            break
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    code = getattr(fn, "__code__", None)
    if code is None:
        code = getattr(getattr(type(fn), "__call__", None), "__code__", None)
    if code is not None:
        return f"{name} ({Path(code.co_filename).name}:{code.co_firstlineno})"
    return name


def raised_where(exc: BaseException) -> str:
    """``func at file.py:line``: the innermost frame ``exc`` passed through, or ''."""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    if not frames:
        return ""
    last = frames[-1]
    return f"{last.name} at {Path(last.filename).name}:{last.lineno}"


def message(exc: BaseException | None = None, detail: str = "") -> str:
    """PySpark's message, then ``str(exc)`` and what we know about where it was raised."""
    said = str(exc) if exc is not None else ""
    if not detail:
        return f"{MESSAGE}: {said}"
    return f"{MESSAGE}: {said} ({detail})" if said else f"{MESSAGE}: {detail}"


def is_user_stop(exc: BaseException) -> bool:
    """Did user code end with ``StopIteration`` escaping it (directly, or as the
    ``RuntimeError`` a generator turns it into)?"""
    if isinstance(exc, (StopIteration, UserCodeStopIteration)):
        return True
    return (isinstance(exc, RuntimeError) and isinstance(exc.__cause__, StopIteration)
            and _GENERATOR_STOP in str(exc))


def as_task_error(exc: BaseException) -> BaseException:
    """The error a task reports for ``exc``: a ``StopIteration`` that escaped user
    code becomes a ``UserCodeStopIteration`` caused by it; anything else is kept."""
    if isinstance(exc, UserCodeStopIteration) or not is_user_stop(exc):
        return exc
    stop = exc if isinstance(exc, StopIteration) else exc.__cause__
    where = raised_where(stop)
    error = UserCodeStopIteration(message(stop, f"raised in {where}" if where else ""))
    error.__cause__ = exc
    return error


def raising_from(stop: StopIteration, what: str, fn: Any, record: Any) -> UserCodeStopIteration:
    """The error for ``stop``, raised by ``fn`` (given to ``what``) on ``record``."""
    where = raised_where(stop)
    detail = f"the function given to {what}, {describe_function(fn)}, raised it"
    if where:
        detail += f" in {where}"
    detail += f" on the record {reprlib.repr(record)}"
    error = UserCodeStopIteration(message(stop, detail))
    error.__cause__ = stop
    return error


def fail_on_stopiteration(fn: Callable) -> Callable:
    """``fn``, raising ``UserCodeStopIteration`` where it would raise ``StopIteration``
    (PySpark's ``fail_on_stopiteration``; for the few calls not made per record)."""

    def checked(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StopIteration as exc:
            where = raised_where(exc)
            raise UserCodeStopIteration(
                message(exc, f"raised by {describe_function(fn)}"
                        + (f" in {where}" if where else ""))) from exc

    return checked
