"""Date, time and time-window functions (``to_date``, ``date_format``, ``window``...).

Spark's datetime patterns (``yyyy-MM-dd HH:mm``) are translated to strftime's;
``window`` buckets a timestamp into ``struct<start, end>`` (sliding windows
are expanded by the analyzer through ``window_list``).
"""
from __future__ import annotations

from . import types as T
from .builtins import Fn, Sql, _any_null, _coerce_to, _fixed, _STR, register
from .errors import AnalysisException
from .expressions import Call, Cast, Expr, Lit


# -- dates and times -------------------------------------------------------------------------------

_JAVA_TO_STRFTIME = [
    ("yyyy", "%Y"), ("yy", "%y"), ("MMMM", "%B"), ("MMM", "%b"), ("MM", "%m"), ("dd", "%d"),
    ("HH", "%H"), ("hh", "%I"), ("mm", "%M"), ("ss", "%S"), ("SSSSSS", "%f"), ("SSS", "%g"),
    ("EEEE", "%A"), ("EEE", "%a"), ("a", "%p"), ("M", "%-m"), ("d", "%-d"), ("H", "%-H"),
]


def java_format(pattern: str) -> str:
    """A Java datetime pattern (``yyyy-MM-dd HH:mm:ss``) in strftime's terms."""
    out, i = [], 0
    while i < len(pattern):
        if pattern[i] == "'":
            end = pattern.find("'", i + 1)
            end = len(pattern) if end < 0 else end
            out.append(pattern[i + 1:end].replace("%", "%%") or "'")
            i = end + 1
            continue
        for java, strf in _JAVA_TO_STRFTIME:
            if pattern.startswith(java, i):
                out.append(strf)
                i += len(java)
                break
        else:
            out.append("%%" if pattern[i] == "%" else pattern[i])
            i += 1
    return "".join(out)


def _format_arg(c: Call, index: int) -> str:
    arg = c.args[index]
    if not isinstance(arg, Lit) or not isinstance(arg.value, str):
        raise AnalysisException(f"{c.name} needs a literal format string")
    return "'" + java_format(arg.value).replace("'", "''") + "'"


def _parse_as(target: str):
    """to_date/to_timestamp: text that does not parse is NULL; a format is Java's."""
    def sql(c: Call, a: Sql) -> str:
        if len(a) == 1:
            if isinstance(c.args[0].dtype, T.StringType):
                return f"TRY_CAST({a[0]} AS {target})"
            return f"CAST({a[0]} AS {target})"
        return f"CAST(try_strptime({a[0]}, {_format_arg(c, 1)}) AS {target})"
    return sql


register(Fn("to_date", 1, 2, _fixed(T.DateType()), _parse_as("DATE"), nullable=lambda c: True))
register(Fn("to_timestamp", 1, 2, _fixed(T.TimestampType()), _parse_as("TIMESTAMP"),
            nullable=lambda c: True))


def _as_timestamp(c: Call) -> list[Expr]:
    first = c.args[0]
    if isinstance(first.dtype, T.StringType):
        first = Cast(first, T.TimestampType(), implicit=True)
    return [first] + c.args[1:]


register(Fn("date_format", 2, 2, _fixed(_STR),
            lambda c, a: f"strftime({a[0]}, {_format_arg(c, 1)})",
            coerce=_as_timestamp, nullable=_any_null))
for _name, _part in (("year", "year"), ("month", "month"), ("dayofmonth", "day"), ("day", "day"),
                     ("hour", "hour"), ("minute", "minute"), ("second", "second"),
                     ("dayofweek", "isodow"), ("dayofyear", "dayofyear"),
                     ("weekofyear", "week"), ("quarter", "quarter")):
    _expr = ("CAST((date_part('isodow', {0}) % 7) + 1 AS INTEGER)" if _name == "dayofweek"
             else f"CAST(date_part('{_part}', {{0}}) AS INTEGER)")
    register(Fn(_name, 1, 1, _fixed(T.IntegerType()), (lambda e: lambda c, a: e.format(a[0]))(_expr),
                coerce=_as_timestamp, nullable=_any_null))
register(Fn("current_date", 0, 0, _fixed(T.DateType()), lambda c, a: "current_date",
            nullable=lambda c: False))
