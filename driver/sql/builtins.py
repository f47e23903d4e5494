"""Spark SQL's built-in functions: their types, their names, and their SQL in the engine.

Each ``Fn`` says how many arguments a function takes, how its arguments
are coerced (Spark's implicit casts), its result type and nullability, and
the DuckDB SQL that computes it with Spark's semantics (``split`` takes a
regex, ``regexp_replace`` replaces every match, ``concat`` is NULL when an
argument is, ``substring`` treats position 0 as 1...). Aggregates also say
how they split into a partial state per partition and a final merge, which
is what makes every aggregation two-phase.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from . import types as T
from .errors import AnalysisException
from .expressions import Call, Cast, Expr, Lit
from .typing_rules import (common_type, common_type_of, is_integral, is_numeric, sql_type,
                           wider_decimal)

Sql = list  # the arguments' SQL texts


@dataclass
class Fn:
    name: str
    min_args: int
    max_args: int | None
    result: Callable[[Call], T.DataType]
    sql: Callable[[Call, Sql], str]
    kind: str = "scalar"  # scalar | agg | window | generator
    coerce: Callable[[Call], list[Expr]] | None = None
    nullable: Callable[[Call], bool] | None = None
    # aggregates: the partial states' SQL, and the final merge over the state columns
    partial: Callable[[Call, Sql], list[str]] | None = None
    final: Callable[[Call, list[str]], str] | None = None
    pretty: Callable[[Call, list[str]], str] | None = None
    aliases: tuple = field(default_factory=tuple)
    # over a window: the engine call that ``OVER (...)`` follows (the result is cast after)
    core: Callable[[Call, Sql], str] | None = None


REGISTRY: dict[str, Fn] = {}


def register(fn: Fn) -> Fn:
    for name in (fn.name,) + tuple(fn.aliases):
        REGISTRY[name] = fn
    return fn


def lookup(name: str) -> Fn:
    fn = REGISTRY.get(name.lower())
    if fn is None:
        raise AnalysisException(
            f"[UNRESOLVED_ROUTINE] Cannot resolve routine `{name}` on search path "
            "[`system`.`builtin`, `system`.`session`, `spark_catalog`.`default`]. SQLSTATE: 42883")
    return fn


# -- helpers ---------------------------------------------------------------------------------

def cast_to(e: Expr, t: T.DataType) -> Expr:
    """``e`` as type ``t`` (an implicit cast, which column names do not show)."""
    if e.dtype == t:
        return e
    if isinstance(e, Lit) and e.value is None:
        return Lit(None, t)
    return Cast(e, t, implicit=True)


def _same(t: Callable[[Call], T.DataType] | None = None):
    return t or (lambda c: c.args[0].dtype)


def _any_null(c: Call) -> bool:
    return any(a.nullable for a in c.args)


def _fixed(t: T.DataType):
    return lambda c: t


def _func_sql(name: str):
    return lambda c, a: f"{name}({', '.join(a)})"


def _coerce_common(c: Call) -> list[Expr]:
    t = common_type_of([a.dtype for a in c.args], lambda t, other: _mismatch(c, t, other))
    return [cast_to(a, t) for a in c.args]


def _coerce_to(*types: T.DataType | None):
    def coerce(c: Call) -> list[Expr]:
        out = []
        for i, a in enumerate(c.args):
            t = types[min(i, len(types) - 1)]
            out.append(a if t is None or a.dtype == t else cast_to(a, t))
        return out
    return coerce


def _mismatch(c: Call, a: T.DataType, b: T.DataType) -> AnalysisException:
    return AnalysisException(
        f"[DATATYPE_MISMATCH.BINARY_OP_DIFF_TYPES] Cannot resolve \"{c.name}\" due to data type "
        f"mismatch: the left and right operands of the binary operator have incompatible types "
        f"(\"{a.simpleString().upper()}\" and \"{b.simpleString().upper()}\"). SQLSTATE: 42K09")


def _ensure(pred: Callable[[T.DataType], bool], what: str):
    def coerce(c: Call) -> list[Expr]:
        for a in c.args[:1]:
            if not pred(a.dtype) and not isinstance(a.dtype, T.NullType):
                raise AnalysisException(
                    f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] Cannot resolve \"{c.name}\": "
                    f"it needs {what}, got \"{a.dtype.simpleString().upper()}\". SQLSTATE: 42K09")
        return c.args
    return coerce


# -- operators -------------------------------------------------------------------------------

def _arith_coerce(c: Call) -> list[Expr]:
    a, b = c.args
    ta, tb = a.dtype, b.dtype
    if isinstance(ta, T.StringType) and not isinstance(tb, T.StringType):
        ta = T.DoubleType()
    if isinstance(tb, T.StringType) and not isinstance(ta, T.StringType):
        tb = T.DoubleType()
    t = common_type(ta, tb)
    if t is None or not (is_numeric(t) or isinstance(t, T.NullType)):
        if isinstance(ta, (T.DateType, T.TimestampType)) or isinstance(tb, (T.DateType, T.TimestampType)):
            return c.args  # date arithmetic handled by the engine
        raise _mismatch(c, a.dtype, b.dtype)
    if isinstance(t, T.NullType):
        t = T.DoubleType() if c.name == "/" else T.IntegerType()
    if c.name == "/":
        t = T.DoubleType() if not isinstance(t, T.DecimalType) else t
    if isinstance(t, T.DecimalType) and c.name != "/":
        return [cast_to(a, t if isinstance(a.dtype, T.DecimalType) else t),
                cast_to(b, t if isinstance(b.dtype, T.DecimalType) else t)]
    return [cast_to(a, t), cast_to(b, t)]


def _arith_result(c: Call) -> T.DataType:
    a, b = c.args[0].dtype, c.args[1].dtype
    if c.name == "/" and not isinstance(a, T.DecimalType):
        return T.DoubleType()
    if isinstance(a, T.DecimalType) and isinstance(b, T.DecimalType):
        if c.name in ("+", "-"):
            w = wider_decimal(a, b)
            return T.DecimalType(min(38, w.precision + 1), w.scale)
        if c.name == "*":
            return T.DecimalType(min(38, a.precision + b.precision + 1), a.scale + b.scale)
        if c.name == "/":
            scale = max(6, a.scale + b.precision + 1)
            return T.DecimalType(min(38, a.precision - a.scale + b.scale + scale), min(scale, 38))
        return wider_decimal(a, b)
    return a if not isinstance(a, T.NullType) else b


def _div_sql(c: Call, a: Sql) -> str:
    t = c.dtype
    num = f"CAST({a[0]} AS {sql_type(t)})" if isinstance(t, T.DecimalType) else a[0]
    return (f"(CASE WHEN {a[1]} = 0 THEN error('[DIVIDE_BY_ZERO] Division by zero. "
            f"Use `try_divide` to tolerate divisor being 0 and return NULL instead.') "
            f"ELSE {num} / {a[1]} END)")


def _infix(op: str):
    """``(a op b)``: an operator's SQL, or its text in a column name."""
    return lambda c, a: f"({a[0]} {op} {a[1]})"


