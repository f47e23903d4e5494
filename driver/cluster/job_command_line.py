"""The command line of the processes that wrap a job's interpreter: the keeper
(``job_keeper.py``) and the supervisor (``job_supervisor.py``), each

    python -I WRAPPER.py --job-dir DIR [its options] -- COMMAND [ARGS...]

Both run as plain scripts that keep their imports small, so this module imports
only the standard library.
"""
from __future__ import annotations

import argparse


def parse_job_command(prog: str, description: str, options: dict[str, tuple[type, object]],
                      argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """``argv``'s options -- ``--job-dir`` and ``options`` (each option's type and
    default) -- and the job's command after them (a leading ``--`` dropped). Exits
    with a usage error when there is no command."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--job-dir", required=True)
    for option, (kind, default) in options.items():
        parser.add_argument(option, type=kind, default=default)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no job command after --")
    return args, command
