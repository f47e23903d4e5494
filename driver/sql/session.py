"""``SparkSession``: the entry point to DataFrames and SQL (PySpark's ``pyspark.sql.SparkSession``).

A session sits on a ``SparkContext`` (the existing one, or one it starts
with the builder's master and settings): ``SparkSession.builder.appName(...)
.config(conf=...).getOrCreate()``. It owns the session's SQL settings
(``spark.conf``), its temporary views (``spark.catalog``) and its cached
DataFrames, and makes DataFrames from RDDs, local data, pandas, files
(``spark.read``) and SQL text (``spark.sql``).
"""
from __future__ import annotations

import threading
from typing import Any

from . import logical as L
from . import types as T
from .catalog import CacheManager, Catalog
from .conversion import create_dataframe
from .dataframe import DataFrame
from .errors import PySparkValueError
from .expressions import Attr


class RuntimeConfig:
    """``spark.conf``: the session's SQL settings, over the SparkContext's configuration."""

    _UNSET = object()

    def __init__(self, base: dict):
        self._values = dict(base)
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = _UNSET) -> Any:
        with self._lock:
            if key in self._values:
                return self._values[key]
        if default is RuntimeConfig._UNSET:
            return _SQL_DEFAULTS.get(key)
        return default

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            self._values[key] = str(value) if not isinstance(value, str) else value

    def unset(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)

    def getAll(self) -> dict:
        with self._lock:
            return dict(self._values)

    def isModifiable(self, key: str) -> bool:
        return key.startswith("spark.sql.")


_SQL_DEFAULTS = {
    "spark.sql.shuffle.partitions": "200",
    "spark.sql.autoBroadcastJoinThreshold": "10485760",
    "spark.sql.session.timeZone": "UTC",
}


class _ClassProperty:
    def __init__(self, fget):
        self.fget = fget

    def __get__(self, instance, owner):
        return self.fget(owner)


