"""``DataFrame.show()``: Spark's text table, character for character.

Values are rendered as Spark casts them to strings (``NULL``, ``1.0E7``,
``[1, NULL]``, ``{a -> 1}``, ``[01 02]`` for binary), cells are cut to
``truncate`` characters (``abc...``), right-aligned when truncating and
left-aligned when not, and wide (East Asian) characters count twice.
"""
from __future__ import annotations

import datetime
import decimal
import unicodedata
from typing import Any

from . import types as T
from .analyzer import lit_text


def cell(value: Any, dtype: T.DataType) -> str:
    """One value as Spark's ``show`` prints it."""
    if value is None or isinstance(value, (bool, float)):
        return lit_text(value, dtype)  # as in a column name
    if isinstance(value, decimal.Decimal):
        scale = dtype.scale if isinstance(dtype, T.DecimalType) else None
        if scale is not None:
            return f"{value:.{scale}f}"
        return format(value, "f")
    if isinstance(value, datetime.datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        if value.microsecond:
            text += ("." + f"{value.microsecond:06d}").rstrip("0")
        return text
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return _interval(value)
    if isinstance(value, (bytes, bytearray)):
        return "[" + " ".join(f"{b:02X}" for b in value) + "]"
    if isinstance(value, dict):
        kt = dtype.keyType if isinstance(dtype, T.MapType) else None
        vt = dtype.valueType if isinstance(dtype, T.MapType) else None
        return "{" + ", ".join(f"{cell(k, kt)} -> {cell(v, vt)}" for k, v in value.items()) + "}"
    if isinstance(value, T.Row) or (isinstance(value, tuple) and isinstance(dtype, T.StructType)):
        fields = dtype.fields if isinstance(dtype, T.StructType) else [None] * len(value)
        return "{" + ", ".join(cell(v, f.dataType if f is not None else None)
                               for v, f in zip(value, fields)) + "}"
    if isinstance(value, (list, tuple)):
        et = dtype.elementType if isinstance(dtype, T.ArrayType) else None
        return "[" + ", ".join(cell(v, et) for v in value) + "]"
    return str(value)


def _interval(value: datetime.timedelta) -> str:
    total = value.total_seconds()
    days, rest = divmod(abs(total), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    sign = "-" if total < 0 else ""
    return f"INTERVAL '{sign}{int(days)} {int(hours):02d}:{int(minutes):02d}:{seconds:09.6f}' DAY TO SECOND"


def width(text: str) -> int:
    """Display width: full-width characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _cut(text: str, truncate: int) -> str:
    if truncate > 0 and len(text) > truncate:
        return text[:truncate] if truncate < 4 else text[: truncate - 3] + "..."
    return text


def _pad(text: str, size: int, right_align: bool) -> str:
    fill = " " * max(0, size - width(text))
    return fill + text if right_align else text + fill


def show_string(names: list[str], types: list[T.DataType], rows: list, n: int, truncate: int,
                vertical: bool) -> str:
    """The text ``show`` prints: ``rows`` holds up to n + 1 rows (one more says "only showing")."""
    more = len(rows) > n
    rows = rows[:n]
    cells = [list(names)]  # Spark does not cut the header
    for row in rows:
        cells.append([_cut(cell(v, t), truncate) for v, t in zip(row, types)])
    if vertical:
        return _vertical(cells, n, more)
    sizes = [3] * len(names)
    for line in cells:
        for i, text in enumerate(line):
            sizes[i] = max(sizes[i], width(text))
    sep = "+" + "+".join("-" * s for s in sizes) + "+\n"
    right = truncate > 0
    out = [sep]
    out.append("|" + "|".join(_pad(t, s, right) for t, s in zip(cells[0], sizes)) + "|\n")
    out.append(sep)
    for line in cells[1:]:
        out.append("|" + "|".join(_pad(t, s, right) for t, s in zip(line, sizes)) + "|\n")
    out.append(sep)
    if more:
        out.append(f"only showing top {n} {'row' if n == 1 else 'rows'}")
    return "".join(out)


def _vertical(cells: list[list[str]], n: int, more: bool) -> str:
    header, rows = cells[0], cells[1:]
    if not rows:
        return "(0 rows)"
    name_width = max((width(h) for h in header), default=0)
    data_width = max((width(v) for line in rows for v in line), default=0)
    out = []
    for i, line in enumerate(rows):
        title = f"-RECORD {i}"
        total = name_width + data_width + 5
        out.append(title + "-" * max(0, total - len(title)) + "\n")
        for h, v in zip(header, line):
            out.append(" " + _pad(h, name_width, False) + " | " + _pad(v, data_width, False) + " \n")
    if more:
        out.append(f"only showing top {n} {'row' if n == 1 else 'rows'}")
    return "".join(out)
