"""PySpark's ``pyspark.sql.functions``: building column expressions.

Every function returns a ``Column``; names, arguments and results follow
PySpark (``count("*")`` counts rows and is named ``count(1)``; ``split``
takes a regular expression; ``window`` buckets a timestamp into
``struct<start, end>``).
"""
from __future__ import annotations

import re
from typing import Any

from .column import Column, _call, _col_or_name, _expr
from .errors import PySparkTypeError, PySparkValueError
from .expressions import CaseWhen, Lit, SortOrder, UnresolvedFunction


def col(col: str) -> Column:
    """A column by name (``"word"``, ``"t.word"``, ``"*"``)."""
    return Column(_col_or_name(col))


column = col


def lit(col: Any) -> Column:
    """A literal value (a Column is returned as it is)."""
    if isinstance(col, Column):
        return col
    if isinstance(col, (list, tuple)):
        return array(*[lit(x) for x in col])
    return Column(Lit(col))


def expr(str: str) -> Column:  # noqa: A002 - PySpark's parameter name
    """A SQL expression string, parsed as Spark SQL (``expr("length(word) > 3")``)."""
    from .sql_frontend import parse_expression
    return Column(parse_expression(str))


def udf(f=None, returnType=None):
    """A Python function usable on columns (PySpark's ``udf``): ``udf(f, "int")`` or ``@udf("int")``."""
    from .udf import udf as make
    return make(f, returnType)


def broadcast(df):
    """Mark a DataFrame as small enough to broadcast in a join."""
    return df._with_broadcast_hint()


def _c(x: Any) -> Any:
    """A column argument: a Column, or a name."""
    return Column(_col_or_name(x)) if isinstance(x, str) else x


def _fn(name: str, *cols: Any, **options: Any) -> Column:
    return _call(name, *[_c(x) for x in cols], **options)


# -- conditionals and nulls --------------------------------------------------------------------

def when(condition: Column, value: Any) -> Column:
    if not isinstance(condition, Column):
        raise PySparkTypeError("[NOT_COLUMN] Argument `condition` should be a Column, got "
                               f"{type(condition).__name__}.")
    return Column(CaseWhen([(condition._expr, _expr(value))]))


def coalesce(*cols: Any) -> Column:
    return _fn("coalesce", *cols)


def isnull(col: Any) -> Column:
    return _fn("isnull", col)


def isnotnull(col: Any) -> Column:
    return _fn("isnotnull", col)


def isnan(col: Any) -> Column:
    return _fn("isnan", col)


def nvl(col1: Any, col2: Any) -> Column:
    return _fn("nvl", col1, col2)


ifnull = nvl


def greatest(*cols: Any) -> Column:
    return _fn("greatest", *cols)


def least(*cols: Any) -> Column:
    return _fn("least", *cols)


# -- aggregates ----------------------------------------------------------------------------------

def count(col: Any) -> Column:
    if isinstance(col, str) and col == "*":
        return _call("count", Lit(1))
    return _fn("count", col)


def countDistinct(col: Any, *cols: Any) -> Column:
    return Column(UnresolvedFunction("count", [_c(x)._expr for x in (col,) + cols], distinct=True))


count_distinct = countDistinct


def approx_count_distinct(col: Any, rsd: float | None = None) -> Column:
    return _fn("approx_count_distinct", col)


approxCountDistinct = approx_count_distinct


def sum(col: Any) -> Column:  # noqa: A001 - PySpark's name
    return _fn("sum", col)


def sum_distinct(col: Any) -> Column:
    return Column(UnresolvedFunction("sum", [_c(col)._expr], distinct=True))


sumDistinct = sum_distinct


def avg(col: Any) -> Column:
    return _fn("avg", col)


mean = avg


def min(col: Any) -> Column:  # noqa: A001
    return _fn("min", col)


def max(col: Any) -> Column:  # noqa: A001
    return _fn("max", col)


def first(col: Any, ignorenulls: bool = False) -> Column:
    return _fn("first", col, ignorenulls=ignorenulls)


def last(col: Any, ignorenulls: bool = False) -> Column:
    return _fn("last", col, ignorenulls=ignorenulls)


def any_value(col: Any) -> Column:
    return _fn("any_value", col)


def collect_list(col: Any) -> Column:
    return _fn("collect_list", col)


def collect_set(col: Any) -> Column:
    return _fn("collect_set", col)


def stddev(col: Any) -> Column:
    return _fn("stddev", col)


stddev_samp = stddev
std = stddev


def stddev_pop(col: Any) -> Column:
    return _fn("stddev_pop", col)


def variance(col: Any) -> Column:
    return _fn("variance", col)


