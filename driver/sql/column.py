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


# Column's methods that only apply one SQL function or order are made from these
# (as PySpark makes them), so each reads as one line in the class.

def _bin_op(op: str, doc: str | None = None, swap: bool = False):
    """A method ``op(self, other)`` (``op(other, self)`` when ``swap``)."""
    def method(self: "Column", other: Any) -> "Column":
        return self._bin(op, other, swap)
    method.__doc__ = doc
    return method


def _unary_op(name: str, doc: str | None = None):
    """A method ``name(self)``."""
    def method(self: "Column") -> "Column":
        return Column(UnresolvedFunction(name, [self._expr]))
    method.__doc__ = doc
    return method


def _sort_op(ascending: bool, nulls_first: bool | None = None):
    """A method ordering by this column (nulls first ascending, last descending, by default)."""
    def method(self: "Column") -> "Column":
        return Column(SortOrder(self._expr, ascending, nulls_first))
    method.__doc__ = (f"Sort {'ascending' if ascending else 'descending'}"
                      + ("" if nulls_first is None else
                         f", nulls {'first' if nulls_first else 'last'}") + ".")
    return method


class Column:
    """A column expression: built with ``col``/``lit``/operators, resolved when used."""

    __slots__ = ("_expr",)

    def __init__(self, expr: Expr):
        self._expr = expr

    # -- operators ------------------------------------------------------------------------
    def _bin(self, op: str, other: Any, swap: bool = False) -> "Column":
        a, b = self._expr, _expr(other)
        return Column(UnresolvedFunction(op, [b, a] if swap else [a, b]))

    __add__, __radd__ = _bin_op("+"), _bin_op("+", swap=True)
    __sub__, __rsub__ = _bin_op("-"), _bin_op("-", swap=True)
    __mul__, __rmul__ = _bin_op("*"), _bin_op("*", swap=True)
    __truediv__, __rtruediv__ = _bin_op("/"), _bin_op("/", swap=True)
    __mod__, __rmod__ = _bin_op("%"), _bin_op("%", swap=True)
    __pow__, __rpow__ = _bin_op("pow"), _bin_op("pow", swap=True)
    __eq__ = _bin_op("=")  # type: ignore[assignment]
    __ne__ = _bin_op("!=")  # type: ignore[assignment]
    __lt__, __le__, __gt__, __ge__ = _bin_op("<"), _bin_op("<="), _bin_op(">"), _bin_op(">=")
    __and__, __rand__ = _bin_op("and"), _bin_op("and", swap=True)
    __or__, __ror__ = _bin_op("or"), _bin_op("or", swap=True)
    __invert__ = _unary_op("not")
    __neg__ = _unary_op("negative")

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

    eqNullSafe = _bin_op("<=>", "Equality that treats two NULLs as equal (``<=>``).")

    # -- predicates -------------------------------------------------------------------------
    isNull = _unary_op("isnull", "True where the value is NULL.")
    isNotNull = _unary_op("isnotnull", "True where the value is not NULL.")
    isNaN = _unary_op("isnan", "True where the value is NaN.")

    def isin(self, *values: Any) -> "Column":
        if len(values) == 1 and isinstance(values[0], (list, set, tuple)):
            values = tuple(values[0])
        return Column(UnresolvedFunction("in", [self._expr] + [_expr(v) for v in values]))

    def between(self, lower: Any, upper: Any) -> "Column":
        return (self >= lower) & (self <= upper)

    like = _bin_op("like", "SQL LIKE: ``_`` matches one character, ``%`` any run.")
    ilike = _bin_op("ilike", "LIKE, ignoring case.")
    rlike = _bin_op("rlike", "True where a regular expression matches part of the value.")
    startswith = _bin_op("startswith", "True where the string starts with ``other``.")
    endswith = _bin_op("endswith", "True where the string ends with ``other``.")
    contains = _bin_op("contains", "True where the string contains ``other``.")

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

    asc = _sort_op(True)
    asc_nulls_first = _sort_op(True, True)
    asc_nulls_last = _sort_op(True, False)
    desc = _sort_op(False)
    desc_nulls_first = _sort_op(False, True)
    desc_nulls_last = _sort_op(False, False)

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
