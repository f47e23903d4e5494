"""Live SQL from outside a running job: the status API (``/api/v1/sql``) and
``sluicegate sql --job JOB``.

A query sees the tables ``stream.asTable(name)`` exposes (and the session's
other temporary views). Before it is planned, each live table's current
batch is taken once, so the whole query -- a self-join included -- sees one
consistent batch per table however many batches complete meanwhile. The
query runs as ordinary jobs on the executors that hold the state (in a job
group of its own, cancelled after ``timeout_s``); the stream's batches go on
beside it and never wait for it.

Only queries are answered (SELECT / WITH, and ``SHOW TABLES`` / ``DESCRIBE
name``); anything else is refused before it is planned.
"""
from __future__ import annotations

import base64
import copy
import datetime
import decimal
import math
import re
import threading
import uuid
from typing import Any

from .errors import PySparkException

DEFAULT_MAX_ROWS = 10_000
MAX_ROWS_LIMIT = 1_000_000
DEFAULT_TIMEOUT_S = 60.0
MAX_CONCURRENT = 4  # live queries at once per application; more are told to come back later
TRUNCATE_SHOW = 20  # show()'s default cell width

_slots = threading.BoundedSemaphore(MAX_CONCURRENT)
_SHOW_TABLES = re.compile(r"^\s*SHOW\s+(?:TABLES|VIEWS)\s*;?\s*$", re.IGNORECASE)
_DESCRIBE = re.compile(r"^\s*(?:DESCRIBE|DESC)(?:\s+TABLE)?\s+`?([A-Za-z_][\w.]*)`?\s*;?\s*$",
                       re.IGNORECASE)

# error kind -> HTTP status of the status API
HTTP_STATUS = {"REFUSED": 400, "PARSE": 400, "ANALYSIS": 400, "NO_SQL_SESSION": 404,
               "BUSY": 503, "TIMEOUT": 504, "FAILED": 500}


