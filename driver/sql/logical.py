"""Logical plans: what a DataFrame or a SQL query computes, already resolved.

Every node knows its ``output`` attributes; expressions in it refer to its
children's attributes by id. DataFrame methods and the SQL front end build
these nodes through the same constructors, so both check names and types
the same way, and ``physical`` turns either into distributed stages.
"""
from __future__ import annotations

from typing import Any

from . import types as T
from .expressions import Attr, Expr, SortOrder, strip_alias
from .analyzer import to_attr


class Plan:
    children: list["Plan"] = []

    @property
    def output(self) -> list[Attr]:
        raise NotImplementedError

    def schema(self) -> T.StructType:
        return T.StructType([T.StructField(a.name, a.dtype, a.nullable) for a in self.output])

    def size_estimate(self) -> float:
        """Bytes this plan may produce (for broadcast joins); inf when unknown."""
        sizes = [c.size_estimate() for c in self.children]
        return sum(sizes) if sizes else float("inf")

    def describe(self) -> str:
        return type(self).__name__

    def tree_string(self, depth: int = 0) -> str:
        lines = [("   " * (depth - 1) + "+- " if depth else "") + self.describe()]
        for child in self.children:
            lines.append(child.tree_string(depth + 1))
        return "\n".join(lines)


# -- leaves -------------------------------------------------------------------------------

class LocalRelation(Plan):
    """Rows given on the driver, as Arrow IPC bytes per partition (columns in output order)."""

    def __init__(self, attrs: list[Attr], partitions: list[bytes]):
        self.attrs = attrs
        self.partitions = partitions
        self.children = []

    @property
    def output(self):
        return self.attrs

    def size_estimate(self):
        return float(sum(len(p) for p in self.partitions))

    def describe(self):
        return f"LocalRelation {self.attrs}"


class RDDRelation(Plan):
    """An RDD: of Python rows (``kind="rows"``, converted on the executors) or of Arrow
    IPC partitions (``kind="arrow"``, columns in output order)."""

    def __init__(self, attrs: list[Attr], rdd: Any, kind: str, size: float = float("inf")):
        self.attrs = attrs
        self.rdd = rdd
        self.kind = kind
        self.size = size
        self.children = []

    @property
    def output(self):
        return self.attrs

    def size_estimate(self):
        return self.size

    def describe(self):
        return f"LogicalRDD {self.attrs}"


