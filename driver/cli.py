"""The ``sluicegate`` command: run a cluster's services and submit jobs to it.

    sluicegate driver [--host H] [--port 7077] [--secret-file F]
    sluicegate worker --driver HOST:PORT [--cores N] [--memory SIZE]
    sluicegate submit --driver HOST:PORT [--py-files a.py,b.zip] [--cores N] job.py [args...]
    sluicegate logs JOB [--follow] [--tail N] [--executors]
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
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from sluicegate.common.auth import (
    SecurityError, check_bind_allowed, default_secret_path, is_loopback, resolve_secret)
from sluicegate.common.config import parse_duration_s, parse_size_bytes
from sluicegate.common.protocol.cluster import (
    AttachJob, ClusterStatusRequest, CommandResult, JobAccepted, JobEnded, JobOutput, JobRejected,
    JobStatusPages, JobUnknown, KillJob, ListJobs, SubmitJob)

from .cli_output import ATTACH_EVERY_S, SERVICE_SILENCE_S, JobOutputWriter

DEFAULT_DRIVER = os.environ.get("SLUICEGATE_DRIVER", "127.0.0.1:7077")
REACH_TIMEOUT_S = 2.0  # an unreachable driver is reported within this (plus start-up)


class UsageError(Exception):
    """Bad input on the command line: one line saying what and where, exit status 2."""


def _logging(level: str, log_file: str | None) -> None:
    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level.upper())


def _driver_host(address: str) -> str:
    return address.rsplit(":", 1)[0].strip("[]")


def check_driver_address(address: str) -> tuple[str, int]:
    """``--driver HOST:PORT`` as host and port; ``UsageError`` saying what is wrong, or
    that the host name does not resolve (at once, rather than after a silent wait)."""
    host, colon, port = address.strip().rpartition(":")
    host = host.strip("[]")  # an IPv6 address in brackets
    if not colon or not host:
        raise UsageError(f"--driver {address!r} is not HOST:PORT (e.g. 127.0.0.1:7077)")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--driver {address!r}: the port {port!r} is not a number from 1 to 65535")
    try:
        socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"--driver {address!r}: the host name {host!r} does not resolve "
                         f"({exc.strerror})") from None
    return host, int(port)


def _client(args):
    from .cluster.client import ServiceClient, check_reachable

    secret, _ = resolve_secret(args.secret_file, _driver_host(args.driver), create=False)
    check_reachable(args.driver, REACH_TIMEOUT_S)
    return ServiceClient(args.driver, secret)


# -- driver --------------------------------------------------------------------------

def cmd_driver(args) -> int:
    from sluicegate.common.transport import Transport, advertised_host

    from .cluster.service import ClusterService, WorkDirInUse

    _logging(args.log_level, args.log_file)
    try:
        parse_size_bytes(args.executor_memory)
    except ValueError as exc:
        print(f"sluicegate driver: --executor-memory: {exc}", file=sys.stderr)
        return 2
    try:
        job_output_bytes = parse_size_bytes(args.job_output_limit)
    except ValueError as exc:
        print(f"sluicegate driver: --job-output-limit: {exc}", file=sys.stderr)
        return 2
    try:
        worker_retention_s = parse_duration_s(args.worker_retention, "s")
    except ValueError as exc:
        print(f"sluicegate driver: --worker-retention: {exc}", file=sys.stderr)
        return 2
    secret, explicit = resolve_secret(args.secret_file, args.host, create=True)
    if args.ui_port >= 0 and not explicit and not is_loopback(args.ui_host):
        raise SecurityError(f"refusing to serve the status pages on {args.ui_host} without a "
                            "shared secret: pass --secret-file FILE, or keep --ui-host 127.0.0.1")
    transport = Transport(secret)
    # The default work dir is the same for every start on this port, so that a restarted
    # service finds the jobs the last one started.
    if args.work_dir:
        work_dir = Path(args.work_dir)
    elif args.port:
        work_dir = default_secret_path().parent / f"driver-{args.port}"
    else:
        work_dir = Path(tempfile.mkdtemp(prefix="sluicegate-driver-"))
    try:
        service = ClusterService(transport, args.host, args.port, work_dir,
                                 args.advertise_host or advertised_host(args.host),
                                 executor_memory=args.executor_memory,
                                 job_output_bytes=job_output_bytes, keep_jobs=args.keep_jobs,
                                 worker_retention_s=worker_retention_s)
    except WorkDirInUse as exc:
        print(f"sluicegate driver: {exc}", file=sys.stderr)
        transport.close()
        return 2
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
    try:
        executor_log_bytes = parse_size_bytes(args.executor_log_limit)
    except ValueError as exc:
        print(f"sluicegate worker: --executor-log-limit: {exc}", file=sys.stderr)
        return 2
    work_dir = Path(args.work_dir or tempfile.gettempdir()) / "sluicegate-worker"
    daemon = WorkerDaemon(f"tcp://{args.driver}", secret, args.cores or os.cpu_count() or 1,
                          memory, work_dir, args.host, args.advertise_host or advertised_host(args.host),
                          args.worker_id, log_file=args.log_file,
                          executor_log_bytes=executor_log_bytes)
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
            payload=[script.read_bytes()] + [p.read_bytes() for p in py_files],
            supervise=args.supervise), timeout_s=30)
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
        return _stream_job(client, job_id, announce_pages=not args.quiet)
    except ServiceUnavailable as exc:
        print(f"sluicegate submit: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()


def _stream_job(client, job_id: str, announce_pages: bool = True) -> int:
    """Print the job's output as it comes; end with its status. Ctrl-C kills the job.

    Whenever the service has been quiet for ``ATTACH_EVERY_S`` the stream attaches again
    with the offsets it has: a service restarted meanwhile then sends the rest of the output
    (each byte once) and the job's end, or says that it does not know the job.
    ``announce_pages``: print where the job's status pages are, once its driver said so
    (the port moves on when 4040 is taken, so this line is how a user finds them)."""
    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    kill_sent_at = None
    writer = JobOutputWriter("sluicegate submit", {"stdout": 0, "stderr": 0},
                             "were dropped before they could be sent")
    offsets = writer.offsets
    announced: set[str] = set()
    last_heard = time.monotonic()
    next_attach = last_heard + ATTACH_EVERY_S
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
                    print(f"sluicegate submit: lost the driver service; {job_id} may still run "
                          f"(`sluicegate jobs` shows it once the service is back)", file=sys.stderr)
                    return 1
                if now >= next_attach:
                    client.send(AttachJob(job_id, offsets["stdout"], offsets["stderr"]))
                    next_attach = now + ATTACH_EVERY_S
                continue
            last_heard = now
            next_attach = now + ATTACH_EVERY_S
            if isinstance(message, JobOutput) and message.job_id == job_id:
                writer.write(message)
            elif isinstance(message, JobStatusPages) and message.job_id == job_id:
                if announce_pages and message.ui_url not in announced:
                    announced.add(message.ui_url)
                    print(f"sluicegate: {message.app_name} ({job_id}): status pages at "
                          f"{message.ui_url}", file=sys.stderr, flush=True)
            elif isinstance(message, JobEnded) and message.job_id == job_id:
                if message.state != "FINISHED":
                    print(f"{job_id} {message.state.lower()}"
                          f"{': ' + message.message if message.message else ''}",
                          file=sys.stderr, flush=True)
                if interrupted.is_set():
                    return 130
                if message.exit_code > 0:
                    return message.exit_code
                return 0 if message.state == "FINISHED" else 1
            elif isinstance(message, JobUnknown) and message.job_id == job_id:
                print(f"sluicegate submit: the driver service at {client.address} does not know "
                      f"{job_id} ({message.message}; was it restarted with another --work-dir?): "
                      "the job's exit status is unknown", file=sys.stderr)
                return 1
            elif isinstance(message, CommandResult) and not message.ok and kill_sent_at is not None:
                print(f"sluicegate submit: {message.message}", file=sys.stderr, flush=True)
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
    """The jobs as a table; UI is where a running job's status pages are."""
    width = max([len(job.get("ui_url") or "-") for job in jobs] + [2])
    lines = [f"{'JOB':10} {'STATE':9} {'EXECUTORS':>9} {'TASKS':>5} {'BATCHES':>8} "
             f"{'OWNER':10} {'UI':{width}} NAME"]
    for job in jobs:
        batches = job.get("batches_completed", 0)
        failed = job.get("batches_failed", 0)
        shown = f"{batches}" + (f" ({failed} failed)" if failed else "")
        lines.append(f"{job['job_id']:10} {job['state']:9} {len(job['executors']):>9} "
                     f"{job.get('running_tasks', 0):>5} {shown:>8} {job['owner']:10} "
                     f"{job.get('ui_url') or '-':{width}} {job['name']}"
                     + (f"  (supervised, restarted {job.get('restarts', 0)}x)"
                        if job.get("supervised") else "")
                     + (f"  ({job['message']})" if job.get("message") else ""))
    return lines


