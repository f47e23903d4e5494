"""Resolving, typing, naming and compiling expressions.

``resolve`` turns names into the attributes of a plan's output (case
insensitive, as Spark by default) and types every call with its
``builtins`` entry, inserting Spark's implicit casts. ``output_name`` is
the column name Spark gives an unaliased expression (``count(1)``,
``(n + 1)``). ``to_sql`` writes a resolved expression in the engine's SQL,
reading attribute ``id`` from column ``c<id>``.
"""
from __future__ import annotations

import datetime
import decimal
import math
from typing import Callable, Iterable

from . import builtins as B
from . import builtins_agg, builtins_time  # noqa: F401 - register their functions
from . import types as T
from .errors import AnalysisException
from .expressions import (Alias, Attr, Call, CaseWhen, Cast, Expr, Lit, SortOrder, Star,
                          UnresolvedAttr, UnresolvedFunction, WindowExpr, expr_key, strip_alias)
from .typing_rules import common_type_of, quote, sql_type


def split_name(name: str) -> tuple[str, ...]:
    """``"t.a"`` -> ("t", "a"); backquotes keep dots: ``"`a.b`"`` -> ("a.b",)."""
    parts, current, quoted, i = [], [], False, 0
    while i < len(name):
        ch = name[i]
        if ch == "`":
            if quoted and i + 1 < len(name) and name[i + 1] == "`":
                current.append("`")
                i += 2
                continue
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return tuple(parts)


def _distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def unresolved_column(name: str, candidates: Iterable[str], where: str = "") -> AnalysisException:
    names = list(dict.fromkeys(candidates))
    shown_name = name if name.startswith("`") else f"`{name}`"
    if not names:
        return AnalysisException(
            f"[UNRESOLVED_COLUMN.WITHOUT_SUGGESTION] A column, variable, or function parameter with "
            f"name {shown_name} cannot be resolved. SQLSTATE: 42703{where};")
    ranked = sorted(names, key=lambda n: _distance(n.lower(), name.lower()))[:5]
    shown = ", ".join(f"`{n}`" for n in ranked)
    return AnalysisException(
        f"[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column, variable, or function parameter with name "
        f"{shown_name} cannot be resolved. Did you mean one of the following? [{shown}]. "
        f"SQLSTATE: 42703{where};")


class Scope:
    """The attributes names resolve against (a plan's output; a join's two sides)."""

    def __init__(self, attrs: list[Attr], outer: "Scope | None" = None):
        self.attrs = list(attrs)
        self.outer = outer

    def lookup(self, parts: tuple[str, ...]) -> Expr | None:
        """The attribute (or struct field of one) named by ``parts``; None when none matches."""
        lowered = [p.lower() for p in parts]
        # t.a: a qualified attribute
        for n_qual in range(len(parts) - 1, -1, -1):
            qual, rest = lowered[:n_qual], lowered[n_qual:]
            matches = [a for a in self.attrs if a.name.lower() == rest[0]
                       and (not qual or [q.lower() for q in a.qualifier[-len(qual):]] == qual)]
            if qual and not matches:
                continue
            if len(matches) > 1:
                ids = {m.id for m in matches}
                if len(ids) > 1:
                    shown = ", ".join(f"`{'`.`'.join(m.qualifier + (m.name,))}`" for m in matches)
                    raise AnalysisException(
                        f"[AMBIGUOUS_REFERENCE] Reference `{'.'.join(parts)}` is ambiguous, could "
                        f"be: [{shown}]. SQLSTATE: 42704")
            if matches:
                node: Expr = matches[0]
                for field in parts[n_qual + 1:]:
                    node = B.REGISTRY["get_field"] and _typed_call("get_field", [node], {"field": field})
                return node
        return None

    def names(self) -> list[str]:
        return [a.name for a in self.attrs]


def _typed_call(name: str, args: list[Expr], options: dict | None = None,
                distinct: bool = False) -> Call:
    fn = B.lookup(name)
    call = Call(fn.name, args, distinct, options)
    n = len(args)
    if n < fn.min_args or (fn.max_args is not None and n > fn.max_args):
        expected = (str(fn.min_args) if fn.min_args == fn.max_args
                    else f"[{fn.min_args}, {fn.max_args if fn.max_args is not None else '...'}]")
        raise AnalysisException(
            f"[WRONG_NUM_ARGS.WITHOUT_SUGGESTION] The `{name}` requires {expected} parameters but "
            f"the actual number is {n}. SQLSTATE: 42605")
    if fn.coerce is not None:
        call.args = list(fn.coerce(call))
    call.dtype = fn.result(call)
    call.nullable = fn.nullable(call) if fn.nullable is not None else True
    return call


