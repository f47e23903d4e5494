"""The driver service's part of ``sluicegate sql``: relaying a live SQL query to a
running job's driver and its answer back.

The command line sends ``SqlQuery`` for a job; the service checks the job is
known and running with its driver registered, and passes the query on over
the job's own authenticated connection under a request id of its own (so
that answers from different clients never mix). The job's ``SqlResult`` goes
back to the client that asked. A query the job has not answered within its
timeout plus ``RELAY_MARGIN_S`` is answered with TIMEOUT by the service.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

from sluicegate.common.protocol.cluster import SqlQuery, SqlResult

from .job_records import RUNNING

log = logging.getLogger("sluicegate.service")

MAX_QUERY_CHARS = 100_000
MAX_TIMEOUT_S = 600.0
RELAY_MARGIN_S = 5.0   # the job's own timeout fires first; this covers a job that went silent
MAX_PENDING = 64       # queries on their way at once, all jobs together


@dataclass
class SqlAsked:
    client: bytes
    client_request_id: int
    job_id: str
    app_identity: bytes   # only the job's own driver may answer
    deadline_s: float     # monotonic
    timeout_s: float


class SqlRelay:
    """The ``sql`` part of ``ClusterService`` (it holds ``jobs`` and ``send``)."""

    def _sql_pending(self) -> dict[int, SqlAsked]:
        if not hasattr(self, "_sql_asked"):
            self._sql_asked: dict[int, SqlAsked] = {}
            self._sql_ids = itertools.count(1)
        return self._sql_asked

    def _sql_query(self, identity: bytes, message: SqlQuery, now: float) -> None:
        def refuse(kind: str, why: str) -> None:
            self.send(identity, SqlResult(message.request_id, False, kind, why))

        job = self.jobs.get(message.job_id)
        if job is None:
            return refuse("UNKNOWN_JOB", f"no job {message.job_id} (`sluicegate jobs` lists them)")
        if job.state != RUNNING:
            return refuse("NOT_RUNNING", f"job {job.job_id} has ended ({job.state.lower()}): "
                                         "live SQL needs a running job")
        if job.app_identity is None:
            return refuse("NOT_RUNNING", f"job {job.job_id}'s driver has not registered (yet): "
                                         "ask again in a moment")
        if len(message.query) > MAX_QUERY_CHARS:
            return refuse("REFUSED", f"the query has {len(message.query)} characters; at most "
                                     f"{MAX_QUERY_CHARS} are relayed")
        if not 0 < message.timeout_s <= MAX_TIMEOUT_S:
            return refuse("REFUSED", f"the timeout must be from 0 to {MAX_TIMEOUT_S:.0f}s, got "
                                     f"{message.timeout_s:g}")
        pending = self._sql_pending()
        if len(pending) >= MAX_PENDING:
            return refuse("BUSY", f"{MAX_PENDING} live queries are on their way; ask again later")
        relay_id = next(self._sql_ids)
        relayed = SqlQuery(request_id=relay_id, job_id=job.job_id, query=message.query,
                           max_rows=message.max_rows, show_rows=message.show_rows,
                           timeout_s=message.timeout_s)
        if not self.send(job.app_identity, relayed):
            return refuse("NOT_RUNNING", f"job {job.job_id}'s driver cannot be reached")
        pending[relay_id] = SqlAsked(identity, message.request_id, job.job_id, job.app_identity,
                                     now + message.timeout_s + RELAY_MARGIN_S, message.timeout_s)
        log.info("job %s: live SQL query relayed", job.job_id)

    def _sql_result(self, identity: bytes, message: SqlResult, now: float) -> None:
        asked = self._sql_pending().get(message.request_id)
        if asked is None or asked.app_identity != identity:
            return  # expired already, or not from the job that was asked
        del self._sql_asked[message.request_id]
        self.send(asked.client, SqlResult(asked.client_request_id, message.ok, message.error,
                                          message.message, payload=list(message.payload)))

    def _expire_sql_queries(self, now: float) -> None:
        pending = self._sql_pending()
        for relay_id, asked in list(pending.items()):
            job = self.jobs.get(asked.job_id)
            ended = job is None or job.state != RUNNING
            if now < asked.deadline_s and not ended:
                continue
            del pending[relay_id]
            why = (f"job {asked.job_id} ended before it answered" if ended else
                   f"job {asked.job_id} did not answer within {asked.timeout_s + RELAY_MARGIN_S:g}s")
            self.send(asked.client, SqlResult(asked.client_request_id, False,
                                              "NOT_RUNNING" if ended else "TIMEOUT", why))

    sql_handlers = {
        SqlQuery: _sql_query,
        SqlResult: _sql_result,
    }
