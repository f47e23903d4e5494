"""The cluster service's workers: registration, heartbeats, loss and retention.

A worker registers with its cores, memory and the executors it still runs
(after a service restart, that is how adopted jobs get their executors
back). Any message from it counts as a heartbeat; one silent past the
timeout is lost, and one that says goodbye (``WorkerLeaving``) is stopped.
Either way its executors leave their jobs, whose drivers are told at once
(``ExecutorRemoved``), and it stays listed for ``worker_retention_s``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from sluicegate.common.protocol.cluster import (
    ExecutorExited, ExecutorRemoved, KillExecutor, RegisterWorker, ServiceHeartbeat,
    WorkerHeartbeat, WorkerLeaving, WorkerRefused, WorkerRegistered)

from .job_records import RUNNING, ExecutorStats

log = logging.getLogger("sluicegate.service")

DEFAULT_WORKER_RETENTION_S = 600.0  # a lost or stopped worker is listed this long
ALIVE, WORKER_LOST, STOPPED = "alive", "lost", "stopped"


@dataclass
class WorkerRecord:
    worker_id: str
    identity: bytes
    host: str
    cores: int
    memory_bytes: int
    pid: int
    registered_s: float
    last_seen_s: float
    executors: dict[str, str] = field(default_factory=dict)  # executor id -> job id
    alive: bool = True
    executor_slots: int = 0     # executors it can run: its cores, and its memory allows
    state: str = ALIVE          # alive, lost (gone silent) or stopped (it said goodbye)
    gone_s: float | None = None   # monotonic: when it was lost or stopped

    def describe(self, now: float, stats: dict[str, ExecutorStats]) -> dict:
        """``stats``: what the jobs' drivers report of the executors (by executor id)."""
        mine = [stats[e] for e in self.executors if e in stats]
        return {"worker_id": self.worker_id, "host": self.host, "cores": self.cores,
                "cores_used": len(self.executors), "executor_slots": self.executor_slots,
                "running_tasks": sum(s.running_tasks for s in mine),
                "running_task_ms": max((s.running_task_ms for s in mine), default=0),
                "memory_bytes": self.memory_bytes,
                "memory_used": sum(s.memory_used for s in mine),
                "rss_bytes": sum(s.rss_bytes for s in mine),
                "alive": self.alive, "state": self.state,
                "last_heartbeat_s_ago": round(now - self.last_seen_s, 1),
                "executors": sorted(self.executors)}


