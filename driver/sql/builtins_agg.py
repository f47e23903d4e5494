"""Aggregate, window and generator functions.

An aggregate runs in two phases: ``partial`` computes its state columns per
partition (before the shuffle), ``final`` merges the states of one group
(after it). ``sql`` is the one-phase form, used over a window. Distinct
aggregates keep the distinct values as a list state, so they merge like
the others and need no extra shuffle.
"""
from __future__ import annotations

from . import types as T
from .builtins import Fn, _coerce_to, _fixed, _func_sql, cast_to, register
from .errors import AnalysisException
from .expressions import Call, Lit
from .typing_rules import is_integral, is_numeric, sql_type

_LONG = T.LongType()
_DBL = T.DoubleType()


def _not_null_filter(c: Call, a: list[str]) -> str:
    return " AND ".join(f"{x} IS NOT NULL" for x in a)


def _distinct_value(c: Call, a: list[str]) -> str:
    if len(a) == 1:
        return a[0]
    return "{" + ", ".join(f"'f{i}': {x}" for i, x in enumerate(a)) + "}"


def _distinct_partial(c: Call, a: list[str]) -> list[str]:
    return [f"list(DISTINCT {_distinct_value(c, a)}) FILTER (WHERE {_not_null_filter(c, a)})"]


def _merged_distinct(state: str) -> str:
    return f"list_distinct(flatten(list({state}) FILTER (WHERE {state} IS NOT NULL)))"


def _is_star(c: Call) -> bool:
    return len(c.args) == 1 and isinstance(c.args[0], Lit) and c.args[0].value is not None


def _count_sql(c: Call, a: list[str]) -> str:
    if c.distinct:
        return f"count(DISTINCT {_distinct_value(c, a)}) FILTER (WHERE {_not_null_filter(c, a)})"
    if _is_star(c):
        return "count(*)"
    if len(a) > 1:
        return f"count(*) FILTER (WHERE {_not_null_filter(c, a)})"
    return f"count({a[0]})"


def _count_partial(c: Call, a: list[str]) -> list[str]:
    if c.distinct:
        return _distinct_partial(c, a)
    return [_count_sql(c, a)]


def _count_final(c: Call, s: list[str]) -> str:
    if c.distinct:
        return f"CAST(coalesce(len({_merged_distinct(s[0])}), 0) AS BIGINT)"
    return f"CAST(coalesce(sum({s[0]}), 0) AS BIGINT)"


def _count_pretty(c: Call, p: list[str]) -> str:
    if c.distinct:
        return f"count(DISTINCT {', '.join(p)})"
    return f"count({', '.join(p)})"


register(Fn("count", 1, None, _fixed(_LONG), _count_sql, kind="agg", nullable=lambda c: False,
            partial=_count_partial, final=_count_final, pretty=_count_pretty, core=_count_sql))


def _approx_sql(c: Call, a: list[str]) -> str:
    return f"count(DISTINCT {a[0]})"


register(Fn("approx_count_distinct", 1, 2, _fixed(_LONG), _approx_sql, kind="agg",
            nullable=lambda c: False,
            partial=lambda c, a: _distinct_partial(c, a[:1]),
            final=lambda c, s: f"CAST(coalesce(len({_merged_distinct(s[0])}), 0) AS BIGINT)",
            pretty=lambda c, p: f"approx_count_distinct({p[0]})"))


def _numeric_arg(c: Call) -> None:
    t = c.args[0].dtype
    if not (is_numeric(t) or isinstance(t, (T.NullType, T.StringType))):
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] Cannot resolve \"{c.name}\": it needs a "
            f"numeric argument, got \"{t.simpleString().upper()}\". SQLSTATE: 42K09")


def _sum_type(c: Call) -> T.DataType:
    _numeric_arg(c)
    t = c.args[0].dtype
    if is_integral(t) or isinstance(t, T.NullType):
        return _LONG
    if isinstance(t, T.DecimalType):
        return T.DecimalType(min(38, t.precision + 10), t.scale)
    return _DBL


def _sum_coerce(c: Call):
    t = c.args[0].dtype
    if isinstance(t, T.StringType):
        return [cast_to(c.args[0], _DBL)]
    return c.args


def _distinct_or_not(name: str):
    """``name(x)`` or ``name(DISTINCT x)``: the call over a window, and its column name."""
    return lambda c, a: f"{name}({'DISTINCT ' if c.distinct else ''}{a[0]})"