def cmd_jobs(args) -> int:
    answer = _ask(args, ListJobs())
    if args.json:
        print(json.dumps(answer.jobs, indent=2))
        return 0
    print("\n".join(_job_lines(answer.jobs)))
    return 0


def cmd_logs(args) -> int:
    from .cli_output import executor_logs, job_logs

    client = _client(args)
    try:
        if args.executors:
            return executor_logs(client, args.job, args.tail, args.follow)
        return job_logs(client, args.job, args.tail, args.follow)
    except KeyboardInterrupt:  # stops following; the job goes on
        return 130
    finally:
        client.close()


def cmd_kill(args) -> int:
    answer = _ask(args, KillJob(args.job))
    print(answer.message, file=sys.stdout if answer.ok else sys.stderr)
    return 0 if answer.ok else 1


def cmd_rebalance(args) -> int:
    from sluicegate.common.protocol.elastic import RebalanceJob

    if args.cores < 1:
        raise UsageError(f"--cores must be at least 1, got {args.cores}")
    answer = _ask(args, RebalanceJob(args.job, args.cores))
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
              f"{memory:>19} {w['last_heartbeat_s_ago']:>8}s "
              f"{w.get('state') or ('alive' if w['alive'] else 'lost')}")
    running = [j for j in answer.jobs if j["state"] == "RUNNING"]
    print(f"{len(running)} jobs running, {len(answer.jobs) - len(running)} ended")
    for line in _job_lines(answer.jobs):
        print("  " + line)
    return 0


