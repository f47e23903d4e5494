"""The driver service's answers to ``sluicegate logs``: a job's driver output from
the files its keeper writes, and its executors' logs, which the workers keep.

``logs JOB`` reads the job's output as ``submit`` does (a watcher per client,
fed by the service's loop), from the offsets the client has or its last lines;
without ``--follow`` it stops at where each stream ended when asked.
``logs --executors`` is relayed: every live worker is asked for what it keeps
of the job's executors (``FetchExecutorLogs``), each chunk it sends goes on to
the client, and the client is told once all have answered or
``EXECUTOR_LOGS_TIMEOUT_S`` has passed (``ExecutorLogsEnd``, naming the workers
that did not answer). A bounded amount is sent per request; the client asks
again where a chunk says there is more.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

from sluicegate.common.protocol.cluster import (
    CommandResult, ExecutorLogChunk, ExecutorLogsDone, ExecutorLogsEnd, ExecutorLogsRequest,
    FetchExecutorLogs, JobLogs, JobOutput)

from .job_records import LOST, RUNNING, Watcher

log = logging.getLogger("sluicegate.service")

EXECUTOR_LOGS_TIMEOUT_S = 10.0  # how long the workers have to send executors' logs


@dataclass
class ExecutorLogsAsked:
    """A client's ``logs --executors`` request while the workers answer it."""
    client: bytes
    job_id: str
    waiting: set[str]     # the workers that have not finished answering
    deadline_s: float     # monotonic


class LogRequests:
    """The ``logs`` part of ``ClusterService`` (it holds ``jobs``, ``workers``,
    ``work_dir``, ``send``, ``_known_job`` and ``_feed_watchers``)."""

    def _init_log_requests(self) -> None:
        self._log_requests: dict[int, ExecutorLogsAsked] = {}
        self._log_request_ids = itertools.count(1)

    def _job_logs(self, identity: bytes, message: JobLogs, now: float) -> None:
        """``sluicegate logs``: the job's output from the offsets asked for, then (unless
        following a running job) where it ended."""
        job = self._known_job(identity, message.job_id)
        if job is None:
            return
        if job.job_dir is None:
            self.send(identity, CommandResult(False, job.without_directory(
                self.work_dir, "this service has none of its output")))
            return
        tails = job.output_tails(message.stdout_offset, message.stderr_offset, message.tail_lines)
        follow = message.follow and job.state == RUNNING
        job.watchers[identity] = Watcher(tails, None if follow else job.output_ends())
        for stream, tail in tails.items():  # where each stream starts, even if nothing comes
            self.send(identity, JobOutput(job.job_id, stream, tail.offset, payload=[b""]))
        if follow:
            self.send(identity, CommandResult(True, f"following {job.job_id}"))
        self._feed_watchers(job)

    def _executor_logs(self, identity: bytes, message: ExecutorLogsRequest, now: float) -> None:
        """``sluicegate logs --executors``: ask every live worker for what it keeps of the
        job's executors, and pass the answers on."""
        job = self._known_job(identity, message.job_id)
        if job is None:
            return
        request_id = next(self._log_request_ids)
        workers = [w for w in self.workers.values() if w.alive]
        asked = ExecutorLogsAsked(identity, job.job_id, set(), now + EXECUTOR_LOGS_TIMEOUT_S)
        self._log_requests[request_id] = asked
        for worker in workers:
            offsets = [row[1:] for row in message.offsets[:10_000]
                       if isinstance(row, list) and len(row) == 4 and row[0] == worker.worker_id]
            if self.send(worker.identity, FetchExecutorLogs(request_id, job.job_id,
                                                            message.tail_lines, offsets)):
                asked.waiting.add(worker.worker_id)
        self._end_log_requests(now)

    def _executor_log_chunk(self, identity: bytes, message: ExecutorLogChunk, now: float) -> None:
        asked = self._log_requests.get(message.request_id)
        if asked is None or message.worker_id not in asked.waiting \
                or identity != message.worker_id.encode():
            return  # late (the client was answered), or not from a worker that was asked
        if not self.send(asked.client, message):
            del self._log_requests[message.request_id]  # the client is gone

    def _executor_logs_done(self, identity: bytes, message: ExecutorLogsDone, now: float) -> None:
        asked = self._log_requests.get(message.request_id)
        if asked is None or identity != message.worker_id.encode():
            return
        if message.message:
            log.warning("worker %s could not send the logs of job %s: %s", message.worker_id,
                        asked.job_id, message.message)
        asked.waiting.discard(message.worker_id)
        self._end_log_requests(now)

    def _end_log_requests(self, now: float) -> None:
        """Tell each client whose workers all answered (or ran out of time) that that was all."""
        for request_id, asked in list(self._log_requests.items()):
            if asked.waiting and now < asked.deadline_s:
                continue
            del self._log_requests[request_id]
            job = self.jobs.get(asked.job_id)
            self.send(asked.client, ExecutorLogsEnd(asked.job_id, job.state if job else LOST,
                                                    sorted(asked.waiting)))

    def _worker_gone_from_log_requests(self, worker_id: str, now: float) -> None:
        """A worker that is lost or stopped will not answer any more."""
        for asked in self._log_requests.values():
            asked.waiting.discard(worker_id)
        self._end_log_requests(now)

    log_handlers = {
        JobLogs: _job_logs,
        ExecutorLogsRequest: _executor_logs,
        ExecutorLogChunk: _executor_log_chunk,
        ExecutorLogsDone: _executor_logs_done,
    }
