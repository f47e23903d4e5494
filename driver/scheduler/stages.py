"""Stages: an RDD graph cut at its shuffles.

A stage pipelines every narrow transformation between two shuffles into
one task per partition. A map stage ends by writing one shuffle's blocks; a
result stage ends a job by sending records back. Walking up from an RDD
stops at shuffle dependencies (a parent stage) and at RDDs whose partitions
are all cached (their lineage need not run again).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..rdd.dependencies import ShuffleDependency

if TYPE_CHECKING:
    from ..rdd.base import RDD


class Stage:
    """One stage: ``rdd``'s partitions, ending in ``shuffle_dep``'s map output
    (a map stage) or in results for a job (a result stage)."""

    def __init__(self, stage_id: int, rdd: "RDD", shuffle_dep: ShuffleDependency | None,
                 partitions: list[int]):
        self.id = stage_id
        self.rdd = rdd
        self.shuffle_dep = shuffle_dep
        self.partitions = partitions
        self.job_ids: set[int] = set()
        self.attempt = -1
        self.fetch_failures = 0  # consecutive attempts lost to missing shuffle output

    @property
    def is_map_stage(self) -> bool:
        return self.shuffle_dep is not None

    def __repr__(self) -> str:
        kind = f"map stage for shuffle {self.shuffle_dep.shuffle_id}" if self.shuffle_dep else "result stage"
        return f"Stage {self.id} ({kind}, {len(self.partitions)} tasks, {self.rdd!r})"


def parent_shuffles(rdd: "RDD", fully_cached: Callable[["RDD"], bool]) -> list[ShuffleDependency]:
    """The shuffle dependencies a task of ``rdd`` reads, through narrow ones."""
    found: dict[int, ShuffleDependency] = {}
    seen: set[int] = set()
    stack = [rdd]
    while stack:
        current = stack.pop()
        if current.id() in seen:
            continue
        seen.add(current.id())
        if current.is_cached and fully_cached(current):
            continue
        for dep in current.dependencies:
            if isinstance(dep, ShuffleDependency):
                found.setdefault(dep.shuffle_id, dep)
            else:
                stack.append(dep.rdd)
    return list(found.values())


def lineage_rdds(rdd: "RDD") -> list["RDD"]:
    """Every RDD ``rdd`` is computed from, itself included (each once)."""
    seen: dict[int, "RDD"] = {}
    stack = [rdd]
    while stack:
        current = stack.pop()
        if current.id() in seen:
            continue
        seen[current.id()] = current
        stack.extend(dep.rdd for dep in current.dependencies)
    return list(seen.values())