var_samp = variance


def var_pop(col: Any) -> Column:
    return _fn("var_pop", col)


# -- window functions -------------------------------------------------------------------------

def row_number() -> Column:
    return _call("row_number")


def rank() -> Column:
    return _call("rank")


def dense_rank() -> Column:
    return _call("dense_rank")


def percent_rank() -> Column:
    return _call("percent_rank")


def cume_dist() -> Column:
    return _call("cume_dist")


def ntile(n: int) -> Column:
    return _call("ntile", Lit(int(n)))


def lag(col: Any, offset: int = 1, default: Any = None) -> Column:
    return _call("lag", _c(col), Lit(int(offset)), default)


def lead(col: Any, offset: int = 1, default: Any = None) -> Column:
    return _call("lead", _c(col), Lit(int(offset)), default)


# -- strings ---------------------------------------------------------------------------------------

def upper(col: Any) -> Column:
    return _fn("upper", col)


def lower(col: Any) -> Column:
    return _fn("lower", col)


def length(col: Any) -> Column:
    return _fn("length", col)


def trim(col: Any) -> Column:
    return _fn("trim", col)


def ltrim(col: Any) -> Column:
    return _fn("ltrim", col)


def rtrim(col: Any) -> Column:
    return _fn("rtrim", col)


def reverse(col: Any) -> Column:
    return _fn("reverse", col)


def substring(str: Any, pos: int, len: int) -> Column:  # noqa: A002
    return _call("substring", _c(str), Lit(pos), Lit(len))


def concat(*cols: Any) -> Column:
    return _fn("concat", *cols)


def concat_ws(sep: str, *cols: Any) -> Column:
    return _call("concat_ws", Lit(sep), *[_c(x) for x in cols])


def split(str: Any, pattern: str, limit: int = -1) -> Column:  # noqa: A002
    return _call("split", _c(str), Lit(pattern), Lit(limit))


def regexp_extract(str: Any, pattern: str, idx: int) -> Column:  # noqa: A002
    return _call("regexp_extract", _c(str), Lit(pattern), Lit(idx))


def regexp_replace(string: Any, pattern: Any, replacement: Any) -> Column:
    return _call("regexp_replace", _c(string), _lit_or_col(pattern), _lit_or_col(replacement))


def _lit_or_col(x: Any) -> Any:
    return x if isinstance(x, Column) else Lit(x)


def instr(str: Any, substr: str) -> Column:  # noqa: A002
    return _call("instr", _c(str), Lit(substr))


def lpad(col: Any, len: int, pad: str) -> Column:  # noqa: A002
    return _call("lpad", _c(col), Lit(len), Lit(pad))


def rpad(col: Any, len: int, pad: str) -> Column:  # noqa: A002
    return _call("rpad", _c(col), Lit(len), Lit(pad))


def repeat(col: Any, n: int) -> Column:
    return _call("repeat", _c(col), Lit(n))


# -- math -------------------------------------------------------------------------------------------

def abs(col: Any) -> Column:  # noqa: A001
    return _fn("abs", col)


def round(col: Any, scale: int = 0) -> Column:  # noqa: A001
    return _call("round", _c(col), Lit(scale))


def floor(col: Any) -> Column:
    return _fn("floor", col)


def ceil(col: Any) -> Column:
    return _fn("ceil", col)


def sqrt(col: Any) -> Column:
    return _fn("sqrt", col)


def exp(col: Any) -> Column:
    return _fn("exp", col)


def log(arg1: Any, arg2: Any = None) -> Column:
    if arg2 is None:
        return _fn("ln", arg1)
    return _call("log", Lit(float(arg1)), _c(arg2))


def pow(col1: Any, col2: Any) -> Column:  # noqa: A001
    return _call("pow", _c(col1) if isinstance(col1, str) else col1,
                 _c(col2) if isinstance(col2, str) else col2)


# -- dates and times ---------------------------------------------------------------------------------

def to_date(col: Any, format: str | None = None) -> Column:  # noqa: A002
    return _call("to_date", _c(col), *([Lit(format)] if format is not None else []))


def to_timestamp(col: Any, format: str | None = None) -> Column:  # noqa: A002
    return _call("to_timestamp", _c(col), *([Lit(format)] if format is not None else []))


def date_format(date: Any, format: str) -> Column:  # noqa: A002
    return _call("date_format", _c(date), Lit(format))


def current_date() -> Column:
    return _call("current_date")


def current_timestamp() -> Column:
    return _call("current_timestamp")


def year(col: Any) -> Column:
    return _fn("year", col)


def month(col: Any) -> Column:
    return _fn("month", col)


