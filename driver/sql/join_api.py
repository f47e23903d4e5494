"""``DataFrame.join`` and ``union``: building the Join and Union plan nodes as Spark does.

A join on column names (``on="k"`` or a list) is a USING join: the key
columns appear once, first (coalesced for a full outer join). A join on
expressions keeps every column of both sides. A self-join gets fresh
attribute ids on its right side so the two sides stay apart.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import logical as L
from .analyzer import Scope, resolve
from .column import Column
from .errors import AnalysisException, PySparkTypeError
from .expressions import Alias, Attr, Expr, UnresolvedFunction
from .typing_rules import common_type_of

if TYPE_CHECKING:
    from .dataframe import DataFrame


def _fresh(plan: L.Plan) -> L.Plan:
    """``plan`` with new attribute ids (and the same names and qualifier)."""
    if isinstance(plan, L.SubqueryAlias):
        return L.SubqueryAlias(plan.alias, _fresh(plan.child))
    return L.Project([Alias(a, a.name) for a in plan.output], plan)


def build_join(left_df: "DataFrame", right_df: "DataFrame", on: Any, how: str | None) -> L.Plan:
    how_key = (how or "inner").lower().replace(" ", "")
    if how_key not in L.JOIN_TYPES:
        raise AnalysisException(
            f"[UNSUPPORTED_JOIN_TYPE] Unsupported join type '{how}'. Supported join types include: "
            f"'inner', 'outer', 'full', 'fullouter', 'full_outer', 'leftouter', 'left', "
            f"'left_outer', 'rightouter', 'right', 'right_outer', 'leftsemi', 'left_semi', 'semi', "
            f"'leftanti', 'left_anti', 'anti', 'cross'. SQLSTATE: 42613")
    kind = L.JOIN_TYPES[how_key]
    left, right = left_df._plan, right_df._plan
    if {a.id for a in left.output} & {a.id for a in right.output}:
        right = _fresh(right)
    if on is None:
        return L.Join(left, right, "cross" if kind == "inner" else kind, None)
    if isinstance(on, str):
        on = [on]
    if isinstance(on, Column):
        on = [on]
    if all(isinstance(x, str) for x in on):
        return _using_join(left, right, list(on), kind)
    if all(isinstance(x, Column) for x in on):
        scope = Scope(left.output + right.output)
        cond: Expr | None = None
        for c in on:
            term = c._expr
            cond = term if cond is None else UnresolvedFunction("and", [cond, term])
        resolved = resolve(cond, scope)
        return L.Join(left, right, kind, resolved)
    raise PySparkTypeError("[NOT_COLUMN_OR_LIST_OR_STR] Argument `on` should be a Column, list or "
                           f"str, got {type(on).__name__}.")


def _find(plan: L.Plan, name: str, side: str) -> Attr:
    found = Scope(plan.output).lookup((name,))
    if found is None or not isinstance(found, Attr):
        raise AnalysisException(
            f"[UNRESOLVED_USING_COLUMN_FOR_JOIN] USING column `{name}` cannot be resolved on the "
            f"{side} side of the join. The {side}-side columns: "
            f"[{', '.join(f'`{a.name}`' for a in plan.output)}]. SQLSTATE: 42703")
    return found


def _using_join(left: L.Plan, right: L.Plan, names: list[str], kind: str) -> L.Plan:
    lkeys = [_find(left, n, "left") for n in names]
    rkeys = [_find(right, n, "right") for n in names]
    scope = Scope(left.output + right.output)
    cond: Expr | None = None
    for a, b in zip(lkeys, rkeys):
        term = UnresolvedFunction("=", [a, b])
        cond = term if cond is None else UnresolvedFunction("and", [cond, term])
    join = L.Join(left, right, kind, resolve(cond, scope))
    if kind in ("semi", "anti"):
        return join
    out = {a.id: a for a in join.output}
    keys: list[Expr] = []
    for a, b in zip(lkeys, rkeys):
        if kind == "full":
            keys.append(Alias(resolve(UnresolvedFunction("coalesce", [out[a.id], out[b.id]]),
                                      Scope(join.output)), a.name))
        elif kind == "right":
            keys.append(out[b.id])
        else:
            keys.append(out[a.id])
    key_ids = {a.id for a in lkeys} | {b.id for b in rkeys}
    rest = [out[a.id] for a in left.output if a.id not in key_ids]
    rest += [out[b.id] for b in right.output if b.id not in key_ids]
    return L.Project(keys + rest, join)


def build_union(plans: list[L.Plan]) -> L.Plan:
    first = plans[0].output
    for plan in plans[1:]:
        if len(plan.output) != len(first):
            raise AnalysisException(
                f"[NUM_COLUMNS_MISMATCH] UNION can only be performed on inputs with the same number "
                f"of columns, but the first input has {len(first)} columns and the second input has "
                f"{len(plan.output)} columns. SQLSTATE: 42826")
    attrs = []
    for i, a in enumerate(first):
        column = [plan.output[i] for plan in plans]
        t = common_type_of([c.dtype for c in column], lambda t, other: AnalysisException(
            f"[INCOMPATIBLE_COLUMN_TYPE] UNION can only be performed on inputs with "
            f"compatible column types. Column {i + 1} is \"{t.simpleString().upper()}\" and "
            f"\"{other.simpleString().upper()}\". SQLSTATE: 42825"))
        attrs.append(Attr(a.name, t, any(c.nullable for c in column)))
    return L.Union(plans, attrs)