class LiveQueryError(Exception):
    """A live query that was not answered: ``kind`` says why (see ``HTTP_STATUS``)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


def run_live_query(query: str, runtime: Any = None, max_rows: int = DEFAULT_MAX_ROWS,
                   show_rows: int = 0, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict:
    """Answer ``query`` over the live tables of the application whose runtime is
    ``runtime`` (None: this process's active SparkContext). A JSON-ready dict:
    ``columns`` ([{name, type}]), ``rows`` (lists of JSON values), ``truncated`` (more
    than ``max_rows`` rows), ``batches`` ({table: batch time in ms}) and, with
    ``show_rows`` > 0, ``show``: the text ``DataFrame.show(show_rows)`` prints."""
    if not isinstance(query, str) or not query.strip():
        raise LiveQueryError("REFUSED", "no query given (e.g. SELECT * FROM word_counts)")
    if not 0 <= max_rows <= MAX_ROWS_LIMIT:
        raise LiveQueryError("REFUSED", f"maxRows must be from 0 to {MAX_ROWS_LIMIT}, got {max_rows}")
    if not _slots.acquire(blocking=False):
        raise LiveQueryError("BUSY", f"{MAX_CONCURRENT} live queries are running already; "
                                     "ask again when one has finished")
    try:
        session, batches = _snapshot_session(runtime)
        df = _plan(session, query)
        rows = _collect(session.sparkContext, df, query, max_rows + 1, timeout_s)
    finally:
        _slots.release()
    types = [a.dtype for a in df._plan.output]
    answer = {"columns": [{"name": n, "type": t.simpleString()} for n, t in zip(df.columns, types)],
              "rows": [[to_json_value(v) for v in row] for row in rows[:max_rows]],
              "truncated": len(rows) > max_rows, "batches": batches}
    if show_rows > 0:
        from .show import show_string
        answer["show"] = show_string(df.columns, types, rows[:show_rows + 1], show_rows,
                                     TRUNCATE_SHOW, False)
    return answer


def _snapshot_session(runtime: Any):
    """A copy of the live tables' session whose live views are pinned to their current
    batches, and those batches' times (ms); ``NO_SQL_SESSION`` without one."""
    from .live import LIVE_TABLES
    from .session import SparkSession

    def ours(sc: Any) -> bool:
        return not sc._stopped and (runtime is None or sc._runtime is runtime)

    # a stopped stream's table is no longer live (a newer one may have taken its name)
    tables = [t for t in list(LIVE_TABLES) if ours(t.stream.context().sparkContext)
              and getattr(t.stream.context(), "_state", None) != "STOPPED"]
    # the session the tables register in (set at their first batch), else the active one
    session = next((t._session for t in tables if t._session is not None), None)
    if session is None:
        active = SparkSession.getActiveSession()
        if active is not None and ours(active.sparkContext):
            session = active
    if session is None:
        raise LiveQueryError("NO_SQL_SESSION", "this application has no SQL session: expose a "
                             "stream with stream.asTable(name) (or create a SparkSession with "
                             "temporary views) to query it")
    pinned = copy.copy(session)  # shares the settings and cached data, not the views
    from .catalog import Catalog
    pinned.catalog = Catalog(pinned)
    with session.catalog._lock:
        pinned.catalog._views = dict(session.catalog._views)
    batches: dict[str, int | None] = {}
    for table in sorted(tables, key=lambda t: t.name):
        with table._lock:
            df, batch_time = table.current, table.batch_time
        if df is None:
            # no batch completed yet: the name is unknown until one has
            pinned.catalog._views.pop(table.name.lower(), None)
            batches[table.name] = None
            continue
        pinned.catalog._register(table.name, df._plan, replace=True)
        batches[table.name] = _millis(batch_time)
    return pinned, batches


def _millis(batch_time: Any) -> int | None:
    """A batch's time (the local datetime foreachRDD is given, as in PySpark) in epoch ms."""
    if isinstance(batch_time, datetime.datetime):
        return round(batch_time.timestamp() * 1000)
    return None


def _plan(session: Any, query: str):
    """The query's DataFrame; REFUSED for anything but a query, PARSE/ANALYSIS with
    Spark's text for one that does not parse or resolve."""
    from . import types as T
    shown = _SHOW_TABLES.match(query)
    described = _DESCRIBE.match(query)
    try:
        if shown:
            rows = [("", t.name, True) for t in session.catalog.listTables()]
            schema = T.StructType([T.StructField("namespace", T.StringType(), False),
                                   T.StructField("tableName", T.StringType(), False),
                                   T.StructField("isTemporary", T.BooleanType(), False)])
            return session.createDataFrame(rows, schema)
        if described:
            rows = [(c.name, c.dataType, None) for c in session.catalog.listColumns(described.group(1))]
            schema = T.StructType([T.StructField("col_name", T.StringType(), False),
                                   T.StructField("data_type", T.StringType(), False),
                                   T.StructField("comment", T.StringType(), True)])
            return session.createDataFrame(rows, schema)
        from sqlglot import exp

        from .sql_frontend import parse
        tree = parse(query)
        if not isinstance(tree, exp.Query):
            statement = query.strip().split(None, 1)[0].upper()
            raise LiveQueryError("REFUSED", f"live SQL is read-only: only queries (SELECT, WITH, "
                                            f"SHOW TABLES, DESCRIBE) are answered, not {statement}")
        return session.sql(query)
    except PySparkException as exc:
        from .errors import ParseException
        raise LiveQueryError("PARSE" if isinstance(exc, ParseException) else "ANALYSIS",
                             str(exc).strip()) from None


def _collect(sc: Any, df: Any, query: str, limit: int, timeout_s: float) -> list:
    """``df.take(limit)`` in a job group of its own, cancelled after ``timeout_s``."""
    from ..scheduler.jobs import JobCancelledError, JobFailedError
    group = f"live-sql-{uuid.uuid4().hex[:12]}"
    before = dict(sc._local_properties.values)
    sc.setJobGroup(group, f"live SQL: {' '.join(query.split())[:200]}", interruptOnCancel=True)
    timed_out = threading.Event()

    def cancel() -> None:
        timed_out.set()
        sc.cancelJobGroup(group)

    timer = threading.Timer(timeout_s, cancel)
    timer.daemon = True
    timer.start()
    try:
        return df.take(limit)
    except JobCancelledError as exc:
        if timed_out.is_set():
            raise LiveQueryError("TIMEOUT", f"the query did not finish within {timeout_s:g}s "
                                            "and was cancelled") from None
        raise LiveQueryError("FAILED", str(exc)) from None
    except PySparkException as exc:  # e.g. a division by zero found while running
        raise LiveQueryError("ANALYSIS", str(exc).strip()) from None
    except JobFailedError as exc:
        raise LiveQueryError("FAILED", str(exc)) from None
    finally:
        timer.cancel()
        sc._set_thread_properties(before)


def to_json_value(value: Any) -> Any:
    """A result cell as JSON: numbers, strings, booleans and null as they are; dates and
    timestamps in ISO 8601, decimals as strings (exact), binary as base64, structs as
    objects, arrays as arrays, maps as objects; NaN and infinities as strings."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "asDict"):
        return {k: to_json_value(v) for k, v in value.asDict().items()}
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    return str(value)
