"""Printing what the driver service streams: a job's output (``submit``, ``logs``)
and its executors' logs (``logs --executors``).

A job's stdout and stderr reach the client as chunks that carry their offset
in the stream, so a client that asks again (after a quiet spell, or a restart
of the service) says what it has and skips what it is sent twice; a gap in the
offsets is output the service no longer kept, and is said so.
"""
from __future__ import annotations

import signal
import sys
import threading
import time

from sluicegate.common.protocol.cluster import (
    AttachJob, CommandResult, ExecutorLogChunk, ExecutorLogsEnd, ExecutorLogsRequest, JobEnded,
    JobLogs, JobLogsEnd, JobOutput, JobStatusPages, JobUnknown, KillJob)

ATTACH_EVERY_S = 2.0     # a quiet stream re-attaches this often (and so finds a restarted service)
SERVICE_SILENCE_S = 30.0  # a following stream gives up after this long without a word
ANSWER_WAIT_S = 20.0      # for one answer (the workers get 10 s to send executors' logs)
EXECUTOR_POLL_S = 1.0     # how often a follower asks the workers for more
MAX_ROUNDS = 10_000       # a bound on asking again for logs that keep growing


class JobOutputWriter:
    """Writes a job's output chunks to this process's stdout/stderr, each byte once.

    ``offsets`` maps each stream to the offset the client has; ``None``: not known yet
    (the first chunk sets it, without counting what lies before as missing)."""

    def __init__(self, program: str, offsets: dict[str, int | None], dropped_why: str):
        self.program = program
        self.offsets = offsets
        self.dropped_why = dropped_why

    def write(self, message: JobOutput) -> None:
        if message.stream not in self.offsets:
            return
        have = self.offsets[message.stream]
        data = b"".join(bytes(chunk) for chunk in message.payload)
        if have is None:
            have = message.offset
        out = sys.stdout.buffer if message.stream == "stdout" else sys.stderr.buffer
        if message.offset > have:
            sys.stdout.flush()
            print(f"\n[{self.program}: {message.offset - have} bytes of the job's "
                  f"{message.stream} {self.dropped_why}]", file=sys.stderr, flush=True)
        elif message.offset < have:
            data = data[have - message.offset:]
        if data:
            out.write(data)
            out.flush()
        self.offsets[message.stream] = max(have, message.offset + len(data))


class SubmittedJobStream:
    """``sluicegate submit``: print a submitted job's output as it comes, end with its
    status. Ctrl-C kills the job.

    Whenever the service has been quiet for ``ATTACH_EVERY_S`` the stream attaches again
    with the offsets it has: a service restarted meanwhile then sends the rest of the output
    (each byte once) and the job's end, or says that it does not know the job.
    ``announce_pages``: print where the job's status pages are, once its driver said so
    (the port moves on when 4040 is taken, so this line is how a user finds them)."""

    KILL_WAIT_S = 30.0  # after Ctrl-C, how long the job's end is awaited

    def __init__(self, client, job_id: str, announce_pages: bool = True):
        self.client = client
        self.job_id = job_id
        self.announce_pages = announce_pages
        self.writer = JobOutputWriter("sluicegate submit", {"stdout": 0, "stderr": 0},
                                      "were dropped before they could be sent")
        self.announced: set[str] = set()
        self.interrupted = threading.Event()
        self.kill_sent_at: float | None = None

    def run(self) -> int:
        """Follow the job until it ends; the exit status ``submit`` returns."""
        previous = signal.signal(signal.SIGINT, lambda *_: self.interrupted.set())
        try:
            return self._follow()
        finally:
            signal.signal(signal.SIGINT, previous)

    def _follow(self) -> int:
        offsets = self.writer.offsets
        last_heard = time.monotonic()
        next_attach = last_heard + ATTACH_EVERY_S
        while True:
            if self.interrupted.is_set() and self.kill_sent_at is None:
                print(f"\nstopping {self.job_id}...", file=sys.stderr, flush=True)
                self.client.send(KillJob(self.job_id))
                self.kill_sent_at = time.monotonic()
            if self.kill_sent_at is not None \
                    and time.monotonic() - self.kill_sent_at > self.KILL_WAIT_S:
                return 130
            message = self.client.receive(0.5)
            now = time.monotonic()
            if message is None:
                if now - last_heard > SERVICE_SILENCE_S:
                    print(f"sluicegate submit: lost the driver service; {self.job_id} may still "
                          "run (`sluicegate jobs` shows it once the service is back)",
                          file=sys.stderr)
                    return 1
                if now >= next_attach:
                    self.client.send(AttachJob(self.job_id, offsets["stdout"], offsets["stderr"]))
                    next_attach = now + ATTACH_EVERY_S
                continue
            last_heard = now
            next_attach = now + ATTACH_EVERY_S
            status = self._handle(message)
            if status is not None:
                return status

    def _handle(self, message) -> int | None:
        """Act on one message from the service; the exit status once the job is over."""
        job_id = self.job_id
        if isinstance(message, JobOutput) and message.job_id == job_id:
            self.writer.write(message)
        elif isinstance(message, JobStatusPages) and message.job_id == job_id:
            if self.announce_pages and message.ui_url not in self.announced:
                self.announced.add(message.ui_url)
                print(f"sluicegate: {message.app_name} ({job_id}): status pages at "
                      f"{message.ui_url}", file=sys.stderr, flush=True)
        elif isinstance(message, JobEnded) and message.job_id == job_id:
            if message.state != "FINISHED":
                print(f"{job_id} {message.state.lower()}"
                      f"{': ' + message.message if message.message else ''}",
                      file=sys.stderr, flush=True)
            if self.interrupted.is_set():
                return 130
            if message.exit_code > 0:
                return message.exit_code
            return 0 if message.state == "FINISHED" else 1
        elif isinstance(message, JobUnknown) and message.job_id == job_id:
            print(f"sluicegate submit: the driver service at {self.client.address} does not know "
                  f"{job_id} ({message.message}; was it restarted with another --work-dir?): "
                  "the job's exit status is unknown", file=sys.stderr)
            return 1
        elif isinstance(message, CommandResult) and not message.ok \
                and self.kill_sent_at is not None:
            print(f"sluicegate submit: {message.message}", file=sys.stderr, flush=True)
        return None