def _binop(op: str, engine_op: str | None = None, pretty_op: str | None = None):
    return Fn(op, 2, 2, _arith_result, _infix(engine_op or op), coerce=_arith_coerce,
              nullable=_any_null, pretty=_infix(pretty_op or op))


for _op in ("+", "-", "*"):
    register(_binop(_op))
register(_binop("%", "%"))
register(Fn("/", 2, 2, _arith_result, _div_sql, coerce=_arith_coerce, pretty=_infix("/")))
register(Fn("div", 2, 2, _fixed(T.LongType()),
            lambda c, a: f"CAST(trunc(CAST({a[0]} AS DOUBLE) / {a[1]}) AS BIGINT)"
            if not all(is_integral(x.dtype) for x in c.args) else f"({a[0]} // {a[1]})",
            coerce=lambda c: [cast_to(x, T.LongType()) if is_integral(x.dtype) else x for x in c.args],
            nullable=lambda c: True, pretty=lambda c, p: f"({p[0]} div {p[1]})"))
register(Fn("negative", 1, 1, _same(), lambda c, a: f"(- {a[0]})", nullable=_any_null,
            pretty=lambda c, p: f"negative({p[0]})"))

# -- predicates ------------------------------------------------------------------------------

_BOOL = T.BooleanType()


def _never_null(c: Call) -> bool:
    return False


def _negation(c: Call, a: Sql) -> str:
    return f"(NOT {a[0]})"


def _postfix(op: str):
    """``(a op)``, as ``_infix``."""
    return lambda c, a: f"({a[0]} {op})"


