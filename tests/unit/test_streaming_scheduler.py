"""The streaming scheduler's loop, batch runner and checkpoint writer, with fake parts.

Events are replayed on the test's thread (``JobScheduler.handle``) against a
fake graph, receivers and runner: no SparkContext, no processes, no sockets.
"""
from __future__ import annotations

import pickle
import struct
import threading

from sluicegate.driver.checkpoint import metadata
from sluicegate.driver.context.job_control import LocalProperties
from sluicegate.driver.dstream.inputs import ReceiverInput
from sluicegate.driver.receivers.received_blocks import BlockInfo
from sluicegate.driver.scheduler.batch_tag import (
    BATCH_TIME_KEY, CALL_SITE_KEY, OUTPUT_OP_ID_KEY, BatchTag)
from sluicegate.driver.streaming_scheduler.batch_runner import Batch, BatchRunner
from sluicegate.driver.streaming_scheduler.block_tracker import ReceivedBlockTracker
from sluicegate.driver.streaming_scheduler.checkpoint_writer import (
    CheckpointTarget, CheckpointWriter)
from sluicegate.driver.streaming_scheduler.events import (
    BatchCompleted, ClearMetadata, DoCheckpoint, GenerateJobs, StopLoop)
from sluicegate.driver.streaming_scheduler.job_scheduler import JobScheduler
from sluicegate.driver.streaming_scheduler.streaming_listener import (
    BatchInfo, OutputOperationInfo)


class Output:
    def __init__(self, output_id: int):
        self.output_id = output_id
        self.name = "foreachRDD"
        self.description = f"foreachRDD at job.py:{10 + output_id}"


class Stream:
    _must_checkpoint = False

    def __init__(self, stale: list[list[str]]):
        self.stale = stale

    def _note_checkpoints(self) -> list[str]:
        return self.stale.pop(0) if self.stale else []


class Graph:
    """The DStream graph as the scheduler uses it; pickles, as a checkpoint needs."""

    def __init__(self, outputs: int = 3, inputs=(), stale=None):
        self.outputs = [Output(i) for i in range(outputs)]
        self.inputs = list(inputs)
        self.streams = [Stream(stale or [])]
        self.zero_ms = 0
        self.cleared: list[int] = []
        self.fail = False

    def input_ops(self):
        return self.inputs

    def generate_jobs(self, time_ms: int):
        if self.fail:
            raise ValueError("user code failed while building the batch")
        return [(op, f"job {op.output_id} of {time_ms}") for op in self.outputs]

    def clear_old(self, time_ms: int) -> None:
        self.cleared.append(time_ms)

    def all_streams(self):
        return self.streams

    def shape(self) -> dict:
        return {"batch_ms": 1000, "remember_ms": None, "streams": []}

    def __getstate__(self):
        return {"outputs": len(self.outputs)}

    def __setstate__(self, state):
        self.__init__(state["outputs"])


class Receivers:
    def __init__(self):
        self.blocks = ReceivedBlockTracker()
        self.supervisors: list = []
        self.wal = None

    def input_metadata(self, batch_ms: int, stream_id: int) -> dict:
        return {}


class Runner:
    def __init__(self):
        self.expected = 0
        self.released = 0
        self.submitted: list[Batch] = []
        self.pending_batches = 0

    def expect(self):
        self.expected += 1

    def release(self):
        self.released += 1

    def submit(self, batch: Batch):
        self.submitted.append(batch)

    def wait_for_fewer(self, count, timeout_s):
        pass


class Writer:
    def __init__(self):
        self.records: list[tuple] = []

    def submit(self, directory, time_ms, data, stale=()):
        self.records.append((directory, time_ms, data, tuple(stale)))
        return None if data is None else f"ticket {len(self.records)}"


class Scheduler(JobScheduler):
    """Posted events are kept for the test to handle, in order."""

    def post(self, event) -> None:
        self.posted.append(event)


def new_scheduler(graph=None, target=False):
    errors: list[BaseException] = []
    writer = Writer()
    scheduler = Scheduler(batch_ms=1000, graph=graph or Graph(), clock=None, bus=None,
                          receivers=Receivers(), conf={}, store_input_block=lambda i, d: None,
                          on_error=errors.append, writer=writer)
    scheduler.posted = []
    scheduler.runner = Runner()
    if target:
        scheduler.enable_checkpoints(CheckpointTarget(
            directory="/ckpt", fingerprint="f", app_name="app", conf={}, batch_ms=1000,
            wal_enabled=False, clock=None))
    return scheduler, writer, errors


