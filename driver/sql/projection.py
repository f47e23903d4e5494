"""Building SELECT lists: stars, generators, window functions, aggregates, ORDER BY.

``build_select`` turns a list of (possibly unresolved) expressions over a
plan into the nodes Spark would make: ``*`` expands, an ``explode`` becomes a
``Generate`` below the projection, window functions a ``Window`` node, and a
select list with aggregates (and no GROUP BY) a global ``Aggregate``.
"""
from __future__ import annotations

from typing import Callable

from . import logical as L
from .analyzer import (Scope, agg_calls, generator_of, has_agg, named, output_name, resolve,
                       to_attr, window_exprs)
from .errors import AnalysisException
from .expressions import (Alias, Attr, Call, Expr, SortOrder, Star, WindowExpr, expr_key,
                          strip_alias)
from . import types as T


def expand_stars(exprs: list[Expr], plan: L.Plan) -> list[Expr]:
    out: list[Expr] = []
    for e in exprs:
        if isinstance(e, Star):
            attrs = plan.output
            if e.qualifier:
                q = [x.lower() for x in e.qualifier]
                attrs = [a for a in attrs if [x.lower() for x in a.qualifier[-len(q):]] == q]
                if not attrs:
                    raise AnalysisException(
                        f"[CANNOT_RESOLVE_STAR_EXPAND] Cannot resolve {'.'.join(e.qualifier)}.* "
                        f"given input columns {', '.join(a.name for a in plan.output)}. "
                        f"SQLSTATE: 42704")
            out.extend(attrs)
        elif isinstance(e, Call) and e.name == "__regex":
            out.extend(e.args)
        else:
            out.append(e)
    return out


def _generator_output(gen: Call, alias_names: list[str] | None) -> list[Attr]:
    t = gen.args[0].dtype
    pos = gen.name.startswith("posexplode")
    if isinstance(t, T.MapType):
        names = ["key", "value"]
        types = [(t.keyType, False), (t.valueType, True)]
    elif isinstance(t, T.ArrayType):
        names = ["col"]
        types = [(t.elementType, True)]
    else:
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] Cannot resolve \"{gen.name}\": it needs an "
            f"array or map, got \"{t.simpleString().upper()}\". SQLSTATE: 42K09")
    if pos:
        names = ["pos"] + names
        types = [(T.IntegerType(), False)] + types
    if alias_names:
        if len(alias_names) != len(names):
            raise AnalysisException(
                f"[UDTF_ALIAS_NUMBER_MISMATCH] The number of aliases supplied in the AS clause does "
                f"not match the number of columns output by the UDTF. Expected {len(names)} aliases, "
                f"but got {', '.join(alias_names)}. SQLSTATE: 42802")
        names = alias_names
    outer = gen.name.endswith("_outer")
    return [Attr(n, dt, nullable or outer) for n, (dt, nullable) in zip(names, types)]


def build_select(plan: L.Plan, exprs: list[Expr], check: Callable[[Expr], None] | None = None,
                 scope: Scope | None = None) -> L.Plan:
    exprs = expand_stars(exprs, plan)
    scope = scope or Scope(plan.output)
    resolved = []
    for e in exprs:
        r = resolve(e, scope)
        if check is not None:
            check(r)
        resolved.append(r)
    child = plan
    # explode and friends: one generator per select list
    generators = [(i, generator_of(e)) for i, e in enumerate(resolved) if generator_of(e) is not None]
    if len(generators) > 1:
        raise AnalysisException("[UNSUPPORTED_GENERATOR.MULTI_GENERATOR] only one generator allowed "
                                "per SELECT clause but found "
                                f"{len(generators)}. SQLSTATE: 42K0E")
    gen_attrs: list[Attr] = []
    if generators:
        index, gen = generators[0]
        e = resolved[index]
        aliases = getattr(e, "names", None) if isinstance(e, Alias) else None
        if isinstance(e, Alias) and aliases is None:
            aliases = [e.name]
        gen_attrs = _generator_output(gen, aliases)
        child = L.Generate(gen, gen.name.endswith("_outer"), gen_attrs, child)
        resolved = resolved[:index] + list(gen_attrs) + resolved[index + 1:]
    # aggregates without GROUP BY: one global group
    if any(has_agg(e) for e in resolved):
        return build_aggregate(child, [], resolved)
    return project_with_windows(child, resolved)


def project_with_windows(child: L.Plan, resolved: list[Expr]) -> L.Plan:
    """A projection; window functions in it are computed by Window nodes below it."""
    wexprs: dict = {}
    for e in resolved:
        for w in window_exprs(e):
            wexprs.setdefault(expr_key(w), w)
    if wexprs:
        by_spec: dict = {}
        for key, w in wexprs.items():
            by_spec.setdefault(w.spec.key(), []).append((key, w))
        subst: dict = {}
        for group in by_spec.values():
            aliases = [Alias(w, f"__w{i}") for i, (_, w) in enumerate(group)]
            child = L.Window(aliases, child)
            for (key, _), alias in zip(group, aliases):
                subst[key] = alias.to_attr()
        resolved = [_substitute(e, subst) for e in resolved]
    named_exprs = [named(e) for e in resolved]
    if all(isinstance(e, Attr) for e in named_exprs) and \
            [a.id for a in named_exprs] == [a.id for a in child.output]:
        return child if not isinstance(child, L.Window) else L.Project(named_exprs, child)
    return L.Project(named_exprs, child)