def _predicate(name: str, n_args: tuple[int, int | None], sql, pretty=None, coerce=None,
               nullable=_any_null, **kw) -> Fn:
    """Registers a function whose result is a BOOLEAN; ``n_args`` is (least, most)."""
    return register(Fn(name, n_args[0], n_args[1], _fixed(_BOOL), sql, coerce=coerce,
                       nullable=nullable, pretty=pretty, **kw))


def _cmp_coerce(c: Call) -> list[Expr]:
    a, b = c.args
    t = common_type(a.dtype, b.dtype)
    if t is None:
        raise _mismatch(c, a.dtype, b.dtype)
    return [cast_to(a, t), cast_to(b, t)]


for _op in ("=", "<", "<=", ">", ">="):
    _predicate(_op, (2, 2), _infix(_op), _infix(_op), coerce=_cmp_coerce)
_predicate("!=", (2, 2), _infix("<>"), lambda c, p: f"(NOT ({p[0]} = {p[1]}))", coerce=_cmp_coerce)
_predicate("<=>", (2, 2), _infix("IS NOT DISTINCT FROM"), _infix("<=>"), coerce=_cmp_coerce,
           nullable=_never_null)
for _op in ("AND", "OR"):
    _predicate(_op.lower(), (2, 2), _infix(_op), _infix(_op), coerce=_coerce_to(_BOOL))
_predicate("not", (1, 1), _negation, _negation, coerce=_coerce_to(_BOOL))
for _name, _test in (("isnull", "IS NULL"), ("isnotnull", "IS NOT NULL")):
    _predicate(_name, (1, 1), _postfix(_test), _postfix(_test), nullable=_never_null)
_predicate("in", (1, None),
           lambda c, a: f"({a[0]} IN ({', '.join(a[1:])}))" if len(a) > 1 else "FALSE",
           lambda c, p: f"({p[0]} IN ({', '.join(p[1:])}))", coerce=_coerce_common)
_predicate("like", (2, 3),
           lambda c, a: f"({a[0]} LIKE {a[1]}" + (f" ESCAPE {a[2]})" if len(a) > 2 else ")"),
           lambda c, p: f"{p[0]} LIKE {p[1]}", coerce=_coerce_to(T.StringType()))
_predicate("ilike", (2, 2), _infix("ILIKE"), _func_sql("ilike"), coerce=_coerce_to(T.StringType()))
_predicate("rlike", (2, 2), _func_sql("regexp_matches"), _func_sql("RLIKE"),
           coerce=_coerce_to(T.StringType()), aliases=("regexp", "regexp_like"))
_predicate("isnan", (1, 1), lambda c, a: f"coalesce(isnan({a[0]}), FALSE)",
           coerce=_coerce_to(T.DoubleType()), nullable=_never_null)

# -- strings ---------------------------------------------------------------------------------

_STR = T.StringType()


def _str_fn(name: str, engine: str | None = None, result: T.DataType = _STR, n=(1, 1), **kw):
    return register(Fn(name, n[0], n[1], _fixed(result), _func_sql(engine or name),
                       coerce=kw.pop("coerce", _coerce_to(_STR)), nullable=_any_null, **kw))


_str_fn("upper", aliases=("ucase",))
_str_fn("lower", aliases=("lcase",))
_str_fn("trim")
_str_fn("ltrim")
_str_fn("rtrim")
_str_fn("reverse")
register(Fn("length", 1, 1, _fixed(T.IntegerType()), lambda c, a: f"CAST(length({a[0]}) AS INTEGER)",
            coerce=_coerce_to(_STR), nullable=_any_null,
            aliases=("char_length", "character_length", "len")))
register(Fn("startswith", 2, 2, _fixed(T.BooleanType()), _func_sql("starts_with"),
            coerce=_coerce_to(_STR), nullable=_any_null))
register(Fn("endswith", 2, 2, _fixed(T.BooleanType()), _func_sql("ends_with"),
            coerce=_coerce_to(_STR), nullable=_any_null))
register(Fn("contains", 2, 2, _fixed(T.BooleanType()), _func_sql("contains"),
            coerce=_coerce_to(_STR), nullable=_any_null))
register(Fn("instr", 2, 2, _fixed(T.IntegerType()), lambda c, a: f"CAST(instr({a[0]}, {a[1]}) AS INTEGER)",
            coerce=_coerce_to(_STR), nullable=_any_null))
