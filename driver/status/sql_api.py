"""``/api/v1/sql`` of an application's status server: live SQL over its running streams.

    GET  /api/v1/sql?q=SELECT+...[&maxRows=N][&timeout=SECONDS]
    POST /api/v1/sql   body: the query as text, or JSON {"query": ..., "maxRows": N, "timeout": S}

answers ``{"columns": [{"name", "type"}], "rows": [[...]], "truncated", "batches"}``
(``driver.sql.live_query``), or an error status with ``{"error": KIND, "message": ...}``:
400 for a statement that is not a query and for Spark's ParseException /
AnalysisException text, 404 without a SQL session, 503 when busy, 504 after the
timeout. The pages listen on loopback unless a shared secret is set; a request
from another host must then carry it (``Authorization: Bearer SECRET``), since a
query reads the application's data.
"""
from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs, urlsplit

from sluicegate.common.auth import bearer_matches, is_loopback

log = logging.getLogger("sluicegate.status")

PATH = "/api/v1/sql"
MAX_BODY_BYTES = 1 << 20


def answer(source, method: str, raw_path: str, headers, body: bytes,
           client_host: str) -> tuple[int, bytes]:
    """The HTTP status and JSON body for one request."""
    if not _allowed(source, headers, client_host):
        return _error(403, "FORBIDDEN", "live SQL from another host needs the application's "
                                        "secret: send Authorization: Bearer SECRET")
    params = {k: v[-1] for k, v in parse_qs(urlsplit(raw_path).query, keep_blank_values=True).items()}
    if method == "POST":
        text = body.decode("utf-8", errors="replace")
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type == "application/json":
            try:
                document = json.loads(text)
            except ValueError as exc:
                return _error(400, "REFUSED", f"the request body is not JSON: {exc}")
            if not isinstance(document, dict):
                return _error(400, "REFUSED", 'the JSON body must be an object: {"query": "SELECT ..."}')
            params.update({k: str(v) for k, v in document.items() if k in ("maxRows", "timeout")})
            params["q"] = document.get("query", "")
        else:
            params["q"] = text
    query = params.get("q", "")
    try:
        max_rows = int(params.get("maxRows", live_query().DEFAULT_MAX_ROWS))
        timeout_s = float(params.get("timeout", live_query().DEFAULT_TIMEOUT_S))
    except ValueError as exc:
        return _error(400, "REFUSED", f"maxRows must be an integer and timeout a number of "
                                      f"seconds: {exc}")
    if not 0 < timeout_s <= 3600:
        return _error(400, "REFUSED", f"timeout must be from 0 to 3600 seconds, got {timeout_s:g}")
    lq = live_query()
    try:
        result = lq.run_live_query(query, source.runtime, max_rows=max_rows, timeout_s=timeout_s)
    except lq.LiveQueryError as exc:
        return _error(lq.HTTP_STATUS.get(exc.kind, 500), exc.kind, exc.message)
    except Exception as exc:  # noqa: BLE001 - the server answers, whatever the query did
        log.exception("live SQL query failed: %s", query[:200])
        return _error(500, "FAILED", f"{type(exc).__name__}: {exc}")
    return 200, json.dumps(result).encode()


def live_query():
    from ..sql import live_query as module  # pyarrow and the SQL engine: only when asked
    return module


def _allowed(source, headers, client_host: str) -> bool:
    if is_loopback(client_host):
        return True
    secret = getattr(getattr(source.runtime, "transport", None), "secret", None)
    return bearer_matches(headers.get("Authorization"), secret)


def _error(status: int, kind: str, message: str) -> tuple[int, bytes]:
    return status, json.dumps({"error": kind, "message": message}).encode()


def read_body(handler) -> bytes | None:
    """The request's body (None: too big or not announced)."""
    try:
        length = int(handler.headers.get("Content-Length") or 0)
    except ValueError:
        return None
    if not 0 <= length <= MAX_BODY_BYTES:
        return None
    return handler.rfile.read(length) if length else b""