register(Fn("current_timestamp", 0, 0, _fixed(T.TimestampType()),
            lambda c, a: "CAST(now() AS TIMESTAMP)", nullable=lambda c: False, aliases=("now",)))
register(Fn("date_add", 2, 2, _fixed(T.DateType()),
            lambda c, a: f"CAST({a[0]} + CAST({a[1]} AS INTEGER) AS DATE)",
            coerce=_coerce_to(T.DateType(), T.IntegerType()), nullable=_any_null))
register(Fn("date_sub", 2, 2, _fixed(T.DateType()),
            lambda c, a: f"CAST({a[0]} - CAST({a[1]} AS INTEGER) AS DATE)",
            coerce=_coerce_to(T.DateType(), T.IntegerType()), nullable=_any_null))
register(Fn("datediff", 2, 2, _fixed(T.IntegerType()),
            lambda c, a: f"CAST(date_diff('day', {a[1]}, {a[0]}) AS INTEGER)",
            coerce=_coerce_to(T.DateType()), nullable=_any_null))
register(Fn("unix_timestamp", 0, 2, _fixed(T.LongType()),
            lambda c, a: f"CAST(epoch({a[0] if a else 'now()'}) AS BIGINT)",
            coerce=_as_timestamp, nullable=lambda c: True))
register(Fn("from_unixtime", 1, 2, _fixed(_STR),
            lambda c, a: f"strftime(CAST(to_timestamp({a[0]}) AS TIMESTAMP), "
                         f"{_format_arg(c, 1) if len(a) > 1 else repr('%Y-%m-%d %H:%M:%S')})",
            nullable=_any_null))


# -- time windows --------------------------------------------------------------------------------

_WINDOW_TYPE = T.StructType([T.StructField("start", T.TimestampType(), True),
                             T.StructField("end", T.TimestampType(), True)])


def _window_sql(c: Call, a: Sql) -> str:
    width, slide, start = c.options["width"], c.options["slide"], c.options["start"]
    if slide != width:
        raise AnalysisException("[UNSUPPORTED_FEATURE] a sliding window (a slide shorter than "
                                "the window) is supported as a groupBy key only. SQLSTATE: 0A000")
    micros = f"epoch_us(CAST({a[0]} AS TIMESTAMP))"
    begin = f"({micros} - ((({micros} - {start}) % {width}) + {width}) % {width})"
    return (f"(CASE WHEN {a[0]} IS NULL THEN NULL ELSE {{'start': make_timestamp({begin}), "
            f"'end': make_timestamp({begin} + {width})}} END)")


def _window_coerce(c: Call) -> list[Expr]:
    t = c.args[0].dtype
    if isinstance(t, T.StringType):
        return [Cast(c.args[0], T.TimestampType(), implicit=True)]
    if not isinstance(t, (T.TimestampType, T.TimestampNTZType, T.DateType)):
        raise AnalysisException(f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] window needs a "
                                f"timestamp column, got \"{t.simpleString().upper()}\". "
                                f"SQLSTATE: 42K09")
    return c.args


register(Fn("window", 1, 1, _fixed(_WINDOW_TYPE), _window_sql, coerce=_window_coerce,
            nullable=lambda c: True, pretty=lambda c, p: "window"))


def _window_list_sql(c: Call, a: Sql) -> str:
    """Every sliding window holding the timestamp: ceil(width / slide) candidates, those
    that contain it kept (Spark's expansion of a sliding window)."""
    width, slide, start = c.options["width"], c.options["slide"], c.options["start"]
    count = -(-width // slide)
    micros = f"epoch_us(CAST({a[0]} AS TIMESTAMP))"
    last = f"({micros} - ((({micros} - {start}) % {slide}) + {slide}) % {slide})"
    candidates = (f"[{{'start': make_timestamp({last} - i * {slide}), "
                  f"'end': make_timestamp({last} - i * {slide} + {width})}} "
                  f"for i in range({count})]")
    return (f"(CASE WHEN {a[0]} IS NULL THEN NULL ELSE list_reverse(list_filter({candidates}, "
            f"lambda w: CAST({a[0]} AS TIMESTAMP) < w['end'])) END)")


register(Fn("window_list", 1, 1, _fixed(T.ArrayType(_WINDOW_TYPE, False)), _window_list_sql,
            coerce=_window_coerce, nullable=lambda c: True, pretty=lambda c, p: "window"))
