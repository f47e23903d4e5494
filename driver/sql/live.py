"""Live SQL over a running stream: ``stream.asTable("word_counts")``.

A stream -- typically keyed state (``updateStateByKey``, ``mapWithState``'s
``stateSnapshots``, a window) -- is exposed as a temporary view of its latest
completed batch. Each batch only swaps the view to that batch's RDD (no job
of its own, so the stream never waits for a query); a query sees exactly one
batch, and runs on the executors where the state is cached. The batch's rows
are turned into Arrow the first time a query reads them and kept (cached)
until the next batch replaces the view.
"""
from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from . import types as T
from .errors import PySparkTypeError

if TYPE_CHECKING:
    from .dataframe import DataFrame
    from .session import SparkSession


# Every live table of this process, for the status API and `sluicegate sql` (live_query).
LIVE_TABLES: "weakref.WeakSet[LiveTable]" = weakref.WeakSet()


class LiveTable:
    """The view ``name`` over the latest completed batch of a stream."""

    def __init__(self, stream: Any, name: str, schema: Any, session: "SparkSession | None"):
        if not isinstance(name, str) or not name.isidentifier():
            raise PySparkTypeError(f"asTable needs a view name (an identifier), got {name!r}")
        self.stream = stream
        self.name = name
        self.schema = schema
        self._session = session
        self._lock = threading.Lock()
        self.current: "DataFrame | None" = None
        self.batch_time = None
        stream.foreachRDD(self._on_batch)
        LIVE_TABLES.add(self)  # found by live queries from outside the job (live_query)

    def __getstate__(self) -> dict:
        # a metadata checkpoint pickles the stream graph: keep the name and schema only
        state = dict(self.__dict__)
        state.update(_lock=None, _session=None, current=None, batch_time=None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        LIVE_TABLES.add(self)

    def session(self) -> "SparkSession":
        from .session import SparkSession
        if self._session is None:
            self._session = SparkSession.getActiveSession() or SparkSession(self.stream.context().sparkContext)
        return self._session

    def _resolved_schema(self, rdd: Any) -> Any:
        """A StructType once known: given, or inferred from the first non-empty batch."""
        if isinstance(self.schema, T.StructType):
            return self.schema
        if isinstance(self.schema, str):
            self.schema = T.parse_schema(self.schema)
            return self.schema
        first = rdd.take(1)
        if not first:
            return None
        from .conversion import infer_schema
        self.schema = infer_schema(first, self.schema if isinstance(self.schema, list) else
                                   (["key", "value"] if _is_pair(first[0]) else None))
        return self.schema

    def _on_batch(self, time: Any, rdd: Any) -> None:
        schema = self._resolved_schema(rdd)
        if schema is None:
            return
        session = self.session()
        df = session.createDataFrame(rdd, schema).cache()  # Arrow on first read, then kept
        with self._lock:
            old, self.current, self.batch_time = self.current, df, time
            session.catalog._register(self.name, df._plan, replace=True)
        if old is not None:
            old.unpersist()


def _is_pair(row: Any) -> bool:
    return isinstance(row, tuple) and not isinstance(row, T.Row) and len(row) == 2


def as_table(self, name: str, schema: Any = None, session: "SparkSession | None" = None) -> LiveTable:
    """Expose this stream's latest completed batch as the temporary view ``name``
    (``spark.sql("SELECT ... FROM name")``). ``schema``: column names, a DDL string or a
    StructType; pairs default to ``key, value``."""
    return LiveTable(self, name, schema, session)


def install() -> None:
    from ..dstream.base import DStream
    if not hasattr(DStream, "asTable"):
        DStream.asTable = as_table
