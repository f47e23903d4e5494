"""``sluicegate sql --job JOB "SELECT ..."``: a live SQL query over a running job's
live tables (``stream.asTable``), through the driver service.

Prints the result as ``DataFrame.show()`` does (``-n`` rows, default 20), or
with ``--json`` as a document of columns and rows. Exit status 0 with an
answer; 1 when the query failed (its error on stderr: Spark's ParseException
or AnalysisException text, an unknown or ended job, a job without a SQL
session, a timeout).
"""
from __future__ import annotations

import json
import sys
import time

from .cli_client import UsageError, connect

ANSWER_MARGIN_S = 10.0  # past the query's timeout: the service answers TIMEOUT before this


def add_sql_command(command, driver_option, secret_option) -> None:
    """Add ``sql`` to the ``sluicegate`` parser (``command`` makes a sub-command)."""
    p = command("sql", "run a read-only SQL query over a running job's live tables "
                       "(stream.asTable) and print the result", cmd_sql)
    driver_option(p)
    p.add_argument("--job", required=True, help="the job's id, as `sluicegate jobs` lists it")
    p.add_argument("--json", action="store_true",
                   help="print {columns, rows, truncated, batches} as JSON instead of a table")
    p.add_argument("-n", "--num-rows", type=int, default=20, metavar="N",
                   help="rows the table shows, as DataFrame.show(N)")
    p.add_argument("--max-rows", type=int, default=10_000, metavar="N",
                   help="with --json: at most this many rows (`truncated` says if there were more)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="cancel the query after this long")
    p.add_argument("query", help='the query, e.g. "SELECT word, count FROM word_counts '
                                 'ORDER BY count DESC LIMIT 10"')
    secret_option(p)


def cmd_sql(args) -> int:
    from sluicegate.common.protocol.cluster import SqlQuery, SqlResult

    from .cluster.client import ServiceUnavailable

    if args.num_rows < 1:
        raise UsageError(f"--num-rows must be at least 1, got {args.num_rows}")
    if not 0 <= args.max_rows <= 1_000_000:
        raise UsageError(f"--max-rows must be from 0 to 1000000, got {args.max_rows}")
    if not 0 < args.timeout <= 600:
        raise UsageError(f"--timeout must be from 0 to 600 seconds, got {args.timeout:g}")
    rows, shown = (args.max_rows, 0) if args.json else (args.num_rows, args.num_rows)
    client = connect(args)
    try:
        request_id = client.next_nonce()
        client.send(SqlQuery(request_id=request_id, job_id=args.job, query=args.query,
                             max_rows=rows, show_rows=shown, timeout_s=float(args.timeout)))
        deadline = time.monotonic() + args.timeout + ANSWER_MARGIN_S
        while True:
            left = deadline - time.monotonic()
            answer = client.receive(max(0.0, left)) if left > 0 else None
            if answer is None:
                raise ServiceUnavailable(f"no answer from the driver service at {args.driver} "
                                         f"within {args.timeout + ANSWER_MARGIN_S:g}s")
            if isinstance(answer, SqlResult) and answer.request_id == request_id:
                break
    finally:
        client.close()
    if not answer.ok:
        print(f"sluicegate sql: {answer.error}: {answer.message}", file=sys.stderr)
        return 1
    result = json.loads(bytes(answer.payload[0]).decode()) if answer.payload else {}
    if args.json:
        result.pop("show", None)
        print(json.dumps(result))
    else:
        print(result.get("show", ""))
    return 0