def resolve(e: Expr, scope: Scope, where: str = "") -> Expr:
    """``e`` with names bound to ``scope`` and every call typed."""
    if isinstance(e, Attr):
        return e
    if isinstance(e, UnresolvedAttr):
        found = scope.lookup(e.parts)
        outer = scope.outer
        while found is None and outer is not None:
            found = outer.lookup(e.parts)
            outer = outer.outer
        if found is None:
            pos = f"; line 1 pos {e.position}" if e.position is not None else where
            raise unresolved_column(e.name if len(e.parts) == 1 else ".".join(f"`{p}`" for p in e.parts),
                                    scope.names(), pos)
        return found
    if isinstance(e, Star):
        raise AnalysisException("[INVALID_USAGE_OF_STAR_OR_REGEX] Invalid usage of '*' in "
                                "expression. SQLSTATE: 42000")
    if isinstance(e, Lit):
        return e
    if isinstance(e, Alias):
        return Alias(resolve(e.child, scope, where), e.name, e.id)
    if isinstance(e, Cast):
        return Cast(resolve(e.child, scope, where), e.to, e.safe, e.implicit)
    if isinstance(e, SortOrder):
        return SortOrder(resolve(e.child, scope, where), e.ascending, e.nulls_first)
    if isinstance(e, CaseWhen):
        branches = [(resolve(c, scope, where), resolve(v, scope, where)) for c, v in e.branches]
        default = resolve(e.default, scope, where) if e.default is not None else None
        values = [v for _, v in branches] + ([default] if default is not None else [])
        t = common_type_of([v.dtype for v in values], lambda t, other: AnalysisException(
            f"[DATATYPE_MISMATCH.DATA_DIFF_TYPES] Cannot resolve CASE WHEN: its values "
            f"have different types (\"{t.simpleString().upper()}\" and "
            f"\"{other.simpleString().upper()}\"). SQLSTATE: 42K09"))
        branches = [(B.cast_to(c, T.BooleanType()), B.cast_to(v, t)) for c, v in branches]
        default = B.cast_to(default, t) if default is not None else None
        nullable = default is None or any(v.nullable for v in values)
        return CaseWhen(branches, default, t, nullable)
    if isinstance(e, WindowExpr):
        func = resolve(e.func, scope, where)
        if not isinstance(func, Call) or B.lookup(func.name).kind not in ("agg", "window"):
            raise AnalysisException(f"[UNSUPPORTED_EXPR_FOR_WINDOW] Expression "
                                    f"\"{output_name(func)}\" not supported within a window "
                                    f"function. SQLSTATE: 42P20")
        spec = e.spec.with_exprs([resolve(x, scope, where) for x in e.spec.exprs()])
        return WindowExpr(func, spec)
    if isinstance(e, Call):
        args = [resolve(a, scope, where) for a in e.args]
        return _typed_call(e.name, args, e.options, e.distinct)
    raise TypeError(f"cannot resolve {e!r}")


# -- classification ---------------------------------------------------------------------------

def is_agg_call(e: Expr) -> bool:
    return isinstance(e, Call) and B.REGISTRY.get(e.name) is not None and B.REGISTRY[e.name].kind == "agg"


def agg_calls(e: Expr) -> list[Call]:
    """Aggregate calls in ``e`` outside windows (each once)."""
    found: dict = {}

    def visit(node: Expr) -> None:
        if isinstance(node, WindowExpr):
            for x in node.spec.exprs():
                visit(x)
            for x in node.func.children():
                visit(x)
            return
        if is_agg_call(node):
            found.setdefault(expr_key(node), node)
            return
        for child in node.children():
            visit(child)
    visit(e)
    return list(found.values())


def has_agg(e: Expr) -> bool:
    return bool(agg_calls(e))


def window_exprs(e: Expr) -> list[WindowExpr]:
    return [n for n in e.walk() if isinstance(n, WindowExpr)]


def generator_of(e: Expr) -> Call | None:
    inner = strip_alias(e)
    if isinstance(inner, Call) and B.REGISTRY.get(inner.name) is not None \
            and B.REGISTRY[inner.name].kind == "generator":
        return inner
    return None


# -- names ----------------------------------------------------------------------------------------

