"""PySpark's ``pyspark.sql.functions``: building column expressions.

Every function returns a ``Column``; names, arguments and results follow
PySpark (``count("*")`` counts rows and is named ``count(1)``; ``split``
takes a regular expression; ``window`` buckets a timestamp into
``struct<start, end>``).
"""
from __future__ import annotations

import re
from typing import Any, Callable

from .column import Column, _call, _col_or_name, _expr
from .errors import PySparkTypeError, PySparkValueError
from .expressions import CaseWhen, Lit, UnresolvedFunction


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


# Most functions are Spark SQL's function of the same name over their column arguments
# (a Column or a column name); these make them, named and documented, from that name
# (tests/unit/test_sql_function_names.py checks each is bound to its own name).

def _named(function: Callable[..., Column], name: str, doc: str) -> Callable[..., Column]:
    function.__name__ = function.__qualname__ = name
    function.__doc__ = doc
    return function


def _of_column(name: str) -> Callable[[Any], Column]:
    def function(col: Any) -> Column:
        return _fn(name, col)
    return _named(function, name, f"Spark SQL's ``{name}`` of a column.")


def _of_columns(name: str) -> Callable[..., Column]:
    def function(*cols: Any) -> Column:
        return _fn(name, *cols)
    return _named(function, name, f"Spark SQL's ``{name}`` of the columns.")


def _of_nothing(name: str) -> Callable[[], Column]:
    def function() -> Column:
        return _call(name)
    return _named(function, name, f"Spark SQL's ``{name}()``.")


# -- conditionals and nulls --------------------------------------------------------------------

def when(condition: Column, value: Any) -> Column:
    if not isinstance(condition, Column):
        raise PySparkTypeError("[NOT_COLUMN] Argument `condition` should be a Column, got "
                               f"{type(condition).__name__}.")
    return Column(CaseWhen([(condition._expr, _expr(value))]))


coalesce, greatest, least = map(_of_columns, ("coalesce", "greatest", "least"))
isnull, isnotnull, isnan = map(_of_column, ("isnull", "isnotnull", "isnan"))


def nvl(col1: Any, col2: Any) -> Column:
    return _fn("nvl", col1, col2)


ifnull = nvl


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
sum, avg, min, max = map(_of_column, ("sum", "avg", "min", "max"))  # noqa: A001 - PySpark's
mean = avg


def sum_distinct(col: Any) -> Column:
    return Column(UnresolvedFunction("sum", [_c(col)._expr], distinct=True))


sumDistinct = sum_distinct


def first(col: Any, ignorenulls: bool = False) -> Column:
    return _fn("first", col, ignorenulls=ignorenulls)


def last(col: Any, ignorenulls: bool = False) -> Column:
    return _fn("last", col, ignorenulls=ignorenulls)


any_value, collect_list, collect_set = map(_of_column, ("any_value", "collect_list",
                                                       "collect_set"))
stddev, stddev_pop, variance, var_pop = map(_of_column, ("stddev", "stddev_pop", "variance",
                                                         "var_pop"))
stddev_samp = std = stddev
var_samp = variance


# -- window functions -------------------------------------------------------------------------

row_number, rank, dense_rank, percent_rank, cume_dist = map(_of_nothing, (
    "row_number", "rank", "dense_rank", "percent_rank", "cume_dist"))


def ntile(n: int) -> Column:
    return _call("ntile", Lit(int(n)))


def lag(col: Any, offset: int = 1, default: Any = None) -> Column:
    return _call("lag", _c(col), Lit(int(offset)), default)


def lead(col: Any, offset: int = 1, default: Any = None) -> Column:
    return _call("lead", _c(col), Lit(int(offset)), default)


# -- strings ---------------------------------------------------------------------------------------

upper, lower, length, reverse = map(_of_column, ("upper", "lower", "length", "reverse"))
trim, ltrim, rtrim = map(_of_column, ("trim", "ltrim", "rtrim"))


def substring(str: Any, pos: int, len: int) -> Column:  # noqa: A002
    return _call("substring", _c(str), Lit(pos), Lit(len))


concat = _of_columns("concat")


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

abs = _of_column("abs")  # noqa: A001 - PySpark's name


def round(col: Any, scale: int = 0) -> Column:  # noqa: A001
    return _call("round", _c(col), Lit(scale))


floor, ceil, sqrt, exp = map(_of_column, ("floor", "ceil", "sqrt", "exp"))


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


current_date, current_timestamp = map(_of_nothing, ("current_date", "current_timestamp"))
year, month, dayofmonth, dayofweek = map(_of_column, ("year", "month", "dayofmonth",
                                                      "dayofweek"))
hour, minute, second = map(_of_column, ("hour", "minute", "second"))


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

def _unpacked(cols: tuple) -> tuple:
    """``f([a, b])`` means ``f(a, b)``."""
    return tuple(cols[0]) if len(cols) == 1 and isinstance(cols[0], (list, tuple)) else cols


def array(*cols: Any) -> Column:
    return _fn("array", *_unpacked(cols))


size = _of_column("size")


def array_contains(col: Any, value: Any) -> Column:
    return _call("array_contains", _c(col), value)


array_distinct = _of_column("array_distinct")


def sort_array(col: Any, asc: bool = True) -> Column:
    return _call("sort_array", _c(col), Lit(asc))


def array_join(col: Any, delimiter: str) -> Column:
    return _call("array_join", _c(col), Lit(delimiter))


def element_at(col: Any, extraction: Any) -> Column:
    return _call("element_at", _c(col), extraction)


def struct(*cols: Any) -> Column:
    from .analyzer import output_name
    columns = [_c(x) for x in _unpacked(cols)]
    names = [output_name(c._expr) for c in columns]
    return _call("struct", *columns, names=names)


def create_map(*cols: Any) -> Column:
    return _fn("map", *_unpacked(cols))


map_keys, map_values = map(_of_column, ("map_keys", "map_values"))
explode, explode_outer, posexplode, posexplode_outer = map(_of_column, (
    "explode", "explode_outer", "posexplode", "posexplode_outer"))


# -- ordering -------------------------------------------------------------------------------------

def asc(col: Any) -> Column:
    return _c(col).asc()


def desc(col: Any) -> Column:
    return _c(col).desc()


def asc_nulls_last(col: Any) -> Column:
    return _c(col).asc_nulls_last()


def desc_nulls_first(col: Any) -> Column:
    return _c(col).desc_nulls_first()