def _as_result(sql):
    """``sql`` cast to the call's result type."""
    return lambda c, a: f"CAST({sql(c, a)} AS {sql_type(c.dtype)})"


def _register_sum_like(name: str, result, partial, final, **kw) -> Fn:
    """sum and avg. Distinct, their state is the list of distinct values, and the final
    merge applies ``list_<name>`` to the merged lists; else ``partial``/``final`` say."""
    call = _distinct_or_not(name)

    def partial_states(c: Call, a: list[str]) -> list[str]:
        return _distinct_partial(c, a) if c.distinct else partial(c, a)

    def final_merge(c: Call, s: list[str]) -> str:
        if c.distinct:
            return f"CAST(list_{name}({_merged_distinct(s[0])}) AS {sql_type(c.dtype)})"
        return final(c, s)
    return register(Fn(name, 1, 1, result, _as_result(call), kind="agg", coerce=_sum_coerce,
                       nullable=lambda c: True, partial=partial_states, final=final_merge,
                       core=call, pretty=call, **kw))


def _cast_sum(c: Call, a: list[str]) -> str:
    return f"CAST(sum({a[0]}) AS {sql_type(c.dtype)})"


_register_sum_like("sum", _sum_type, lambda c, a: [_cast_sum(c, a)], _cast_sum)


def _avg_type(c: Call) -> T.DataType:
    _numeric_arg(c)
    t = c.args[0].dtype
    if isinstance(t, T.DecimalType):
        return T.DecimalType(min(38, t.precision + 4), min(38, t.scale + 4))
    return _DBL


def _avg_partial(c: Call, a: list[str]) -> list[str]:
    kind = f"DECIMAL(38,{c.dtype.scale})" if isinstance(c.dtype, T.DecimalType) else "DOUBLE"
    return [f"sum(CAST({a[0]} AS {kind}))", f"count({a[0]})"]


def _avg_final(c: Call, s: list[str]) -> str:
    return f"CAST(sum({s[0]}) / nullif(sum({s[1]}), 0) AS {sql_type(c.dtype)})"


_register_sum_like("avg", _avg_type, _avg_partial, _avg_final, aliases=("mean",))


def _minmax(name: str):
    return Fn(name, 1, 1, lambda c: c.args[0].dtype, _func_sql(name), kind="agg",
              nullable=lambda c: True, partial=lambda c, a: [f"{name}({a[0]})"],
              final=lambda c, s: f"{name}({s[0]})")


register(_minmax("min"))
register(_minmax("max"))


def _first_sql(which: str):
    def sql(c: Call, a: list[str]) -> str:
        if c.options.get("ignorenulls"):
            return f"{which}({a[0]}) FILTER (WHERE {a[0]} IS NOT NULL)"
        return f"{which}({a[0]})"
    return sql


for _which in ("first", "last"):
    register(Fn(_which, 1, 2, lambda c: c.args[0].dtype, _first_sql(_which), kind="agg",
                nullable=lambda c: True,
                partial=(lambda w: lambda c, a: [_first_sql(w)(c, a)])(_which),
                core=(lambda w: lambda c, a: f"{w}_value({a[0]}"
                      f"{' IGNORE NULLS' if c.options.get('ignorenulls') else ''})")(_which),
                final=(lambda w: lambda c, s: _first_sql(w)(c, s))(_which),
                pretty=lambda c, p: f"{c.name}({p[0]})",
                aliases=(f"{_which}_value",) if _which == "first" else ("last_value",)))
register(Fn("any_value", 1, 2, lambda c: c.args[0].dtype, _func_sql("any_value"), kind="agg",
            nullable=lambda c: True, partial=lambda c, a: [f"any_value({a[0]})"],
            final=lambda c, s: f"any_value({s[0]})"))


def _list_type(c: Call) -> T.DataType:
    return T.ArrayType(c.args[0].dtype, False)


def _empty(c: Call) -> str:
    return f"CAST([] AS {sql_type(c.dtype)})"


register(Fn("collect_list", 1, 1, _list_type,
            lambda c, a: f"coalesce(list({a[0]}) FILTER (WHERE {a[0]} IS NOT NULL), {_empty(c)})",
            kind="agg", nullable=lambda c: False,
            core=lambda c, a: f"list({a[0]}) FILTER (WHERE {a[0]} IS NOT NULL)",
            partial=lambda c, a: [f"list({a[0]}) FILTER (WHERE {a[0]} IS NOT NULL)"],
            final=lambda c, s: f"coalesce(flatten(list({s[0]}) FILTER (WHERE {s[0]} IS NOT NULL)), "
                               f"{_empty(c)})",
            aliases=("array_agg",)))