def dayofmonth(col: Any) -> Column:
    return _fn("dayofmonth", col)


def dayofweek(col: Any) -> Column:
    return _fn("dayofweek", col)


def hour(col: Any) -> Column:
    return _fn("hour", col)


def minute(col: Any) -> Column:
    return _fn("minute", col)


def second(col: Any) -> Column:
    return _fn("second", col)


def date_add(start: Any, days: int) -> Column:
    return _call("date_add", _c(start), _lit_or_col(days))


def date_sub(start: Any, days: int) -> Column:
    return _call("date_sub", _c(start), _lit_or_col(days))


def datediff(end: Any, start: Any) -> Column:
    return _fn("datediff", end, start)


def unix_timestamp(timestamp: Any = None, format: str | None = None) -> Column:  # noqa: A002
    if timestamp is None:
        return _call("unix_timestamp")
    return _call("unix_timestamp", _c(timestamp))


_UNITS = {"microsecond": 1, "millisecond": 1000, "second": 1_000_000, "minute": 60_000_000,
          "hour": 3_600_000_000, "day": 86_400_000_000, "week": 7 * 86_400_000_000}


def duration_us(text: str) -> int:
    """``"10 seconds"``, ``"1 minute 30 seconds"``... in microseconds."""
    total, found = 0, False
    for amount, unit in re.findall(r"(-?\d+)\s*([a-zA-Z]+)", text):
        unit = unit.lower().rstrip("s")
        unit = {"sec": "second", "min": "minute", "ms": "millisecond", "m": "minute",
                "h": "hour", "d": "day", "us": "microsecond"}.get(unit, unit)
        if unit not in _UNITS:
            raise PySparkValueError(f"[INVALID_INTERVAL] unknown unit in interval {text!r}")
        total += int(amount) * _UNITS[unit]
        found = True
    if not found:
        raise PySparkValueError(f"[INVALID_INTERVAL] cannot parse interval {text!r}")
    return total


def window(timeColumn: Any, windowDuration: str, slideDuration: str | None = None,
           startTime: str | None = None) -> Column:
    """Bucket a timestamp into ``struct<start, end>`` windows of ``windowDuration``."""
    width = duration_us(windowDuration)
    slide = duration_us(slideDuration) if slideDuration else width
    start = duration_us(startTime) if startTime else 0
    if width <= 0 or slide <= 0:
        raise PySparkValueError("[INVALID_INTERVAL] window and slide durations must be positive")
    return _call("window", _c(timeColumn), width=width, slide=slide, start=start)


# -- collections and structs ----------------------------------------------------------------------

def array(*cols: Any) -> Column:
    if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
        cols = tuple(cols[0])
    return _fn("array", *cols)


def size(col: Any) -> Column:
    return _fn("size", col)


def array_contains(col: Any, value: Any) -> Column:
    return _call("array_contains", _c(col), value)


def array_distinct(col: Any) -> Column:
    return _fn("array_distinct", col)


def sort_array(col: Any, asc: bool = True) -> Column:
    return _call("sort_array", _c(col), Lit(asc))


def array_join(col: Any, delimiter: str) -> Column:
    return _call("array_join", _c(col), Lit(delimiter))


def element_at(col: Any, extraction: Any) -> Column:
    return _call("element_at", _c(col), extraction)


def struct(*cols: Any) -> Column:
    from .analyzer import output_name
    if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
        cols = tuple(cols[0])
    columns = [_c(x) for x in cols]
    names = [output_name(c._expr) for c in columns]
    return _call("struct", *columns, names=names)


def create_map(*cols: Any) -> Column:
    if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
        cols = tuple(cols[0])
    return _fn("map", *cols)


def map_keys(col: Any) -> Column:
    return _fn("map_keys", col)


def map_values(col: Any) -> Column:
    return _fn("map_values", col)


def explode(col: Any) -> Column:
    return _fn("explode", col)


def explode_outer(col: Any) -> Column:
    return _fn("explode_outer", col)


def posexplode(col: Any) -> Column:
    return _fn("posexplode", col)


def posexplode_outer(col: Any) -> Column:
    return _fn("posexplode_outer", col)


# -- ordering -------------------------------------------------------------------------------------

def asc(col: Any) -> Column:
    return Column(SortOrder(_c(col)._expr, True))


def desc(col: Any) -> Column:
    return Column(SortOrder(_c(col)._expr, False))


def asc_nulls_last(col: Any) -> Column:
    return Column(SortOrder(_c(col)._expr, True, False))


def desc_nulls_first(col: Any) -> Column:
    return Column(SortOrder(_c(col)._expr, False, True))