def job_logs(client, job_id: str, tail_lines: int, follow: bool) -> int:
    """``sluicegate logs JOB``: the job's driver output, up to now or (``follow``) until
    it ends. Ctrl-C stops following, never the job."""
    writer = JobOutputWriter("sluicegate logs", {"stdout": None, "stderr": None},
                             "are no longer kept (the driver's --job-output-limit)")

    def ask() -> None:
        known = [writer.offsets[s] if writer.offsets[s] is not None else -1
                 for s in ("stdout", "stderr")]
        client.send(JobLogs(job_id, known[0], known[1], tail_lines, follow))

    ask()
    last_heard = time.monotonic()
    next_ask = last_heard + ATTACH_EVERY_S
    while True:
        message = client.receive(0.5)
        now = time.monotonic()
        if message is None:
            if now - last_heard > (SERVICE_SILENCE_S if follow else ANSWER_WAIT_S):
                print(f"sluicegate logs: no word from the driver service at {client.address} "
                      f"for {now - last_heard:.0f}s", file=sys.stderr)
                return 1
            if follow and now >= next_ask:
                ask()  # (a restarted service learns of us again this way)
                next_ask = now + ATTACH_EVERY_S
            continue
        last_heard, next_ask = now, now + ATTACH_EVERY_S
        if getattr(message, "job_id", job_id) != job_id:
            continue
        if isinstance(message, JobOutput):
            writer.write(message)
        elif isinstance(message, (JobEnded, JobLogsEnd)):
            return 0
        elif isinstance(message, JobUnknown):
            print(f"sluicegate logs: the driver service at {client.address} has no job {job_id} "
                  f"({message.message})", file=sys.stderr)
            return 1
        elif isinstance(message, CommandResult) and not message.ok:
            print(f"sluicegate logs: {message.message}", file=sys.stderr)
            return 1
        # (an ok CommandResult: following; JobStatusPages: not part of the output)