register(Fn("collect_set", 1, 1, _list_type,
            lambda c, a: f"coalesce(list(DISTINCT {a[0]}) FILTER (WHERE {a[0]} IS NOT NULL), "
                         f"{_empty(c)})",
            kind="agg", nullable=lambda c: False,
            core=lambda c, a: f"list(DISTINCT {a[0]}) FILTER (WHERE {a[0]} IS NOT NULL)",
            partial=lambda c, a: [f"list(DISTINCT {a[0]}) FILTER (WHERE {a[0]} IS NOT NULL)"],
            final=lambda c, s: f"coalesce({_merged_distinct(s[0])}, {_empty(c)})"))


def _moments_partial(c: Call, a: list[str]) -> list[str]:
    x = f"CAST({a[0]} AS DOUBLE)"
    return [f"count({a[0]})", f"sum({x})", f"sum({x} * {x})"]


def _variance(sample: bool, root: bool):
    def final(c: Call, s: list[str]) -> str:
        n, total, squares = f"sum({s[0]})", f"sum({s[1]})", f"sum({s[2]})"
        denominator = f"({n} - 1)" if sample else n
        guard = f"{n} > 1" if sample else f"{n} > 0"
        value = f"greatest(({squares} - {total} * {total} / {n}) / {denominator}, 0)"
        value = f"sqrt({value})" if root else value
        return f"(CASE WHEN {guard} THEN {value} ELSE NULL END)"

    def sql(c: Call, a: list[str]) -> str:
        name = ("stddev" if root else "var") + ("_samp" if sample else "_pop")
        return f"{name}(CAST({a[0]} AS DOUBLE))"
    return sql, final


for _name, _sample, _root, _aliases in (("stddev", True, True, ("stddev_samp", "std")),
                                        ("stddev_pop", False, True, ()),
                                        ("variance", True, False, ("var_samp",)),
                                        ("var_pop", False, False, ())):
    _sql, _final = _variance(_sample, _root)
    register(Fn(_name, 1, 1, _fixed(_DBL), _sql, kind="agg", coerce=_coerce_to(_DBL),
                nullable=lambda c: True, partial=_moments_partial, final=_final, aliases=_aliases,
                core=_sql))

# -- window-only functions -------------------------------------------------------------------

for _name, _engine, _type in (("row_number", "row_number", T.IntegerType()),
                              ("rank", "rank", T.IntegerType()),
                              ("dense_rank", "dense_rank", T.IntegerType()),
                              ("percent_rank", "percent_rank", _DBL),
                              ("cume_dist", "cume_dist", _DBL)):
    register(Fn(_name, 0, 0, _fixed(_type),
                (lambda e, t: lambda c, a: f"CAST({e}() AS {sql_type(t)})")(_engine, _type),
                kind="window", nullable=lambda c: False,
                core=(lambda e: lambda c, a: f"{e}()")(_engine),
                pretty=(lambda n: lambda c, p: (n.upper() if n in ("rank", "dense_rank")
                                                else n) + "()")(_name)))
register(Fn("ntile", 1, 1, _fixed(T.IntegerType()),
            lambda c, a: f"CAST(ntile({a[0]}) AS INTEGER)", kind="window", nullable=lambda c: True,
            core=lambda c, a: f"ntile({a[0]})"))


def _lag_lead(name: str):
    def sql(c: Call, a: list[str]) -> str:
        offset = a[1] if len(a) > 1 else "1"
        default = a[2] if len(a) > 2 else "NULL"
        return f"{name}({a[0]}, {offset}, {default})"

    def pretty(c: Call, p: list[str]) -> str:
        return f"{name}({p[0]}, {p[1] if len(p) > 1 else 1}, {p[2] if len(p) > 2 else 'NULL'})"
    return Fn(name, 1, 3, lambda c: c.args[0].dtype, sql, kind="window", nullable=lambda c: True,
              pretty=pretty, core=sql)


register(_lag_lead("lag"))
register(_lag_lead("lead"))

# -- generators: their output columns are made by the analyzer (a Generate node) -----------------

for _name in ("explode", "explode_outer", "posexplode", "posexplode_outer", "inline"):
    register(Fn(_name, 1, 1, lambda c: c.args[0].dtype, lambda c, a: a[0], kind="generator"))

