"""Accumulators: variables tasks can only add to, read on the driver.

A closure that captures an accumulator carries its id, zero and param. On an
executor the restored copy collects the task's additions; after each
successful task the executor sends the additions and the driver merges them
once per task (a retried task's additions are not counted twice).
"""
from __future__ import annotations

import threading
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_executor_accumulators: dict[int, "Accumulator"] = {}
_touched: set[int] = set()
_lock = threading.Lock()


class AccumulatorParam(Generic[T]):
    """How to make a zero and add two values (PySpark's ``AccumulatorParam``)."""

    def zero(self, value: T) -> T:
        raise NotImplementedError

    def addInPlace(self, value1: T, value2: T) -> T:
        raise NotImplementedError


class AddingAccumulatorParam(AccumulatorParam):
    def __init__(self, zero_value: Any):
        self.zero_value = zero_value

    def zero(self, value: Any) -> Any:
        return self.zero_value

    def addInPlace(self, value1: Any, value2: Any) -> Any:
        value1 += value2
        return value1


INT_ACCUMULATOR_PARAM = AddingAccumulatorParam(0)
FLOAT_ACCUMULATOR_PARAM = AddingAccumulatorParam(0.0)
COMPLEX_ACCUMULATOR_PARAM = AddingAccumulatorParam(0.0j)


_DEFAULT_PARAMS = ((int, INT_ACCUMULATOR_PARAM), (float, FLOAT_ACCUMULATOR_PARAM),
                   (complex, COMPLEX_ACCUMULATOR_PARAM))


def default_param(value: Any) -> AccumulatorParam:
    if not isinstance(value, bool):
        for kind, param in _DEFAULT_PARAMS:
            if isinstance(value, kind):
                return param
    raise TypeError(f"no default accumulator param for {type(value).__name__}; "
                    "pass accum_param=AccumulatorParam subclass")


class Accumulator(Generic[T]):
    """A shared variable tasks add to with ``add`` or ``+=``."""

    def __init__(self, aid: int, value: T, accum_param: AccumulatorParam, _on_driver: bool = True):
        self.aid = aid
        self.accum_param = accum_param
        self._value = value
        self._on_driver = _on_driver

    @property
    def value(self) -> T:
        if not self._on_driver:
            raise RuntimeError("Accumulator.value cannot be accessed inside tasks")
        return self._value

    @value.setter
    def value(self, value: T) -> None:
        if not self._on_driver:
            raise RuntimeError("Accumulator.value cannot be accessed inside tasks")
        self._value = value

    def add(self, term: T) -> None:
        self._value = self.accum_param.addInPlace(self._value, term)
        if not self._on_driver:
            _touched.add(self.aid)

    def __iadd__(self, term: T) -> "Accumulator[T]":
        self.add(term)
        return self

    def merge_update(self, update: T) -> None:
        """Driver: fold one successful task's additions in."""
        with _lock:
            self._value = self.accum_param.addInPlace(self._value, update)

    def __reduce__(self):
        return (_restore, (self.aid, self.accum_param.zero(self._value), self.accum_param))

    def __str__(self) -> str:
        return str(self._value)

    def __repr__(self) -> str:
        return f"Accumulator<id={self.aid}, value={self._value}>"


def _restore(aid: int, zero: Any, param: AccumulatorParam) -> Accumulator:
    acc = Accumulator(aid, zero, param, _on_driver=False)
    with _lock:
        _executor_accumulators[aid] = acc
    return acc


def begin_task() -> None:
    """Executor: every restored accumulator starts the task at zero."""
    for acc in _executor_accumulators.values():
        acc._value = acc.accum_param.zero(acc._value)
    _touched.clear()


def task_updates() -> dict[int, Any]:
    """Executor: the additions the finished task made, by accumulator id."""
    return {aid: _executor_accumulators[aid]._value for aid in _touched}
