"""``sluicegate submit --supervise``: restart a job's driver when it dies.

The driver service starts a supervised job as

    keeper -> job_supervisor.py --job-dir DIR -- python -u job.py args

so this process is what the keeper sees as the job: the job's output goes
through it to the keeper's files unchanged, and a stop request (``sluicegate
kill``, the keeper's SIGTERM to the job's process group) reaches the job and
ends the supervision. When the job's interpreter ends any other way than
with exit code 0 -- an exception, ``sys.exit(1)``, SIGKILL, the kernel's OOM
killer -- it is started again after a backoff (1 s, doubling up to
``--max-backoff-s``; back to 1 s once a run lasted ``STABLE_S``). A
streaming job that builds its context with ``StreamingContext.getOrCreate``
then recovers from its checkpoint. (Spark standalone's ``--supervise`` does
not apply to Python applications; this does.)

Each run is recorded in ``DIR/supervisor.json`` (``restarts``, the running
interpreter's ``pid``, the ``last_exit`` code, a negative one being the
signal), which ``sluicegate jobs`` shows. The supervisor ends with the job's
last exit code (128 + N for signal N), once the job exits 0 or is stopped.

This file runs as a plain script: it imports only the standard library (and
``job_command_line``, its command line, which does too).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sluicegate.driver.cluster.job_command_line import parse_job_command

STATE_FILE = "supervisor.json"
STABLE_S = 60.0  # a run this long resets the backoff


def read_state(job_dir: Path | None) -> dict:
    """What ``supervisor.json`` says (empty for a job that is not supervised)."""
    if job_dir is None:
        return {}
    try:
        value = json.loads((Path(job_dir) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def supervision_of(job_dir: Path | None) -> dict:
    """What ``sluicegate jobs`` shows of a job's supervision: ``supervised``,
    ``restarts`` and ``last_exit`` (nothing for a job that is not supervised)."""
    state = read_state(job_dir)
    if not state:
        return {}
    restarts = state.get("restarts")
    return {"supervised": True, "restarts": restarts if isinstance(restarts, int) else 0,
            "last_exit": state.get("last_exit")}


def _write_state(job_dir: Path, state: dict) -> None:
    path = job_dir / STATE_FILE
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(json.dumps(state))
    os.replace(staging, path)


def _say(message: str) -> None:
    print(f"[sluicegate supervise] {message}", file=sys.stderr, flush=True)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def supervise(job_dir: Path, command: list[str], max_backoff_s: float = 60.0) -> int:
    stop = threading.Event()
    child: list[subprocess.Popen | None] = [None]

    def on_stop(signum, frame) -> None:
        stop.set()
        process = child[0]
        if process is not None and process.poll() is None:
            try:
                process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    state = {"restarts": 0, "pid": None, "last_exit": None, "restarted_at": None,
             "next_restart_at": None}
    backoff_s = 1.0
    while True:
        started = time.monotonic()
        process = child[0] = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        state.update(pid=process.pid, next_restart_at=None)
        _write_state(job_dir, state)
        code = process.wait()
        state.update(last_exit=code, pid=None)
        if stop.is_set() or code == 0:
            _write_state(job_dir, state)
            return code if code >= 0 else 128 - code
        if time.monotonic() - started >= STABLE_S:
            backoff_s = 1.0
        state["restarts"] += 1
        state["next_restart_at"] = time.time() + backoff_s
        _write_state(job_dir, state)
        _say(f"the job's driver ended ({_describe(code)}); restart {state['restarts']} in "
             f"{backoff_s:g}s")
        if stop.wait(backoff_s):
            return code if code >= 0 else 128 - code
        state["restarted_at"] = time.time()
        backoff_s = min(max_backoff_s, backoff_s * 2)


def main(argv: list[str] | None = None) -> int:
    args, command = parse_job_command("job_supervisor.py", "Restart a job's driver when it dies.",
                                      {"--max-backoff-s": (float, 60.0)}, argv)
    return supervise(Path(args.job_dir), command, args.max_backoff_s)


if __name__ == "__main__":
    sys.exit(main())
