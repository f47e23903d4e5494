"""Expression trees: what a ``Column`` holds and what SQL text becomes.

Before analysis an expression may hold names (``UnresolvedAttr``, ``Star``);
the analyzer replaces them with ``Attr`` -- a column of a plan's output with
a unique ``id``, a type and a nullability -- and types every ``Call``.
Attribute ids, not names, tie a reference to the column it means, so a
self-join or two columns of one name stay apart (Spark's expression ids).
In the engine, the column of attribute ``id`` is named ``c<id>``.
"""
from __future__ import annotations

import datetime
import decimal
import itertools
from operator import attrgetter
from typing import Any, Callable, Iterator

from . import types as T

_ids = itertools.count(1)


def new_id() -> int:
    return next(_ids)


class Expr:
    """An expression node. Resolved nodes have ``dtype`` and ``nullable``."""

    dtype: T.DataType | None = None
    nullable: bool = True

    def children(self) -> list["Expr"]:
        return []

    def with_children(self, children: list["Expr"]) -> "Expr":
        return self

    def walk(self) -> Iterator["Expr"]:
        """This node and every node below it, parents first."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children()))

    def transform(self, fn: Callable[["Expr"], "Expr | None"]) -> "Expr":
        """Rewrite bottom-up: ``fn`` returns a replacement, or None to keep the node."""
        kids = self.children()
        node = self
        if kids:
            new = [k.transform(fn) for k in kids]
            if any(a is not b for a, b in zip(new, kids)):
                node = self.with_children(new)
        out = fn(node)
        return node if out is None else out

    @property
    def resolved(self) -> bool:
        return all(not isinstance(n, (UnresolvedAttr, Star, UnresolvedFunction)) for n in self.walk())


class Attr(Expr):
    """A column of a plan's output."""

    __slots__ = ("name", "dtype", "nullable", "id", "qualifier")

    def __init__(self, name: str, dtype: T.DataType, nullable: bool = True, id: int | None = None,
                 qualifier: tuple[str, ...] = ()):
        self.name = name
        self.dtype = dtype
        self.nullable = nullable
        self.id = new_id() if id is None else id
        self.qualifier = qualifier

    @property
    def col(self) -> str:
        """The column's name in the engine."""
        return f"c{self.id}"

    def renamed(self, name: str) -> "Attr":
        return Attr(name, self.dtype, self.nullable, self.id, self.qualifier)

    def qualified(self, qualifier: tuple[str, ...]) -> "Attr":
        return Attr(self.name, self.dtype, self.nullable, self.id, qualifier)

    def fresh(self) -> "Attr":
        return Attr(self.name, self.dtype, self.nullable, None, self.qualifier)

    def __repr__(self) -> str:
        return f"{self.name}#{self.id}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Attr) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("attr", self.id))


class UnresolvedAttr(Expr):
    """A column by name: ``("word",)`` or ``("t", "word")``."""

    __slots__ = ("parts", "position")

    def __init__(self, parts: tuple[str, ...], position: int | None = None):
        self.parts = tuple(parts)
        self.position = position  # where it stood in SQL text, for error messages

    @property
    def name(self) -> str:
        return ".".join(self.parts)

    def __repr__(self) -> str:
        return f"'{self.name}"


class Star(Expr):
    """``*`` or ``t.*``."""

    __slots__ = ("qualifier",)

    def __init__(self, qualifier: tuple[str, ...] = ()):
        self.qualifier = tuple(qualifier)

    def __repr__(self) -> str:
        return ".".join(self.qualifier + ("*",))


class Lit(Expr):
    __slots__ = ("value", "dtype", "nullable")

    def __init__(self, value: Any, dtype: T.DataType | None = None):
        self.value = value
        self.dtype = dtype if dtype is not None else literal_type(value)
        self.nullable = value is None

    def __repr__(self) -> str:
        return f"Lit({self.value!r})"


def literal_type(value: Any) -> T.DataType:
    """``lit(value)``'s type: Python int is int when it fits 32 bits (Spark's rule)."""
    if isinstance(value, bool):
        return T.BooleanType()
    if isinstance(value, int):
        return T.IntegerType() if -2**31 <= value < 2**31 else T.LongType()
    if isinstance(value, decimal.Decimal):
        sign, digits, exponent = value.as_tuple()
        scale = max(0, -int(exponent))
        return T.DecimalType(max(len(digits), scale, 1), scale)
    if isinstance(value, datetime.datetime):
        return T.TimestampType()
    if isinstance(value, datetime.date):
        return T.DateType()
    return T.infer_type(value)


class UnaryExpr(Expr):
    """An expression over one ``child`` (an alias, a cast, a sort order)."""

    __slots__ = ("child",)

    def children(self):
        return [self.child]


class Alias(UnaryExpr):
    __slots__ = ("name", "id")

    def __init__(self, child: Expr, name: str, id: int | None = None):
        self.child = child
        self.name = name
        self.id = new_id() if id is None else id

    dtype = property(attrgetter("child.dtype"))
    nullable = property(attrgetter("child.nullable"))

    def with_children(self, children):
        return Alias(children[0], self.name, self.id)

    def to_attr(self) -> Attr:
        return Attr(self.name, self.child.dtype, self.child.nullable, self.id)

    def __repr__(self) -> str:
        return f"{self.child!r} AS {self.name}"


