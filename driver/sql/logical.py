"""Logical plans: what a DataFrame or a SQL query computes, already resolved.

Every node knows its ``output`` attributes; expressions in it refer to its
children's attributes by id. DataFrame methods and the SQL front end build
these nodes through the same constructors, so both check names and types
the same way, and ``physical`` turns either into distributed stages.

Nodes are dataclasses whose fields are their constructor's arguments, in
order. They compare and hash by identity (the cache keys plans by ``id``)
and print through ``describe``: a generated ``==`` or ``repr`` would walk
whole trees and the driver-side rows they hold.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import types as T
from .expressions import Attr, Expr, SortOrder, strip_alias
from .analyzer import to_attr

plan_node = dataclass(eq=False, repr=False)


class Plan:
    children: list["Plan"] = []
    # its line in ``explain()``: str.format over the node's fields; empty: the class name
    shown_as = ""

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
        return self.shown_as.format_map(vars(self)) if self.shown_as else type(self).__name__

    def tree_string(self, depth: int = 0) -> str:
        lines = [("   " * (depth - 1) + "+- " if depth else "") + self.describe()]
        for child in self.children:
            lines.append(child.tree_string(depth + 1))
        return "\n".join(lines)


# -- leaves -------------------------------------------------------------------------------

class Relation(Plan):
    """A leaf: rows from outside the plan, columns ``attrs``, about ``size`` bytes."""

    attrs: list[Attr]
    size: float

    @property
    def output(self):
        return self.attrs

    def size_estimate(self):
        return self.size


@plan_node
class LocalRelation(Relation):
    """Rows given on the driver, as Arrow IPC bytes per partition (columns in output order)."""

    attrs: list[Attr]
    partitions: list[bytes]

    shown_as = "LocalRelation {attrs}"

    def __post_init__(self):
        self.size = float(sum(len(p) for p in self.partitions))


@plan_node
class RDDRelation(Relation):
    """An RDD: of Python rows (``kind="rows"``, converted on the executors) or of Arrow
    IPC partitions (``kind="arrow"``, columns in output order)."""

    attrs: list[Attr]
    rdd: Any
    kind: str
    size: float = float("inf")
    shown_as = "LogicalRDD {attrs}"


@plan_node
class RangeRelation(Relation):
    """``spark.range``: one long column ``attr`` from ``start`` to ``end`` by ``step``."""

    attr: Attr
    start: int
    end: int
    step: int
    num_partitions: int

    def __post_init__(self):
        self.attrs = [self.attr]
        self.size = 8.0 * max(0, (self.end - self.start) // (self.step or 1))


@plan_node
class FileRelation(Relation):
    """Files read on the executors: ``fmt`` text, csv, json or parquet."""

    attrs: list[Attr]
    fmt: str
    splits: list  # per partition: a list of [path, start, length]
    options: dict
    size: float
    shown_as = "FileScan {fmt} {attrs}"


def _defined_by(field_name: str) -> property:
    """``output``: the attributes that the named expressions in ``field_name`` define."""
    return property(lambda self: [to_attr(e) for e in getattr(self, field_name)])


# -- unary ----------------------------------------------------------------------------------------

class UnaryPlan(Plan):
    """One ``child``, whose columns it keeps unless a subclass says otherwise."""

    child: Plan

    def __post_init__(self):
        self.children = [self.child]

    @property
    def output(self):
        return self.child.output


@plan_node
class Project(UnaryPlan):
    exprs: list[Expr]  # Attr or Alias
    child: Plan

    output = _defined_by("exprs")
    shown_as = "Project {exprs}"


@plan_node
class Filter(UnaryPlan):
    condition: Expr
    child: Plan
    shown_as = "Filter {condition!r}"


@plan_node
class Aggregate(UnaryPlan):
    """GROUP BY ``groups``; ``aggs`` are the output expressions (Attr or Alias)."""

    groups: list[Expr]
    aggs: list[Expr]
    child: Plan

    output = _defined_by("aggs")
    shown_as = "Aggregate {groups}, {aggs}"


@plan_node
class Window(UnaryPlan):
    """Child columns plus window expressions (Alias of WindowExpr)."""

    wexprs: list[Expr]
    child: Plan

    @property
    def output(self):
        return self.child.output + [to_attr(e) for e in self.wexprs]


@plan_node
class Generate(UnaryPlan):
    """explode and friends: child columns plus ``gen_attrs`` per produced element."""

    generator: Expr  # the Call (explode, posexplode...)
    outer: bool
    gen_attrs: list[Attr]
    child: Plan

    @property
    def output(self):
        return self.child.output + self.gen_attrs


@plan_node
class Sort(UnaryPlan):
    orders: list[SortOrder]
    is_global: bool
    child: Plan


@plan_node
class Limit(UnaryPlan):
    """``n`` rows after skipping ``offset``."""

    n: int
    child: Plan
    offset: int = 0


@plan_node
class Deduplicate(UnaryPlan):
    """dropDuplicates(keys): the first row of each distinct key."""

    keys: list[Attr]
    child: Plan


@plan_node
class Repartition(UnaryPlan):
    """``shuffle``: hash by ``keys`` (round-robin without); else coalesce."""

    n: int | None
    keys: list[Expr]
    shuffle: bool
    child: Plan


@plan_node
class SubqueryAlias(UnaryPlan):
    """A named relation (a view or ``AS t``): qualifies its columns with the name."""

    alias: str
    child: Plan

    @property
    def output(self):
        return [a.qualified((self.alias,)) for a in self.child.output]


@plan_node
class Broadcast(UnaryPlan):
    """``functions.broadcast(df)``: a hint that this side is small."""

    child: Plan

    def size_estimate(self):
        return 0.0


# -- binary -----------------------------------------------------------------------------------------

JOIN_TYPES = {
    "inner": "inner", "cross": "cross", "outer": "full", "full": "full", "fullouter": "full",
    "full_outer": "full", "left": "left", "leftouter": "left", "left_outer": "left",
    "right": "right", "rightouter": "right", "right_outer": "right", "semi": "semi",
    "leftsemi": "semi", "left_semi": "semi", "anti": "anti", "leftanti": "anti",
    "left_anti": "anti",
}


@plan_node
class Join(Plan):
    left: Plan
    right: Plan
    how: str
    condition: Expr | None
    hint_broadcast: str | None = None
    shown_as = "Join {how} {condition!r}"

    def __post_init__(self):
        self.children = [self.left, self.right]

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


class Union(Plan):
    """UNION ALL of children with the same column count; output named after the first."""

    def __init__(self, children: list[Plan], attrs: list[Attr]):
        self.children = children
        self.attrs = attrs

    @property
    def output(self):
        return self.attrs


def unalias(e: Expr) -> Expr:
    return strip_alias(e)