class WorkerRoster:
    """The workers part of ``ClusterService`` (it holds ``workers``, ``jobs``, ``send``,
    ``heartbeat_*``, ``worker_retention_s``, ``executor_memory*``, ``_rebalance``,
    ``_check_job``, ``_tell_app`` and ``_worker_gone_from_log_requests``)."""

    def _register_worker(self, identity: bytes, message: RegisterWorker, now: float) -> None:
        if identity != message.worker_id.encode():
            self.send(identity, WorkerRefused("the worker id must be the connection identity"))
            return
        known = self.workers.get(message.worker_id)
        record = WorkerRecord(message.worker_id, identity, message.host, max(1, message.cores),
                              message.memory_bytes, message.pid, now, now)
        record.executor_slots = min(record.cores,
                                    max(0, message.memory_bytes) // self.executor_memory_bytes)
        for entry in message.executors[:10_000]:
            if (isinstance(entry, list) and len(entry) == 2
                    and all(isinstance(v, str) for v in entry)):
                record.executors[entry[1]] = entry[0]
        if known is not None and known.alive:
            log.info("worker %s registered again", message.worker_id)
        self.workers[message.worker_id] = record
        self.send(identity, WorkerRegistered(message.worker_id, self.heartbeat_interval_s,
                                             self.heartbeat_timeout_s))
        log.info("worker %s registered: %d cores, %s MB on %s", message.worker_id, message.cores,
                 message.memory_bytes >> 20, message.host)
        if record.executor_slots < record.cores:
            log.warning("worker %s runs at most %d executors: its %d MB hold %d of %s each "
                        "(--executor-memory)", message.worker_id, record.executor_slots,
                        message.memory_bytes >> 20, record.executor_slots, self.executor_memory)
        self._take_reported_executors(record, known)
        self._rebalance()

    def _take_reported_executors(self, worker: WorkerRecord, known: WorkerRecord | None) -> None:
        """A (re-)registered worker's executors are the truth: they join their running jobs
        (after a service restart, that is how an adopted job gets its executors back), the
        ones of ended jobs are stopped, and the ones it no longer runs leave their jobs."""
        for executor_id, job_id in list(worker.executors.items()):
            job = self.jobs.get(job_id)
            if job is None:
                continue  # its job's driver may register yet, and adopts it then
            if job.state == RUNNING:
                if executor_id not in job.executors:
                    job.executors.append(executor_id)
                    log.info("job %s: took over its running executor %s on worker %s", job_id,
                             executor_id, worker.worker_id)
            else:
                self.send(worker.identity, KillExecutor(job_id, executor_id, f"job {job_id} has ended"))
        if known is None:
            return
        for executor_id, job_id in known.executors.items():
            job = self.jobs.get(job_id)
            if executor_id not in worker.executors and job is not None and executor_id in job.executors:
                job.executors.remove(executor_id)
                self._tell_app(job, ExecutorRemoved(
                    executor_id, f"worker {worker.worker_id} no longer runs it"))

    def _worker_heartbeat(self, identity: bytes, message: WorkerHeartbeat, now: float) -> None:
        worker = self.workers.get(message.worker_id)
        if worker is None or not worker.alive:
            # A worker the service does not know (after a restart): ask it to register.
            self.send(identity, WorkerRefused("unknown worker: register again"))
            return
        worker.last_seen_s = now

    def _executor_exited(self, identity: bytes, message: ExecutorExited, now: float) -> None:
        worker = self.workers.get(message.worker_id)
        if worker is not None:
            worker.executors.pop(message.executor_id, None)
            worker.last_seen_s = now
        job = self.jobs.get(message.job_id)
        if job is not None and message.executor_id in job.executors:
            job.executors.remove(message.executor_id)
            # An executor whose driver died exits too: settle the job first, so that none
            # is started again for a job that has just ended.
            self._check_job(job, now)
            if job.state == RUNNING and message.exit_code != 0:
                job.executor_failures += 1
            self._tell_app(job, ExecutorRemoved(
                message.executor_id, f"its process exited with code {message.exit_code}"))
        self._rebalance()

    def _worker_lost(self, worker: WorkerRecord, reason: str, state: str = WORKER_LOST) -> None:
        if not worker.alive:
            return
        worker.alive = False
        worker.state = state
        worker.gone_s = time.monotonic()
        if state == STOPPED:
            log.info("worker %s stopped: %s", worker.worker_id, reason)
        else:
            log.warning("worker %s lost: %s", worker.worker_id, reason)
        for executor_id, job_id in list(worker.executors.items()):
            job = self.jobs.get(job_id)
            if job is not None and executor_id in job.executors:
                job.executors.remove(executor_id)
                self._tell_app(job, ExecutorRemoved(executor_id,
                                                    f"worker {worker.worker_id} {state}"))
        worker.executors.clear()
        self._worker_gone_from_log_requests(worker.worker_id, time.monotonic())
        self._rebalance()

    def _worker_leaving(self, identity: bytes, message: WorkerLeaving, now: float) -> None:
        worker = self.workers.get(message.worker_id)
        if worker is None or worker.identity != identity:
            return
        self._worker_lost(worker, message.reason[:500] or "it was told to stop", STOPPED)

    def _forget_gone_workers(self, now: float) -> None:
        """Lost and stopped workers leave the listings after ``worker_retention_s``."""
        for worker in list(self.workers.values()):
            if (not worker.alive and worker.gone_s is not None
                    and now - worker.gone_s >= self.worker_retention_s):
                del self.workers[worker.worker_id]
                log.info("worker %s (%s) forgotten after %.0fs", worker.worker_id, worker.state,
                         now - worker.gone_s)

    def _watch_workers(self, now: float) -> None:
        """Every tick: beat to the live workers, lose the silent ones, forget old ones."""
        beat = ServiceHeartbeat(int(time.time() * 1000))
        for worker in list(self.workers.values()):
            if not worker.alive:
                continue
            if now - worker.last_seen_s > self.heartbeat_timeout_s:
                self._worker_lost(worker, f"no heartbeat for {self.heartbeat_timeout_s:.0f}s")
            else:
                self.send(worker.identity, beat)
        self._forget_gone_workers(now)

    def on_unreachable(self, identity: bytes) -> None:
        worker = self.workers.get(identity.decode(errors="replace"))
        if worker is not None:
            self._worker_lost(worker, "its connection is gone")

    def executor_stats(self) -> dict[str, ExecutorStats]:
        """Every running job's executors, as their drivers last reported them."""
        stats: dict[str, ExecutorStats] = {}
        for job in self.jobs.values():
            if job.state == RUNNING:
                stats.update(job.executor_stats)
        return stats

    def describe_workers(self, now: float) -> list[dict]:
        stats = self.executor_stats()
        return [w.describe(now, stats) for w in self.workers.values()]

    worker_handlers = {
        RegisterWorker: _register_worker,
        WorkerHeartbeat: _worker_heartbeat,
        ExecutorExited: _executor_exited,
        WorkerLeaving: _worker_leaving,
    }