def unpickled(data: bytes) -> metadata.StreamingCheckpoint:
    """The record in a serialized checkpoint file (past its header)."""
    start = len(metadata.MAGIC) + 4
    (header_bytes,) = struct.unpack(">I", data[len(metadata.MAGIC):start])
    return pickle.loads(data[start + header_bytes:])


def test_a_due_batch_counts_as_queued_before_the_loop_generates_it():
    scheduler, _, _ = new_scheduler()
    scheduler._batch_due(1000)
    assert scheduler.runner.expected == 1 and scheduler.posted == [GenerateJobs(1000)]


def test_generate_jobs_claims_the_blocks_and_submits_the_jobs_in_output_order():
    receiver_input = ReceiverInput(1000, 0, receiver=None)
    scheduler, writer, _ = new_scheduler(Graph(inputs=[receiver_input]))
    scheduler.receivers.blocks.add(0, BlockInfo("input_0_a", 5))
    scheduler.handle(GenerateJobs(1000))
    [batch] = scheduler.runner.submitted
    assert [output_id for output_id, _ in batch.jobs] == [0, 1, 2]
    assert [job for _, job in batch.jobs] == ["job 0 of 1000", "job 1 of 1000", "job 2 of 1000"]
    assert batch.info.output_infos[2].description() == "foreachRDD at job.py:12"
    assert scheduler.receivers.blocks.blocks_of(1000, 0) == [BlockInfo("input_0_a", 5)]
    assert scheduler.pending == {1000} and scheduler.last_generated_ms == 1000
    assert batch.durable is None and writer.records == []  # no metadata checkpoints


def test_a_batch_whose_jobs_cannot_be_built_reports_the_error_and_runs_empty():
    graph = Graph()
    graph.fail = True
    scheduler, _, errors = new_scheduler(graph)
    scheduler.handle(GenerateJobs(1000))
    assert [type(e) for e in errors] == [ValueError]
    assert scheduler.runner.submitted[0].jobs == []


def test_a_batch_that_cannot_be_made_gives_its_place_in_the_queue_back():
    scheduler, _, _ = new_scheduler()
    scheduler.receivers.blocks = None  # claiming its blocks fails
    scheduler.handle(GenerateJobs(1000))
    assert scheduler.runner.submitted == [] and scheduler.runner.released == 1


def test_the_generation_record_goes_to_the_writer_before_the_batch_to_the_runner():
    scheduler, writer, _ = new_scheduler(target=True)
    scheduler.handle(GenerateJobs(1000))
    [(directory, time_ms, data, stale)] = writer.records
    record = unpickled(data)
    assert (directory, time_ms, stale) == ("/ckpt", 1000, ())
    assert record.pending_ms == [1000] and record.time_ms == 1000
    assert scheduler.runner.submitted[0].durable == "ticket 1"


def test_batch_completed_clears_metadata_then_checkpoints_with_the_stale_state():
    scheduler, writer, _ = new_scheduler(Graph(stale=[["/ckpt/app/rdd-1"]]), target=True)
    scheduler.handle(GenerateJobs(1000))
    scheduler.handle(GenerateJobs(2000))
    scheduler.handle(BatchCompleted(scheduler.runner.submitted[0]))
    assert scheduler.posted == [ClearMetadata(1000)]
    scheduler.handle(scheduler.posted.pop())
    assert scheduler.graph.cleared == [1000] and scheduler.pending == {2000}
    assert scheduler.posted == [DoCheckpoint(1000, ("/ckpt/app/rdd-1",))]
    scheduler.handle(scheduler.posted.pop())
    directory, time_ms, data, stale = writer.records[-1]
    assert (time_ms, stale) == (2000, ("/ckpt/app/rdd-1",))  # as of the newest batch
    record = unpickled(data)
    assert record.pending_ms == [2000]


def test_without_metadata_checkpoints_cleanup_checkpoints_nothing_but_drops_stale_state():
    scheduler, writer, _ = new_scheduler(Graph(stale=[[], ["/state/rdd-3"]]))
    for time_ms in (1000, 2000):
        scheduler.handle(GenerateJobs(time_ms))
        scheduler.handle(ClearMetadata(time_ms))
    assert scheduler.posted == [DoCheckpoint(2000, ("/state/rdd-3",))]
    scheduler.handle(scheduler.posted.pop())
    assert writer.records == [(None, 2000, None, ("/state/rdd-3",))]


def test_the_loop_thread_handles_posted_events_in_order_and_stops():
    handled: list = []
    scheduler = JobScheduler(batch_ms=1000, graph=Graph(), clock=None, bus=None,
                             receivers=Receivers(), conf={}, store_input_block=lambda i, d: None,
                             on_error=lambda e: None, writer=Writer())
    scheduler._handlers[ClearMetadata] = handled.append
    thread = threading.Thread(target=scheduler._run)
    thread.start()
    for time_ms in (1000, 2000, 3000):
        scheduler.post(ClearMetadata(time_ms))
    assert scheduler._wait_loop_idle(5)
    scheduler.post(StopLoop())
    thread.join(5)
    assert not thread.is_alive() and [e.time_ms for e in handled] == [1000, 2000, 3000]


