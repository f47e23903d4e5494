"""How much memory this executor's shuffles may use, from the application's conf.

An executor runs one application; the driver hands the keys in
``common.config.EXECUTOR_KEYS`` over when the executor registers, and
``configure`` sets them here before any task runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from sluicegate.common import config as cfg


@dataclass
class ShuffleLimits:
    # spark.reducer.maxSizeInFlight: bytes requested from peers and not yet merged
    max_bytes_in_flight: int
    # spark.python.worker.memory: a task's aggregation (map-side combine,
    # reduce-side merge, buffered reduce input) before it spills to disk
    merge_memory_bytes: int


limits = ShuffleLimits(cfg.get_setting({}, cfg.REDUCER_MAX_SIZE_IN_FLIGHT),
                       cfg.get_setting({}, cfg.PYTHON_WORKER_MEMORY))


def configure(conf: Mapping) -> None:
    """Apply the application's settings (bad values raise ``ValueError`` naming the key)."""
    in_flight = cfg.get_setting(conf, cfg.REDUCER_MAX_SIZE_IN_FLIGHT)
    merge = cfg.get_setting(conf, cfg.PYTHON_WORKER_MEMORY)
    for key, value in ((cfg.REDUCER_MAX_SIZE_IN_FLIGHT, in_flight), (cfg.PYTHON_WORKER_MEMORY, merge)):
        if value <= 0:
            raise ValueError(f"bad value for {key}: {value} (must be positive)")
    limits.max_bytes_in_flight = in_flight
    limits.merge_memory_bytes = merge