register(Fn("replace", 2, 3, _fixed(_STR),
            lambda c, a: f"replace({a[0]}, {a[1]}, {a[2] if len(a) > 2 else repr('')})",
            coerce=_coerce_to(_STR), nullable=_any_null))
register(Fn("repeat", 2, 2, _fixed(_STR), _func_sql("repeat"),
            coerce=_coerce_to(_STR, T.LongType()), nullable=_any_null))
register(Fn("lpad", 2, 3, _fixed(_STR), lambda c, a: f"lpad({a[0]}, {a[1]}, {a[2] if len(a) > 2 else chr(39) + ' ' + chr(39)})",
            coerce=_coerce_to(_STR, T.IntegerType(), _STR), nullable=_any_null))
register(Fn("rpad", 2, 3, _fixed(_STR), lambda c, a: f"rpad({a[0]}, {a[1]}, {a[2] if len(a) > 2 else chr(39) + ' ' + chr(39)})",
            coerce=_coerce_to(_STR, T.IntegerType(), _STR), nullable=_any_null))


def _substring_sql(c: Call, a: Sql) -> str:
    # Spark: position 0 means 1; a negative position counts from the end.
    pos = f"(CASE WHEN {a[1]} = 0 THEN 1 ELSE {a[1]} END)"
    if len(a) == 2:
        return f"substring({a[0]}, {pos})"
    return f"substring({a[0]}, {pos}, greatest({a[2]}, 0))"


register(Fn("substring", 2, 3, _fixed(_STR), _substring_sql,
            coerce=_coerce_to(_STR, T.IntegerType()), nullable=_any_null, aliases=("substr",)))
register(Fn("concat", 0, None, _fixed(_STR),
            lambda c, a: "(" + " || ".join(a) + ")" if a else "''",
            coerce=_coerce_to(_STR), nullable=_any_null))
register(Fn("concat_ws", 1, None, _fixed(_STR),
            lambda c, a: f"concat_ws({', '.join(a)})" if len(a) > 1 else "''",
            coerce=_coerce_to(_STR), nullable=lambda c: c.args[0].nullable))


_REGEX_META = set(".^$*+?()[]{}|\\")


def _split_sql(c: Call, a: Sql) -> str:
    pattern = c.args[1]
    if len(c.args) > 2 and not (isinstance(c.args[2], Lit) and c.args[2].value in (-1, None)):
        raise AnalysisException("[UNSUPPORTED_FEATURE] split with a limit other than -1 is not "
                                "supported. SQLSTATE: 0A000")
    if isinstance(pattern, Lit) and isinstance(pattern.value, str) \
            and not (set(pattern.value) & _REGEX_META) and pattern.value:
        return f"string_split({a[0]}, {a[1]})"  # a plain separator: no regex engine needed
    return f"regexp_split_to_array({a[0]}, {a[1]})"


register(Fn("split", 2, 3, _fixed(T.ArrayType(_STR, False)), _split_sql,
            coerce=_coerce_to(_STR, _STR, T.IntegerType()), nullable=_any_null,
            pretty=lambda c, p: f"split({p[0]}, {p[1]}, {p[2] if len(p) > 2 else -1})"))


def _java_replacement(text: str) -> str:
    """Java's ``$1`` group references as RE2's ``\\1``."""
    return re.sub(r"\$(\d)", r"\\\1", text)


def _regexp_replace_sql(c: Call, a: Sql) -> str:
    repl = a[2]
    if isinstance(c.args[2], Lit) and isinstance(c.args[2].value, str):
        repl = "'" + _java_replacement(c.args[2].value).replace("'", "''") + "'"
    return f"regexp_replace({a[0]}, {a[1]}, {repl}, 'g')"


register(Fn("regexp_replace", 3, 4, _fixed(_STR), _regexp_replace_sql,
            coerce=_coerce_to(_STR), nullable=_any_null,
            pretty=lambda c, p: f"regexp_replace({p[0]}, {p[1]}, {p[2]}, {p[3] if len(p) > 3 else 1})"))
register(Fn("regexp_extract", 2, 3, _fixed(_STR),
            lambda c, a: f"regexp_extract({a[0]}, {a[1]}, {a[2] if len(a) > 2 else 1})",
            coerce=_coerce_to(_STR, _STR, T.IntegerType()), nullable=_any_null,
            pretty=lambda c, p: f"regexp_extract({p[0]}, {p[1]}, {p[2] if len(p) > 2 else 1})"))