# -- the batch runner ----------------------------------------------------------------------

class Bus:
    def __init__(self):
        self.events: list = []

    def post(self, event):
        self.events.append(event)


def test_the_runner_waits_for_the_generation_record_and_tags_the_jobs_thread():
    release = threading.Event()
    writer = CheckpointWriter(write=lambda directory, time_ms, data: release.wait(5))
    properties = LocalProperties()
    seen: list = []
    done = threading.Event()

    def job():
        properties.values["spark.jobGroup.id"] = "set by the user"
        seen.append(dict(properties.values))

    runner = BatchRunner(1, Bus(), lambda batch: done.set(), lambda e: None, properties)
    runner.start()
    try:
        info = BatchInfo(1500, 0)
        info.output_infos[4] = OutputOperationInfo(1500, 4, "foreachRDD", "pprint at job.py:9")
        batch = Batch(info, [(4, job)], durable=writer.submit("/ckpt", 1500, b"record"))
        runner.expect()
        runner.submit(batch)
        assert not done.wait(0.05) and seen == []  # the record is not written yet
        release.set()
        assert done.wait(5) and runner.wait_idle(5)
    finally:
        runner.stop()
        writer.stop()
    [values] = seen
    assert BatchTag.of(values) == BatchTag(1500, 4, "pprint at job.py:9")
    assert values[BATCH_TIME_KEY] == "1500" and values[OUTPUT_OP_ID_KEY] == "4"


def test_the_runner_thread_keeps_what_user_code_set_but_not_the_batch():
    properties = LocalProperties()
    properties.values.update({BATCH_TIME_KEY: "1", OUTPUT_OP_ID_KEY: "2", CALL_SITE_KEY: "x",
                              "spark.jobGroup.id": "mine"})
    runner = BatchRunner(1, Bus(), lambda batch: None, lambda e: None, properties)
    info = BatchInfo(1000, 0)
    info.output_infos[0] = OutputOperationInfo(1000, 0, "foreachRDD", "d")
    runner._run_job(Batch(info, []), 0, info.output_infos[0], lambda: None)
    assert properties.values == {"spark.jobGroup.id": "mine"}
    assert BatchTag.of(properties.values) is None and BatchTag.of(None) is None


# -- the checkpoint writer -----------------------------------------------------------------

def test_the_writer_writes_only_the_newest_waiting_record_and_then_deletes_stale_state():
    entered, release = threading.Event(), threading.Event()
    written: list[int] = []
    removed: list[str] = []

    def write(directory, time_ms, data):
        written.append(time_ms)
        entered.set()
        release.wait(5)

    writer = CheckpointWriter(write=write, remove=removed.append)
    first = writer.submit("/ckpt", 1000, b"1")
    assert entered.wait(5)  # the writer is busy with the first record
    second = writer.submit("/ckpt", 2000, b"2", ["/ckpt/app/rdd-1"])
    third = writer.submit("/ckpt", 3000, b"3", ["/ckpt/app/rdd-2"])
    assert not second.wait(0.01) and removed == []
    release.set()
    assert third.wait(5) and second.wait(0) and first.wait(0)
    assert writer.wait_idle(5)
    writer.stop()
    assert written == [1000, 3000]  # the second record was superseded before its turn
    assert removed == ["/ckpt/app/rdd-1", "/ckpt/app/rdd-2"]


def test_state_made_stale_by_a_record_that_failed_waits_for_the_next_record_written():
    outcomes = [OSError("disk full"), None]
    removed: list[str] = []

    def write(directory, time_ms, data):
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    writer = CheckpointWriter(write=write, remove=removed.append)
    assert writer.submit("/ckpt", 1000, b"1", ["/ckpt/app/rdd-1"]).wait(5)
    assert writer.wait_idle(5) and removed == []  # the newest file may still name it
    assert writer.submit("/ckpt", 2000, b"2").wait(5) and writer.wait_idle(5)
    writer.stop()
    assert removed == ["/ckpt/app/rdd-1"] and writer.written == 1


def test_without_records_stale_state_is_deleted_at_once():
    removed: list[str] = []
    writer = CheckpointWriter(write=None, remove=removed.append)
    assert writer.submit(None, 1000, None, ["/state/rdd-9"]) is None
    assert writer.wait_idle(5)
    writer.stop()
    assert removed == ["/state/rdd-9"]
