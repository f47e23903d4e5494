"""The driver service's side of elastic jobs: ``sluicegate rebalance`` and streaming
dynamic allocation.

A job's cores are capped by its ``submit --cores`` (0: no cap). ``rebalance
JOB --cores N`` replaces that cap while the job runs, and a job with
``spark.streaming.dynamicAllocation.enabled`` asks for a total of its own
(``RequestExecutors``), which holds within the cap. The fair allocation
(``allocation``) then gives the job up to that many executors. A job above
its cap is told the number (``ExecutorTarget``): its driver drains the excess
-- they take no new tasks and keep serving their blocks (a stream's state)
until the next batches replaced them -- and stops them, so no state is lost
and nothing is recomputed. A job that has not done so after
``DRAIN_GRACE_S`` loses its newest executors the hard way (its driver then
recomputes what they held from lineage).
"""
from __future__ import annotations

import logging
import time

from sluicegate.common.protocol.cluster import CommandResult
from sluicegate.common.protocol.elastic import ExecutorTarget, RebalanceJob, RequestExecutors

from .job_records import RUNNING

log = logging.getLogger("sluicegate.service")

DRAIN_GRACE_S = 60.0
RETELL_S = 5.0  # a job above its cap is reminded this often


class ElasticJobs:
    """The elastic part of ``ClusterService`` (it holds ``jobs``, ``send``,
    ``_rebalance``, ``_kill_executor`` and ``_schedule_rebalance``)."""

    def _init_elastic(self) -> None:
        self._cores_override: dict[str, int] = {}   # rebalance: job id -> cores
        self._cores_requested: dict[str, int] = {}  # dynamic allocation: job id -> total
        self._over_cap: dict[str, tuple[float, float, int]] = {}  # since, last told, cap told

    def _job_cap(self, job) -> int:
        """The cores a job may have now (0: no cap)."""
        cap = self._cores_override.get(job.job_id, job.cores_wanted)
        requested = self._cores_requested.get(job.job_id)
        if requested:
            cap = min(cap, requested) if cap else requested
        return cap

    def rebalance_job(self, job_id: str, cores: int) -> tuple[bool, str]:
        """``rebalance JOB --cores N`` (the CLI and the REST API; on the loop thread):
        whether it was done, and what to tell the user."""
        job = self.jobs.get(job_id)
        if job is None:
            return False, f"no job {job_id}"
        if job.state != RUNNING:
            return False, f"job {job.job_id} already {job.state.lower()}"
        if cores < 1:
            return False, f"--cores must be at least 1, got {cores}"
        before = len(job.executors)
        self._cores_override[job.job_id] = cores
        log.info("job %s rebalanced: %d cores wanted (it has %d executors)", job.job_id,
                 cores, before)
        self._rebalance()
        granted = len(job.executors)
        more = ""
        if granted < cores:
            more = f"; {cores - granted} more once cores are free"
        elif before > cores:
            more = f"; draining {before - cores} (their state moves to the others first)"
        return True, f"job {job.job_id}: {cores} cores wanted, {granted} executors{more}"

    def _rebalance_job(self, identity: bytes, message: RebalanceJob, now: float) -> None:
        self.send(identity, CommandResult(*self.rebalance_job(message.job_id, message.cores)))

    def _request_executors(self, identity: bytes, message: RequestExecutors, now: float) -> None:
        job = self.jobs.get(message.job_id)
        if job is None or job.app_identity != identity or job.state != RUNNING:
            return  # only a job's own driver asks for it
        total = max(1, message.total)
        if self._cores_requested.get(job.job_id) != total:
            log.info("job %s asks for %d executors (dynamic allocation)", job.job_id, total)
        self._cores_requested[job.job_id] = total
        self._rebalance()

    def _enforce_caps(self) -> None:
        """After each allocation: tell jobs above their cap to drain, and take executors
        back from one that did not within DRAIN_GRACE_S."""
        now = time.monotonic()
        for job_id in [j for j in self._over_cap if j not in self.jobs]:
            del self._over_cap[job_id]
        for job in list(self.jobs.values()):
            if job.state != RUNNING:
                for table in (self._cores_override, self._cores_requested, self._over_cap):
                    table.pop(job.job_id, None)
                continue
            cap = self._job_cap(job)
            if not cap or len(job.executors) <= cap:
                self._over_cap.pop(job.job_id, None)
                continue
            since, told, told_cap = self._over_cap.get(job.job_id, (now, 0.0, -1))
            if now - since > DRAIN_GRACE_S:
                for executor_id in job.executors[cap:]:
                    self._kill_executor(job, executor_id, f"over its {cap} cores for "
                                                          f"{DRAIN_GRACE_S:.0f}s")
                self._over_cap.pop(job.job_id, None)
                continue
            if job.app_identity is not None and (told_cap != cap or now - told >= RETELL_S):
                self.send(job.app_identity, ExecutorTarget(
                    job.job_id, cap, f"the job's cores are now {cap}"))
                told, told_cap = now, cap
            self._over_cap[job.job_id] = (since, told, told_cap)
            self._schedule_rebalance(min(since + DRAIN_GRACE_S, told + RETELL_S) + 0.1)

    elastic_handlers = {
        RebalanceJob: _rebalance_job,
        RequestExecutors: _request_executors,
    }