class SparkSession:
    """The entry point to DataFrames and SQL."""

    _instantiated: "SparkSession | None" = None
    _active: "SparkSession | None" = None
    _lock = threading.RLock()

    class Builder:
        """``SparkSession.builder``: collects settings, then ``getOrCreate()``."""

        def __init__(self) -> None:
            self._options: dict[str, str] = {}

        def config(self, key: str | None = None, value: Any = None, conf: Any = None,
                   map: dict | None = None) -> "SparkSession.Builder":  # noqa: A002
            if conf is not None:
                for k, v in conf.getAll():
                    self._options[k] = v
            if map is not None:
                for k, v in map.items():
                    self._options[k] = str(v)
            if key is not None:
                self._options[key] = ("true" if value is True else "false" if value is False
                                      else str(value))
            return self

        def appName(self, name: str) -> "SparkSession.Builder":
            return self.config("spark.app.name", name)

        def master(self, master: str) -> "SparkSession.Builder":
            return self.config("spark.master", master)

        def enableHiveSupport(self) -> "SparkSession.Builder":
            return self

        def remote(self, url: str) -> "SparkSession.Builder":
            raise PySparkValueError("Spark Connect is not supported; use master() instead")

        def getOrCreate(self) -> "SparkSession":
            from ..context.conf import SparkConf
            from ..context.spark_context import SparkContext
            with SparkSession._lock:
                session = SparkSession._instantiated
                if session is not None and not session.sparkContext._stopped:
                    for k, v in self._options.items():
                        session.conf.set(k, v)
                    return session
                conf = SparkConf()
                for k, v in self._options.items():
                    conf.set(k, v)
                sc = SparkContext.getOrCreate(conf)
                session = SparkSession(sc, options=self._options)
                return session

        create = getOrCreate

    builder = _ClassProperty(lambda cls: cls.Builder())

    def __init__(self, sparkContext: Any, jsparkSession: Any = None, options: dict | None = None):
        self._sc = sparkContext
        base = {k: v for k, v in sparkContext.getConf().getAll() if k.startswith("spark.")}
        base.update(options or {})
        self.conf = RuntimeConfig(base)
        self.catalog = Catalog(self)
        self._cache = CacheManager()
        with SparkSession._lock:
            if SparkSession._instantiated is None or SparkSession._instantiated._sc._stopped:
                SparkSession._instantiated = self
            SparkSession._active = self
        _install_rdd_to_df()

    # -- identity ---------------------------------------------------------------------------
    @property
    def sparkContext(self):
        return self._sc

    @property
    def version(self) -> str:
        return self._sc.version

    @classmethod
    def getActiveSession(cls) -> "SparkSession | None":
        session = cls._active
        if session is not None and session._sc._stopped:
            return None
        return session

    @classmethod
    def active(cls) -> "SparkSession":
        session = cls.getActiveSession()
        if session is None:
            return cls.builder.getOrCreate()
        return session

    def newSession(self) -> "SparkSession":
        return SparkSession(self._sc, options=self.conf.getAll())

    def stop(self) -> None:
        self._cache.clear()
        self._sc.stop()
        with SparkSession._lock:
            if SparkSession._instantiated is self:
                SparkSession._instantiated = None
            if SparkSession._active is self:
                SparkSession._active = None

    def __enter__(self) -> "SparkSession":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- making DataFrames ------------------------------------------------------------------------
    def createDataFrame(self, data: Any, schema: Any = None, samplingRatio: float | None = None,
                        verifySchema: bool = True) -> DataFrame:
        """A DataFrame from an RDD, a list of Rows/tuples/dicts/values, a pandas DataFrame or an
        Arrow table; ``schema`` is a StructType, a DDL string, an atomic type or a list of names."""
        return DataFrame(create_dataframe(self, data, schema, samplingRatio), self)

    def range(self, start: int, end: int | None = None, step: int = 1,
              numPartitions: int | None = None) -> DataFrame:
        if end is None:
            start, end = 0, start
        n = numPartitions or self._sc.defaultParallelism
        attr = Attr("id", T.LongType(), False)
        return DataFrame(L.RangeRelation(attr, int(start), int(end), int(step), int(n)), self)

    def table(self, tableName: str) -> DataFrame:
        parts = tuple(tableName.split("."))
        return DataFrame(L.SubqueryAlias(parts[-1], self.catalog._lookup(parts)), self)

    def sql(self, sqlQuery: str, args: Any = None, **kwargs: Any) -> DataFrame:
        """A DataFrame for a Spark SQL query over this session's temporary views."""
        from .sql_frontend import plan_query
        if kwargs:
            sqlQuery = sqlQuery.format(**{k: (v if not isinstance(v, DataFrame) else
                                              self._view_for(v)) for k, v in kwargs.items()})
        return DataFrame(plan_query(self, sqlQuery, args), self)

    def _view_for(self, df: DataFrame) -> str:
        name = f"__df_{id(df._plan)}"
        self.catalog._register(name, df._plan, replace=True)
        return name

    @property
    def read(self):
        from .readwriter import DataFrameReader
        return DataFrameReader(self)

    @property
    def udf(self):
        """``spark.udf.register(name, f, returnType)``: a Python function for SQL text."""
        from .udf import UDFRegistration
        return UDFRegistration()


def _install_rdd_to_df() -> None:
    """``rdd.toDF()``, as PySpark adds it to RDD when a session starts."""
    from ..rdd.base import RDD
    if getattr(RDD, "_sluicegate_to_df", False):
        return

    def toDF(self, schema: Any = None, sampleRatio: float | None = None) -> DataFrame:
        """This RDD as a DataFrame (``spark.createDataFrame(rdd, schema)``)."""
        session = SparkSession.getActiveSession() or SparkSession(self.ctx)
        return session.createDataFrame(self, schema, sampleRatio)

    RDD.toDF = toDF
    RDD._sluicegate_to_df = True

