"""Closures by id: each is shipped to an executor once and unpickled once.

The driver names every user function by an id and attaches the closure's
bytes only when it has not yet sent them to this executor. The cache is
bounded; a task naming an evicted id fails with ``MissingFunction`` and the
driver relaunches it with the bytes attached.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from sluicegate.common.serializer import load_function

MAX_CACHED_FUNCTIONS = 4096


class MissingFunction(Exception):
    def __init__(self, function_id: int):
        super().__init__(f"function {function_id} is not cached on this executor")
        self.function_id = function_id


class FunctionCache:
    def __init__(self, capacity: int = MAX_CACHED_FUNCTIONS):
        self._capacity = capacity
        self._functions: OrderedDict[int, Callable] = OrderedDict()

    def add(self, function_id: int, data: bytes) -> None:
        if function_id in self._functions:
            return
        self._functions[function_id] = load_function(data)
        while len(self._functions) > self._capacity:
            self._functions.popitem(last=False)

    def get(self, function_id: int) -> Callable:
        try:
            fn = self._functions[function_id]
        except KeyError:
            raise MissingFunction(function_id) from None
        self._functions.move_to_end(function_id)
        return fn

    def __contains__(self, function_id: int) -> bool:
        return function_id in self._functions

    def __len__(self) -> int:
        return len(self._functions)
