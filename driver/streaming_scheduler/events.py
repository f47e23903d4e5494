"""The events of the streaming scheduler's loop: Spark's JobGenerator vocabulary.

Other threads only post these (the batch timer ``GenerateJobs``, the batch
runner ``BatchCompleted``); the loop thread handles them one at a time, in
order (``JobScheduler``), and posts the follow-ups itself. Each is a small
frozen record, so a test can replay a sequence against a scheduler with fake
parts and no threads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .batch_runner import Batch


@dataclass(frozen=True, slots=True)
class GenerateJobs:
    """The batch at ``time_ms`` is due (or, on recovery, must run again): claim its
    received blocks, build its jobs, record it in the metadata checkpoint, hand it
    to the runner."""

    time_ms: int


@dataclass(frozen=True, slots=True)
class BatchCompleted:
    """The last output job of ``batch`` ended (Spark's JobCompleted of a job set's
    last job): its input leaves the receivers' buffers; ``ClearMetadata`` follows."""

    batch: "Batch"


@dataclass(frozen=True, slots=True)
class ClearMetadata:
    """The batch at ``time_ms`` is done: streams forget the RDDs that fell out of
    their remember window, stateful streams note their new state checkpoints, and
    the batch is no longer pending; ``DoCheckpoint`` follows."""

    time_ms: int


@dataclass(frozen=True, slots=True)
class DoCheckpoint:
    """Write the metadata checkpoint as of now (after the batch at ``time_ms``).
    ``stale_paths``: state checkpoint directories the record no longer names,
    deleted once it is durable (Spark's clearCheckpointDataLater)."""

    time_ms: int
    stale_paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StopLoop:
    """The loop ends after the events posted before this one."""
