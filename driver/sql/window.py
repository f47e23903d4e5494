"""PySpark's ``pyspark.sql.window``: ``Window.partitionBy(...).orderBy(...)`` specs."""
from __future__ import annotations

import sys
from typing import Any

from .column import _col_or_name
from .expressions import SortOrder, WindowSpecDef

_PRECEDING_LIMIT = -(1 << 63) + 1
_FOLLOWING_LIMIT = (1 << 63) - 1


def _cols(cols: tuple) -> list:
    if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
        cols = tuple(cols[0])
    return [_col_or_name(c) for c in cols]


def _orders(cols: tuple) -> list[SortOrder]:
    out = []
    for e in _cols(cols):
        out.append(e if isinstance(e, SortOrder) else SortOrder(e, True))
    return out


def _bound(value: int, start: bool) -> Any:
    if value <= Window.unboundedPreceding or value <= _PRECEDING_LIMIT:
        return "unbounded_preceding"
    if value >= Window.unboundedFollowing or value >= _FOLLOWING_LIMIT:
        return "unbounded_following"
    if value == 0:
        return "current_row"
    return int(value)


class WindowSpec:
    """Partitioning, ordering and frame of a window function."""

    def __init__(self, partition: list | None = None, order: list | None = None,
                 frame: tuple | None = None):
        self._partition = partition or []
        self._order = order or []
        self._frame = frame

    def partitionBy(self, *cols: Any) -> "WindowSpec":
        return WindowSpec(_cols(cols), self._order, self._frame)

    def orderBy(self, *cols: Any) -> "WindowSpec":
        return WindowSpec(self._partition, _orders(cols), self._frame)

    def rowsBetween(self, start: int, end: int) -> "WindowSpec":
        return WindowSpec(self._partition, self._order, ("rows", _bound(start, True), _bound(end, False)))

    def rangeBetween(self, start: int, end: int) -> "WindowSpec":
        return WindowSpec(self._partition, self._order, ("range", _bound(start, True), _bound(end, False)))

    def _to_def(self) -> WindowSpecDef:
        return WindowSpecDef(self._partition, self._order, self._frame)


class Window:
    """Builds ``WindowSpec``s: ``Window.partitionBy("k").orderBy("t")``."""

    unboundedPreceding: int = -sys.maxsize - 1
    unboundedFollowing: int = sys.maxsize
    currentRow: int = 0

    @staticmethod
    def partitionBy(*cols: Any) -> WindowSpec:
        return WindowSpec().partitionBy(*cols)

    @staticmethod
    def orderBy(*cols: Any) -> WindowSpec:
        return WindowSpec().orderBy(*cols)

    @staticmethod
    def rowsBetween(start: int, end: int) -> WindowSpec:
        return WindowSpec().rowsBetween(start, end)

    @staticmethod
    def rangeBetween(start: int, end: int) -> WindowSpec:
        return WindowSpec().rangeBetween(start, end)