def java_double(value: float, single: bool = False) -> str:
    """A float as Java's Double/Float.toString prints it (``1.0E7``, ``1.0E-4``, ``NaN``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if single:
        import numpy as np
        shortest = str(np.float32(value))
    else:
        shortest = repr(float(value))
    number = decimal.Decimal(shortest)
    magnitude = abs(value)
    if magnitude == 0 or 1e-3 <= magnitude < 1e7:
        text = format(number, "f")
        if "." not in text:
            text += ".0"
        return ("-" if value < 0 and not text.startswith("-") else "") + text
    sign, digits, exponent = number.normalize().as_tuple()
    digits_text = "".join(map(str, digits))
    mantissa = digits_text[0] + "." + (digits_text[1:] or "0")
    return f"{'-' if sign else ''}{mantissa}E{exponent + len(digits) - 1}"


def lit_text(value, dtype: T.DataType | None = None) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value, isinstance(dtype, T.FloatType))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(lit_text(v) for v in value) + "]"
    return str(value)


def pretty(e: Expr) -> str:
    """Spark's text for an expression, as used in generated column names."""
    if isinstance(e, Attr):
        return e.name
    if isinstance(e, UnresolvedAttr):
        return e.parts[-1] if len(e.parts) == 1 else ".".join(e.parts)
    if isinstance(e, Lit):
        return lit_text(e.value, e.dtype)
    if isinstance(e, Alias):
        return e.name
    if isinstance(e, Cast):
        if e.implicit:
            return pretty(e.child)
        return f"CAST({pretty(e.child)} AS {e.to.simpleString().upper()})"
    if isinstance(e, SortOrder):
        return _sort_order_text(e, pretty)
    if isinstance(e, CaseWhen):
        return _case_text(e, pretty)
    if isinstance(e, WindowExpr):
        return f"{pretty(e.func)} OVER ({_spec_text(e)})"
    if isinstance(e, Star):
        return "*"
    if isinstance(e, Call):
        args = [pretty(a) for a in e.args]
        fn = B.REGISTRY.get(e.name)
        if fn is not None and fn.pretty is not None:
            return fn.pretty(e, args)
        return f"{e.name}({', '.join(args)})"
    return repr(e)


# Column names and the engine's SQL write sort orders, CASE and window specs alike;
# ``text`` writes the parts (``pretty`` for names, ``to_sql`` for the engine).

def _sort_order_text(e: SortOrder, text: Callable[[Expr], str]) -> str:
    return (f"{text(e.child)} {'ASC' if e.ascending else 'DESC'} "
            f"NULLS {'FIRST' if e.nulls_first else 'LAST'}")


def _case_text(e: CaseWhen, text: Callable[[Expr], str]) -> str:
    parts = ["CASE"] + [f"WHEN {text(c)} THEN {text(v)}" for c, v in e.branches]
    if e.default is not None:
        parts.append(f"ELSE {text(e.default)}")
    return " ".join(parts + ["END"])


def _partition_order_text(e: WindowExpr, text: Callable[[Expr], str]) -> list[str]:
    parts = []
    if e.spec.partition_by:
        parts.append("PARTITION BY " + ", ".join(text(x) for x in e.spec.partition_by))
    if e.spec.order_by:
        parts.append("ORDER BY " + ", ".join(text(x) for x in e.spec.order_by))
    return parts


def _spec_text(e: WindowExpr) -> str:
    parts = _partition_order_text(e, pretty)
    kind = B.REGISTRY[e.func.name].kind if isinstance(e.func, Call) else "agg"
    frame = e.spec.frame
    if frame is not None:
        parts.append(f"{frame[0].upper()} BETWEEN {_bound_text(frame[1], True)} AND "
                     f"{_bound_text(frame[2], False)}")
    elif kind == "window" and e.func.name in ("lag", "lead"):
        offset = e.func.args[1].value if len(e.func.args) > 1 else 1
        n = -offset if e.func.name == "lag" else offset
        parts.append(f"ROWS BETWEEN {n} FOLLOWING AND {n} FOLLOWING")
    elif kind == "window":
        parts.append("ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW")
    elif e.spec.order_by:
        parts.append("RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW")
    else:
        parts.append("ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING")
    return " ".join(parts)


def _bound_text(bound, start: bool) -> str:
    if bound == "unbounded_preceding":
        return "UNBOUNDED PRECEDING"
    if bound == "unbounded_following":
        return "UNBOUNDED FOLLOWING"
    if bound == "current_row" or bound == 0:
        return "CURRENT ROW"
    return f"{abs(bound)} PRECEDING" if bound < 0 else f"{bound} FOLLOWING"


def output_name(e: Expr) -> str:
    """The name Spark gives a projected expression."""
    if isinstance(e, (Alias, Attr)):
        return e.name
    if isinstance(e, Cast) and isinstance(e.child, (Attr, UnresolvedAttr)):
        return pretty(e.child)
    if isinstance(e, UnresolvedAttr):
        return e.parts[-1]
    if isinstance(e, Call) and e.name == "get_field":
        return e.options["field"]
    return pretty(e)


def named(e: Expr) -> Expr:
    """``e`` as an output column: an Attr, or an Alias with Spark's generated name."""
    if isinstance(e, (Alias, Attr)):
        return e
    return Alias(e, output_name(e))


def to_attr(e: Expr) -> Attr:
    if isinstance(e, Attr):
        return e
    if isinstance(e, Alias):
        return e.to_attr()
    raise TypeError(f"not a named expression: {e!r}")