# -- the parser -------------------------------------------------------------------------

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sluicegate", description=__doc__.split("\n\n")[0].replace("``", ""),
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

    def secret_option(p):
        p.add_argument("--secret-file", default=os.environ.get("SLUICEGATE_SECRET_FILE"),
                       metavar="FILE",
                       help="file holding the cluster's shared secret (chmod 600; env "
                            "SLUICEGATE_SECRET_FILE); without it only this machine can take "
                            "part, with the secret the driver keeps in ~/.sluicegate/secret")

    def driver_option(p):
        p.add_argument("--driver", default=DEFAULT_DRIVER, metavar="HOST:PORT",
                       help="the driver service (env SLUICEGATE_DRIVER)")

    def log_options(p, level="INFO"):
        p.add_argument("--log-file", metavar="FILE",
                       help="log here instead of stderr (default: stderr)")
        p.add_argument("--log-level", default=level,
                       choices=["DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL"],
                       type=str.upper, help="the least severe log lines shown")

    p = command("driver", "run the driver service (workers and jobs connect here)", cmd_driver)
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
    secret_option(p)
    log_options(p)

    p = command("worker", "run a worker: gives this host's cores to the cluster", cmd_worker)
    driver_option(p)
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
    secret_option(p)
    log_options(p)

    p = command("submit", "run a job script on the cluster and stream its output", cmd_submit)
    driver_option(p)
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
    secret_option(p)

    p = command("logs", "a job's output (its driver's stdout and stderr), while it runs and "
                        "after it ended, or its executors' logs", cmd_logs)
    driver_option(p)
    p.add_argument("job", help="the job's id, as `sluicegate jobs` lists it")
    p.add_argument("-f", "--follow", action="store_true",
                   help="go on printing the output as it comes, until the job ends (Ctrl-C "
                        "stops following, not the job)")
    p.add_argument("--tail", type=int, default=-1, metavar="N",
                   help="only the last N lines of each stream; -1: all that is kept")
    p.add_argument("--executors", action="store_true",
                   help="the logs of the job's executors (stdout and stderr, as the live "
                        "workers keep them) instead of its driver's output")
    secret_option(p)

    for name, run, help_text in (("jobs", cmd_jobs, "list jobs (with their status pages)"),
                                 ("status", cmd_status, "workers and jobs")):
        p = command(name, help_text, run)
        driver_option(p)
        p.add_argument("--json", action="store_true", help="as JSON, for scripts")
        secret_option(p)

    p = command("kill", "stop a running job", cmd_kill)
    driver_option(p)
    p.add_argument("job", help="the job's id, as `sluicegate jobs` lists it")
    secret_option(p)

    p = command("rebalance", "change a running job's cores (executors) without stopping it; "
                             "its state moves to the executors that stay", cmd_rebalance)
    driver_option(p)
    p.add_argument("job", help="the job's id, as `sluicegate jobs` lists it")
    p.add_argument("--cores", type=int, required=True, help="how many cores the job may use now")
    secret_option(p)

    from .cli_sql import add_sql_command  # `sql --job JOB "SELECT ..."`: live SQL
    add_sql_command(command, driver_option, secret_option)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .cluster.client import ServiceUnavailable

    args = build_parser().parse_args(argv)
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
