"""``python -m sluicegate.worker.executor``: start one executor process.

Started by local mode's launcher or by a worker service; not a user command.
The shared secret arrives as the first line of standard input, never on the
command line (where ``ps`` would show it).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from sluicegate.common.config import parse_size_bytes
from sluicegate.common.constants import (
    ENV_LOG_LEVEL, EXECUTOR_REGISTRATION_TIMEOUT_S, FETCH_TIMEOUT_S)
from sluicegate.common.taskcontext import mark_executor_process

from .process import ExecutorProcess


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sluicegate.worker.executor")
    parser.add_argument("--driver", required=True, help="driver endpoint, tcp://HOST:PORT")
    parser.add_argument("--executor-id", required=True)
    parser.add_argument("--host", default="127.0.0.1", help="address for the block service")
    parser.add_argument("--advertise-host", default=None,
                        help="address peers use to reach the block service (default: --host)")
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--memory-limit", default="512m", help="block memory before spilling")
    parser.add_argument("--parent-pid", type=int, default=None,
                        help="exit when this process (the local driver) is gone")
    parser.add_argument("--secret-stdin", action="store_true",
                        help="read the shared secret from the first line of stdin")
    parser.add_argument("--registration-timeout", type=float,
                        default=EXECUTOR_REGISTRATION_TIMEOUT_S)
    parser.add_argument("--fetch-timeout", type=float, default=FETCH_TIMEOUT_S)
    parser.add_argument("--log-level", default=os.environ.get(ENV_LOG_LEVEL, "WARNING"))
    args = parser.parse_args(argv)
    mark_executor_process()  # a task here must not create a SparkContext

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s [executor {args.executor_id}] %(message)s")
    secret = sys.stdin.buffer.readline().strip() or None if args.secret_stdin else None
    work_dir = Path(args.work_dir) if args.work_dir else Path(
        tempfile.mkdtemp(prefix=f"sluicegate-{args.executor_id}-"))
    executor = ExecutorProcess(
        args.executor_id, args.driver, secret, args.host, work_dir,
        parse_size_bytes(args.memory_limit), parent_pid=args.parent_pid,
        registration_timeout_s=args.registration_timeout, fetch_timeout_s=args.fetch_timeout,
        advertise_host=args.advertise_host)
    return executor.run()


if __name__ == "__main__":
    sys.exit(main())
