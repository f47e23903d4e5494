"""The ``sluicegate`` commands about jobs, each one conversation with the driver
service: ``submit``, ``logs``, ``jobs``, ``kill``, ``rebalance`` and ``status``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from sluicegate.common.protocol.cluster import (
    ClusterStatusRequest, JobAccepted, JobRejected, KillJob, ListJobs, SubmitJob)

from .cli_client import UsageError, ask, connect
from .cli_output import SubmittedJobStream, executor_logs, job_logs


def cmd_submit(args) -> int:
    """Send the script (and ``--py-files``) to the service; follow the job unless detached."""
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
    client = connect(args)
    try:
        answer = client.request(SubmitJob(
            name=args.name or script.stem, script_name=script.name, args=list(args.args),
            cores=args.cores, py_file_names=[p.name for p in py_files], detach=args.detach,
            quiet=args.quiet, payload=[script.read_bytes()] + [p.read_bytes() for p in py_files],
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
        return SubmittedJobStream(client, job_id, announce_pages=not args.quiet).run()
    except ServiceUnavailable as exc:
        print(f"sluicegate submit: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()


def cmd_logs(args) -> int:
    """A job's driver output, or its executors' logs (``--executors``)."""
    client = connect(args)
    try:
        if args.executors:
            return executor_logs(client, args.job, args.tail, args.follow)
        return job_logs(client, args.job, args.tail, args.follow)
    except KeyboardInterrupt:  # stops following; the job goes on
        return 130
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
    """The service's jobs, as a table or (``--json``) a document."""
    answer = ask(args, ListJobs())
    if args.json:
        print(json.dumps(answer.jobs, indent=2))
        return 0
    print("\n".join(_job_lines(answer.jobs)))
    return 0


def cmd_kill(args) -> int:
    """Stop a running job."""
    answer = ask(args, KillJob(args.job))
    print(answer.message, file=sys.stdout if answer.ok else sys.stderr)
    return 0 if answer.ok else 1


def cmd_rebalance(args) -> int:
    """Give a running job another number of cores."""
    from sluicegate.common.protocol.elastic import RebalanceJob

    if args.cores < 1:
        raise UsageError(f"--cores must be at least 1, got {args.cores}")
    answer = ask(args, RebalanceJob(args.job, args.cores))
    print(answer.message, file=sys.stdout if answer.ok else sys.stderr)
    return 0 if answer.ok else 1


def cmd_status(args) -> int:
    """The workers and jobs, as tables or (``--json``) a document."""
    answer = ask(args, ClusterStatusRequest())
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
