"""Messages between the driver and a receiver running in a process of its own
(``spark.sluicegate.receiver.isolation=process``; codes 170-179).

The receiver process connects a DEALER to a ROUTER its driver-side link binds
on loopback (authenticated like every other connection), says it is ready,
and gets the pickled receiver and its settings. Every block it cuts or a
reliable ``store(list)`` makes travels as ``StoreBlock`` (the records as the
first payload frame, the pickled metadata as the second); the driver writes
the write-ahead log, keeps and pushes the block, records it, and only then
acknowledges (``BlockStored``) -- so a reliable store returns, in the
receiver process, only once its block is durable. ``ReceiverFlow`` carries the
backpressure rate and the blocks whose batches are done (their room in the
receiver's buffer is free again). The receiver's lifecycle events travel as
``ReceiverStatus`` to the driver's listener bus.
"""
from __future__ import annotations

from dataclasses import field

from .records import WireRecord, wire_record


@wire_record(170)
class ReceiverReady(WireRecord):
    stream_id: int
    pid: int


@wire_record(171)
class StartReceiver(WireRecord):
    """``payload``: the cloudpickled receiver, then its pickled last stored metadata."""
    stream_id: int
    block_interval_s: float
    max_rate: float
    rate: float               # the limit in force now (0: none)
    restart_delay_s: float
    max_line_bytes: int
    max_buffer_bytes: int
    burst_s: float
    spread: int
    held: list                # [block id, bytes] of its blocks no batch has finished with
    payload: list = field(default_factory=list)


@wire_record(172)
class StoreBlock(WireRecord):
    """``payload``: the block's record batch, then its pickled metadata."""
    stream_id: int
    seq: int
    block_id: str
    num_records: int
    payload: list = field(default_factory=list)


@wire_record(173)
class BlockStored(WireRecord):
    seq: int
    ok: bool
    error: str
    spread: int               # how many blocks a large interval becomes now (the executors)


@wire_record(174)
class ReceiverNotes(WireRecord):
    """Counts of text that was not clean, before the blocks they belong with."""
    stream_id: int
    notes: dict


@wire_record(175)
class ReceiverStatus(WireRecord):
    stream_id: int
    event: str                # "started", "error" or "stopped"
    active: bool
    message: str
    error: str
    time_ms: int


@wire_record(176)
class ReceiverFlow(WireRecord):
    rate: float               # 0: leave the rate as it is
    released: list[str]       # blocks whose batches are done


@wire_record(177)
class StopReceiverProcess(WireRecord):
    reason: str


@wire_record(178)
class ReceiverDone(WireRecord):
    """The receiver stopped and its last blocks were acknowledged."""
    stream_id: int
