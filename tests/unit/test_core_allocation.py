"""Sharing a cluster's cores between jobs (driver/cluster/allocation.py): pure, no service."""
from __future__ import annotations

from sluicegate.driver.cluster.allocation import JobCores, WorkerCores, allocate, fair_targets


def jobs(*wanted: int, granted: tuple[int, ...] = ()) -> list[JobCores]:
    """Jobs job-1, job-2, ... wanting these cores (0: no cap), oldest first."""
    granted = granted or (0,) * len(wanted)
    return [JobCores(f"job-{i + 1}", want, [f"job-{i + 1}-exec-{n}" for n in range(have)])
            for i, (want, have) in enumerate(zip(wanted, granted))]


def launches_per_job(decision) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job_id, _ in decision.launches:
        counts[job_id] = counts.get(job_id, 0) + 1
    return counts


# -- fair targets ------------------------------------------------------------------------

def test_uncapped_jobs_split_the_cores_evenly_the_oldest_taking_the_odd_one():
    assert fair_targets(7, jobs(0, 0, 0)) == {"job-1": 3, "job-2": 2, "job-3": 2}


def test_a_job_that_wants_little_leaves_the_rest_to_the_others():
    assert fair_targets(8, jobs(1, 0, 0)) == {"job-1": 1, "job-2": 4, "job-3": 3}  # water-filled


def test_caps_hold_even_with_cores_left_over():
    assert fair_targets(10, jobs(2, 3)) == {"job-1": 2, "job-2": 3}


def test_no_cores_no_targets():
    assert fair_targets(0, jobs(0, 2)) == {"job-1": 0, "job-2": 0}
    assert fair_targets(4, []) == {}


# -- allocation --------------------------------------------------------------------------

def test_launches_spread_over_the_workers_with_the_most_free_cores():
    workers = [WorkerCores("w1", 2), WorkerCores("w2", 2)]
    decision = allocate(workers, jobs(0))
    assert sorted(w for _, w in decision.launches) == ["w1", "w1", "w2", "w2"]
    assert decision.releases == []
    first_two = [w for _, w in decision.launches[:2]]
    assert sorted(first_two) == ["w1", "w2"]  # one each before any gets a second


def test_jobs_below_their_target_grow_onto_free_cores_in_job_order():
    workers = [WorkerCores("w1", 4, used=1)]
    decision = allocate(workers, jobs(0, 0, granted=(1, 0)))
    assert launches_per_job(decision) == {"job-1": 1, "job-2": 2}
    assert decision.releases == []


def test_a_job_above_its_share_gives_back_its_newest_executors_when_none_are_free():
    # A streaming job took the whole cluster first; a second job arrives.
    workers = [WorkerCores("w1", 4, used=4)]
    decision = allocate(workers, jobs(0, 0, granted=(4, 0)))
    assert decision.launches == []
    assert decision.releases == [("job-1", "job-1-exec-2"), ("job-1", "job-1-exec-3")]


def test_free_cores_are_used_before_anything_is_taken_back():
    workers = [WorkerCores("w1", 4, used=3)]
    # job-2 wants one core: the free one; job-1 keeps its three (its water-filled share)
    decision = allocate(workers, jobs(0, 1, granted=(3, 0)))
    assert decision.launches == [("job-2", "w1")] and decision.releases == []
    # job-2 wants two: the free core, then one of job-1's newest
    decision = allocate(workers, jobs(0, 0, granted=(3, 0)))
    assert decision.launches == [("job-2", "w1")]
    assert decision.releases == [("job-1", "job-1-exec-2")]


def test_a_worker_that_joins_adds_cores_to_jobs_below_their_cap():
    workers = [WorkerCores("w1", 2, used=2), WorkerCores("w2", 2)]
    decision = allocate(workers, jobs(3, granted=(2,)))
    assert decision.launches == [("job-1", "w2")]


def test_a_satisfied_cluster_changes_nothing():
    workers = [WorkerCores("w1", 2, used=2)]
    decision = allocate(workers, jobs(2, granted=(2,)))
    assert decision.launches == [] and decision.releases == []
    assert allocate([], jobs(0)).launches == []
    assert WorkerCores("w", 3, used=1).free == 2 and jobs(0, granted=(2,))[0].granted == 2
