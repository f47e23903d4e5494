"""``spark.catalog``: temporary views, and which DataFrames are cached.

Views are plans by name: a session's temporary views, and global ones
(``global_temp.<name>``) shared by every session of the application. The
``CacheManager`` keeps the persisted Arrow RDD of each cached plan; the
planner reads a cached plan from it instead of recomputing it.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, NamedTuple, Optional

from .errors import AnalysisException

if TYPE_CHECKING:
    from . import logical as L
    from .session import SparkSession

GLOBAL_DB = "global_temp"
_global_views: dict[str, "L.Plan"] = {}
_global_lock = threading.Lock()


class Table(NamedTuple):
    name: str
    catalog: Optional[str]
    namespace: Optional[list]
    description: Optional[str]
    tableType: str
    isTemporary: bool

    @property
    def database(self) -> Optional[str]:
        if self.namespace is not None and len(self.namespace) == 1:
            return self.namespace[0]
        return None


class Column(NamedTuple):
    name: str
    description: Optional[str]
    dataType: str
    nullable: bool
    isPartition: bool
    isBucket: bool
    isCluster: bool = False


def table_not_found(name: str, known: list[str]) -> AnalysisException:
    listed = ", ".join(f"`{n}`" for n in sorted(known)) or "none"
    return AnalysisException(
        f"[TABLE_OR_VIEW_NOT_FOUND] The table or view `{name}` cannot be found. Verify the spelling "
        f"and correctness of the schema and catalog. Temporary views in this session: [{listed}]. "
        f"SQLSTATE: 42P01")


class Catalog:
    """PySpark's ``Catalog`` over this session's temporary views."""

    def __init__(self, session: "SparkSession"):
        self._session = session
        self._views: dict[str, "L.Plan"] = {}
        self._lock = threading.Lock()

    def _register(self, name: str, plan: "L.Plan", replace: bool, is_global: bool = False) -> None:
        key = name.lower()
        views, lock = (_global_views, _global_lock) if is_global else (self._views, self._lock)
        with lock:
            if not replace and key in views:
                kind = f"`{GLOBAL_DB}`.`{name}`" if is_global else f"`{name}`"
                raise AnalysisException(
                    f"[TEMP_TABLE_OR_VIEW_ALREADY_EXISTS] Cannot create the temporary view {kind} "
                    f"because it already exists. SQLSTATE: 42P07")
            views[key] = plan

    def _lookup(self, parts: tuple[str, ...]) -> "L.Plan":
        name = ".".join(parts)
        if len(parts) == 2 and parts[0].lower() == GLOBAL_DB:
            with _global_lock:
                plan = _global_views.get(parts[1].lower())
            if plan is None:
                raise table_not_found(name, [f"{GLOBAL_DB}.{n}" for n in _global_views])
            return plan
        if len(parts) == 1:
            with self._lock:
                plan = self._views.get(parts[0].lower())
            if plan is not None:
                return plan
        raise table_not_found(name, list(self._views))

    def listTables(self, dbName: str | None = None, pattern: str | None = None) -> list[Table]:
        import fnmatch
        if dbName is not None and dbName.lower() == GLOBAL_DB:
            with _global_lock:
                names = sorted(_global_views)
            tables = [Table(n, None, [GLOBAL_DB], None, "TEMPORARY", True) for n in names]
        else:
            with self._lock:
                names = sorted(self._views)
            tables = [Table(n, None, [], None, "TEMPORARY", True) for n in names]
        if pattern is not None:
            tables = [t for t in tables if fnmatch.fnmatch(t.name, pattern.replace("|", ""))]
        return tables

    def listColumns(self, tableName: str, dbName: str | None = None) -> list[Column]:
        parts = (dbName, tableName) if dbName else tuple(tableName.split("."))
        plan = self._lookup(parts)
        return [Column(a.name, None, a.dtype.simpleString(), a.nullable, False, False)
                for a in plan.output]

    def tableExists(self, tableName: str, dbName: str | None = None) -> bool:
        try:
            self._lookup((dbName, tableName) if dbName else tuple(tableName.split(".")))
            return True
        except AnalysisException:
            return False

    def dropTempView(self, viewName: str) -> bool:
        with self._lock:
            return self._views.pop(viewName.lower(), None) is not None

    def dropGlobalTempView(self, viewName: str) -> bool:
        with _global_lock:
            return _global_views.pop(viewName.lower(), None) is not None

    def currentDatabase(self) -> str:
        return "default"

    def _view_df(self, tableName: str):
        from .dataframe import DataFrame
        return DataFrame(self._lookup(tuple(tableName.split("."))), self._session)

    def cacheTable(self, tableName: str, storageLevel=None) -> None:
        df = self._view_df(tableName)
        df.persist(storageLevel) if storageLevel is not None else df.cache()

    def uncacheTable(self, tableName: str) -> None:
        self._view_df(tableName).unpersist()

    def isCached(self, tableName: str) -> bool:
        return self._view_df(tableName).is_cached

    def clearCache(self) -> None:
        self._session._cache.clear()


class CacheManager:
    """Persisted Arrow RDDs of cached plans, by plan identity."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple] = {}
        self._lock = threading.Lock()

    def persist(self, df, level) -> None:
        plan = df._plan
        with self._lock:
            if id(plan) in self._entries:
                return
        from .physical import Planner
        planner = Planner(df.sparkSession)
        rdd = planner.materialize(planner.plan(plan)).persist(level)
        with self._lock:
            self._entries[id(plan)] = (plan, rdd)

    def lookup(self, plan) -> object | None:
        with self._lock:
            entry = self._entries.get(id(plan))
        if entry is None or entry[0] is not plan:
            return None
        return entry[1]

    def unpersist(self, plan) -> None:
        with self._lock:
            entry = self._entries.pop(id(plan), None)
        if entry is not None:
            entry[1].unpersist()

    def clear(self) -> None:
        with self._lock:
            entries, self._entries = list(self._entries.values()), {}
        for _, rdd in entries:
            rdd.unpersist()
