"""The ``sluicegate`` command: run a cluster's services and submit jobs to it.

    sluicegate driver [--host H] [--port 7077] [--secret-file F]
    sluicegate worker --driver HOST:PORT [--cores N] [--memory SIZE]
    sluicegate submit --driver HOST:PORT [--py-files a.py,b.zip] [--cores N] job.py [args...]
    sluicegate jobs | kill JOB | status   (each with --driver HOST:PORT)

Without ``--secret-file`` everything stays on this machine (loopback) and
uses a secret kept in ``~/.sluicegate/secret`` that ``driver`` creates.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from sluicegate.common.auth import SecurityError, check_bind_allowed, is_loopback, resolve_secret
from sluicegate.common.config import parse_size_bytes
from sluicegate.common.protocol.cluster import (
    ClusterStatusRequest, JobAccepted, JobEnded,
    JobOutput, JobRejected, KillJob, ListJobs, Ping, SubmitJob)

DEFAULT_DRIVER = os.environ.get("SLUICEGATE_DRIVER", "127.0.0.1:7077")
SERVICE_SILENCE_S = 30.0


def _logging(level: str, log_file: str | None) -> None:
    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level.upper())


def _driver_host(address: str) -> str:
    return address.rsplit(":", 1)[0]


def _client(args):
    from .cluster.client import ServiceClient

    secret, _ = resolve_secret(args.secret_file, _driver_host(args.driver), create=False)
    return ServiceClient(args.driver, secret)


# -- driver --------------------------------------------------------------------------

def cmd_driver(args) -> int:
    from sluicegate.common.transport import Transport, advertised_host

    from .cluster.service import ClusterService

    _logging(args.log_level, args.log_file)
    try:
        parse_size_bytes(args.executor_memory)
    except ValueError as exc:
        print(f"sluicegate driver: --executor-memory: {exc}", file=sys.stderr)
        return 2
    secret, explicit = resolve_secret(args.secret_file, args.host, create=True)
    if args.ui_port >= 0 and not explicit and not is_loopback(args.ui_host):
        raise SecurityError(f"refusing to serve the status pages on {args.ui_host} without a "
                            "shared secret: pass --secret-file FILE, or keep --ui-host 127.0.0.1")
    transport = Transport(secret)
    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="sluicegate-driver-"))
    service = ClusterService(transport, args.host, args.port, work_dir,
                             args.advertise_host or advertised_host(args.host),
                             executor_memory=args.executor_memory)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    service.start()
    ui = None
    if args.ui_port >= 0:
        from .status.server import ServiceStatusSource, StatusServer
        try:
            ui = StatusServer(ServiceStatusSource(service), args.ui_host, args.ui_port).start()
            print(f"status pages at {ui.url}", file=sys.stderr, flush=True)
        except OSError as exc:
            logging.getLogger("sluicegate.service").warning("status pages disabled: %s", exc)
    logging.getLogger("sluicegate.service").info(
        "sluicegate driver listening on %s (work dir %s)", service.master_url, work_dir)
    print(f"sluicegate driver listening on {service.master_url}", file=sys.stderr, flush=True)
    while not stop.wait(0.5):
        if not service.is_alive():
            return 1
    if ui is not None:
        ui.stop()
    service.stop(timeout_s=15)
    transport.close()
    return 0


# -- worker --------------------------------------------------------------------------

def cmd_worker(args) -> int:
    import psutil

    from sluicegate.common.transport import advertised_host
    from sluicegate.worker.daemon import WorkerDaemon, install_stop_signals

    _logging(args.log_level, args.log_file)
    secret, explicit = resolve_secret(args.secret_file, _driver_host(args.driver), create=False)
    if not explicit:  # the default secret is for loopback only
        check_bind_allowed(args.host, None)
    try:
        memory = parse_size_bytes(args.memory) if args.memory else psutil.virtual_memory().total
    except ValueError as exc:
        print(f"sluicegate worker: --memory: {exc}", file=sys.stderr)
        return 2
    work_dir = Path(args.work_dir or tempfile.gettempdir()) / "sluicegate-worker"
    daemon = WorkerDaemon(f"tcp://{args.driver}", secret, args.cores or os.cpu_count() or 1,
                          memory, work_dir, args.host, args.advertise_host or advertised_host(args.host),
                          args.worker_id, log_file=args.log_file)
    install_stop_signals(daemon)
    return daemon.run()


# -- submit --------------------------------------------------------------------------

def cmd_submit(args) -> int:
    from .cluster.client import ServiceUnavailable

    script = Path(args.script)
    if not script.is_file():
        print(f"sluicegate submit: no such script: {script}", file=sys.stderr)
        return 2
    py_files = [Path(p) for p in (args.py_files.split(",") if args.py_files else []) if p]
    missing = [str(p) for p in py_files if not p.is_file()]
    if missing:
        print(f"sluicegate submit: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    client = _client(args)
    try:
        answer = client.request(SubmitJob(
            args.name or script.stem, script.name, list(args.args), args.cores,
            [p.name for p in py_files], args.detach, args.quiet,
            payload=[script.read_bytes()] + [p.read_bytes() for p in py_files]), timeout_s=30)
        if isinstance(answer, JobRejected):
            print(f"sluicegate submit: rejected: {answer.reason}", file=sys.stderr)
            return 1
        if not isinstance(answer, JobAccepted):
            print(f"sluicegate submit: unexpected answer {type(answer).__name__}", file=sys.stderr)
            return 1
        job_id = answer.job_id
        if args.detach:
            print(job_id)
            return 0
        if not args.quiet:
            print(f"submitted {job_id}", file=sys.stderr, flush=True)
        return _stream_job(client, job_id)
    except ServiceUnavailable as exc:
        print(f"sluicegate submit: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()


def _stream_job(client, job_id: str) -> int:
    """Print the job's output as it comes; end with its status. Ctrl-C kills the job."""
    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    kill_sent_at = None
    last_heard = time.monotonic()
    next_ping = time.monotonic() + 5
    try:
        while True:
            if interrupted.is_set() and kill_sent_at is None:
                print(f"\nstopping {job_id}...", file=sys.stderr, flush=True)
                client.send(KillJob(job_id))
                kill_sent_at = time.monotonic()
            if kill_sent_at is not None and time.monotonic() - kill_sent_at > 30:
                return 130
            message = client.receive(0.5)
            now = time.monotonic()
            if message is None:
                if now - last_heard > SERVICE_SILENCE_S:
                    print(f"sluicegate submit: lost the driver service; {job_id} may still run",
                          file=sys.stderr)
                    return 1
                if now >= next_ping:
                    client.send(Ping(client.next_nonce()))
                    next_ping = now + 5
                continue
            last_heard = now
            if isinstance(message, JobOutput):
                out = sys.stdout.buffer if message.stream == "stdout" else sys.stderr.buffer
                for chunk in message.payload:
                    out.write(bytes(chunk))
                out.flush()
            elif isinstance(message, JobEnded):
                if message.state != "FINISHED":
                    print(f"{job_id} {message.state.lower()}"
                          f"{': ' + message.message if message.message else ''}",
                          file=sys.stderr, flush=True)
                if interrupted.is_set():
                    return 130
                if message.exit_code > 0:
                    return message.exit_code
                return 0 if message.state == "FINISHED" else 1
    finally:
        signal.signal(signal.SIGINT, previous)


