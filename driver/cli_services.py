"""``sluicegate driver`` and ``sluicegate worker``: the cluster's long-running services.

Each command imports what it runs when it runs: a worker host needs the
worker daemon, never the driver's service or job API.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from sluicegate.common.auth import (
    SecurityError, check_bind_allowed, default_secret_path, is_loopback, resolve_secret)
from sluicegate.common.config import parse_duration_s, parse_size_bytes

from .cli_client import UsageError, driver_host


def _logging(level: str, log_file: str | None) -> None:
    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level.upper())


def _option(flag: str, parse, value, *extra):
    """``parse(value, *extra)``; a value that does not parse is a ``UsageError`` naming ``flag``."""
    try:
        return parse(value, *extra)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


# -- driver --------------------------------------------------------------------------

def _driver_work_dir(args) -> Path:
    # The default work dir is the same for every start on this port, so that a restarted
    # service finds the jobs the last one started.
    if args.work_dir:
        return Path(args.work_dir)
    if args.port:
        return default_secret_path().parent / f"driver-{args.port}"
    return Path(tempfile.mkdtemp(prefix="sluicegate-driver-"))


def _status_pages(service, args):
    """The service's status pages, started; None if ``--ui-port -1`` or the port fails."""
    if args.ui_port < 0:
        return None
    from .status.server import ServiceStatusSource, StatusServer

    try:
        ui = StatusServer(ServiceStatusSource(service), args.ui_host, args.ui_port).start()
    except OSError as exc:
        logging.getLogger("sluicegate.service").warning("status pages disabled: %s", exc)
        return None
    print(f"status pages at {ui.url}", file=sys.stderr, flush=True)
    return ui


def cmd_driver(args) -> int:
    """Run the driver service until SIGTERM or SIGINT; 1 if it dies first."""
    from sluicegate.common.transport import Transport, advertised_host

    from .cluster.service import ClusterService, WorkDirInUse

    _logging(args.log_level, args.log_file)
    _option("--executor-memory", parse_size_bytes, args.executor_memory)
    job_output_bytes = _option("--job-output-limit", parse_size_bytes, args.job_output_limit)
    worker_retention_s = _option("--worker-retention", parse_duration_s, args.worker_retention, "s")
    secret, explicit = resolve_secret(args.secret_file, args.host, create=True)
    if args.ui_port >= 0 and not explicit and not is_loopback(args.ui_host):
        raise SecurityError(f"refusing to serve the status pages on {args.ui_host} without a "
                            "shared secret: pass --secret-file FILE, or keep --ui-host 127.0.0.1")
    transport = Transport(secret)
    work_dir = _driver_work_dir(args)
    try:
        service = ClusterService(transport, args.host, args.port, work_dir,
                                 args.advertise_host or advertised_host(args.host),
                                 executor_memory=args.executor_memory,
                                 job_output_bytes=job_output_bytes, keep_jobs=args.keep_jobs,
                                 worker_retention_s=worker_retention_s)
    except WorkDirInUse as exc:
        transport.close()
        raise UsageError(str(exc)) from None
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    service.start()
    ui = _status_pages(service, args)
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
    """Run a worker daemon that offers this host's cores to the driver, until stopped."""
    import psutil

    from sluicegate.common.transport import advertised_host
    from sluicegate.worker.daemon import WorkerDaemon, install_stop_signals

    _logging(args.log_level, args.log_file)
    secret, explicit = resolve_secret(args.secret_file, driver_host(args.driver), create=False)
    if not explicit:  # the default secret is for loopback only
        check_bind_allowed(args.host, None)
    memory = _option("--memory", parse_size_bytes, args.memory) if args.memory \
        else psutil.virtual_memory().total
    executor_log_bytes = _option("--executor-log-limit", parse_size_bytes, args.executor_log_limit)
    work_dir = Path(args.work_dir or tempfile.gettempdir()) / "sluicegate-worker"
    daemon = WorkerDaemon(f"tcp://{args.driver}", secret, args.cores or os.cpu_count() or 1,
                          memory, work_dir, args.host, args.advertise_host or advertised_host(args.host),
                          args.worker_id, log_file=args.log_file,
                          executor_log_bytes=executor_log_bytes)
    install_stop_signals(daemon)
    return daemon.run()
