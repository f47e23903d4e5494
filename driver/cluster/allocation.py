"""Sharing a cluster's cores between running jobs (pure; no sockets).

Each job's target is its fair share of all cores, capped by what it asked
for (``--cores``; 0 means no cap): cores are water-filled, so a job that
wants little leaves the rest to the others. Executors (one core each) are
spread over workers. A job above its target gives executors back only when
another job is below its target and no core is free; a job never waits
forever behind a streaming job that took the whole cluster first. A worker
that joins adds cores, so jobs below their cap grow onto it at once.

A worker's ``cores`` here are its executor slots: the service counts at most
its ``--memory`` divided by the executor memory (``driver --executor-memory``),
and at most its ``--cores``, as Spark's standalone master does.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WorkerCores:
    worker_id: str
    cores: int
    used: int = 0

    @property
    def free(self) -> int:
        return self.cores - self.used


@dataclass
class JobCores:
    job_id: str
    wanted: int            # 0: no cap
    executors: list[str] = field(default_factory=list)  # oldest first

    @property
    def granted(self) -> int:
        return len(self.executors)


@dataclass(frozen=True)
class Decision:
    launches: list[tuple[str, str]]   # (job_id, worker_id)
    releases: list[tuple[str, str]]   # (job_id, executor_id)


def fair_targets(total_cores: int, jobs: list[JobCores]) -> dict[str, int]:
    """Each job's share of ``total_cores``, water-filled under its cap, in job order."""
    caps = {j.job_id: (j.wanted if j.wanted > 0 else total_cores) for j in jobs}
    order = {j.job_id: i for i, j in enumerate(jobs)}
    targets = {j.job_id: 0 for j in jobs}
    remaining = total_cores
    # Equal caps: newer jobs are filled first, so an odd core left goes to the oldest.
    by_cap = sorted(caps, key=lambda job_id: (caps[job_id], -order[job_id]))
    for index, job_id in enumerate(by_cap):
        share = remaining // (len(by_cap) - index)
        targets[job_id] = min(caps[job_id], share)
        remaining -= targets[job_id]
    for job in jobs:  # cores the even split left over go to the oldest jobs
        if remaining <= 0:
            break
        if targets[job.job_id] < caps[job.job_id]:
            targets[job.job_id] += 1
            remaining -= 1
    return targets


def allocate(workers: list[WorkerCores], jobs: list[JobCores]) -> Decision:
    """Which executors to start where, and which to take back."""
    targets = fair_targets(sum(w.cores for w in workers), jobs)
    free = {w.worker_id: w.free for w in workers}
    launches: list[tuple[str, str]] = []
    releases: list[tuple[str, str]] = []
    short = {j.job_id: targets[j.job_id] - j.granted for j in jobs if j.granted < targets[j.job_id]}
    # Spread launches round-robin over workers with free cores, jobs in order.
    progress = True
    while progress and short:
        progress = False
        for job in jobs:
            if short.get(job.job_id, 0) <= 0:
                continue
            worker_id = max((w for w in free if free[w] > 0), key=lambda w: free[w], default=None)
            if worker_id is None:
                break
            free[worker_id] -= 1
            short[job.job_id] -= 1
            launches.append((job.job_id, worker_id))
            progress = True
    still_short = sum(n for n in short.values() if n > 0)
    if still_short and not any(n > 0 for n in free.values()):
        for job in jobs:
            give_back = min(job.granted - targets[job.job_id], still_short)
            if give_back > 0:
                releases.extend((job.job_id, e) for e in job.executors[-give_back:])
                still_short -= give_back
    return Decision(launches, releases)