class RangeRelation(Plan):
    def __init__(self, attr: Attr, start: int, end: int, step: int, num_partitions: int):
        self.attr = attr
        self.start, self.end, self.step = start, end, step
        self.num_partitions = num_partitions
        self.children = []

    @property
    def output(self):
        return [self.attr]

    def size_estimate(self):
        return 8.0 * max(0, (self.end - self.start) // (self.step or 1))


class FileRelation(Plan):
    """Files read on the executors: ``fmt`` text, csv, json or parquet."""

    def __init__(self, attrs: list[Attr], fmt: str, splits: list, options: dict, size: float):
        self.attrs = attrs
        self.fmt = fmt
        self.splits = splits  # per partition: a list of [path, start, length]
        self.options = options
        self.size = size
        self.children = []

    @property
    def output(self):
        return self.attrs

    def size_estimate(self):
        return self.size

    def describe(self):
        return f"FileScan {self.fmt} {self.attrs}"


# -- unary ----------------------------------------------------------------------------------------

class Project(Plan):
    def __init__(self, exprs: list[Expr], child: Plan):
        self.exprs = exprs  # Attr or Alias
        self.child = child
        self.children = [child]

    @property
    def output(self):
        return [to_attr(e) for e in self.exprs]

    def describe(self):
        return f"Project {self.exprs}"


class Filter(Plan):
    def __init__(self, condition: Expr, child: Plan):
        self.condition = condition
        self.child = child
        self.children = [child]

    @property
    def output(self):
        return self.child.output

    def describe(self):
        return f"Filter {self.condition!r}"


class Aggregate(Plan):
    """GROUP BY ``groups``; ``aggs`` are the output expressions (Attr or Alias)."""

    def __init__(self, groups: list[Expr], aggs: list[Expr], child: Plan):
        self.groups = groups
        self.aggs = aggs
        self.child = child
        self.children = [child]

    @property
    def output(self):
        return [to_attr(e) for e in self.aggs]

    def describe(self):
        return f"Aggregate {self.groups}, {self.aggs}"


class Window(Plan):
    """Child columns plus window expressions (Alias of WindowExpr)."""

    def __init__(self, wexprs: list[Expr], child: Plan):
        self.wexprs = wexprs
        self.child = child
        self.children = [child]

    @property
    def output(self):
        return self.child.output + [to_attr(e) for e in self.wexprs]


class Generate(Plan):
    """explode and friends: child columns plus ``gen_attrs`` per produced element."""

    def __init__(self, generator: Expr, outer: bool, gen_attrs: list[Attr], child: Plan):
        self.generator = generator  # the Call (explode, posexplode...)
        self.outer = outer
        self.gen_attrs = gen_attrs
        self.child = child
        self.children = [child]

    @property
    def output(self):
        return self.child.output + self.gen_attrs


class Sort(Plan):
    def __init__(self, orders: list[SortOrder], is_global: bool, child: Plan):
        self.orders = orders
        self.is_global = is_global
        self.child = child
        self.children = [child]

    @property
    def output(self):
        return self.child.output


class Limit(Plan):
    def __init__(self, n: int, child: Plan, offset: int = 0):
        self.n = n
        self.offset = offset
        self.child = child
        self.children = [child]

    @property
    def output(self):
        return self.child.output


class Deduplicate(Plan):
    """dropDuplicates(keys): the first row of each distinct key."""

    def __init__(self, keys: list[Attr], child: Plan):
        self.keys = keys
        self.child = child
        self.children = [child]

    @property
    def output(self):
        return self.child.output


class Repartition(Plan):
    """``shuffle``: hash by ``keys`` (round-robin without); else coalesce."""

    def __init__(self, n: int | None, keys: list[Expr], shuffle: bool, child: Plan):
        self.n = n
        self.keys = keys
        self.shuffle = shuffle
        self.child = child
        self.children = [child]

    @property
    def output(self):
        return self.child.output


class SubqueryAlias(Plan):
    """A named relation (a view or ``AS t``): qualifies its columns with the name."""

    def __init__(self, alias: str, child: Plan):
        self.alias = alias
        self.child = child
        self.children = [child]

    @property
    def output(self):
        return [a.qualified((self.alias,)) for a in self.child.output]


# -- binary -----------------------------------------------------------------------------------------

JOIN_TYPES = {
    "inner": "inner", "cross": "cross", "outer": "full", "full": "full", "fullouter": "full",
    "full_outer": "full", "left": "left", "leftouter": "left", "left_outer": "left",
    "right": "right", "rightouter": "right", "right_outer": "right", "semi": "semi",
    "leftsemi": "semi", "left_semi": "semi", "anti": "anti", "leftanti": "anti",
    "left_anti": "anti",
}


class Join(Plan):
    def __init__(self, left: Plan, right: Plan, how: str, condition: Expr | None,
                 hint_broadcast: str | None = None):
        self.left = left
        self.right = right
        self.how = how
        self.condition = condition
        self.hint_broadcast = hint_broadcast
        self.children = [left, right]

    @property
    def output(self):
        left, right = self.left.output, self.right.output
        if self.how in ("semi", "anti"):
            return left
        if self.how in ("right", "full"):
            left = [Attr(a.name, a.dtype, True, a.id, a.qualifier) for a in left]
        if self.how in ("left", "full"):
            right = [Attr(a.name, a.dtype, True, a.id, a.qualifier) for a in right]
        return left + right

    def describe(self):
        return f"Join {self.how} {self.condition!r}"


class Union(Plan):
    """UNION ALL of children with the same column count; output named after the first."""

    def __init__(self, children: list[Plan], attrs: list[Attr]):
        self.children = children
        self.attrs = attrs

    @property
    def output(self):
        return self.attrs


class Broadcast(Plan):
    """``functions.broadcast(df)``: a hint that this side is small."""

    def __init__(self, child: Plan):
        self.child = child
        self.children = [child]

    @property
    def output(self):
        return self.child.output

    def size_estimate(self):
        return 0.0


def unalias(e: Expr) -> Expr:
    return strip_alias(e)
