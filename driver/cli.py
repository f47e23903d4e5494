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


_FLAG = {"action": "store_true"}

# What each option is (type, default, value name) in every command that takes it; the
# commands' tables below say what it does there.
_KINDS: dict[str, dict] = {
    "--host": {"default": "127.0.0.1"},
    "--port": {"type": int, "default": 7077},
    "--advertise-host": {"metavar": "HOST"},
    "--work-dir": {"metavar": "DIR"},
    "--executor-memory": {"default": "512m", "metavar": "SIZE"},
    "--job-output-limit": {"default": "64m", "metavar": "SIZE"},
    "--keep-jobs": _FLAG,
    "--worker-retention": {"default": "10m", "metavar": "DURATION"},
    "--ui-port": {"type": int, "default": 8080},
    "--ui-host": {"default": "127.0.0.1"},
    "--cores": {"type": int, "default": 0},
    "--memory": {"metavar": "SIZE"},
    "--executor-log-limit": {"default": "16m", "metavar": "SIZE"},
    "--worker-id": {"metavar": "NAME"},
    "--py-files": {"metavar": "FILES"},
    "--detach": _FLAG,
    "--quiet": _FLAG,
    "--supervise": _FLAG,
    "args": {"nargs": argparse.REMAINDER},
    "-f --follow": _FLAG,
    "--tail": {"type": int, "default": -1, "metavar": "N"},
    "--executors": _FLAG,
    "--json": _FLAG,
}

_JOB = {"job": "the job's id, as `sluicegate jobs` lists it"}

_DRIVER_OPTIONS = {
    "--host": "address to listen on (0.0.0.0: all; needs --secret-file)",
    "--port": "port to listen on",
    "--advertise-host": "address workers and jobs should use for this host (default: --host, "
                        "or this host's name when listening on all addresses)",
    "--work-dir": "where submitted jobs' files, output and exit statuses live "
                  "(default: ~/.sluicegate/driver-PORT)",
    "--executor-memory": "memory per executor (its block store); a worker runs at most "
                         "its --memory / this many executors",
    "--job-output-limit": "how much of each job's stdout and of its stderr its directory "
                          "keeps, for `submit` and `logs` (the oldest output goes first)",
    "--keep-jobs": "when stopped, leave running jobs running: a driver started again on "
                   "the same --work-dir adopts them (jobs always outlive a crash)",
    "--worker-retention": "how long a lost or stopped worker stays in `status` "
                          "(e.g. 30s, 10m)",
    "--ui-port": "status pages port (the next free one if taken; -1: none)",
    "--ui-host": "status pages address (other than loopback: needs --secret-file)",
}

_WORKER_OPTIONS = {
    "--cores": "cores to offer; 0: all of this host's",
    "--memory": "memory to offer, e.g. 8g (default: all of this host's); the worker runs "
                "at most this / the driver's --executor-memory executors",
    "--work-dir": "scratch space for executors, and their logs (default: the system's "
                  "temporary directory)",
    "--executor-log-limit": "how much of each executor's stdout and of its stderr is kept "
                            "for `sluicegate logs --executors` (the oldest output goes first)",
    "--host": "address executors serve blocks on",
    "--advertise-host": "address peers should use for this host (default: --host)",
    "--worker-id": "a stable name for this worker (default: worker-HOSTNAME-PID); with "
                   "one, executors' logs outlive a restart of the worker",
}

_SUBMIT_OPTIONS = {
    "--py-files": "comma-separated .py/.zip files the job imports (default: none)",
    "--cores": "most cores the job may use; 0: as many as the cluster gives",
    "--name": "job name (default: the script's name)",
    "--detach": "print the job id and return at once (`sluicegate logs JOB` shows its "
                "output)",
    "--quiet": "no progress lines (the status pages' address and the job's live line per "
               "batch included)",
    "--supervise": "restart the job's driver when it dies (not when it exits 0 or is "
                   "killed with `sluicegate kill`), with backoff; a streaming job recovers "
                   "through StreamingContext.getOrCreate; `jobs` shows the restarts",
    "script": "the job's Python script",
    "args": "arguments for the script (its sys.argv[1:]; default: none)",
}

_LOGS_OPTIONS = {
    **_JOB,
    "-f --follow": "go on printing the output as it comes, until the job ends (Ctrl-C "
                   "stops following, not the job)",
    "--tail": "only the last N lines of each stream; -1: all that is kept",
    "--executors": "the logs of the job's executors (stdout and stderr, as the live "
                   "workers keep them) instead of its driver's output",
}

_JSON = {"--json": "as JSON, for scripts"}


def _add_options(p: argparse.ArgumentParser, options: dict[str, str]) -> None:
    """Add ``options`` (each flag -- two spellings: "-f --follow" -- or positional
    name, with its help) in order, each of the kind ``_KINDS`` says."""
    for names, help_text in options.items():
        p.add_argument(*names.split(), help=help_text, **_KINDS.get(names, {}))


def _add_driver_command(command) -> None:
    p = command("driver", "run the driver service (workers and jobs connect here)",
                _lazy(".cli_services", "cmd_driver"))
    _add_options(p, _DRIVER_OPTIONS)
    _secret_option(p)
    _log_options(p)


def _add_worker_command(command) -> None:
    p = command("worker", "run a worker: gives this host's cores to the cluster",
                _lazy(".cli_services", "cmd_worker"))
    _driver_option(p)
    _add_options(p, _WORKER_OPTIONS)
    _secret_option(p)
    _log_options(p)


def _add_job_commands(command) -> None:
    """``submit`` and the requests about jobs: each takes ``--driver`` first and
    ``--secret-file`` last, around its own options."""
    for name, help_text, options in (
            ("submit", "run a job script on the cluster and stream its output",
             _SUBMIT_OPTIONS),
            ("logs", "a job's output (its driver's stdout and stderr), while it runs and "
                     "after it ended, or its executors' logs", _LOGS_OPTIONS),
            ("jobs", "list jobs (with their status pages)", _JSON),
            ("status", "workers and jobs", _JSON),
            ("kill", "stop a running job", _JOB),
            ("rebalance", "change a running job's cores (executors) without stopping it; "
                          "its state moves to the executors that stay", _JOB)):
        p = command(name, help_text, _lazy(".cli_jobs", f"cmd_{name}"))
        _driver_option(p)
        _add_options(p, options)
        if name == "rebalance":  # its --cores is required, the only such option
            p.add_argument("--cores", type=int, required=True,
                           help="how many cores the job may use now")
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
