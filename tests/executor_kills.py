"""Killing an executor in the middle of a job, and checking the job got over it.

A job's tasks touch a marker file ``<pid>-<partition>`` when they start;
``BusyExecutorKiller`` SIGKILLs the first executor seen starting its second
task (so its first output is lost with it), and ``check_recovered`` asserts the
executor is gone and what it had computed was computed again elsewhere.
"""
from __future__ import annotations

import threading
from collections import defaultdict
from pathlib import Path

import psutil

from conftest import executor_processes
from waiting import wait_until


def markers_by_pid(directory: Path) -> dict[int, list[int]]:
    """Marker files ``<pid>-<partition>`` written by tasks when they start."""
    found: dict[int, list[int]] = defaultdict(list)
    for path in directory.iterdir():
        pid, partition = path.name.split("-")
        found[int(pid)].append(int(partition))
    return found


class BusyExecutorKiller(threading.Thread):
    """Kills the first executor that started its second task (started at once)."""

    def __init__(self, markers: Path):
        super().__init__(name="test-executor-killer", daemon=True)
        self.markers = markers
        self.pid: int | None = None
        self.partitions: list[int] = []
        self.start()

    def run(self) -> None:
        def busy_pid():
            return next((pid for pid, parts in markers_by_pid(self.markers).items()
                         if len(parts) >= 2), None)

        pid = wait_until(busy_pid, 60, "an executor to start its second task", 0.005)
        victim = next(proc for proc in executor_processes() if proc.pid == pid)
        self.partitions = list(markers_by_pid(self.markers)[pid])
        self.pid = pid
        victim.kill()

    def check_recovered(self) -> None:
        """The executor was killed mid-job, and its partitions ran again on others."""
        self.join(5)
        assert self.pid is not None, "the executor was not killed mid-job"
        assert not psutil.pid_exists(self.pid) or \
            psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE
        reran = markers_by_pid(self.markers)
        for partition in self.partitions:
            assert any(partition in parts for pid, parts in reran.items() if pid != self.pid), \
                f"partition {partition} of the killed executor was not recomputed"
