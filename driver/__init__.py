"""sluicegate's job API: PySpark's names, arguments and semantics.

Port a PySpark job by changing its imports::

    from sluicegate.driver import SparkConf, SparkContext

The names are imported on first use (PEP 562), so importing a module of this
package -- the ``sluicegate`` command, whose ``worker`` needs none of the job
API -- does not import the whole driver.
"""
from __future__ import annotations

import importlib
from typing import Any

# Each public name and the module that defines it (a leading dot: in this package).
_HOMES = {
    "Accumulator": "sluicegate.common.accumulators",
    "AccumulatorParam": "sluicegate.common.accumulators",
    "Broadcast": "sluicegate.common.broadcast",
    "portable_hash": "sluicegate.common.hashing",
    "ResultIterable": "sluicegate.common.resultiterable",
    "StorageLevel": "sluicegate.common.storagelevel",
    "TaskContext": "sluicegate.common.taskcontext",
    "SparkConf": ".context.conf",
    "SparkContext": ".context.spark_context",
    "StreamingContext": ".context.streaming_context",
    "DStream": ".dstream.base",
    "StateSpec": ".dstream.stateful",
    "Receiver": ".receivers.receiver",
    "ManualClock": ".streaming_scheduler.clock",
    "BatchInfo": ".streaming_scheduler.streaming_listener",
    "StreamingListener": ".streaming_scheduler.streaming_listener",
    "RDD": ".rdd.base",
    "Partitioner": ".rdd.partitioner",
    "JobFailedError": ".scheduler.jobs",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value  # looked up once: later uses are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
