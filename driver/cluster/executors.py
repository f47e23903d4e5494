"""The executors an application has: liveness, slots, what each already holds.

An executor is alive from registration until it misses heartbeats past the
timeout, its process exits, or a send to it fails; then it is lost for
good (a restarted process registers under a new id).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sluicegate.common.protocol.executor import ExecutorHeartbeat, RegisterExecutor


@dataclass
class ExecutorInfo:
    executor_id: str
    host: str
    block_address: str
    cores: int
    memory_bytes: int
    pid: int
    registered_s: float
    last_seen_s: float
    running: set[int] = field(default_factory=set)        # task ids
    functions: set[int] = field(default_factory=set)      # closures already shipped
    running_report: list = field(default_factory=list)    # from the last heartbeat
    memory_used: int = 0
    disk_used: int = 0
    rss_bytes: int = 0
    tasks_done: int = 0
    tasks_failed: int = 0
    alive: bool = True
    lost_reason: str = ""

    @property
    def free_slots(self) -> int:
        return self.cores - len(self.running) if self.alive else 0

    def describe(self, now: float) -> dict:
        """As the status pages (``/workers``, ``/api/v1/workers``) list it."""
        return {"id": self.executor_id, "host": self.host, "cores": self.cores,
                "cores_used": len(self.running), "memory_bytes": self.memory_bytes,
                "memory_used": self.memory_used, "rss_bytes": self.rss_bytes, "pid": self.pid,
                "running_tasks": len(self.running), "tasks_done": self.tasks_done,
                # how long the running task has been going, from the last heartbeat:
                # a task stuck in user code shows here
                "running_task_ms": max((r[2] for r in self.running_report), default=0),
                "tasks_failed": self.tasks_failed, "block_address": self.block_address,
                "last_heartbeat_s_ago": round(now - self.last_seen_s, 1),
                "state": "ALIVE" if self.alive else f"LOST ({self.lost_reason})"}


class ExecutorRegistry:
    """Every executor the application has had, by id (the lost ones stay, so that their
    ids are refused and new executors are told of them)."""

    def __init__(self) -> None:
        self.executors: dict[str, ExecutorInfo] = {}

    def register(self, message: RegisterExecutor, now: float) -> ExecutorInfo | str:
        """The new executor, or why it is refused."""
        known = self.executors.get(message.executor_id)
        if known is not None and not known.alive:
            return f"executor id {message.executor_id} was declared lost ({known.lost_reason})"
        if known is not None:
            known.last_seen_s = now
            return known
        info = ExecutorInfo(message.executor_id, message.host, message.block_address,
                            max(1, message.cores), message.memory_bytes, message.pid, now, now)
        self.executors[message.executor_id] = info
        return info

    def get(self, executor_id: str) -> ExecutorInfo | None:
        return self.executors.get(executor_id)

    def alive(self) -> list[ExecutorInfo]:
        # list() copies in one step under the GIL: other threads ask too (total cores)
        return [e for e in list(self.executors.values()) if e.alive]

    def touch(self, executor_id: str, now: float) -> ExecutorInfo | None:
        info = self.executors.get(executor_id)
        if info is not None and info.alive:
            info.last_seen_s = now
            return info
        return None

    def heartbeat(self, message: ExecutorHeartbeat, now: float) -> None:
        info = self.touch(message.executor_id, now)
        if info is not None:
            info.running_report = message.running_tasks
            info.memory_used = message.memory_bytes_used
            info.disk_used = message.disk_bytes_used
            info.rss_bytes = message.rss_bytes

    def mark_lost(self, executor_id: str, reason: str) -> bool:
        info = self.executors.get(executor_id)
        if info is None or not info.alive:
            return False
        info.alive = False
        info.lost_reason = reason
        info.running.clear()
        return True

    def silent_since(self, now: float, timeout_s: float) -> list[str]:
        return [e.executor_id for e in self.executors.values()
                if e.alive and now - e.last_seen_s > timeout_s]

    def free_slots(self) -> dict[str, int]:
        return {e.executor_id: e.free_slots for e in self.executors.values() if e.free_slots > 0}
