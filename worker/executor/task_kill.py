"""Stopping a task the driver killed (its job was cancelled or failed).

The driver's ``KillTask`` arrives on the link thread; the task runs on the
main thread. The link thread marks the task killed and, at once (the job
asked for ``interruptOnCancel``) or after the kill timeout (Spark's
``spark.python.task.killTimeout``, 2 s), sends the main thread a signal whose
handler raises ``TaskKilled`` in the user's code: a ``time.sleep`` or a
blocking read is interrupted too. A task still running one more timeout
later (it swallowed the exception, or sits in C code that ignores signals)
takes the process with it, and the driver replaces the executor -- as
PySpark destroys a Python worker that does not stop.

The signal handler takes no lock and raises at most once per kill, and
only while the task thread has marked itself inside a task, so it can never
break the executor's own loop.
"""
from __future__ import annotations

import logging
import signal
import threading
from typing import Callable

from sluicegate.common.constants import TASK_KILL_TIMEOUT_S

log = logging.getLogger("sluicegate.worker.executor")

KILL_SIGNAL = signal.SIGUSR2
_INTERRUPT, _GIVE_UP = "interrupt", "give up"


class TaskKilled(BaseException):
    """Raised inside a task the driver killed. A ``BaseException``, as
    ``KeyboardInterrupt``: a user's ``except Exception`` does not swallow it."""


class KillSwitch:
    def __init__(self, on_stuck: Callable[[str], None],
                 timeout_s: float = TASK_KILL_TIMEOUT_S):
        self.timeout_s = timeout_s
        self._on_stuck = on_stuck
        self._lock = threading.Lock()  # never taken by the signal handler
        self._requests: dict[int, str] = {}  # task id -> why it was killed
        self._running: int | None = None     # the task the main thread is inside
        self._target: int | None = None      # the task the handler may raise in, once
        self._timer: tuple[int, float, str] | None = None  # task id, when, what then
        self._main = threading.main_thread().ident

    def install(self) -> None:
        """On the main thread, which runs the tasks."""
        signal.signal(KILL_SIGNAL, self._on_signal)

    # -- the link thread ------------------------------------------------------------
    def request(self, task_id: int, reason: str, interrupt: bool, now: float) -> None:
        with self._lock:
            self._requests[task_id] = reason
            if self._running == task_id and self._timer is None:
                self._timer = (task_id, now if interrupt else now + self.timeout_s, _INTERRUPT)
        # Not running yet: ``starting`` answers it. Already done: ``finished`` prunes it.
        self.tick(now)

    def tick(self, now: float) -> None:
        with self._lock:
            timer = self._timer
            if timer is None or now < timer[1]:
                return
            task_id, _, step = timer
            if self._running != task_id:
                self._timer = None
                return
            if step == _INTERRUPT:
                self._target = task_id
                self._timer = (task_id, now + self.timeout_s, _GIVE_UP)
        if step == _INTERRUPT:
            log.info("interrupting killed task %s: %s", task_id, self._requests.get(task_id))
            signal.pthread_kill(self._main, KILL_SIGNAL)
        else:
            self._on_stuck(f"killed task {task_id} was still running {self.timeout_s:.1f}s "
                           "after it was interrupted")

    # -- the task thread --------------------------------------------------------------
    def starting(self, task_id: int) -> str | None:
        """Why ``task_id`` was killed before it started, or None to run it."""
        with self._lock:
            return self._requests.get(task_id)

    def enter(self, task_id: int) -> None:
        self._running = task_id

    def leave(self) -> None:
        self._running = None

    def finished(self, task_id: int) -> str | None:
        """The task ended: why it was killed (its reply must say so), or None."""
        with self._lock:
            self._running = None
            self._target = None
            self._timer = None
            reason = self._requests.pop(task_id, None)
            # Tasks arrive in launch order, and ids grow with it: a request for an
            # earlier id came after its task had ended.
            for stale in [t for t in self._requests if t < task_id]:
                del self._requests[stale]
            return reason

    def _on_signal(self, signum, frame) -> None:
        target = self._target
        if target is not None and target == self._running:
            self._target = None
            raise TaskKilled(f"task {target} was killed: {self._requests.get(target, 'cancelled')}")
