"""Streaming dynamic allocation: executors that follow the load (Spark 3's policy).

Every ``spark.streaming.dynamicAllocation.scalingInterval`` (60 s) the
average processing time of the batches completed since the last decision
(failed batches left out) is compared with the batch interval:

* ratio >= ``scalingUpRatio`` (0.9): ask for ``max(1, round(ratio))`` more
  executors, up to ``maxExecutors``;
* ratio <= ``scalingDownRatio`` (0.3): remove one executor, down to
  ``minExecutors`` (default 1: receivers run in the driver here, so none of
  the executors is tied to one, unlike Spark).

The decision is ``decide`` (pure); ``AllocationManager`` feeds it from the
listener bus and hands its answer to the executor scaler, which starts
processes within ``local[N]`` or asks the cluster's service, and removes
executors by draining them (``driver/cluster/scaling.py``). Use it with
backpressure, as Spark advises: backpressure keeps the job stable while the
executor count moves.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sluicegate.common import config as cfg

from .streaming_listener import StreamingListener

log = logging.getLogger("sluicegate.streaming.allocation")


@dataclass(frozen=True)
class AllocationSettings:
    interval_s: float = 60.0
    up_ratio: float = 0.9
    down_ratio: float = 0.3
    min_executors: int = 1
    max_executors: int | None = None

    @classmethod
    def from_conf(cls, conf: dict, max_possible: int | None) -> "AllocationSettings":
        """``max_possible``: local[N]'s N (None on a cluster)."""
        settings = cls(cfg.get_setting(conf, cfg.DYN_ALLOCATION_SCALING_INTERVAL),
                       cfg.get_setting(conf, cfg.DYN_ALLOCATION_UP_RATIO),
                       cfg.get_setting(conf, cfg.DYN_ALLOCATION_DOWN_RATIO),
                       cfg.get_setting(conf, cfg.DYN_ALLOCATION_MIN_EXECUTORS) or 1,
                       cfg.get_setting(conf, cfg.DYN_ALLOCATION_MAX_EXECUTORS))
        if settings.interval_s <= 0:
            raise ValueError(f"{cfg.DYN_ALLOCATION_SCALING_INTERVAL} must be positive")
        if settings.up_ratio <= settings.down_ratio:
            raise ValueError(f"{cfg.DYN_ALLOCATION_UP_RATIO} ({settings.up_ratio}) must be more "
                             f"than {cfg.DYN_ALLOCATION_DOWN_RATIO} ({settings.down_ratio})")
        if settings.min_executors < 1:
            raise ValueError(f"{cfg.DYN_ALLOCATION_MIN_EXECUTORS} must be at least 1")
        if settings.max_executors is not None and settings.max_executors < settings.min_executors:
            raise ValueError(f"{cfg.DYN_ALLOCATION_MAX_EXECUTORS} ({settings.max_executors}) must "
                             f"be at least {cfg.DYN_ALLOCATION_MIN_EXECUTORS} "
                             f"({settings.min_executors})")
        if max_possible is not None:
            cap = max_possible if settings.max_executors is None else \
                min(settings.max_executors, max_possible)
            settings = AllocationSettings(settings.interval_s, settings.up_ratio,
                                          settings.down_ratio,
                                          min(settings.min_executors, cap), cap)
        return settings


def decide(avg_processing_ms: float | None, batch_ms: int, current: int,
           settings: AllocationSettings) -> int:
    """The executor total after one scaling interval (``current`` if nothing changes)."""
    if avg_processing_ms is None:
        return current
    ratio = avg_processing_ms / batch_ms
    if ratio >= settings.up_ratio:
        target = current + max(1, round(ratio))
        if settings.max_executors is not None:
            target = min(target, settings.max_executors)
        return max(target, settings.min_executors)
    if ratio <= settings.down_ratio and current > settings.min_executors:
        return current - 1
    return current


class AllocationManager(StreamingListener):
    """Scales the application's executors with its batches' processing time."""

    def __init__(self, settings: AllocationSettings, batch_ms: int, scaler):
        self.settings = settings
        self.batch_ms = batch_ms
        self.scaler = scaler
        self._sum_ms = 0
        self._count = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.decisions: list[tuple[float, int, int]] = []  # (ratio, before, after)

    def onBatchCompleted(self, batchCompleted) -> None:
        info = batchCompleted.batchInfo()
        if info.failed() or info.processingDelay() < 0:
            return
        with self._lock:
            self._sum_ms += info.processingDelay()
            self._count += 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="streaming-executor-allocation",
                                        daemon=True)
        self._thread.start()
        log.info("streaming dynamic allocation: ratios %.2f/%.2f every %.0fs, %d..%s executors",
                 self.settings.up_ratio, self.settings.down_ratio, self.settings.interval_s,
                 self.settings.min_executors, self.settings.max_executors or "any")

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.interval_s):
            try:
                self.manage()
            except Exception:  # noqa: BLE001 - one bad decision must not end scaling
                log.exception("streaming dynamic allocation failed")

    def manage(self) -> int:
        """One decision (the timer calls it); the executor total aimed at."""
        with self._lock:
            average = self._sum_ms / self._count if self._count else None
            self._sum_ms, self._count = 0, 0
        current = self.scaler.executor_count()
        target = decide(average, self.batch_ms, current, self.settings)
        if target != current:
            ratio = average / self.batch_ms
            self.decisions.append((ratio, current, target))
            log.info("batches take %.0f%% of the batch interval: %d -> %d executors",
                     ratio * 100, current, target)
            self.scaler.scale_to(target, f"dynamic allocation: processing/interval {ratio:.2f}")
        return target
