"""PySpark's ``GroupedData``: ``df.groupBy(...).agg/count/sum/avg/min/max``."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .analyzer import Scope, named, resolve
from .column import Column, _col_or_name
from .errors import AnalysisException, PySparkTypeError
from .expressions import Alias, Attr, Expr, Lit, UnresolvedFunction
from .projection import build_aggregate, expand_stars
from .typing_rules import is_numeric

if TYPE_CHECKING:
    from .dataframe import DataFrame


class GroupedData:
    """Rows grouped by key columns, waiting for aggregate functions."""

    def __init__(self, df: "DataFrame", cols: list[Expr]):
        self._df = df
        plan = df._plan
        scope = Scope(plan.output)
        self._groups = []
        for e in expand_stars(cols, plan):
            r = resolve(e, scope)
            df._check_attrs(r)
            self._groups.append(named(r))

    def agg(self, *exprs: Any) -> "DataFrame":
        if len(exprs) == 1 and isinstance(exprs[0], dict):
            columns = [self._named_call(fn, name) for name, fn in exprs[0].items()]
        else:
            columns = []
            for e in exprs:
                if not isinstance(e, Column):
                    raise PySparkTypeError("[NOT_COLUMN] all exprs should be Column, got "
                                           f"{type(e).__name__}")
                columns.append(e._expr)
        if not columns:
            raise AnalysisException("agg needs at least one aggregate expression")
        return self._aggregate(columns)

    def _named_call(self, fn: str, name: str) -> Expr:
        fn = {"mean": "avg"}.get(fn.lower(), fn.lower())
        arg = Lit(1) if (name == "*" and fn == "count") else _col_or_name(name)
        return UnresolvedFunction(fn, [arg])

    def _aggregate(self, exprs: list[Expr]) -> "DataFrame":
        df = self._df
        scope = Scope(df._plan.output)
        resolved = []
        for e in exprs:
            r = resolve(e, scope)
            df._check_attrs(r)
            resolved.append(named(r))
        aggs = list(self._groups) + resolved
        return df._new(build_aggregate(df._plan, list(self._groups), aggs))

    def count(self) -> "DataFrame":
        return self._aggregate([Alias(UnresolvedFunction("count", [Lit(1)]), "count")])

    def _numeric(self, fn: str, cols: tuple) -> "DataFrame":
        df = self._df
        if cols:
            targets = []
            for name in cols:
                attr = df._bind(name)
                if not is_numeric(attr.dtype):
                    raise AnalysisException(
                        f"[UNSUPPORTED_DATA_TYPE] \"{name}\" is not a numeric column. Aggregation "
                        f"function can only be applied on a numeric column. SQLSTATE: 0A000")
                targets.append(attr)
        else:
            group_ids = {g.id for g in self._groups if isinstance(g, Attr)}
            targets = [a for a in df._plan.output if is_numeric(a.dtype) and a.id not in group_ids]
        return self._aggregate([UnresolvedFunction(fn, [a]) for a in targets])

    def sum(self, *cols: str) -> "DataFrame":
        return self._numeric("sum", cols)

    def avg(self, *cols: str) -> "DataFrame":
        return self._numeric("avg", cols)

    mean = avg

    def min(self, *cols: str) -> "DataFrame":
        return self._numeric("min", cols)

    def max(self, *cols: str) -> "DataFrame":
        return self._numeric("max", cols)

