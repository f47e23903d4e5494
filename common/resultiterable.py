"""ResultIterable: the grouped values of groupByKey and cogroup, as in PySpark."""
from __future__ import annotations

from collections.abc import Iterable


class ResultIterable(Iterable):
    """A read-only collection of the values grouped under one key."""

    __slots__ = ("data", "index", "maxindex")

    def __init__(self, data: list):
        self.data = data
        self.index = None
        self.maxindex = len(data)

    def __iter__(self):
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __eq__(self, other) -> bool:
        if isinstance(other, ResultIterable):
            return self.data == other.data
        return NotImplemented

    def __repr__(self) -> str:
        return f"ResultIterable({self.data!r})"

    def __reduce__(self):
        return (ResultIterable, (self.data,))
