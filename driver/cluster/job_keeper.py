"""The keeper of one submitted job: it runs the job's interpreter as its child,
writes the job's stdout and stderr to size-capped files in the job's directory,
passes a stop request on, and records how the job ended.

The driver service starts one keeper per job, in a session of its own, and the
keeper does not need the service after that. The job's output never goes
through a pipe that the service owns, so the job does not notice when the
service dies or restarts, and its exit status is on disk for whichever service
asks next. (containerd's shim and podman's conmon do this for containers.)

Files in the job directory:

    output/stdout.<offset>, output/stderr.<offset>
        each stream in segments named by the stream offset of their first byte
        (16 digits, so names sort in stream order); a new segment starts every
        --segment-bytes, and only the newest --segments of each stream are kept
    started.json  {"keeper_pid", "keeper_started", "job_pid", "job_started"}
                  (pids with their psutil create times, which guard against reuse)
    exit.json     {"exit_code", "ended", "stop_requested"}, written last and whole;
                  a negative code is the signal that ended the job
    .secret       the job's copy of the cluster secret, removed when the job ends

A stop request (SIGTERM or SIGINT to the keeper) goes to the job's process
group as SIGTERM, and as SIGKILL if the job is still there after
--stop-grace-s. The keeper itself stays until the job has ended, so that the
exit status is always recorded.

This file also runs as a plain script (``python -I job_keeper.py``): it
imports only the standard library, psutil, ``sluicegate.common.segment_files``
(the segment files, shared with the workers' executor logs) and
``job_command_line`` (its command line, shared with ``job_supervisor``), which
keeps the keeper small.
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from sluicegate.common.segment_files import SegmentWriter, segment_name, segment_offsets
from sluicegate.driver.cluster.job_command_line import parse_job_command

__all__ = ["EXIT_FILE", "OUTPUT_DIR", "SECRET_FILE", "STARTED_FILE", "STREAMS", "SegmentWriter",
           "main", "segment_name", "segment_offsets", "write_json_atomically"]

OUTPUT_DIR = "output"
STREAMS = ("stdout", "stderr")
STARTED_FILE = "started.json"
EXIT_FILE = "exit.json"
SECRET_FILE = ".secret"
DEFAULT_SEGMENT_BYTES = 16 << 20
DEFAULT_SEGMENTS = 4
READ_BYTES = 1 << 16
DRAIN_S = 2.0  # after the job exits, how long a child of it may keep its output open


def write_json_atomically(path: Path, value) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    with open(staging, "w") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(staging, path)


class _StopRequest:
    """SIGTERM/SIGINT to the keeper: stop the job, gently first."""

    def __init__(self, grace_s: float):
        self.grace_s = grace_s
        self.requested_at: float | None = None
        self.killed = False
        self.job: subprocess.Popen | None = None

    def __call__(self, signum, frame) -> None:
        if self.requested_at is None:
            self.requested_at = time.monotonic()
        self.signal_job(signal.SIGTERM)

    def signal_job(self, signum: int) -> None:
        # The job leads its own process group; until the keeper reaps it, its pid
        # (and so that group id) cannot be reused.
        if self.job is not None and self.job.returncode is None:
            try:
                os.killpg(self.job.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass

    def escalate_if_due(self) -> None:
        if (self.requested_at is not None and not self.killed
                and time.monotonic() - self.requested_at > self.grace_s):
            self.killed = True
            self.signal_job(signal.SIGKILL)


def run(job_dir: Path, command: list[str], segment_bytes: int, segments: int,
        stop_grace_s: float) -> int:
    output_dir = job_dir / OUTPUT_DIR
    output_dir.mkdir(exist_ok=True)
    writers = {name: SegmentWriter(output_dir, name, segment_bytes, segments) for name in STREAMS}
    stop = _StopRequest(stop_grace_s)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the session's terminal (if any) going away
    try:
        job = subprocess.Popen(command, cwd=job_dir, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, process_group=0)
    except OSError as exc:
        writers["stderr"].write(f"could not start the job: {exc}\n".encode())
        return _finish(job_dir, writers, 127, stop)
    stop.job = job
    if stop.requested_at is not None:  # asked to stop while it was starting
        stop.signal_job(signal.SIGTERM)
    me = psutil.Process()
    try:
        job_started = psutil.Process(job.pid).create_time()
    except psutil.NoSuchProcess:  # gone already (it is not reaped yet, but be safe)
        job_started = 0.0
    write_json_atomically(job_dir / STARTED_FILE, {
        "keeper_pid": me.pid, "keeper_started": me.create_time(),
        "job_pid": job.pid, "job_started": job_started})
    code = _pump(job, writers, stop)
    return _finish(job_dir, writers, code, stop)


def _pump(job: subprocess.Popen, writers: dict[str, SegmentWriter], stop: _StopRequest) -> int:
    """Copy the job's output to its files until it has ended; its exit code."""
    selector = selectors.DefaultSelector()
    selector.register(job.stdout, selectors.EVENT_READ, "stdout")
    selector.register(job.stderr, selectors.EVENT_READ, "stderr")
    code = None
    drain_until = 0.0
    while selector.get_map():
        for key, _ in selector.select(0.2):
            try:
                chunk = os.read(key.fd, READ_BYTES)
            except OSError:
                chunk = b""
            if chunk:
                writers[key.data].write(chunk)
            else:
                selector.unregister(key.fileobj)
                key.fileobj.close()
        if code is None:
            code = job.poll()
            if code is not None:
                drain_until = time.monotonic() + DRAIN_S
            else:
                stop.escalate_if_due()
        elif time.monotonic() > drain_until:
            break  # something the job started holds its output open: do not wait for it
    selector.close()
    return job.wait() if code is None else code


def _finish(job_dir: Path, writers: dict[str, SegmentWriter], code: int,
            stop: _StopRequest) -> int:
    for writer in writers.values():
        writer.close()
    try:
        os.unlink(job_dir / SECRET_FILE)
    except FileNotFoundError:
        pass
    dropped = {name: w.dropped for name, w in writers.items() if w.dropped}
    write_json_atomically(job_dir / EXIT_FILE, {
        "exit_code": code, "ended": time.time(), "stop_requested": stop.requested_at is not None,
        **({"output_dropped": dropped} if dropped else {})})
    return 0


def main(argv: list[str] | None = None) -> int:
    args, command = parse_job_command(
        "job_keeper.py", "Run one job and keep its output and exit status.",
        {"--segment-bytes": (int, DEFAULT_SEGMENT_BYTES), "--segments": (int, DEFAULT_SEGMENTS),
         "--stop-grace-s": (float, 10.0)}, argv)
    return run(Path(args.job_dir), command, args.segment_bytes, args.segments, args.stop_grace_s)


if __name__ == "__main__":
    sys.exit(main())
