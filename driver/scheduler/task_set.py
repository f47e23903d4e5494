"""Tasks of one stage attempt, and placing them on free executor slots.

A ``TaskSet`` holds the tasks of one attempt of a stage: which are pending,
which run where, how often each partition failed. Placement uses delay
scheduling: a task whose data (an input block, a cached partition) sits on
a live executor waits up to the locality wait for a slot there before it
takes any slot. Every launch gets a fresh task id; a reply naming an id no
longer running is stale and dropped.
"""
from __future__ import annotations

import itertools
from collections import deque
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from sluicegate.common.protocol import plan as p


@dataclass
class Task:
    """One partition of a stage, with its plan resolved on the driver."""

    stage_id: int
    stage_attempt: int
    job_id: int
    partition: int
    plan: p.PlanNode
    sink: p.Sink
    function_ids: list[int]
    input_block_ids: list[str]
    cache_block_ids: list[str]
    shuffle_ids: list[int]
    properties: dict = field(default_factory=dict)  # its job's local properties


@dataclass
class TaskRun:
    """One launch of a task on an executor."""

    tid: int
    task: Task
    executor_id: str
    attempt: int
    started_s: float


@dataclass
class TaskSet:
    stage_id: int
    attempt: int
    tasks: dict[int, Task]
    max_failures: int
    created_s: float
    pending: list[int] = field(default_factory=list)
    running: dict[int, TaskRun] = field(default_factory=dict)
    failures: Counter = field(default_factory=Counter)
    lost_failures: Counter = field(default_factory=Counter)  # runs lost with their executor
    launches: Counter = field(default_factory=Counter)
    finished: set[int] = field(default_factory=set)
    pending_since: dict[int, float] = field(default_factory=dict)
    zombie: bool = False

    def __post_init__(self) -> None:
        self.pending = sorted(self.tasks)
        self.pending_since = {part: self.created_s for part in self.pending}

    @property
    def done(self) -> bool:
        return len(self.finished) == len(self.tasks)

    def requeue(self, partition: int, now: float) -> None:
        if partition not in self.finished and partition not in self.pending:
            self.pending.append(partition)
            self.pending_since[partition] = now


def _plan_children(node):
    for name in node._wire_fields:
        value = getattr(node, name)
        if isinstance(value, p.PlanNode):
            yield value
        elif isinstance(value, list) and value and isinstance(value[0], p.PlanNode):
            yield from value


def analyse_plan(plan: p.PlanNode, sink: p.Sink) -> tuple[list[int], list[str], list[str], list[int]]:
    """The function ids, input blocks, cached blocks and shuffles a task uses."""
    functions: list[int] = []
    inputs: list[str] = []
    cached: list[str] = []
    shuffles: list[int] = []

    def add_combiner(combiner: p.Combiner | None) -> None:
        if combiner is not None:
            functions.extend([combiner.create, combiner.merge_value, combiner.merge_combiners])

    pending = deque([plan])  # breadth first: cached blocks come shallowest first
    while pending:
        node = pending.popleft()
        fn = getattr(node, "fn", None)
        if isinstance(fn, int):
            functions.append(fn)
        key_fn = getattr(node, "key_fn", None)
        if isinstance(key_fn, int):
            functions.append(key_fn)
        if isinstance(node, p.CombineNode):
            add_combiner(node.combiner)
        elif isinstance(node, p.ShuffleRead):
            add_combiner(node.combiner)
            shuffles.append(node.shuffle_id)
        elif isinstance(node, p.BlockSource):
            inputs.append(node.block_id)
        elif isinstance(node, p.PersistNode):
            cached.append(node.block_id)
        pending.extend(_plan_children(node))
    if isinstance(sink, p.ShuffleWriteSink):
        add_combiner(sink.combiner)
        if sink.partitioner.fn is not None:
            functions.append(sink.partitioner.fn)
    return list(dict.fromkeys(functions)), inputs, cached, list(dict.fromkeys(shuffles))


class TaskScheduler:
    """Active task sets in submission order, and which launch runs where."""

    def __init__(self, locality_wait_s: float):
        self.locality_wait_s = locality_wait_s
        self.task_sets: list[TaskSet] = []
        self.running: dict[int, tuple[TaskSet, TaskRun]] = {}
        self._tids = itertools.count(1)

    def add(self, task_set: TaskSet) -> None:
        self.task_sets.append(task_set)

    def has_pending(self) -> bool:
        return any(ts.pending and not ts.zombie for ts in self.task_sets)

    def assign(self, free_slots: dict[str, int], preferred: Callable[[Task], set[str]],
               now: float, alive: set[str] | None = None) -> list[TaskRun]:
        """Fill free slots with pending tasks; return the launches to make.

        ``alive`` is every live executor, busy or not (default: those with
        free slots): a task waits for a busy live executor holding its data.
        """
        runs: list[TaskRun] = []
        alive = set(free_slots) if alive is None else set(alive)
        for executor_id in list(free_slots):
            while free_slots[executor_id] > 0:
                run = self._pick(executor_id, alive, preferred, now)
                if run is None:
                    break
                free_slots[executor_id] -= 1
                runs.append(run)
        return runs

    def _pick(self, executor_id: str, alive: set[str], preferred, now: float) -> TaskRun | None:
        for task_set in self.task_sets:
            if task_set.zombie or not task_set.pending:
                continue
            fallback = None
            for index, partition in enumerate(task_set.pending):
                task = task_set.tasks[partition]
                wanted = preferred(task) & alive if (task.input_block_ids or task.cache_block_ids) else set()
                if not wanted or executor_id in wanted:
                    return self._launch(task_set, index, executor_id, now)
                waited = now - task_set.pending_since.get(partition, now)
                if fallback is None and waited >= self.locality_wait_s:
                    fallback = index
            if fallback is not None:
                return self._launch(task_set, fallback, executor_id, now)
        return None

    def _launch(self, task_set: TaskSet, index: int, executor_id: str, now: float) -> TaskRun:
        partition = task_set.pending.pop(index)
        attempt = task_set.launches[partition]
        task_set.launches[partition] += 1
        run = TaskRun(next(self._tids), task_set.tasks[partition], executor_id, attempt, now)
        task_set.running[run.tid] = run
        self.running[run.tid] = (task_set, run)
        return run

    def finish(self, tid: int) -> tuple[TaskSet, TaskRun] | None:
        """The launch ``tid`` ended; ``None`` if it is unknown (stale)."""
        found = self.running.pop(tid, None)
        if found is not None:
            found[0].running.pop(tid, None)
        return found

    def running_on(self, executor_id: str) -> list[int]:
        return [tid for tid, (_, run) in self.running.items() if run.executor_id == executor_id]

    def remove_finished_sets(self) -> None:
        self.task_sets = [ts for ts in self.task_sets
                          if not (ts.done or (ts.zombie and not ts.running))]
