"""Changing how many executors a running application has, without losing what they hold.

Adding: in local mode the backend starts executor processes (never more
than ``local[N]``'s N); on a cluster the job asks the driver service for a
new total (``RequestExecutors``), which it grants within its fair share.

Removing is a drain, not a kill. The executor gets no new tasks, and tasks
that prefer its blocks no longer wait for it; but it still serves its cached
partitions (a stream's state) and blocks to its peers, so the next batches
compute their state on the others from what it holds. Once it runs no task
and ``settle_s`` (two batch intervals for a stream) has passed, it is
forgotten -- as a lost executor, so anything still needed from it is
recomputed from lineage -- and told to stop; its process exits and is not
replaced. Executors that run nothing and hold the fewest blocks go first.

The scaler's decisions run on the driver's loop thread, which owns the
executor registry and the scheduler: other threads post ``DrainExecutors``
and, while drains last, a watcher posts ``FinishDrains`` (``loop_events``).
"""
from __future__ import annotations

import logging
import threading
import time

from sluicegate.common.protocol.executor import StopExecutor

from .loop_events import DrainExecutors, FinishDrains

log = logging.getLogger("sluicegate.driver.scaling")

CHECK_S = 0.1
MAX_DRAIN_S = 120.0  # a task still running after this is re-run elsewhere


class ExecutorScaler:
    def __init__(self, endpoint, backend, local: bool, settle_s: float = 2.0):
        self.endpoint = endpoint
        self.backend = backend
        self.local = local
        self.settle_s = settle_s
        self.draining: dict[str, tuple[float, str]] = {}  # executor id -> (since, reason)
        self.removed: list[str] = []
        self._pending_drains = 0  # asked for, not yet chosen on the loop thread
        self.added = 0
        self._lock = threading.Lock()
        self._watching = False
        endpoint.events.on({DrainExecutors: self._start_drain, FinishDrains: self._finish_drains})

    @classmethod
    def of(cls, runtime) -> "ExecutorScaler":
        """The application's scaler (one per application; a cluster job's backend has it,
        since the service may ask it to shrink at any time)."""
        scaler = getattr(runtime.backend, "scaler", None) or getattr(runtime, "_scaler", None)
        if scaler is None:
            scaler = runtime._scaler = cls(runtime.endpoint, runtime.backend,
                                           runtime.master.kind == "local")
        return scaler

    @property
    def max_executors(self) -> int | None:
        """local[N]'s N; None on a cluster (the service decides)."""
        return self.backend.max_executors if self.local else None

    def executor_count(self) -> int:
        """Executors that count: running (or starting, in local mode), not draining."""
        with self._lock:
            draining = set(self.draining)
            pending = self._pending_drains
        if self.local:
            return len([e for e in self.backend.running() if e not in draining]) - pending
        alive = {e.executor_id for e in self.endpoint.registry.alive()}
        return len(alive - draining) - pending

    # -- the decisions ------------------------------------------------------------------------
    def scale_to(self, total: int, reason: str) -> int:
        """Run ``total`` executors (at least 1; local mode: at most N); the total aimed at."""
        total = max(1, int(total))
        if self.max_executors is not None:
            total = min(total, self.max_executors)
        current = self.executor_count()
        if not self.local:
            self.backend.request_total(total)  # first: the service must not refill
        if total > current:
            if self.local:
                for _ in range(total - current):
                    self.backend.add()
                    self.added += 1
            log.info("scaling up to %d executors (%s)", total, reason)
        elif total < current:
            self.drain(current - total, reason)
        return total

    def drain_to(self, total: int, reason: str) -> None:
        """The service's word (rebalance): run at most ``total`` executors."""
        excess = self.executor_count() - max(0, total)
        if excess > 0:
            self.drain(excess, reason)

    def drain(self, count: int, reason: str) -> None:
        """Drain ``count`` executors and stop them (asynchronously)."""
        with self._lock:
            self._pending_drains += count
        self.endpoint.post(DrainExecutors(count, reason))

    # -- on the loop thread ------------------------------------------------------------------
    def _start_drain(self, event: DrainExecutors, now: float) -> None:
        count, reason = event.count, event.reason
        endpoint = self.endpoint
        dag = endpoint.dag
        with self._lock:
            self._pending_drains -= count
            draining = set(self.draining)
        candidates = [e for e in endpoint.registry.alive() if e.executor_id not in draining]
        if len(candidates) <= 1:
            return  # never the last one
        count = min(count, len(candidates) - 1)
        counts = dag.block_locations.held_by()
        held = {e.executor_id: counts.get(e.executor_id, 0) for e in candidates}
        order = {e.executor_id: i for i, e in enumerate(candidates)}
        # idle first, then the fewest blocks, then the newest
        chosen = sorted(candidates, key=lambda e: (len(e.running), held[e.executor_id],
                                                   -order[e.executor_id]))[:count]
        for info in chosen:
            info.cores = 0  # no free slot: no new task
            dag.draining.add(info.executor_id)
            with self._lock:
                self.draining[info.executor_id] = (now, reason)
            log.info("draining executor %s (%s): no new tasks; its %d blocks are served until "
                     "the next batches replace them", info.executor_id, reason,
                     held[info.executor_id])
        self._watch()

    def _watch(self) -> None:
        with self._lock:
            if self._watching:
                return
            self._watching = True

        def loop():
            while True:
                time.sleep(CHECK_S)
                with self._lock:
                    if not self.draining:
                        self._watching = False
                        return
                if not self.endpoint.alive:
                    with self._lock:
                        self._watching = False
                    return
                self.endpoint.post(FinishDrains())

        threading.Thread(target=loop, name="executor-drain", daemon=True).start()

    def _finish_drains(self, event: FinishDrains, now: float) -> None:
        endpoint = self.endpoint
        with self._lock:
            draining = dict(self.draining)
        for executor_id, (since, reason) in draining.items():
            info = endpoint.registry.get(executor_id)
            if info is not None and info.alive:
                busy = bool(info.running)
                if now - since < self.settle_s or (busy and now - since < MAX_DRAIN_S):
                    continue
            with self._lock:
                self.draining.pop(executor_id, None)
            endpoint.dag.draining.discard(executor_id)
            if info is None or not info.alive:
                continue  # it went by itself meanwhile
            retire = getattr(self.backend, "retire", None)
            if retire is not None:
                retire(executor_id)  # first: its exit must not be replaced
            endpoint.remove_executor(executor_id, f"removed ({reason})", now)
            endpoint.send(executor_id.encode(), StopExecutor(f"removed: {reason}"))
            self.removed.append(executor_id)
            log.info("executor %s removed (%s)", executor_id, reason)