# -- nulls and conditionals ------------------------------------------------------------------

register(Fn("coalesce", 1, None, lambda c: c.args[0].dtype, _func_sql("coalesce"),
            coerce=_coerce_common, nullable=lambda c: all(a.nullable for a in c.args)))
register(Fn("nvl", 2, 2, lambda c: c.args[0].dtype, _func_sql("coalesce"), coerce=_coerce_common,
            nullable=lambda c: all(a.nullable for a in c.args), aliases=("ifnull",)))
register(Fn("nullif", 2, 2, lambda c: c.args[0].dtype, _func_sql("nullif"), coerce=_coerce_common,
            nullable=lambda c: True))
register(Fn("greatest", 2, None, lambda c: c.args[0].dtype, _func_sql("greatest"),
            coerce=_coerce_common, nullable=lambda c: all(a.nullable for a in c.args)))
register(Fn("least", 2, None, lambda c: c.args[0].dtype, _func_sql("least"),
            coerce=_coerce_common, nullable=lambda c: all(a.nullable for a in c.args)))

# -- math ----------------------------------------------------------------------------------------

_DBL = T.DoubleType()
register(Fn("abs", 1, 1, _same(), _func_sql("abs"), nullable=_any_null,
            coerce=_ensure(is_numeric, "a number")))
for _name, _engine in (("sqrt", "sqrt"), ("exp", "exp"), ("ln", "ln"), ("log10", "log10"),
                       ("log2", "log2"), ("sin", "sin"), ("cos", "cos"), ("tan", "tan"),
                       ("cbrt", "cbrt"), ("signum", "sign")):
    register(Fn(_name, 1, 1, _fixed(_DBL), _func_sql(_engine), coerce=_coerce_to(_DBL),
                nullable=lambda c: True))
register(Fn("pow", 2, 2, _fixed(_DBL), _func_sql("pow"), coerce=_coerce_to(_DBL),
            nullable=_any_null, aliases=("power",)))
register(Fn("log", 1, 2, _fixed(_DBL),
            lambda c, a: f"ln({a[0]})" if len(a) == 1 else f"(ln({a[1]}) / ln({a[0]}))",
            coerce=_coerce_to(_DBL), nullable=lambda c: True))


def _round_result(c: Call) -> T.DataType:
    t = c.args[0].dtype
    if isinstance(t, T.DecimalType):
        scale = c.args[1].value if len(c.args) > 1 and isinstance(c.args[1], Lit) else 0
        digits = t.precision - t.scale
        return T.DecimalType(min(38, digits + max(scale, 0) + 1), max(scale, 0))
    return t


register(Fn("round", 1, 2, _round_result,
            lambda c, a: f"CAST(round({a[0]}, {a[1] if len(a) > 1 else 0}) AS {sql_type(c.dtype)})",
            coerce=lambda c: [c.args[0]] + [cast_to(x, T.IntegerType()) for x in c.args[1:]],
            nullable=_any_null,
            pretty=lambda c, p: f"round({p[0]}, {p[1] if len(p) > 1 else 0})"))
register(Fn("floor", 1, 1, lambda c: T.LongType() if not isinstance(c.args[0].dtype, T.DecimalType)
            else c.args[0].dtype, lambda c, a: f"CAST(floor({a[0]}) AS {sql_type(c.dtype)})",
            nullable=_any_null))
register(Fn("ceil", 1, 1, lambda c: T.LongType() if not isinstance(c.args[0].dtype, T.DecimalType)
            else c.args[0].dtype, lambda c, a: f"CAST(ceil({a[0]}) AS {sql_type(c.dtype)})",
            nullable=_any_null, aliases=("ceiling",)))

# -- arrays, maps, structs ------------------------------------------------------------------------

register(Fn("array", 0, None,
            lambda c: T.ArrayType(c.args[0].dtype if c.args else _STR,
                                  any(a.nullable for a in c.args)),
            lambda c, a: f"[{', '.join(a)}]", coerce=lambda c: _coerce_common(c) if c.args else [],
            nullable=lambda c: False))
register(Fn("size", 1, 1, _fixed(T.IntegerType()), lambda c, a: f"CAST(len({a[0]}) AS INTEGER)",
            nullable=_any_null, aliases=("cardinality", "array_size")))
