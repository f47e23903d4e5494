"""``POST /api/v1/jobs/JOB/rebalance`` on the driver service's status server:
``sluicegate rebalance JOB --cores N`` over HTTP.

The body is JSON ``{"cores": N}`` (or ``?cores=N``). Changing a job is not
reading a page: the request must carry the cluster's secret
(``Authorization: Bearer SECRET``, the contents of the secret file) from any
host, loopback included. Answers ``{"ok": true, "message": ...}``; 400 for
a bad body, 403 without the secret, 404 for an unknown job, 409 for an ended
one.
"""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

from sluicegate.common.auth import bearer_matches

PATH = re.compile(r"^/api/v1/jobs/([A-Za-z0-9_.-]+)/rebalance$")


def answer(service, raw_path: str, headers, body: bytes) -> tuple[int, bytes]:
    match = PATH.match(urlsplit(raw_path).path.rstrip("/"))
    if match is None:
        return _reply(404, False, "not found")
    if not _authorized(service, headers):
        return _reply(403, False, "rebalancing a job needs the cluster's secret: send "
                                  "Authorization: Bearer SECRET")
    params = {k: v[-1] for k, v in parse_qs(urlsplit(raw_path).query).items()}
    if body.strip():
        try:
            document = json.loads(body)
        except ValueError as exc:
            return _reply(400, False, f"the body is not JSON: {exc}")
        if not isinstance(document, dict):
            return _reply(400, False, 'the body must be an object: {"cores": N}')
        params.update({k: v for k, v in document.items() if k == "cores"})
    cores = params.get("cores")
    if isinstance(cores, bool) or not isinstance(cores, (int, str)) or not str(cores).isdigit():
        return _reply(400, False, f'"cores" must be a whole number, got {cores!r}')
    job_id = match.group(1)
    ok, message = service.request_rebalance(job_id, int(cores), timeout_s=10.0)
    if ok:
        return _reply(200, True, message)
    return _reply(404 if message.startswith("no job") else 409 if "already" in message else 400,
                  False, message)


def _authorized(service, headers) -> bool:
    return bearer_matches(headers.get("Authorization"), getattr(service.transport, "secret", None))


def _reply(status: int, ok: bool, message: str) -> tuple[int, bytes]:
    return status, json.dumps({"ok": ok, "message": message}).encode()