# -- queries --------------------------------------------------------------------------

def _ask(args, message):
    """One request to the service, one answer."""
    client = _client(args)
    try:
        return client.request(message)
    finally:
        client.close()


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:,.1f}{unit}"
        n /= 1024


def _job_lines(jobs: list[dict]) -> list[str]:
    lines = [f"{'JOB':10} {'STATE':9} {'EXECUTORS':>9} {'TASKS':>5} {'BATCHES':>8} "
             f"{'OWNER':10} NAME"]
    for job in jobs:
        batches = job.get("batches_completed", 0)
        failed = job.get("batches_failed", 0)
        shown = f"{batches}" + (f" ({failed} failed)" if failed else "")
        lines.append(f"{job['job_id']:10} {job['state']:9} {len(job['executors']):>9} "
                     f"{job.get('running_tasks', 0):>5} {shown:>8} {job['owner']:10} {job['name']}"
                     + (f"  ({job['message']})" if job.get("message") else ""))
    return lines


def cmd_jobs(args) -> int:
    answer = _ask(args, ListJobs())
    if args.json:
        print(json.dumps(answer.jobs, indent=2))
        return 0
    print("\n".join(_job_lines(answer.jobs)))
    return 0


def cmd_kill(args) -> int:
    answer = _ask(args, KillJob(args.job))
    print(answer.message, file=sys.stdout if answer.ok else sys.stderr)
    return 0 if answer.ok else 1


