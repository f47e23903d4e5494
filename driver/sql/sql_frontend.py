"""``spark.sql``: Spark SQL text, parsed by sqlglot, as the same logical plans DataFrames build.

sqlglot parses the text in its Spark dialect (with function names kept as
written, so ``collect_list(x)`` stays ``collect_list``); this module walks
the syntax tree and builds plans through the DataFrame machinery
(``build_select``, ``build_aggregate``, joins), so names, types and errors
are checked once, the same way. A syntax error becomes a
``ParseException`` naming the line and position, as Spark's does.
"""
from __future__ import annotations

import decimal
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.errors import ParseError, TokenError

from . import logical as L
from . import types as T
from .analyzer import Scope, agg_calls, named, output_name, resolve, to_attr
from .errors import AnalysisException, ParseException
from .expressions import (Alias, Attr, CaseWhen, Cast, Expr, Lit, SortOrder, Star, UnresolvedAttr,
                          UnresolvedFunction, WindowExpr, WindowSpecDef, expr_key, strip_alias)
from .join_api import _fresh, _using_join, build_union
from .projection import (_generator_output, build_aggregate, build_select, expand_stars,
                         resolve_sort)

if TYPE_CHECKING:
    from .session import SparkSession


class _Dialect(Spark):
    class Tokenizer(Spark.Tokenizer):
        # ``window(ts, '10 seconds')`` is Spark's time-bucket function, also in GROUP BY
        KEYWORDS = {k: v for k, v in Spark.Tokenizer.KEYWORDS.items() if k != "WINDOW"}

    class Parser(Spark.Parser):
        FUNCTIONS: dict = {}  # keep every function call as written: we resolve names ourselves


def _syntax_error(text: str, error: Exception) -> ParseException:
    line, pos, near = 1, len(text), "end of input"
    details = getattr(error, "errors", None)
    if details:
        first = details[0]
        line = int(first.get("line") or 1)
        token = first.get("highlight") or ""
        col = int(first.get("col") or 0)
        if first.get("end_context") or "missing" not in str(first.get("description")):
            pos = max(0, col - len(token))
            near = f"'{token}'"
        else:
            lines = text.split("\n")
            pos = len(lines[line - 1]) if line - 1 < len(lines) else 0
    lines = text.split("\n")
    marker = "-" * pos + "^^^"
    shown = "\n".join(lines[:line] + [marker] + lines[line:])
    return ParseException(
        f"\n[PARSE_SYNTAX_ERROR] Syntax error at or near {near}. SQLSTATE: 42601 "
        f"(line {line}, pos {pos})\n\n== SQL ==\n{shown}\n")


def parse(text: str) -> exp.Expression:
    try:
        tree = sqlglot.parse_one(text, dialect=_Dialect)
    except (ParseError, TokenError) as error:
        raise _syntax_error(text, error) from None
    if tree is None:
        raise ParseException(f"\n[PARSE_EMPTY_STATEMENT] Syntax Error, unexpected empty statement. "
                             f"SQLSTATE: 42617 (line 1, pos 0)\n\n== SQL ==\n{text}\n^^^\n")
    return tree


def parse_expression(text: str) -> Expr:
    """One SQL expression (``F.expr``, ``selectExpr``, ``filter("...")``), unresolved."""
    try:
        tree = sqlglot.parse_one("SELECT " + text, dialect=_Dialect)
    except (ParseError, TokenError) as error:
        raise _syntax_error(text, _shift(error, -7)) from None
    if not isinstance(tree, exp.Select) or len(tree.expressions) != 1 or tree.args.get("from_") \
            or tree.args.get("from"):
        raise ParseException(f"\n[PARSE_SYNTAX_ERROR] Syntax error: {text!r} is not one "
                             f"expression. SQLSTATE: 42601")
    return Translator(None).expr(tree.expressions[0])


def _shift(error: Exception, by: int) -> Exception:
    for detail in getattr(error, "errors", None) or []:
        if detail.get("line") == 1 and detail.get("col") is not None:
            detail["col"] = max(0, int(detail["col"]) + by)
    return error


def plan_query(session: "SparkSession", text: str, args: Any = None) -> L.Plan:
    tree = parse(text)
    return Translator(session, args).query(tree)


