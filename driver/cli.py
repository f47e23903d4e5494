"""The ``sluicegate`` command: run a cluster's services and submit jobs to it.

    sluicegate driver [--host H] [--port 7077] [--secret-file F]
    sluicegate worker --driver HOST:PORT [--cores N] [--memory SIZE]
    sluicegate submit --driver HOST:PORT [--py-files a.py,b.zip] [--cores N] job.py [args...]
    sluicegate logs JOB [--follow] [--tail N] [--executors]
    sluicegate jobs | kill JOB | status   (each with --driver HOST:PORT)

Without ``--secret-file`` everything stays on this machine (loopback) and
uses a secret kept in ``~/.sluicegate/secret`` that ``driver`` creates.

This module is the parser; each command's code is imported when it runs:
``cli_services`` (driver, worker), ``cli_jobs`` (submit, logs, jobs, kill,
rebalance, status), ``cli_sql`` (sql), all reaching the service through
``cli_client``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from typing import Callable

from sluicegate.common.constants import ENV_SECRET_FILE

from .cli_client import DEFAULT_DRIVER, UsageError, check_driver_address
from .cli_sql import add_sql_command


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, unless it says it already or has none
    (a flag's default is its absence)."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool) \
                or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("sluicegate")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """The command ``name`` of ``module`` (in this package), imported when it runs: a
    command loads its own code only (``worker`` neither the service nor the job API)."""

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module, __package__), name)(args)

    return run


def _secret_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--secret-file", default=os.environ.get(ENV_SECRET_FILE),
                   metavar="FILE",
                   help="file holding the cluster's shared secret (chmod 600; env "
                        "SLUICEGATE_SECRET_FILE); without it only this machine can take "
                        "part, with the secret the driver keeps in ~/.sluicegate/secret")


def _driver_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--driver", default=DEFAULT_DRIVER, metavar="HOST:PORT",
                   help="the driver service (env SLUICEGATE_DRIVER)")


def _log_options(p: argparse.ArgumentParser, level: str = "INFO") -> None:
    p.add_argument("--log-file", metavar="FILE",
                   help="log here instead of stderr (default: stderr)")
    p.add_argument("--log-level", default=level,
                   choices=["DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL"],
                   type=str.upper, help="the least severe log lines shown")


def _add_driver_command(command) -> None:
    p = command("driver", "run the driver service (workers and jobs connect here)",
                _lazy(".cli_services", "cmd_driver"))
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (0.0.0.0: all; needs --secret-file)")
    p.add_argument("--port", type=int, default=7077, help="port to listen on")
    p.add_argument("--advertise-host", metavar="HOST",
                   help="address workers and jobs should use for this host (default: --host, "
                        "or this host's name when listening on all addresses)")
    p.add_argument("--work-dir", metavar="DIR",
                   help="where submitted jobs' files, output and exit statuses live "
                        "(default: ~/.sluicegate/driver-PORT)")
    p.add_argument("--executor-memory", default="512m", metavar="SIZE",
                   help="memory per executor (its block store); a worker runs at most "
                        "its --memory / this many executors")
    p.add_argument("--job-output-limit", default="64m", metavar="SIZE",
                   help="how much of each job's stdout and of its stderr its directory keeps, "
                        "for `submit` and `logs` (the oldest output goes first)")
    p.add_argument("--keep-jobs", action="store_true",
                   help="when stopped, leave running jobs running: a driver started again on "
                        "the same --work-dir adopts them (jobs always outlive a crash)")
    p.add_argument("--worker-retention", default="10m", metavar="DURATION",
                   help="how long a lost or stopped worker stays in `status` (e.g. 30s, 10m)")
    p.add_argument("--ui-port", type=int, default=8080,
                   help="status pages port (the next free one if taken; -1: none)")
    p.add_argument("--ui-host", default="127.0.0.1",
                   help="status pages address (other than loopback: needs --secret-file)")
    _secret_option(p)
    _log_options(p)


def _add_worker_command(command) -> None:
    p = command("worker", "run a worker: gives this host's cores to the cluster",
                _lazy(".cli_services", "cmd_worker"))
    _driver_option(p)
    p.add_argument("--cores", type=int, default=0, help="cores to offer; 0: all of this host's")
    p.add_argument("--memory", metavar="SIZE",
                   help="memory to offer, e.g. 8g (default: all of this host's); the worker runs "
                        "at most this / the driver's --executor-memory executors")
    p.add_argument("--work-dir", metavar="DIR",
                   help="scratch space for executors, and their logs (default: the system's "
                        "temporary directory)")
    p.add_argument("--executor-log-limit", default="16m", metavar="SIZE",
                   help="how much of each executor's stdout and of its stderr is kept for "
                        "`sluicegate logs --executors` (the oldest output goes first)")
    p.add_argument("--host", default="127.0.0.1", help="address executors serve blocks on")
    p.add_argument("--advertise-host", metavar="HOST",
                   help="address peers should use for this host (default: --host)")
    p.add_argument("--worker-id", metavar="NAME",
                   help="a stable name for this worker (default: worker-HOSTNAME-PID); with "
                        "one, executors' logs outlive a restart of the worker")
    _secret_option(p)
    _log_options(p)


def _add_submit_command(command) -> None:
    p = command("submit", "run a job script on the cluster and stream its output",
                _lazy(".cli_jobs", "cmd_submit"))
    _driver_option(p)
    p.add_argument("--py-files", metavar="FILES",
                   help="comma-separated .py/.zip files the job imports (default: none)")
    p.add_argument("--cores", type=int, default=0,
                   help="most cores the job may use; 0: as many as the cluster gives")
    p.add_argument("--name", help="job name (default: the script's name)")
    p.add_argument("--detach", action="store_true",
                   help="print the job id and return at once (`sluicegate logs JOB` shows "
                        "its output)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress lines (the status pages' address and the job's live "
                        "line per batch included)")
    p.add_argument("--supervise", action="store_true",
                   help="restart the job's driver when it dies (not when it exits 0 or is "
                        "killed with `sluicegate kill`), with backoff; a streaming job recovers "
                        "through StreamingContext.getOrCreate; `jobs` shows the restarts")
    p.add_argument("script", help="the job's Python script")
    p.add_argument("args", nargs=argparse.REMAINDER,
                   help="arguments for the script (its sys.argv[1:]; default: none)")
    _secret_option(p)


def _add_job_commands(command) -> None:
    p = command("logs", "a job's output (its driver's stdout and stderr), while it runs and "
                        "after it ended, or its executors' logs", _lazy(".cli_jobs", "cmd_logs"))
    _driver_option(p)
    p.add_argument("job", help="the job's id, as `sluicegate jobs` lists it")
    p.add_argument("-f", "--follow", action="store_true",
                   help="go on printing the output as it comes, until the job ends (Ctrl-C "
                        "stops following, not the job)")
    p.add_argument("--tail", type=int, default=-1, metavar="N",
                   help="only the last N lines of each stream; -1: all that is kept")
    p.add_argument("--executors", action="store_true",
                   help="the logs of the job's executors (stdout and stderr, as the live "
                        "workers keep them) instead of its driver's output")
    _secret_option(p)

    for name, help_text in (("jobs", "list jobs (with their status pages)"),
                            ("status", "workers and jobs")):
        p = command(name, help_text, _lazy(".cli_jobs", f"cmd_{name}"))
        _driver_option(p)
        p.add_argument("--json", action="store_true", help="as JSON, for scripts")
        _secret_option(p)

    p = command("kill", "stop a running job", _lazy(".cli_jobs", "cmd_kill"))
    _driver_option(p)
    p.add_argument("job", help="the job's id, as `sluicegate jobs` lists it")
    _secret_option(p)

    p = command("rebalance", "change a running job's cores (executors) without stopping it; "
                             "its state moves to the executors that stay",
                _lazy(".cli_jobs", "cmd_rebalance"))
    _driver_option(p)
    p.add_argument("job", help="the job's id, as `sluicegate jobs` lists it")
    p.add_argument("--cores", type=int, required=True, help="how many cores the job may use now")
    _secret_option(p)


def build_parser() -> argparse.ArgumentParser:
    """The ``sluicegate`` command line: one sub-command per service or request."""
    parser = argparse.ArgumentParser(prog="sluicegate",
                                     description=__doc__.split("\n\n")[0].replace("``", ""),
                                     formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"sluicegate {version()}",
                        help="print sluicegate's version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     help="what to run (`sluicegate COMMAND --help` for more)")

    def command(name: str, help_text: str, run) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=help_text, description=help_text,
                                formatter_class=_HelpFormatter)
        p.set_defaults(run=run)
        return p

    _add_driver_command(command)
    _add_worker_command(command)
    _add_submit_command(command)
    _add_job_commands(command)
    add_sql_command(command, _driver_option, _secret_option)  # `sql --job JOB "SELECT ..."`
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # After parsing: `--help` and a usage error need neither ZeroMQ nor the protocol.
    from sluicegate.common.auth import SecurityError

    from .cluster.client import ServiceUnavailable

    for option in ("host", "ui_host"):  # "" and "*" listen everywhere: say so, and check it
        if getattr(args, option, None) is not None and getattr(args, option).strip() in ("", "*"):
            setattr(args, option, "0.0.0.0")
    try:
        if getattr(args, "driver", None) is not None:
            check_driver_address(args.driver)
        return args.run(args) or 0
    except UsageError as exc:
        print(f"sluicegate {args.command}: {exc}", file=sys.stderr)
        return 2
    except SecurityError as exc:
        print(f"sluicegate {args.command}: {exc}", file=sys.stderr)
        return 2
    except ServiceUnavailable as exc:
        print(f"sluicegate {args.command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # Whoever read our output stopped (`sluicegate jobs --json | head`): end quietly,
        # as a command killed by SIGPIPE does, and keep the interpreter's final flush from
        # failing again on the closed pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
