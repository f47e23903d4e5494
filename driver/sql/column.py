"""``Column``: an expression in the DataFrame API (PySpark's ``pyspark.sql.Column``)."""
from __future__ import annotations

from typing import Any

from . import types as T
from .analyzer import split_name
from .errors import PySparkTypeError, PySparkValueError
from .expressions import (Alias, CaseWhen, Cast, Expr, Lit, SortOrder, UnresolvedAttr,
                          UnresolvedFunction, WindowExpr)


def _expr(value: Any) -> Expr:
    """A Column, or a Python value as a literal."""
    if isinstance(value, Column):
        return value._expr
    if isinstance(value, Expr):
        return value
    return Lit(value)


def _col_or_name(value: Any) -> Expr:
    """A Column, or a column given by name."""
    if isinstance(value, Column):
        return value._expr
    if isinstance(value, str):
        return UnresolvedAttr(split_name(value)) if value != "*" else __import__(
            "sluicegate.driver.sql.expressions", fromlist=["Star"]).Star()
    raise PySparkTypeError(f"[NOT_COLUMN_OR_STR] Argument `col` should be a Column or str, got "
                           f"{type(value).__name__}.")


def _call(name: str, *args: Any, **options: Any) -> "Column":
    return Column(UnresolvedFunction(name, [_expr(a) for a in args], options=options))


