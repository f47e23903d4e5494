"""What the executor's link to its driver decides, without sockets, threads or clocks.

``DriverLinkState`` is told each message from the driver with the time it
came (``receive``) and the passing of time (``tick``), and answers with one
instruction for its adapter (``driver_link.DriverLink``) to carry out, or
None. It owns the registration (``RegisterExecutor`` again every
``EXECUTOR_REGISTER_RETRY_S`` until the driver answers), the heartbeat
settings the driver sent, the executors the driver declared lost, and the
judgement that the driver is gone (silent past its heartbeat timeout, or the
parent process gone).

Instructions:

* a ``LaunchTask`` (queue it for the task thread), a ``KillTask`` (hand it to
  the kill switch), a ``PushBlock`` (store its block) and a ``DropBlocks``
  (remove what ``blocks_dropped_by`` matches) come back as they came: a
  wrapper would cost an allocation on the task path;
* a ``RegisterExecutor``: send it;
* ``CHECK_LIVENESS``: read what waits, then ask ``judge``;
* ``Configure``: the driver accepted us, apply its settings;
* ``Stop``: the process stops, for ``reason``;
* ``Unexpected``: a message an executor does not take, to be logged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sluicegate.common.config import TASK_KILL_TIMEOUT
from sluicegate.common.constants import (
    EXECUTOR_REGISTER_RETRY_S, HEARTBEAT_INTERVAL_S, HEARTBEAT_TIMEOUT_S)
from sluicegate.common.dealer_link import Every
from sluicegate.common.protocol.executor import (
    DriverHeartbeat, DropBlocks, ExecutorLost, ExecutorRegistered, KillTask, LaunchTask, PushBlock,
    RegisterExecutor, RegistrationRefused, StopExecutor)

from ..shuffle.block_ids import is_rdd_block_of, is_shuffle_block_of


@dataclass(frozen=True, slots=True)
class Configure:
    """Registered: apply the application's settings (file systems, shuffle limits)."""
    conf: dict
    kill_timeout_s: float | None  # spark.python.task.killTimeout, if the driver set it


@dataclass(frozen=True, slots=True)
class Stop:
    reason: str


@dataclass(frozen=True, slots=True)
class Unexpected:
    kind: str  # the message's type name


class _CheckLiveness:
    """Read what the driver sent meanwhile, then call ``judge``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "CHECK_LIVENESS"


CHECK_LIVENESS = _CheckLiveness()


class DriverLinkState:
    """The executor's view of its driver: registered or not, with which
    heartbeat settings, when last heard from, and which peers are lost."""

    def __init__(self, registration: RegisterExecutor, now: float):
        self.registration = registration
        self.registered = False
        self.heartbeat_interval_s = HEARTBEAT_INTERVAL_S
        self.heartbeat_timeout_s = HEARTBEAT_TIMEOUT_S
        self.last_heard = now
        self.lost_executors: set[str] = set()  # read by the task thread's fetcher
        self._register = Every(EXECUTOR_REGISTER_RETRY_S)
        self._liveness = Every(HEARTBEAT_INTERVAL_S)

    def receive(self, message, now: float):
        """The instruction for one message from the driver (see the module's list)."""
        self.last_heard = now  # any message is a heartbeat
        kind = type(message)
        if kind is LaunchTask or kind is KillTask or kind is PushBlock or kind is DropBlocks:
            return message
        if kind is DriverHeartbeat:
            return None
        if kind is ExecutorRegistered:
            return self._registered(message)
        if kind is ExecutorLost:
            self.lost_executors.add(message.executor_id)
            return None
        if kind is StopExecutor:
            return Stop(message.reason)
        if kind is RegistrationRefused:
            return Stop(f"driver refused registration: {message.reason}")
        return Unexpected(kind.__name__)

    def _registered(self, message: ExecutorRegistered) -> Configure:
        self.registered = True
        self.heartbeat_interval_s = message.heartbeat_interval_s
        self.heartbeat_timeout_s = message.heartbeat_timeout_s
        self._liveness.interval_s = message.heartbeat_interval_s
        kill_timeout = message.conf.get(TASK_KILL_TIMEOUT)
        return Configure(message.conf, float(kill_timeout)
                         if isinstance(kill_timeout, (int, float)) else None)

    def tick(self, now: float):
        """What is due: the registration (until answered), then the liveness
        check once per heartbeat interval; None when nothing is."""
        if not self.registered:
            return self.registration if self._register.due(now) else None
        return CHECK_LIVENESS if self._liveness.due(now) else None

    def judge(self, now: float, parent_alive: bool = True) -> Stop | None:
        """Whether the driver is gone: our parent process (the local driver,
        or the worker) died, or the driver has been silent past the timeout."""
        if not parent_alive:
            return Stop("the driver process is gone")
        if now - self.last_heard > self.heartbeat_timeout_s:
            return Stop(f"no word from the driver for {self.heartbeat_timeout_s:.0f}s")
        return None

    @property
    def poll_s(self) -> float:
        """How long the link may wait for input: it must tick once per heartbeat interval."""
        return min(self.heartbeat_interval_s, 0.2)


def blocks_dropped_by(message: DropBlocks) -> Callable[[str], bool]:
    """Whether a block id is one of those ``message`` drops: named, of a
    dropped shuffle, or of a dropped RDD."""
    doomed = set(message.block_ids)
    shuffle_ids, rdd_ids = message.shuffle_ids, message.rdd_ids
    return lambda block_id: (block_id in doomed
                             or any(is_shuffle_block_of(block_id, s) for s in shuffle_ids)
                             or any(is_rdd_block_of(block_id, r) for r in rdd_ids))
