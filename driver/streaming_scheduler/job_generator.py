"""Generating batches: the timer that says a batch is due, and what makes it.

Batch times are multiples of the batch duration on the context's clock. At
each one the ``BatchTimer`` posts ``GenerateJobs`` to the scheduler's loop,
which has the ``JobGenerator`` make the batch: receivers' blocks claimed, every
output's RDDs built and made a job, the input described. Generating is quick,
so when processing falls behind, batches queue up and their scheduling delay
shows it, as in Spark. Unlike Spark, the queue is capped: before each batch
the timer asks ``wait_for_room`` (flow control's
``spark.sluicegate.maxQueuedBatches``) and waits while the queue is full.
Batch times stay on their grid; a batch generated late takes all the data
that arrived meanwhile, and the batches that fell due while it waited follow
at once.
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Callable, Optional

from ..dstream.inputs import ReceiverInput
from .batch_runner import Batch, now_ms
from .streaming_listener import BatchInfo, OutputOperationInfo, StreamInputInfo

if TYPE_CHECKING:
    from ..dstream.graph import DStreamGraph
    from .flow_control import FlowControl

log = logging.getLogger("sluicegate.streaming")


def first_batch_time(now_ms: int, batch_ms: int) -> int:
    """The next multiple of the batch duration after ``now_ms``."""
    return (now_ms // batch_ms + 1) * batch_ms


class BatchTimer:
    """Fires ``due(time_ms)`` at every batch time, on a thread of its own."""

    def __init__(self, clock, batch_ms: int, due: Callable[[int], None],
                 wait_for_room: Optional[Callable[[int, threading.Event], bool]] = None):
        """``wait_for_room(time_ms, stop)`` returns when the batch at ``time_ms`` may be
        generated (False: stop was set meanwhile)."""
        self.clock = clock
        self.batch_ms = batch_ms
        self.due = due
        self.wait_for_room = wait_for_room
        self.next_ms: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, first_ms: int) -> None:
        self.next_ms = first_ms
        self._thread = threading.Thread(target=self._run, name="streaming-job-generator", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self.clock.wait_until(self.next_ms, self._stop):
            time_ms = self.next_ms
            if self.wait_for_room is not None and not self.wait_for_room(time_ms, self._stop):
                break
            try:
                self.due(time_ms)
            except Exception:  # noqa: BLE001 - the timer must keep firing
                log.exception("could not generate the batch at %s", time_ms)
            self.next_ms = time_ms + self.batch_ms

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)


class JobGenerator:
    """Makes the batch at a time (Spark's ``JobGenerator.generateJobs``): the
    receivers' waiting blocks go to it, every output operation due then builds its
    RDDs and becomes a job, and its ``BatchInfo`` describes each input's share.

    ``receivers``: the received-block tracker's owner (``allocate`` via ``blocks``,
    ``input_metadata``); ``flow``: flow control (the rate limit in each input's
    metadata). An error while building the jobs (user code runs then) goes to
    ``on_error``, and the batch has no jobs.
    """

    def __init__(self, receivers, flow: "FlowControl", on_error: Callable[[BaseException], None]):
        self.receivers = receivers
        self.flow = flow
        self.on_error = on_error

    def generate(self, graph: "DStreamGraph", time_ms: int) -> Batch:
        receiver_ids = [op.stream_id for op in graph.input_ops() if isinstance(op, ReceiverInput)]
        self.receivers.blocks.allocate(time_ms, receiver_ids)
        try:
            jobs = graph.generate_jobs(time_ms)
        except Exception as exc:  # noqa: BLE001 - user code ran while building the batch
            log.error("batch %s could not be generated: %s", time_ms, exc)
            self.on_error(exc)
            jobs = []
        info = BatchInfo(time_ms, now_ms())  # submitted once its jobs exist, as in Spark
        for op in graph.input_ops():
            if op.reports_input_info:
                notes = getattr(op, "input_metadata", None)  # e.g. a Kafka batch's offsets
                info.input_infos[op.stream_id] = StreamInputInfo(
                    op.stream_id, op.num_records(time_ms), self.flow.input_metadata(
                        op.stream_id, notes(time_ms) if notes
                        else self.receivers.input_metadata(time_ms, op.stream_id)))
            else:
                info.unreported_records += op.num_records(time_ms)
        for op, _ in jobs:
            info.output_infos[op.output_id] = OutputOperationInfo(time_ms, op.output_id, op.name,
                                                                  op.description)
        return Batch(info, [(op.output_id, job) for op, job in jobs])