# -- the engine's SQL -------------------------------------------------------------------------------

def lit_sql(value, dtype: T.DataType) -> str:
    if value is None:
        return "NULL" if isinstance(dtype, T.NullType) else f"CAST(NULL AS {sql_type(dtype)})"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(dtype, T.StringType):
        return "'" + str(value).replace("'", "''") + "'"
    if isinstance(value, (bytes, bytearray)):
        return f"unhex('{bytes(value).hex()}')"
    if isinstance(value, datetime.datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, datetime.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, float) or isinstance(dtype, (T.DoubleType, T.FloatType)):
        return f"CAST('{float(value)!r}' AS {sql_type(dtype)})"
    if isinstance(value, (int, decimal.Decimal)):
        if isinstance(dtype, T.IntegerType):
            return str(int(value))
        return f"CAST('{value}' AS {sql_type(dtype)})"
    if isinstance(value, (list, tuple)) and isinstance(dtype, T.ArrayType):
        return "[" + ", ".join(lit_sql(v, dtype.elementType) for v in value) + "]::" + sql_type(dtype)
    if isinstance(value, dict) and isinstance(dtype, T.MapType):
        keys = ", ".join(lit_sql(k, dtype.keyType) for k in value)
        values = ", ".join(lit_sql(v, dtype.valueType) for v in value.values())
        return f"map([{keys}], [{values}])"
    raise AnalysisException(f"[UNSUPPORTED_FEATURE.LITERAL_TYPE] Unsupported literal {value!r}")


def col_sql(a: Attr) -> str:
    return quote(a.col)


def to_sql(e: Expr, subst: dict | None = None, col: Callable[[Attr], str] = col_sql) -> str:
    """``e`` in the engine's SQL. ``subst`` maps expression keys to SQL that replaces them
    (an aggregate's result column, a grouping key)."""
    if subst:
        found = subst.get(expr_key(e))
        if found is not None:
            return found

    def rec(x: Expr) -> str:
        return to_sql(x, subst, col)
    if isinstance(e, Attr):
        return col(e)
    if isinstance(e, Lit):
        return lit_sql(e.value, e.dtype)
    if isinstance(e, Alias):
        return rec(e.child)
    if isinstance(e, Cast):
        return _cast_sql(rec(e.child), e.child.dtype, e.to, e.safe)
    if isinstance(e, SortOrder):
        return _sort_order_text(e, rec)
    if isinstance(e, CaseWhen):
        return "(" + _case_text(e, rec) + ")"
    if isinstance(e, WindowExpr):
        fn = B.REGISTRY[e.func.name]
        args = [rec(a) for a in e.func.args]
        core = fn.core(e.func, args) if fn.core is not None else f"{e.func.name}({', '.join(args)})"
        return f"CAST({core} OVER ({window_spec_sql(e, rec)}) AS {sql_type(e.func.dtype)})"
    if isinstance(e, Call):
        if isinstance(e, UnresolvedFunction) or e.dtype is None:
            raise AnalysisException(f"unresolved function {e.name}")
        return B.REGISTRY[e.name].sql(e, [rec(a) for a in e.args])
    raise TypeError(f"cannot compile {e!r}")


def window_spec_sql(e: WindowExpr, rec: Callable[[Expr], str]) -> str:
    parts = _partition_order_text(e, rec)
    frame = e.spec.frame
    kind = B.REGISTRY[e.func.name].kind
    if frame is not None and kind != "window":
        parts.append(f"{frame[0].upper()} BETWEEN {_bound_text(frame[1], True)} AND "
                     f"{_bound_text(frame[2], False)}")
    return " ".join(parts)


def _cast_sql(inner: str, source: T.DataType | None, to: T.DataType, safe: bool) -> str:
    how = "TRY_CAST" if safe else "CAST"
    if isinstance(to, T.StringType) and isinstance(source, T.BooleanType):
        return f"(CASE WHEN {inner} THEN 'true' WHEN NOT {inner} THEN 'false' END)"
    if isinstance(to, T.StringType) and isinstance(source, T.TimestampType):
        return f"strftime({inner}, '%Y-%m-%d %H:%M:%S')"
    if isinstance(source, T.StringType) and isinstance(to, T.BooleanType):
        return f"{how}(lower(trim({inner})) AS BOOLEAN)"
    if isinstance(source, (T.FloatType, T.DoubleType)) and isinstance(to, T.IntegralType):
        # Java truncates toward zero; the engine would round
        return f"{how}(trunc({inner}) AS {sql_type(to)})"
    if isinstance(source, T.DecimalType) and isinstance(to, T.IntegralType):
        return f"{how}(trunc({inner}) AS {sql_type(to)})"
    return f"{how}({inner} AS {sql_type(to)})"