def _ident(node: Any) -> str:
    if node is None:
        return ""
    if isinstance(node, str):
        return node
    return node.name if hasattr(node, "name") else str(node)


_BINARY = {
    exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/", exp.Mod: "%", exp.EQ: "=",
    exp.NEQ: "!=", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<=", exp.And: "and",
    exp.Or: "or", exp.NullSafeEQ: "<=>", exp.IntDiv: "div", exp.Like: "like", exp.ILike: "ilike",
    exp.RegexpLike: "rlike",
}


class Translator:
    def __init__(self, session: "SparkSession | None", args: Any = None):
        self.session = session
        self.args = args
        self.ctes: dict[str, L.Plan] = {}
        self.positional = 0

    # -- queries ---------------------------------------------------------------------------
    def query(self, node: exp.Expression) -> L.Plan:
        with_ = node.args.get("with_") or node.args.get("with")
        if with_ is not None:
            for cte in with_.expressions:
                self.ctes[cte.alias_or_name.lower()] = L.SubqueryAlias(cte.alias_or_name,
                                                                       self.query(cte.this))
        if isinstance(node, exp.Select):
            return self.select(node)
        if isinstance(node, exp.Union):
            plan = build_union([self.query(node.this), self.query(node.expression)])
            if node.args.get("distinct"):
                out = plan.output
                plan = L.Aggregate(list(out), list(out), plan)
            return self._order_limit(node, plan)
        if isinstance(node, (exp.Intersect, exp.Except)):
            left, right = self.query(node.this), self.query(node.expression)
            from .dataframe import DataFrame
            df = DataFrame(left, self.session)
            other = DataFrame(right, self.session)
            out = df.intersect(other) if isinstance(node, exp.Intersect) else df.subtract(other)
            return self._order_limit(node, out._plan)
        if isinstance(node, exp.Subquery):
            return self.query(node.this)
        raise AnalysisException(f"[UNSUPPORTED_FEATURE] SQL statement {type(node).__name__} is not "
                                f"supported; only queries (SELECT) are. SQLSTATE: 0A000")

    def select(self, node: exp.Select) -> L.Plan:
        from_ = node.args.get("from_") or node.args.get("from")
        plan = self.relation(from_.this) if from_ is not None else _one_row()
        for join in node.args.get("joins") or []:
            plan = self.join(plan, join)
        for lateral in node.args.get("laterals") or []:
            plan = self.lateral(plan, lateral)
        where = node.args.get("where")
        if where is not None:
            cond = resolve(self.expr(where.this), Scope(plan.output))
            plan = L.Filter(cond, plan)
        items = [self.expr(e) for e in node.expressions]
        group = node.args.get("group")
        having = node.args.get("having")
        items = expand_stars(items, plan)
        scope = Scope(plan.output)
        if group is not None or having is not None or any(
                agg_calls(resolve(e, scope)) for e in items if not isinstance(e, Star)):
            plan = self._aggregate(plan, items, group, having)
        else:
            plan = build_select(plan, items, scope=scope)
        if node.args.get("distinct"):
            out = plan.output
            plan = L.Aggregate(list(out), list(out), plan)
        return self._order_limit(node, plan)

    def _aggregate(self, plan: L.Plan, items: list[Expr], group: Any, having: Any) -> L.Plan:
        scope = Scope(plan.output)
        resolved_items = [resolve(e, scope) for e in items]
        groups = []
        for g in (group.expressions if group is not None else []):
            e = self.expr(g)
            if isinstance(e, Lit) and isinstance(e.value, int) and not isinstance(e.value, bool):
                groups.append(strip_alias(resolved_items[e.value - 1]))  # GROUP BY 1
                continue
            try:
                groups.append(resolve(e, scope))
            except AnalysisException:
                # GROUP BY a select alias
                match = [r for r in resolved_items if isinstance(r, Alias) and isinstance(e, UnresolvedAttr)
                         and r.name.lower() == e.name.lower()]
                if not match:
                    raise
                groups.append(strip_alias(match[0]))
        aggs = [named(r) for r in resolved_items]
        if having is None:
            return build_aggregate(plan, groups, aggs)
        cond = self.expr(having.this)
        out_attrs = [to_attr(a) for a in aggs]
        # names resolve to the select list first, then to the grouped input
        resolved = resolve(cond, Scope(out_attrs, outer=scope))
        hidden: list[Expr] = []
        subst: dict = {}
        for call in agg_calls(resolved):  # aggregates only HAVING uses: hidden columns
            alias = Alias(call, f"__having{len(hidden)}")
            hidden.append(alias)
            subst[expr_key(call)] = alias.to_attr()
        out_ids = {a.id for a in out_attrs}
        for node in resolved.walk():
            if isinstance(node, Attr) and node.id not in out_ids and expr_key(node) not in subst:
                alias = Alias(node, f"__having{len(hidden)}")
                hidden.append(alias)
                subst[expr_key(node)] = alias.to_attr()
        if subst:
            resolved = _replace_outside_aggs(resolved, subst)
        agg_plan = build_aggregate(plan, groups, aggs + hidden)
        filtered = L.Filter(resolved, agg_plan)
        if hidden:
            return L.Project(out_attrs, filtered)
        return filtered

    def _order_limit(self, node: exp.Expression, plan: L.Plan) -> L.Plan:
        order = node.args.get("order")
        if order is not None:
            orders = []
            for o in order.expressions:
                e = self.expr(o)
                if isinstance(e.child if isinstance(e, SortOrder) else e, Lit):
                    lit = e.child if isinstance(e, SortOrder) else e
                    if isinstance(lit.value, int):  # ORDER BY 1
                        target = plan.output[lit.value - 1]
                        e = SortOrder(target, e.ascending, e.nulls_first) if isinstance(e, SortOrder) \
                            else SortOrder(target)
                orders.append(e if isinstance(e, SortOrder) else SortOrder(e))
            plan = resolve_sort(plan, orders, True)
        limit = node.args.get("limit")
        offset = node.args.get("offset")
        if limit is not None or offset is not None:
            n = int(self._const(limit.expression)) if limit is not None else 1 << 62
            skip = int(self._const(offset.expression)) if offset is not None else 0
            plan = L.Limit(n, plan, skip)
        return plan

    def _const(self, node: exp.Expression) -> Any:
        e = self.expr(node)
        if not isinstance(e, Lit):
            raise AnalysisException("[INVALID_LIMIT_LIKE_EXPRESSION.IS_UNFOLDABLE] The limit like "
                                    "expression must be a constant. SQLSTATE: 42K0E")
        return e.value

    # -- relations ---------------------------------------------------------------------------------
    def relation(self, node: exp.Expression) -> L.Plan:
        alias = node.alias if hasattr(node, "alias") else ""
        if isinstance(node, exp.Table):
            parts = tuple(p for p in (_ident(node.args.get("catalog")), _ident(node.args.get("db")),
                                      node.name) if p)
            if len(parts) == 1 and parts[0].lower() in self.ctes:
                plan = self.ctes[parts[0].lower()]
            else:
                if self.session is None:
                    raise AnalysisException("a table needs a session")
                plan = self.session.catalog._lookup(parts)
            return L.SubqueryAlias(alias or parts[-1], plan)
        if isinstance(node, exp.Subquery):
            plan = self.query(node.this)
            return L.SubqueryAlias(alias, plan) if alias else plan
        raise AnalysisException(f"[UNSUPPORTED_FEATURE] relation {node.sql(dialect='spark')!r} is "
                                f"not supported. SQLSTATE: 0A000")

    def join(self, left: L.Plan, node: exp.Join) -> L.Plan:
        right = self.relation(node.this)
        if {a.id for a in left.output} & {a.id for a in right.output}:
            right = _fresh(right)
        side = (node.args.get("side") or "").lower()
        kind = (node.args.get("kind") or "").lower()
        how = {"left": "left", "right": "right", "full": "full"}.get(side, "inner")
        if kind in ("semi", "anti"):
            how = kind
        if kind == "cross":
            how = "cross"
        using = node.args.get("using")
        if using:
            return _using_join(left, right, [_ident(u) for u in using], how)
        on = node.args.get("on")
        cond = resolve(self.expr(on), Scope(left.output + right.output)) if on is not None else None
        if cond is None and how == "inner":
            how = "cross"
        return L.Join(left, right, how, cond)

    def lateral(self, plan: L.Plan, node: exp.Lateral) -> L.Plan:
        gen = resolve(self.expr(node.this), Scope(plan.output))
        alias = node.args.get("alias")
        names = [_ident(c) for c in (alias.columns if alias is not None else [])] or None
        attrs = _generator_output(gen, names)
        if alias is not None and alias.name:
            attrs = [a.qualified((alias.name,)) for a in attrs]
        outer = bool(node.args.get("outer")) or gen.name.endswith("_outer")
        return L.Generate(gen, outer, attrs, plan)

    # -- expressions ------------------------------------------------------------------------------
    def expr(self, node: exp.Expression) -> Expr:
        kind = type(node)
        if kind in _BINARY:
            return UnresolvedFunction(_BINARY[kind], [self.expr(node.this), self.expr(node.expression)])
        method = getattr(self, "_" + kind.__name__, None)
        if method is not None:
            return method(node)
        raise AnalysisException(f"[UNSUPPORTED_FEATURE] SQL expression {node.sql(dialect='spark')!r} "
                                f"({kind.__name__}) is not supported. SQLSTATE: 0A000")

    def _Column(self, node: exp.Column) -> Expr:
        parts = [p for p in (_ident(node.args.get("catalog")), _ident(node.args.get("db")),
                             _ident(node.args.get("table"))) if p]
        if isinstance(node.this, exp.Star):
            return Star(tuple(parts))
        return UnresolvedAttr(tuple(parts) + (node.name,))

    def _Star(self, node: exp.Star) -> Expr:
        return Star()

    def _Paren(self, node: exp.Paren) -> Expr:
        return self.expr(node.this)

    def _Alias(self, node: exp.Alias) -> Expr:
        return Alias(self.expr(node.this), node.alias)

    def _Aliases(self, node: exp.Aliases) -> Expr:
        alias = Alias(self.expr(node.this), _ident(node.expressions[0]))
        alias.names = [_ident(e) for e in node.expressions]
        return alias

    def _Literal(self, node: exp.Literal) -> Expr:
        text = node.this
        if node.is_string:
            return Lit(text, T.StringType())
        if any(c in text for c in "eE"):
            return Lit(float(text), T.DoubleType())
        if "." in text:
            value = decimal.Decimal(text)
            digits = len(value.as_tuple().digits)
            scale = max(0, -value.as_tuple().exponent)
            return Lit(value, T.DecimalType(max(digits, scale, 1), scale))
        value = int(text)
        if -2**31 <= value < 2**31:
            return Lit(value, T.IntegerType())
        if -2**63 <= value < 2**63:
            return Lit(value, T.LongType())
        return Lit(decimal.Decimal(value), T.DecimalType(min(38, len(text)), 0))

    def _HexString(self, node: exp.Expression) -> Expr:
        return Lit(bytes.fromhex(node.this), T.BinaryType())

    def _Boolean(self, node: exp.Boolean) -> Expr:
        return Lit(bool(node.this), T.BooleanType())

    def _Null(self, node: exp.Null) -> Expr:
        return Lit(None, T.NullType())

    def _Neg(self, node: exp.Neg) -> Expr:
        inner = self.expr(node.this)
        if isinstance(inner, Lit) and isinstance(inner.value, (int, float, decimal.Decimal)) \
                and not isinstance(inner.value, bool):
            return Lit(-inner.value, inner.dtype)
        return UnresolvedFunction("negative", [inner])

    def _Not(self, node: exp.Not) -> Expr:
        inner = node.this
        if isinstance(inner, exp.Is) and isinstance(inner.expression, exp.Null):
            return UnresolvedFunction("isnotnull", [self.expr(inner.this)])
        return UnresolvedFunction("not", [self.expr(inner)])

    def _Is(self, node: exp.Is) -> Expr:
        if isinstance(node.expression, exp.Null):
            return UnresolvedFunction("isnull", [self.expr(node.this)])
        return UnresolvedFunction("<=>", [self.expr(node.this), self.expr(node.expression)])

    def _In(self, node: exp.In) -> Expr:
        if node.args.get("query") is not None:
            raise AnalysisException("[UNSUPPORTED_SUBQUERY_EXPRESSION_CATEGORY] IN (subquery) is not "
                                    "supported. SQLSTATE: 0A000")
        return UnresolvedFunction("in", [self.expr(node.this)] + [self.expr(e) for e in node.expressions])

    def _Between(self, node: exp.Between) -> Expr:
        value = self.expr(node.this)
        return UnresolvedFunction("and", [UnresolvedFunction(">=", [value, self.expr(node.args["low"])]),
                                          UnresolvedFunction("<=", [value, self.expr(node.args["high"])])])

    def _DPipe(self, node: exp.DPipe) -> Expr:
        return UnresolvedFunction("concat", [self.expr(node.this), self.expr(node.expression)])

    def _Case(self, node: exp.Case) -> Expr:
        operand = node.this
        branches = []
        for branch in node.args.get("ifs") or []:
            cond = self.expr(branch.this)
            if operand is not None:
                cond = UnresolvedFunction("=", [self.expr(operand), cond])
            branches.append((cond, self.expr(branch.args["true"])))
        default = node.args.get("default")
        return CaseWhen(branches, self.expr(default) if default is not None else None)

    def _If(self, node: exp.If) -> Expr:
        false = node.args.get("false")
        return CaseWhen([(self.expr(node.this), self.expr(node.args["true"]))],
                        self.expr(false) if false is not None else None)

    def _Cast(self, node: exp.Cast) -> Expr:
        to = T._from_sqlglot(node.args["to"])
        inner = self.expr(node.this)
        if isinstance(inner, Lit) and inner.value is not None and not node.args.get("safe"):
            if isinstance(to, T.LongType) and isinstance(inner.value, int):
                return Lit(inner.value, to)  # 1L
            if isinstance(to, T.DoubleType) and isinstance(inner.value, (int, decimal.Decimal)):
                return Lit(float(inner.value), to)  # 1D
        return Cast(inner, to, safe=bool(node.args.get("safe")))

    _TryCast = _Cast

    def _Anonymous(self, node: exp.Anonymous) -> Expr:
        name = node.name.lower()
        args = node.expressions
        distinct = False
        if len(args) == 1 and isinstance(args[0], exp.Distinct):
            distinct = True
            args = args[0].expressions
        values = [self.expr(a) for a in args]
        if name == "count" and len(values) == 1 and isinstance(values[0], Star):
            values = [Lit(1)]
        options: dict = {}
        if name in ("first", "last", "first_value", "last_value") and len(values) == 2:
            options["ignorenulls"] = bool(values[1].value) if isinstance(values[1], Lit) else False
            values = values[:1]
        if name == "struct":
            options["names"] = [output_name(v) for v in values]
        if name == "named_struct":
            names = [v.value for v in values[0::2]]
            return UnresolvedFunction("struct", values[1::2], options={"names": names})
        if name == "window":
            from .functions import duration_us
            texts = [v.value for v in values[1:]]
            width = duration_us(texts[0])
            options = {"width": width, "slide": duration_us(texts[1]) if len(texts) > 1 else width,
                       "start": duration_us(texts[2]) if len(texts) > 2 else 0}
            values = values[:1]
        if name in ("split",) and len(values) == 2:
            values.append(Lit(-1))
        return UnresolvedFunction(name, values, distinct=distinct, options=options)

    def _IgnoreNulls(self, node: exp.IgnoreNulls) -> Expr:
        inner = self.expr(node.this)
        if isinstance(inner, UnresolvedFunction):
            inner.options["ignorenulls"] = True
        return inner

    def _Substring(self, node: exp.Substring) -> Expr:
        args = [self.expr(node.this), self.expr(node.args["start"])]
        if node.args.get("length") is not None:
            args.append(self.expr(node.args["length"]))
        return UnresolvedFunction("substring", args)

    def _Trim(self, node: exp.Trim) -> Expr:
        return UnresolvedFunction("trim", [self.expr(node.this)])

    def _CurrentDate(self, node: exp.Expression) -> Expr:
        return UnresolvedFunction("current_date", [])

    def _CurrentTimestamp(self, node: exp.Expression) -> Expr:
        return UnresolvedFunction("current_timestamp", [])

    def _Extract(self, node: exp.Extract) -> Expr:
        unit = _ident(node.this).lower()
        unit = {"day": "dayofmonth", "dow": "dayofweek", "doy": "dayofyear", "week": "weekofyear"}.get(unit, unit)
        return UnresolvedFunction(unit, [self.expr(node.expression)])

    def _Bracket(self, node: exp.Bracket) -> Expr:
        return UnresolvedFunction("get", [self.expr(node.this), self.expr(node.expressions[0])])

    def _Dot(self, node: exp.Dot) -> Expr:
        return UnresolvedFunction("get_field", [self.expr(node.this)], options={"field": node.name})

    def _Interval(self, node: exp.Interval) -> Expr:
        unit = _ident(node.args.get("unit"))
        return Lit(f"{node.this.name} {unit}".strip(), T.StringType())

    def _Ordered(self, node: exp.Ordered) -> Expr:
        desc = bool(node.args.get("desc"))
        nulls_first = node.args.get("nulls_first")
        return SortOrder(self.expr(node.this), not desc,
                         bool(nulls_first) if nulls_first is not None else None)

    def _Window(self, node: exp.Window) -> Expr:
        func = self.expr(node.this)
        partition = [self.expr(p) for p in node.args.get("partition_by") or []]
        order_node = node.args.get("order")
        orders = [self.expr(o) for o in (order_node.expressions if order_node is not None else [])]
        orders = [o if isinstance(o, SortOrder) else SortOrder(o) for o in orders]
        frame = None
        spec = node.args.get("spec")
        if spec is not None:
            frame = (str(spec.args.get("kind")).lower(),
                     _frame_bound(spec.args.get("start"), spec.args.get("start_side"), True),
                     _frame_bound(spec.args.get("end"), spec.args.get("end_side"), False))
        return WindowExpr(func, WindowSpecDef(partition, orders, frame))

    def _Placeholder(self, node: exp.Placeholder) -> Expr:
        name = node.name
        if isinstance(self.args, dict) and name in self.args:
            return Lit(self.args[name])
        if isinstance(self.args, (list, tuple)) and not name:
            value = self.args[self.positional]
            self.positional += 1
            return Lit(value)
        raise AnalysisException(f"[UNBOUND_SQL_PARAMETER] Found the unbound parameter: "
                                f"{name or '?'}. SQLSTATE: 42P02")

    def _Array(self, node: exp.Expression) -> Expr:
        return UnresolvedFunction("array", [self.expr(e) for e in node.expressions])

    def _Struct(self, node: exp.Expression) -> Expr:
        values = [self.expr(e) for e in node.expressions]
        return UnresolvedFunction("struct", values, options={"names": [output_name(v) for v in values]})

    def _Count(self, node: exp.Expression) -> Expr:
        inner = node.this
        if isinstance(inner, exp.Star) or inner is None:
            return UnresolvedFunction("count", [Lit(1)])
        if isinstance(inner, exp.Distinct):
            return UnresolvedFunction("count", [self.expr(e) for e in inner.expressions], distinct=True)
        return UnresolvedFunction("count", [self.expr(inner)])

    def _Var(self, node: exp.Var) -> Expr:
        return UnresolvedAttr((node.name,))

    def _Identifier(self, node: exp.Identifier) -> Expr:
        return UnresolvedAttr((node.name,))


def _replace_outside_aggs(e: Expr, subst: dict) -> Expr:
    """Swap aggregate calls (and attributes outside them) for the hidden columns."""
    found = subst.get(expr_key(e))
    if found is not None:
        return found
    kids = e.children()
    if not kids:
        return e
    return e.with_children([_replace_outside_aggs(k, subst) for k in kids])


def _frame_bound(value: Any, side: Any, start: bool) -> Any:
    text = str(value).upper() if value is not None else ""
    side = str(side or "").lower()
    if text == "UNBOUNDED":
        return "unbounded_preceding" if side == "preceding" else "unbounded_following"
    if text in ("CURRENT ROW", ""):
        return "current_row"
    n = int(value.name if hasattr(value, "name") else text)
    return -n if side == "preceding" else n


def _one_row() -> L.Plan:
    """The relation of a SELECT without FROM: one row, no columns (one hidden engine column)."""
    from sluicegate.common import sql_tasks as st
    import pyarrow as pa
    table = pa.table({"__one": pa.array([1], pa.int32())})
    node = L.LocalRelation([], [st.dump(table)])
    node._schema = table.schema
    return node
