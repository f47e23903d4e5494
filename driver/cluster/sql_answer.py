"""A submitted job's side of ``sluicegate sql``: answering a ``SqlQuery`` the driver
service relays from the command line.

The query runs on a thread of its own (never on the backend's thread, which
keeps the job registered), over the job's live tables (``stream.asTable``;
``driver.sql.live_query``); the answer goes back through the backend's
authenticated connection to the service. A job that never touched the SQL
engine has no session: it says so without importing the engine.
"""
from __future__ import annotations

import json
import logging
import sys
import threading
from typing import Callable

from sluicegate.common.protocol.cluster import SqlQuery, SqlResult

log = logging.getLogger("sluicegate.driver.cluster")


def answer_in_background(message: SqlQuery, reply: Callable[[SqlResult], None]) -> None:
    """Run ``message``'s query on a new daemon thread; ``reply`` gets its ``SqlResult``."""
    threading.Thread(target=_answer, args=(message, reply), name="live-sql", daemon=True).start()


def _answer(message: SqlQuery, reply: Callable[[SqlResult], None]) -> None:
    reply(answer(message))


def answer(message: SqlQuery) -> SqlResult:
    """The ``SqlResult`` for ``message``, in this job's process."""
    if "sluicegate.driver.sql" not in sys.modules:
        return SqlResult(message.request_id, False, "NO_SQL_SESSION",
                         f"job {message.job_id} has no SQL session: it exposes no stream with "
                         "stream.asTable(name)")
    from ..sql import live_query
    try:
        result = live_query.run_live_query(message.query, None, max_rows=message.max_rows,
                                           show_rows=message.show_rows,
                                           timeout_s=message.timeout_s)
    except live_query.LiveQueryError as exc:
        return SqlResult(message.request_id, False, exc.kind, exc.message)
    except Exception as exc:  # noqa: BLE001 - the asker gets an answer, whatever happened
        log.exception("live SQL query failed: %s", message.query[:200])
        return SqlResult(message.request_id, False, "FAILED", f"{type(exc).__name__}: {exc}")
    return SqlResult(message.request_id, True, "", "", payload=[json.dumps(result).encode()])