class Column:
    """A column expression: built with ``col``/``lit``/operators, resolved when used."""

    __slots__ = ("_expr",)

    def __init__(self, expr: Expr):
        self._expr = expr

    # -- operators ------------------------------------------------------------------------
    def _bin(self, op: str, other: Any, swap: bool = False) -> "Column":
        a, b = self._expr, _expr(other)
        return Column(UnresolvedFunction(op, [b, a] if swap else [a, b]))

    def __add__(self, o): return self._bin("+", o)
    def __radd__(self, o): return self._bin("+", o, True)
    def __sub__(self, o): return self._bin("-", o)
    def __rsub__(self, o): return self._bin("-", o, True)
    def __mul__(self, o): return self._bin("*", o)
    def __rmul__(self, o): return self._bin("*", o, True)
    def __truediv__(self, o): return self._bin("/", o)
    def __rtruediv__(self, o): return self._bin("/", o, True)
    def __mod__(self, o): return self._bin("%", o)
    def __rmod__(self, o): return self._bin("%", o, True)
    def __pow__(self, o): return self._bin("pow", o)
    def __rpow__(self, o): return self._bin("pow", o, True)
    def __eq__(self, o): return self._bin("=", o)  # type: ignore[override]
    def __ne__(self, o): return self._bin("!=", o)  # type: ignore[override]
    def __lt__(self, o): return self._bin("<", o)
    def __le__(self, o): return self._bin("<=", o)
    def __gt__(self, o): return self._bin(">", o)
    def __ge__(self, o): return self._bin(">=", o)
    def __and__(self, o): return self._bin("and", o)
    def __rand__(self, o): return self._bin("and", o, True)
    def __or__(self, o): return self._bin("or", o)
    def __ror__(self, o): return self._bin("or", o, True)
    def __invert__(self): return Column(UnresolvedFunction("not", [self._expr]))
    def __neg__(self): return Column(UnresolvedFunction("negative", [self._expr]))

    def __bool__(self):
        raise PySparkValueError(
            "[CANNOT_CONVERT_COLUMN_INTO_BOOL] Cannot convert column into bool: please use '&' for "
            "'and', '|' for 'or', '~' for 'not' when building DataFrame boolean expressions.")

    __hash__ = None  # type: ignore[assignment]

    def __iter__(self):
        raise PySparkTypeError("[NOT_ITERABLE] Column is not iterable.")

    def __contains__(self, item):
        raise PySparkValueError("[CANNOT_APPLY_IN_FOR_COLUMN] Cannot apply 'in' operator against "
                                "a column: please use 'contains' in a string column or "
                                "'array_contains' function for an array column.")

    def eqNullSafe(self, other: Any) -> "Column":
        return self._bin("<=>", other)

    # -- predicates -------------------------------------------------------------------------
    def isNull(self) -> "Column":
        return Column(UnresolvedFunction("isnull", [self._expr]))

    def isNotNull(self) -> "Column":
        return Column(UnresolvedFunction("isnotnull", [self._expr]))

    def isNaN(self) -> "Column":
        return Column(UnresolvedFunction("isnan", [self._expr]))

    def isin(self, *values: Any) -> "Column":
        if len(values) == 1 and isinstance(values[0], (list, set, tuple)):
            values = tuple(values[0])
        return Column(UnresolvedFunction("in", [self._expr] + [_expr(v) for v in values]))

    def between(self, lower: Any, upper: Any) -> "Column":
        return (self >= lower) & (self <= upper)

    def like(self, other: str) -> "Column":
        return self._bin("like", other)

    def ilike(self, other: str) -> "Column":
        return self._bin("ilike", other)

    def rlike(self, other: str) -> "Column":
        return self._bin("rlike", other)

    def startswith(self, other: Any) -> "Column":
        return self._bin("startswith", other)

    def endswith(self, other: Any) -> "Column":
        return self._bin("endswith", other)

    def contains(self, other: Any) -> "Column":
        return self._bin("contains", other)

    def substr(self, startPos: Any, length: Any) -> "Column":
        return Column(UnresolvedFunction("substr", [self._expr, _expr(startPos), _expr(length)]))

    # -- naming, types, order -------------------------------------------------------------------
    def alias(self, *alias: str, **kwargs: Any) -> "Column":
        if len(alias) != 1:
            raise PySparkValueError("alias of several names is only for generators; give one name")
        return Column(Alias(self._expr, alias[0]))

    name = alias

    def cast(self, dataType: T.DataType | str) -> "Column":
        if isinstance(dataType, str):
            dataType = T.parse_type(dataType)
        if not isinstance(dataType, T.DataType):
            raise PySparkTypeError(f"[NOT_DATATYPE_OR_STR] Argument `dataType` should be a DataType "
                                   f"or str, got {type(dataType).__name__}.")
        return Column(Cast(self._expr, dataType))

    astype = cast

    def try_cast(self, dataType: T.DataType | str) -> "Column":
        if isinstance(dataType, str):
            dataType = T.parse_type(dataType)
        return Column(Cast(self._expr, dataType, safe=True))

    def asc(self) -> "Column":
        return Column(SortOrder(self._expr, True))

    def asc_nulls_first(self) -> "Column":
        return Column(SortOrder(self._expr, True, True))

    def asc_nulls_last(self) -> "Column":
        return Column(SortOrder(self._expr, True, False))

    def desc(self) -> "Column":
        return Column(SortOrder(self._expr, False))

    def desc_nulls_first(self) -> "Column":
        return Column(SortOrder(self._expr, False, True))

    def desc_nulls_last(self) -> "Column":
        return Column(SortOrder(self._expr, False, False))

    # -- structure ------------------------------------------------------------------------------
    def getItem(self, key: Any) -> "Column":
        return Column(UnresolvedFunction("get", [self._expr, _expr(key)]))

    def getField(self, name: str) -> "Column":
        return Column(UnresolvedFunction("get_field", [self._expr], options={"field": name}))

    def __getitem__(self, key: Any) -> "Column":
        if isinstance(key, slice):
            return self.substr(key.start, key.stop)
        if isinstance(key, str):
            return self.getField(key)
        return self.getItem(key)

    def __getattr__(self, item: str) -> "Column":
        if item.startswith("__"):
            raise AttributeError(item)
        return self.getField(item)

    # -- CASE WHEN ------------------------------------------------------------------------------
    def when(self, condition: "Column", value: Any) -> "Column":
        e = self._expr
        if not isinstance(e, CaseWhen) or e.default is not None:
            raise PySparkValueError("[INVALID_WHEN_USAGE] when() can only be applied on a Column "
                                    "previously generated by when() function, and cannot be "
                                    "applied once otherwise() is applied.")
        return Column(CaseWhen(e.branches + [(_expr(condition), _expr(value))]))

    def otherwise(self, value: Any) -> "Column":
        e = self._expr
        if not isinstance(e, CaseWhen) or e.default is not None:
            raise PySparkValueError("[INVALID_WHEN_USAGE] otherwise() can only be applied on a "
                                    "Column previously generated by when() function, and cannot "
                                    "be applied once otherwise() is applied.")
        return Column(CaseWhen(e.branches, _expr(value)))

    # -- windows --------------------------------------------------------------------------------
    def over(self, window: Any) -> "Column":
        from .window import WindowSpec
        spec = window if isinstance(window, WindowSpec) else WindowSpec()
        return Column(WindowExpr(self._expr, spec._to_def()))

    def __repr__(self) -> str:
        from .analyzer import pretty
        try:
            return f"Column<'{pretty(self._expr)}'>"
        except Exception:  # noqa: BLE001 - repr must not fail
            return f"Column<{self._expr!r}>"