def cmd_status(args) -> int:
    answer = _ask(args, ClusterStatusRequest())
    if args.json:
        print(json.dumps({"workers": answer.workers, "jobs": answer.jobs}, indent=2))
        return 0
    print(f"driver {args.driver}: {sum(w['alive'] for w in answer.workers)} workers alive")
    print(f"{'WORKER':24} {'HOST':15} {'CORES':>7} {'TASKS':>5} {'MEMORY USED':>19} "
          f"{'HEARTBEAT':>9} STATE")
    for w in answer.workers:
        cores = f"{w['cores_used']}/{w['cores']}"
        memory = f"{_size(w.get('memory_used', 0))}/{_size(w['memory_bytes'])}"
        print(f"{w['worker_id']:24} {w['host']:15} {cores:>7} {w.get('running_tasks', 0):>5} "
              f"{memory:>19} {w['last_heartbeat_s_ago']:>8}s {'alive' if w['alive'] else 'lost'}")
    running = [j for j in answer.jobs if j["state"] == "RUNNING"]
    print(f"{len(running)} jobs running, {len(answer.jobs) - len(running)} ended")
    for line in _job_lines(answer.jobs):
        print("  " + line)
    return 0


# -- the parser -------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sluicegate", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def secret_option(p):
        p.add_argument("--secret-file", default=os.environ.get("SLUICEGATE_SECRET_FILE"),
                       help="file holding the cluster's shared secret (chmod 600); without it "
                            "only this machine can take part")

    def driver_option(p):
        p.add_argument("--driver", default=DEFAULT_DRIVER, metavar="HOST:PORT",
                       help=f"the driver service (default {DEFAULT_DRIVER})")

    def log_options(p, level="INFO"):
        p.add_argument("--log-file", help="log here instead of stderr")
        p.add_argument("--log-level", default=level)

    p = commands.add_parser("driver", help="run the driver service (workers and jobs connect here)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=7077)
    p.add_argument("--advertise-host", help="address workers and jobs should use for this host")
    p.add_argument("--work-dir", help="where submitted jobs' files live")
    p.add_argument("--executor-memory", default="512m",
                   help="memory per executor (its block store); a worker runs at most "
                        "its --memory / this many executors (default 512m)")
    p.add_argument("--ui-port", type=int, default=8080,
                   help="status pages port (next free if taken; -1: none)")
    p.add_argument("--ui-host", default="127.0.0.1", help="status pages address")
    secret_option(p)
    log_options(p)
    p.set_defaults(run=cmd_driver)

    p = commands.add_parser("worker", help="run a worker: gives this host's cores to the cluster")
    driver_option(p)
    p.add_argument("--cores", type=int, default=0, help="cores to offer (default: all)")
    p.add_argument("--memory", help="memory to offer, e.g. 8g (default: all); the worker runs "
                                    "at most this / the driver's --executor-memory executors")
    p.add_argument("--work-dir", help="scratch space for executors")
    p.add_argument("--host", default="127.0.0.1", help="address executors serve blocks on")
    p.add_argument("--advertise-host", help="address peers should use for this host")
    p.add_argument("--worker-id", help="a stable name for this worker")
    secret_option(p)
    log_options(p)
    p.set_defaults(run=cmd_worker)

    p = commands.add_parser("submit", help="run a job script on the cluster and stream its output")
    driver_option(p)
    p.add_argument("--py-files", help="comma-separated .py/.zip files the job imports")
    p.add_argument("--cores", type=int, default=0, help="most cores the job may use")
    p.add_argument("--name", help="job name (default: the script's)")
    p.add_argument("--detach", action="store_true", help="print the job id and return at once")
    p.add_argument("--quiet", action="store_true",
                   help="no progress lines (the job's live line per batch included)")
    p.add_argument("script")
    p.add_argument("args", nargs=argparse.REMAINDER)
    secret_option(p)
    p.set_defaults(run=cmd_submit)

    for name, run, help_text in (("jobs", cmd_jobs, "list jobs"),
                                 ("status", cmd_status, "workers and jobs")):
        p = commands.add_parser(name, help=help_text)
        driver_option(p)
        p.add_argument("--json", action="store_true")
        secret_option(p)
        p.set_defaults(run=run)

    p = commands.add_parser("kill", help="stop a running job")
    driver_option(p)
    p.add_argument("job")
    secret_option(p)
    p.set_defaults(run=cmd_kill)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .cluster.client import ServiceUnavailable

    args = build_parser().parse_args(argv)
    for option in ("host", "ui_host"):  # "" and "*" listen everywhere: say so, and check it
        if getattr(args, option, None) is not None and getattr(args, option).strip() in ("", "*"):
            setattr(args, option, "0.0.0.0")
    try:
        return args.run(args) or 0
    except SecurityError as exc:
        print(f"sluicegate {args.command}: {exc}", file=sys.stderr)
        return 2
    except ServiceUnavailable as exc:
        print(f"sluicegate {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
