"""Python UDFs: ``functions.udf`` and ``spark.udf.register``.

A UDF runs inside the per-partition engine query: each executor registers
the (cloudpickled) function with its DuckDB connection under a name unique
to the UDF and its argument types (``__udf_<id>_<n>``), and the engine calls
it row by row with Python values (None included, as PySpark passes them).
"""
from __future__ import annotations

import re
import threading
from typing import Any, Callable

from . import types as T
from .builtins import Fn, register
from .column import Column, _col_or_name
from .expressions import UnresolvedFunction, new_id
from .typing_rules import sql_type

_UDFS: dict[str, "UserDefinedFunction"] = {}
_lock = threading.Lock()
ENGINE_NAME = re.compile(r"__udf_\d+_\d+")


class UserDefinedFunction:
    """A Python function usable on columns: ``udf(col, ...)`` returns a Column."""

    def __init__(self, func: Callable, returnType: Any = None, name: str | None = None):
        if not callable(func):
            raise TypeError(f"[NOT_CALLABLE] Argument `func` should be a callable, got "
                            f"{type(func).__name__}.")
        if returnType is None:
            returnType = T.StringType()
        self.func = func
        self.returnType = T.parse_type(returnType) if isinstance(returnType, str) else returnType
        self._name = name or getattr(func, "__name__", "udf")
        self.engine_name = f"__udf_{new_id()}"
        self._signatures: dict[tuple, int] = {}
        with _lock:
            _UDFS[self.engine_name] = self
        register(Fn(self.engine_name, 0, None, lambda c: self.returnType, self._sql,
                    nullable=lambda c: True,
                    pretty=lambda c, p: f"{self._name}({', '.join(p)})"))

    def _sql(self, call: Any, args: list[str]) -> str:
        signature = tuple(sql_type(a.dtype) for a in call.args)
        with _lock:
            index = self._signatures.setdefault(signature, len(self._signatures))
        return f"{self.engine_name}_{index}({', '.join(args)})"

    def specs(self) -> list[tuple]:
        with _lock:
            items = list(self._signatures.items())
        return [(f"{self.engine_name}_{i}", self.func, list(sig), sql_type(self.returnType))
                for sig, i in items]

    def __call__(self, *cols: Any) -> Column:
        return Column(UnresolvedFunction(self.engine_name, [_col_or_name(c) if isinstance(c, str)
                                                            else c._expr for c in cols]))

    def asNondeterministic(self) -> "UserDefinedFunction":
        return self


def udfs_in(sql: str | None) -> list[tuple]:
    """The UDF registrations ``sql`` needs: ``(engine_name, func, arg_types, return_type)``."""
    if not sql or "__udf_" not in sql:
        return []
    names = set(ENGINE_NAME.findall(sql))
    out = []
    with _lock:
        owners = {name.rsplit("_", 1)[0]: _UDFS.get(name.rsplit("_", 1)[0]) for name in names}
    for owner in owners.values():
        if owner is not None:
            out.extend(spec for spec in owner.specs() if spec[0] in names)
    return out


def udf(f: Any = None, returnType: Any = None) -> Any:
    """``udf(func, returnType)``, or a decorator: ``@udf``, ``@udf("int")``, ``@udf(returnType=...)``."""
    if f is None or isinstance(f, (str, T.DataType)):
        kind = f if f is not None else returnType
        return lambda func: UserDefinedFunction(func, kind)
    return UserDefinedFunction(f, returnType)


class UDFRegistration:
    """``spark.udf``: register a Python function for SQL text."""

    def register(self, name: str, f: Any, returnType: Any = None) -> UserDefinedFunction:
        if isinstance(f, UserDefinedFunction):
            returnType = f.returnType if returnType is None else returnType
            f = f.func
        fn = UserDefinedFunction(f, returnType, name)
        from .builtins import REGISTRY
        REGISTRY[name.lower()] = REGISTRY[fn.engine_name]
        return fn
