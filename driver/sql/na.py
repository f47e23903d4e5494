"""``df.na``: filling and dropping nulls (PySpark's ``DataFrameNaFunctions``)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import types as T
from .column import Column
from .errors import PySparkTypeError
from .expressions import Alias, Lit, UnresolvedFunction
from .typing_rules import is_numeric

if TYPE_CHECKING:
    from .dataframe import DataFrame


class DataFrameNaFunctions:
    def __init__(self, df: "DataFrame"):
        self.df = df

    def fill(self, value: Any, subset: Any = None) -> "DataFrame":
        df = self.df
        if isinstance(value, dict):
            targets = {k.lower(): v for k, v in value.items()}
        else:
            if isinstance(subset, str):
                subset = [subset]
            names = [s.lower() for s in subset] if subset else None
            targets = {a.name.lower(): value for a in df._plan.output
                       if names is None or a.name.lower() in names}
        exprs = []
        for a in df._plan.output:
            v = targets.get(a.name.lower(), None)
            if v is None or not _fits(v, a.dtype):
                exprs.append(a)
                continue
            exprs.append(Alias(UnresolvedFunction("coalesce", [a, Lit(v)]), a.name))
        return df.select(*[Column(e) for e in exprs])

    def drop(self, how: str = "any", thresh: int | None = None, subset: Any = None) -> "DataFrame":
        df = self.df
        if isinstance(subset, str):
            subset = [subset]
        attrs = [a for a in df._plan.output
                 if subset is None or a.name.lower() in {s.lower() for s in subset}]
        if thresh is None:
            thresh = len(attrs) if how == "any" else 1
        count = None
        for a in attrs:
            term = UnresolvedFunction("isnotnull", [a])
            as_int = _if(term)
            count = as_int if count is None else UnresolvedFunction("+", [count, as_int])
        if count is None:
            return df
        return df.filter(Column(UnresolvedFunction(">=", [count, Lit(int(thresh))])))


def _if(cond):
    from .expressions import CaseWhen
    return CaseWhen([(cond, Lit(1))], Lit(0))


def _fits(value: Any, dtype: T.DataType) -> bool:
    if isinstance(value, bool):
        return isinstance(dtype, T.BooleanType)
    if isinstance(value, (int, float)):
        return is_numeric(dtype)
    if isinstance(value, str):
        return isinstance(dtype, T.StringType)
    raise PySparkTypeError(f"[NOT_BOOL_OR_DICT_OR_FLOAT_OR_INT_OR_STR] value should be a bool, "
                           f"dict, float, int or str, got {type(value).__name__}")