register(Fn("array_contains", 2, 2, _fixed(T.BooleanType()), _func_sql("list_contains"),
            nullable=_any_null))
register(Fn("array_distinct", 1, 1, _same(), _func_sql("list_distinct"), nullable=_any_null))
register(Fn("sort_array", 1, 2, _same(),
            lambda c, a: f"list_sort({a[0]}, "
                         f"{chr(39) + ('ASC' if len(c.args) < 2 or c.args[1].value else 'DESC') + chr(39)},"
                         f" {chr(39) + ('NULLS FIRST' if len(c.args) < 2 or c.args[1].value else 'NULLS LAST') + chr(39)})",
            nullable=_any_null, pretty=lambda c, p: f"sort_array({p[0]}, {p[1] if len(p) > 1 else 'true'})"))
register(Fn("array_join", 2, 3, _fixed(_STR), lambda c, a: f"array_to_string({a[0]}, {a[1]})",
            nullable=_any_null))


def _element_type(c: Call) -> T.DataType:
    t = c.args[0].dtype
    if isinstance(t, T.ArrayType):
        return t.elementType
    if isinstance(t, T.MapType):
        return t.valueType
    raise AnalysisException(f"[DATATYPE_MISMATCH] element_at needs an array or map, got "
                            f"{t.simpleString()}")


def _element_at_sql(c: Call, a: Sql) -> str:
    if isinstance(c.args[0].dtype, T.MapType):
        return f"{a[0]}[{a[1]}]"
    return f"list_extract({a[0]}, {a[1]})"


register(Fn("element_at", 2, 2, _element_type, _element_at_sql, nullable=lambda c: True))
# ``arr[i]`` is 0-based in Spark SQL (get); element_at is 1-based.
register(Fn("get", 2, 2, _element_type,
            lambda c, a: (f"{a[0]}[{a[1]}]" if isinstance(c.args[0].dtype, T.MapType)
                          else f"list_extract({a[0]}, {a[1]} + 1)"),
            nullable=lambda c: True, pretty=lambda c, p: f"{p[0]}[{p[1]}]"))


def _struct_result(c: Call) -> T.DataType:
    names = c.options.get("names") or [f"col{i + 1}" for i in range(len(c.args))]
    return T.StructType([T.StructField(n, a.dtype, a.nullable) for n, a in zip(names, c.args)])


register(Fn("struct", 1, None, _struct_result,
            lambda c, a: "{" + ", ".join(f"'{f.name}': {s}" for f, s in zip(c.dtype.fields, a)) + "}",
            nullable=lambda c: False, aliases=("named_struct_",)))


def _field_type(c: Call) -> T.DataType:
    t = c.args[0].dtype
    name = c.options["field"]
    if isinstance(t, T.StructType):
        for f in t.fields:
            if f.name.lower() == name.lower():
                return f.dataType
        raise AnalysisException(f"[FIELD_NOT_FOUND] No such struct field `{name}` in "
                                f"{', '.join('`' + f.name + '`' for f in t.fields)}. SQLSTATE: 42704")
    raise AnalysisException(f"[INVALID_EXTRACT_BASE_FIELD_TYPE] Can't extract a value from "
                            f"\"{t.simpleString()}\": it needs a struct. SQLSTATE: 42000")


register(Fn("get_field", 1, 1, _field_type,
            lambda c, a: f"struct_extract({a[0]}, '{c.options['field']}')",
            nullable=lambda c: True, pretty=lambda c, p: f"{p[0]}.{c.options['field']}"))


def _map_result(c: Call) -> T.DataType:
    if not c.args:
        return T.MapType(_STR, _STR)
    return T.MapType(c.args[0].dtype, c.args[1].dtype)


register(Fn("map", 0, None, _map_result,
            lambda c, a: f"map([{', '.join(a[0::2])}], [{', '.join(a[1::2])}])",
            nullable=lambda c: False, aliases=("create_map",)))
register(Fn("map_keys", 1, 1, lambda c: T.ArrayType(c.args[0].dtype.keyType),
            _func_sql("map_keys"), nullable=_any_null))
register(Fn("map_values", 1, 1, lambda c: T.ArrayType(c.args[0].dtype.valueType),
            _func_sql("map_values"), nullable=_any_null))
