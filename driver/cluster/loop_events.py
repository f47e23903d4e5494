"""What other threads hand a driver loop: typed events, and the table that runs them.

A ``RouterLoop`` (the application's ``DriverEndpoint``, the cluster's
``ClusterService``) owns its state on one thread. Other threads -- the
user's, the streaming job generator, finalizers, watchers of executor
processes, the status pages -- never touch that state: they ``post`` one of
these events (or ``call`` it and wait for the handler's answer). The loop
runs each through an ``EventHandlers`` table (event type -> handler), which
counts every event type (``sluicegate_loop_events`` on ``/metrics``) and
logs each at debug level, so that a unit test can replay events against
the state machine without a thread or a socket.

Spark's names are kept where Spark has the event (``JobSubmitted``,
``JobGroupCancelled``, ``RemoveRdd``, ``RemoveShuffle``, ...).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ..scheduler.jobs import Job


class LoopEvent:
    """An event a loop runs on its thread: each subclass is a frozen dataclass of the
    fields it declares (made so here, so the declarations below stay one line each)."""

    __slots__ = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        dataclass(frozen=True)(cls)



# -- the application's loop (driver/cluster/endpoint.py) ----------------------------------

class JobSubmitted(LoopEvent):
    """Plan ``job``'s stages and queue its tasks."""
    job: Job = field(repr=False)


class JobCancelled(LoopEvent):
    """Cancel one job (its caller was interrupted)."""
    job_id: int
    reason: str


class JobGroupCancelled(LoopEvent):
    """``cancelJobGroup``: cancel the active jobs of a job group."""
    group_id: str


class JobTagCancelled(LoopEvent):
    """``cancelJobsWithTag``: cancel the active jobs carrying a tag."""
    tag: str


class AllJobsCancelled(LoopEvent):
    """``cancelAllJobs``."""


class PushInputBlock(LoopEvent):
    """Place a received input block on an executor ahead of its batch."""
    block_id: str
    data: bytes = field(repr=False)


class RemoveBlocks(LoopEvent):
    """Forget where driver blocks (broadcasts, parallelized data, input) are held, and
    tell the executors to drop their copies."""
    block_ids: tuple[str, ...]


class RemoveRdd(LoopEvent):
    """An unpersisted (or collected) RDD: its cached partitions go everywhere."""
    rdd_id: int


class RemoveShuffle(LoopEvent):
    """Nothing references the shuffle any more: its outputs go everywhere."""
    shuffle_id: int


class RemoveExecutor(LoopEvent):
    """An executor is gone (its process exited, the cluster service removed it):
    forget it and re-run what it held."""
    executor_id: str
    reason: str


class DrainExecutors(LoopEvent):
    """Choose ``count`` executors to drain (``scaling.ExecutorScaler``)."""
    count: int
    reason: str


class FinishDrains(LoopEvent):
    """Remove the drained executors that have settled."""


class DescribeExecutors(LoopEvent):
    """Query: every executor as the status pages list it."""


class BlocksHeld(LoopEvent):
    """Query: for each block, whether some executor holds it."""
    block_ids: tuple[str, ...]


# -- either loop -------------------------------------------------------------------------

class Barrier(LoopEvent):
    """Query answered once every event posted before it has run."""


class Inspect(LoopEvent):
    """Query: ``read()`` run on the loop thread, for reading loop-owned state from
    outside it (diagnostics and tests). ``read`` must not change that state."""
    read: Callable[[], Any] = field(repr=False)


# -- the cluster service's loop (driver/cluster/service.py) ----------------------------

class DescribeWorkers(LoopEvent):
    """Query: the registered workers, as the service's status pages list them."""


class DescribeJobs(LoopEvent):
    """Query: the submitted jobs, as ``sluicegate jobs`` lists them."""


class SetJobCores(LoopEvent):
    """``sluicegate rebalance JOB --cores N`` over HTTP; answers ``(done, message)``."""
    job_id: str
    cores: int


Handler = Callable[[Any, float], Any]


class EventHandlers:
    """Event type -> handler ``(event, now) -> answer``, with a count per type.

    ``dispatch`` runs on the loop thread; ``counted`` may be read from any thread.
    """

    def __init__(self, owner: str, log: logging.Logger):
        self.owner = owner
        self.log = log
        self.table: dict[type, Handler] = {}
        self.counts: dict[type, int] = {}

    def on(self, handlers: dict[type, Handler]) -> None:
        """Add handlers (a later one for the same type replaces the earlier). Any thread
        may add them (one dict update), before it posts events of those types."""
        self.table.update(handlers)

    def dispatch(self, event, now: float):
        """Run ``event``'s handler and return its answer. An event of a type without a
        handler is logged and dropped (answered with None): the loop goes on."""
        kind = type(event)
        handler = self.table.get(kind)
        if handler is None:
            self.log.warning("%s: no handler for %r", self.owner, event)
            return None
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("%s: %r", self.owner, event)
        return handler(event, now)

    def counted(self) -> dict[str, int]:
        """How many events of each type ran, by type name."""
        return {kind.__name__: n for kind, n in list(self.counts.items())}

    def check(self, event) -> None:
        """Raise ``UnknownEvent`` if this table has no handler for ``event`` (any thread)."""
        if type(event) not in self.table:
            raise UnknownEvent(f"{self.owner} has no handler for {type(event).__name__}")


class UnknownEvent(TypeError):
    """An event was called on a loop that has no handler for its type."""