def _substitute(e: Expr, subst: dict) -> Expr:
    """Replace sub-expressions by attributes (keeping the outer alias/name)."""
    if not subst:
        return e

    def swap(node: Expr):
        found = subst.get(expr_key(node))
        if found is not None and not isinstance(node, Alias):
            return found
        return None
    outer_name = output_name(e) if not isinstance(e, (Alias, Attr)) else None
    out = e.transform(swap)
    if outer_name is not None and not isinstance(out, Alias):
        out = Alias(out, outer_name)
    return out


def _sliding_window(e: Expr) -> Call | None:
    inner = strip_alias(e)
    if isinstance(inner, Call) and inner.name == "window" \
            and inner.options.get("slide") != inner.options.get("width"):
        return inner
    return None


def expand_sliding_windows(child: L.Plan, groups: list[Expr], aggs: list[Expr]):
    """GROUP BY a sliding ``window(...)``: each row joins every window that holds it (a
    Generate of the candidate windows), and the group is that generated column."""
    for g in groups:
        call = _sliding_window(g)
        if call is None:
            continue
        from .analyzer import _typed_call
        windows = _typed_call("window_list", call.args, call.options)
        explode = _typed_call("explode", [windows])
        attr = Attr("window", call.dtype, True)
        child = L.Generate(explode, False, [attr], child)
        key = expr_key(call)

        def swap(node: Expr, key=key, attr=attr):
            return attr if expr_key(node) == key else None
        groups = [attr if expr_key(strip_alias(x)) == key else x for x in groups]
        aggs = [_keep_name(x, x.transform(swap)) for x in aggs]
    return child, groups, aggs


def _keep_name(before: Expr, after: Expr) -> Expr:
    if after is before or isinstance(after, (Alias, Attr)):
        return after
    return Alias(after, output_name(before))


def build_aggregate(child: L.Plan, groups: list[Expr], aggs: list[Expr]) -> L.Plan:
    """GROUP BY ``groups`` (resolved) computing ``aggs`` (resolved output expressions)."""
    child, groups, aggs = expand_sliding_windows(child, groups, aggs)
    group_keys = {expr_key(strip_alias(g)) for g in groups}
    for e in aggs:
        _check_grouped(e, group_keys)
    named_groups = [strip_alias(g) for g in groups]
    windows = [w for e in aggs for w in window_exprs(e)]
    if windows:
        # window functions over aggregates: aggregate first, then window over the result
        inner_aggs: dict = {}
        for e in aggs:
            for call in agg_calls(e):
                inner_aggs.setdefault(expr_key(call), call)
        inner = [named(g) if not isinstance(g, Attr) else g for g in named_groups]
        inner += [Alias(c, f"__agg{i}") for i, c in enumerate(inner_aggs.values())]
        agg_node = L.Aggregate(named_groups, inner, child)
        subst = {expr_key(g): to_attr(n) for g, n in zip(named_groups, inner)}
        for key, alias in zip(inner_aggs, inner[len(named_groups):]):
            subst[key] = alias.to_attr()
        rewritten = [_substitute(e, subst) for e in aggs]
        return project_with_windows(agg_node, rewritten)
    return L.Aggregate(named_groups, [named(e) for e in aggs], child)


def _check_grouped(e: Expr, group_keys: set) -> None:
    if expr_key(strip_alias(e)) in group_keys:
        return
    if isinstance(e, Call) and agg_calls(e) == [e]:
        return
    if isinstance(e, WindowExpr):
        for x in e.spec.exprs():
            _check_grouped(x, group_keys)
        for x in e.func.children():
            _check_grouped(x, group_keys)
        return
    if isinstance(e, Attr):
        raise AnalysisException(
            f"[MISSING_AGGREGATION] The non-aggregating expression \"{e.name}\" is based on columns "
            f"which are not participating in the GROUP BY clause. Add the columns or the expression "
            f"to the GROUP BY, aggregate the expression, or use \"any_value({e.name})\" if you do not "
            f"care which of the values within a group is returned. SQLSTATE: 42803")
    for child in e.children():
        _check_grouped(child, group_keys)


def resolve_sort(plan: L.Plan, orders: list[SortOrder], is_global: bool,
                 scope: Scope | None = None) -> L.Plan:
    """ORDER BY; columns missing from a projection are taken from below it (then dropped)."""
    scope = scope or Scope(plan.output)
    try:
        resolved = [resolve(o, scope) for o in orders]
        return L.Sort(resolved, is_global, plan)
    except AnalysisException:
        if not isinstance(plan, L.Project):
            raise
    below = Scope(plan.child.output)
    resolved = []
    extra: list[Attr] = []
    ids = {a.id for a in plan.output}
    for o in orders:
        try:
            resolved.append(resolve(o, scope))
        except AnalysisException:
            r = resolve(o, below)
            for node in r.walk():
                if isinstance(node, Attr) and node.id not in ids and node not in extra:
                    extra.append(node)
            resolved.append(r)
    widened = L.Project(list(plan.exprs) + extra, plan.child)
    return L.Project(list(plan.output), L.Sort(resolved, is_global, widened))