class Call(Expr):
    """A function or operator applied to arguments (``+``, ``and``, ``upper``, ``sum``...).

    ``options`` holds non-expression arguments (``ignorenulls``, a regex
    flag...). Resolved calls carry ``dtype``/``nullable`` set by the analyzer.
    """

    __slots__ = ("name", "args", "distinct", "options", "dtype", "nullable")

    def __init__(self, name: str, args: list[Expr], distinct: bool = False,
                 options: dict | None = None, dtype: T.DataType | None = None,
                 nullable: bool = True):
        self.name = name
        self.args = list(args)
        self.distinct = distinct
        self.options = dict(options or {})
        self.dtype = dtype
        self.nullable = nullable

    def children(self):
        return list(self.args)

    def with_children(self, children):
        return Call(self.name, children, self.distinct, self.options, self.dtype, self.nullable)

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(map(repr, self.args))})"


class UnresolvedFunction(Call):
    """A call whose function is looked up by the analyzer."""


class CaseWhen(Expr):
    __slots__ = ("branches", "default", "dtype", "nullable")

    def __init__(self, branches: list[tuple[Expr, Expr]], default: Expr | None = None,
                 dtype: T.DataType | None = None, nullable: bool = True):
        self.branches = list(branches)
        self.default = default
        self.dtype = dtype
        self.nullable = nullable

    def children(self):
        kids = [x for pair in self.branches for x in pair]
        return kids + ([self.default] if self.default is not None else [])

    def with_children(self, children):
        n = len(self.branches)
        branches = [(children[2 * i], children[2 * i + 1]) for i in range(n)]
        default = children[2 * n] if len(children) > 2 * n else None
        return CaseWhen(branches, default, self.dtype, self.nullable)


class Cast(UnaryExpr):
    __slots__ = ("to", "safe", "implicit")

    def __init__(self, child: Expr, to: T.DataType, safe: bool = False, implicit: bool = False):
        self.child = child
        self.to = to
        self.safe = safe  # try_cast: NULL instead of an error
        self.implicit = implicit  # inserted by type coercion: not part of the column's name

    dtype = property(attrgetter("to"))

    @property
    def nullable(self):
        return self.child.nullable or self.safe

    def with_children(self, children):
        return Cast(children[0], self.to, self.safe, self.implicit)


class SortOrder(UnaryExpr):
    __slots__ = ("ascending", "nulls_first")

    def __init__(self, child: Expr, ascending: bool = True, nulls_first: bool | None = None):
        self.child = child
        self.ascending = ascending
        # Spark: ascending puts nulls first, descending last.
        self.nulls_first = ascending if nulls_first is None else nulls_first

    dtype = property(attrgetter("child.dtype"))

    def with_children(self, children):
        return SortOrder(children[0], self.ascending, self.nulls_first)


class WindowSpecDef:
    """``PARTITION BY ... ORDER BY ... ROWS|RANGE BETWEEN ...``.

    ``frame`` is None (the default frame) or ``(kind, start, end)`` with
    kind "rows"/"range" and bounds as ints (negative: preceding) or the
    strings "unbounded_preceding", "unbounded_following", "current_row".
    """

    def __init__(self, partition_by: list[Expr] = (), order_by: list[SortOrder] = (),
                 frame: tuple | None = None):
        self.partition_by = list(partition_by)
        self.order_by = list(order_by)
        self.frame = frame

    def exprs(self) -> list[Expr]:
        return self.partition_by + self.order_by

    def with_exprs(self, exprs: list[Expr]) -> "WindowSpecDef":
        n = len(self.partition_by)
        return WindowSpecDef(exprs[:n], exprs[n:], self.frame)

    def key(self) -> tuple:
        return (tuple(map(_expr_key, self.partition_by)), tuple(map(_expr_key, self.order_by)))


class WindowExpr(Expr):
    __slots__ = ("func", "spec")

    def __init__(self, func: Expr, spec: WindowSpecDef):
        self.func = func
        self.spec = spec

    dtype = property(attrgetter("func.dtype"))
    nullable = property(attrgetter("func.nullable"))

    def children(self):
        return [self.func] + self.spec.exprs()

    def with_children(self, children):
        return WindowExpr(children[0], self.spec.with_exprs(children[1:]))


def _expr_key(e: Expr) -> Any:
    """A structural key: two expressions that mean the same thing have equal keys."""
    if isinstance(e, Attr):
        return ("attr", e.id)
    if isinstance(e, Lit):
        return ("lit", repr(e.value), str(e.dtype))
    if isinstance(e, Call):
        return ("call", e.name, e.distinct, tuple(sorted((k, repr(v)) for k, v in e.options.items())),
                tuple(map(_expr_key, e.args)))
    if isinstance(e, Alias):
        return _expr_key(e.child)
    if isinstance(e, Cast):
        return ("cast", str(e.to), e.safe, _expr_key(e.child))
    if isinstance(e, SortOrder):
        return ("sort", e.ascending, e.nulls_first, _expr_key(e.child))
    if isinstance(e, WindowExpr):
        return ("window", _expr_key(e.func), e.spec.key(), e.spec.frame)
    return (type(e).__name__,) + tuple(map(_expr_key, e.children()))


expr_key = _expr_key


def strip_alias(e: Expr) -> Expr:
    while isinstance(e, Alias):
        e = e.child
    return e