class _ExecutorLogPrinter:
    """Prints executors' log chunks, each source under a ``==> ... <==`` header as
    ``tail`` does for several files, each byte once. A chunk that ends inside a line
    keeps that part back until the rest of the line comes (or ``flush``), so that
    lines of different sources never run into each other."""

    HOLD_BYTES = 1 << 16  # a longer unfinished line is printed as it is

    def __init__(self) -> None:
        self.offsets: dict[tuple[str, str, str], int] = {}  # (worker, executor, stream)
        self._pending: dict[tuple[str, str, str], bytes] = {}
        self._current: tuple[str, str, str] | None = None

    def write(self, chunk: ExecutorLogChunk, from_start: bool, complete: bool) -> None:
        """``from_start``: a stream this client has nothing of was asked for from its
        start (so a later first offset means that the worker no longer keeps the rest).
        ``complete``: nothing more of this source will be asked for (print all of it)."""
        key = (chunk.worker_id, chunk.executor_id, chunk.stream)
        data = b"".join(bytes(part) for part in chunk.payload)
        have = self.offsets.get(key, 0 if from_start else None)
        if have is not None and chunk.offset < have:
            data = data[have - chunk.offset:]
        self.offsets[key] = max(chunk.offset if have is None else have, chunk.offset + len(data))
        if not data:
            if complete:
                self._print(key, self._finish(key, b""))
            return
        if have is not None and chunk.offset > have:
            unfinished = self._pending.pop(key, b"")
            self._print(key, unfinished + (b"\n" if unfinished else b"")
                        + f"[{chunk.offset - have} bytes no longer kept by the worker]\n".encode())
        data = self._pending.pop(key, b"") + data
        if complete:
            self._print(key, self._finish(key, data))
            return
        cut = data.rfind(b"\n") + 1
        if len(data) - cut > self.HOLD_BYTES:
            cut = len(data)
        if data[cut:]:
            self._pending[key] = data[cut:]
        self._print(key, data[:cut])

    def flush(self) -> None:
        """Print what was kept back (the sources' last lines without a newline)."""
        for key in list(self._pending):
            self._print(key, self._finish(key, b""))

    def _finish(self, key: tuple[str, str, str], data: bytes) -> bytes:
        """``data`` after what was kept back for ``key``, ending with a newline."""
        data = self._pending.pop(key, b"") + data
        return data + b"\n" if data and not data.endswith(b"\n") else data

    def _print(self, key: tuple[str, str, str], data: bytes) -> None:
        if not data:
            return
        out = sys.stdout.buffer
        if key != self._current:
            out.write(b"" if self._current is None else b"\n")
            worker, executor, stream = key
            out.write(f"==> executor {executor} on worker {worker}, {stream} <==\n".encode())
            self._current = key
        out.write(data)
        out.flush()


def executor_logs(client, job_id: str, tail_lines: int, follow: bool) -> int:
    """``sluicegate logs JOB --executors``: what the live workers keep of the job's
    executors' stdout and stderr; with ``follow``, more as it comes until the job ends."""
    printer = _ExecutorLogPrinter()
    first = True
    for _ in range(MAX_ROUNDS):
        # Later rounds take every stream from where this client is; an executor that
        # appeared meanwhile is shown from its start.
        client.send(ExecutorLogsRequest(
            job_id, tail_lines if first else -1,
            [[w, e, s, offset] for (w, e, s), offset in printer.offsets.items()]))
        more: dict[tuple[str, str, str], bool] = {}  # what the worker said last, per source
        while True:
            message = client.receive(ANSWER_WAIT_S)
            if message is None:
                print(f"sluicegate logs: no answer from the driver service at {client.address} "
                      f"within {ANSWER_WAIT_S:.0f}s", file=sys.stderr)
                return 1
            if isinstance(message, ExecutorLogChunk):
                more[(message.worker_id, message.executor_id, message.stream)] = message.more
                printer.write(message, from_start=not first or tail_lines < 0,
                              complete=not follow and not message.more)
            elif isinstance(message, ExecutorLogsEnd) and message.job_id == job_id:
                if message.missing_workers and first:
                    print(f"sluicegate logs: no answer in time from the workers "
                          f"{', '.join(message.missing_workers)}", file=sys.stderr, flush=True)
                state = message.state
                break
            elif isinstance(message, JobUnknown) and message.job_id == job_id:
                print(f"sluicegate logs: the driver service at {client.address} has no job "
                      f"{job_id} ({message.message})", file=sys.stderr)
                return 1
        if first and not printer.offsets:
            print(f"sluicegate logs: the live workers keep no executor logs of {job_id}",
                  file=sys.stderr)
        first = False
        if any(more.values()):
            continue
        if not follow or state != "RUNNING":
            break
        time.sleep(EXECUTOR_POLL_S)
    printer.flush()
    return 0
