"""Typed loop events (driver/cluster/loop_events.py): each event type reaches its
handler, is counted, and an unknown one is logged, not fatal. Events are replayed
against a ``DriverEndpoint`` whose ROUTER is a stand-in: no loop thread, no socket."""
from __future__ import annotations

import logging
import os
import threading

import pytest

from sluicegate.common.protocol.executor import (
    DropBlocks, ExecutorLost, PushBlock, RegisterExecutor, StopExecutor)
from sluicegate.driver.cluster.endpoint import DriverEndpoint
from sluicegate.driver.cluster.executor_fleet import FleetSettings
from sluicegate.driver.cluster.loop_events import (
    AllJobsCancelled, Barrier, BlocksHeld, DescribeExecutors, DrainExecutors, EventHandlers,
    FinishDrains, Inspect, JobCancelled, JobGroupCancelled, JobSubmitted, JobTagCancelled,
    PushInputBlock, RemoveBlocks, RemoveExecutor, RemoveRdd, RemoveShuffle, UnknownEvent)
from sluicegate.driver.cluster.driver_blocks import DriverBlocks
from sluicegate.driver.cluster.scaling import ExecutorScaler
from sluicegate.driver.scheduler.block_locations import BlockLocations
from sluicegate.driver.scheduler.closures import ClosureRegistry

log = logging.getLogger("test.loop_events")


# -- the handler table ---------------------------------------------------------------------

def test_an_event_runs_its_handler_and_is_counted():
    table = EventHandlers("loop", log)
    seen = []
    table.on({RemoveRdd: lambda event, now: seen.append((event, now)) or "done"})
    assert table.dispatch(RemoveRdd(3), 1.5) == "done"
    table.dispatch(RemoveRdd(4), 2.0)
    assert seen == [(RemoveRdd(3), 1.5), (RemoveRdd(4), 2.0)]
    assert table.counted() == {"RemoveRdd": 2}


def test_an_unknown_event_is_logged_and_dropped(caplog):
    table = EventHandlers("loop", log)
    with caplog.at_level(logging.WARNING):
        assert table.dispatch(RemoveShuffle(1), 0.0) is None
    assert "loop: no handler for RemoveShuffle(shuffle_id=1)" in caplog.text
    assert table.counted() == {}
    with pytest.raises(UnknownEvent, match="loop has no handler for RemoveShuffle"):
        table.check(RemoveShuffle(1))


def test_events_are_logged_at_debug_level_without_their_bulk(caplog):
    table = EventHandlers("loop", log)
    table.on({PushInputBlock: lambda event, now: None})
    with caplog.at_level(logging.DEBUG, logger="test.loop_events"):
        table.dispatch(PushInputBlock("input-0-1", b"x" * 1000), 0.0)
    assert "loop: PushInputBlock(block_id='input-0-1')" in caplog.text


def test_events_are_immutable_values():
    event = RemoveExecutor("e1", "exited")
    with pytest.raises(AttributeError):
        event.reason = "other"  # frozen
    assert RemoveBlocks(("a",)) == RemoveBlocks(("a",))


# -- replayed against the application's loop --------------------------------------------

class _Router:
    def close(self, linger: int = 0) -> None:
        pass


class _Transport:
    """Binds nothing: the endpoint's sends are recorded instead."""

    def bind(self, kind, host: str, port: int):
        return _Router(), 4040


class _Dag:
    """Records each scheduler call the loop makes."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.block_locations = BlockLocations()
        self.draining: set[str] = set()

    def __getattr__(self, name: str):
        def call(*args):
            self.calls.append((name, *args))
            return [7] if name.startswith("cancel_") and name != "cancel_job" else None
        return call


class Loop:
    def __init__(self) -> None:
        self.dag = _Dag()
        self.lost: list[tuple[str, str]] = []
        self.endpoint = DriverEndpoint(
            _Transport(), "127.0.0.1", 0, FleetSettings(0.5, 10.0, {}), self.dag,
            ClosureRegistry(), DriverBlocks(), on_executor_lost=lambda e, why: self.lost.append((e, why)))
        self.sent: list[tuple[bytes, object]] = []
        self.endpoint.send = lambda identity, message: self.sent.append((identity, message)) or True

    def register(self, *executor_ids: str) -> None:
        for executor_id in executor_ids:
            self.endpoint.handle(executor_id.encode(), RegisterExecutor(
                executor_id=executor_id, host="h", block_address="tcp://h:1", cores=2,
                memory_bytes=1 << 30, pid=1), 0.0)
        self.sent.clear()
        self.dag.calls.clear()

    def replay(self, event, now: float = 1.0):
        return self.endpoint.events.dispatch(event, now)

    def close(self) -> None:
        for fd in (self.endpoint._wake_read, self.endpoint._wake_write):
            os.close(fd)


@pytest.fixture
def loop():
    replay = Loop()
    yield replay
    replay.close()


def test_job_events_reach_the_scheduler(loop):
    job = object()
    loop.replay(JobSubmitted(job), 2.0)
    loop.replay(JobCancelled(5, "interrupted"))
    assert loop.replay(JobGroupCancelled("g")) == [7]
    assert loop.replay(JobTagCancelled("t")) == [7]
    assert loop.replay(AllJobsCancelled()) == [7]
    assert loop.dag.calls == [("submit_job", job, 2.0), ("cancel_job", 5, "interrupted"),
                              ("cancel_job_group", "g"), ("cancel_jobs_with_tag", "t"),
                              ("cancel_all_jobs",)]
    assert loop.endpoint.event_counts == {
        "JobSubmitted": 1, "JobCancelled": 1, "JobGroupCancelled": 1, "JobTagCancelled": 1,
        "AllJobsCancelled": 1}


def test_an_input_block_is_pushed_to_an_executor_and_located_there(loop):
    loop.replay(PushInputBlock("input-0-1", b"data"))  # no executor yet: nowhere to go
    assert loop.sent == []
    loop.register("e1")
    loop.replay(PushInputBlock("input-0-1", b"data"))
    assert loop.sent == [(b"e1", PushBlock("input-0-1", payload=[b"data"]))]
    assert loop.replay(BlocksHeld(("input-0-1", "input-0-2"))) == [True, False]


def test_removals_are_broadcast_to_the_executors(loop):
    loop.register("e1", "e2")
    loop.dag.block_locations.add("broadcast_1", "e1")
    loop.dag.block_locations.add("rdd_4_0", "e2")
    loop.replay(RemoveBlocks(("broadcast_1",)))
    loop.replay(RemoveRdd(4))
    loop.replay(RemoveShuffle(9))
    assert [m for i, m in loop.sent if i == b"e1"] == [
        DropBlocks(["broadcast_1"], [], []), DropBlocks([], [], [4]), DropBlocks([], [9], [])]
    assert len(loop.dag.block_locations) == 0
    assert ("drop_shuffle", 9) in loop.dag.calls


def test_a_removed_executor_is_lost_once_and_the_others_are_told(loop):
    loop.register("e1", "e2")
    loop.replay(RemoveExecutor("e1", "its process exited with code -9"), 3.0)
    loop.replay(RemoveExecutor("e1", "again"), 4.0)
    assert loop.sent == [(b"e2", ExecutorLost("e1"))]
    assert loop.lost == [("e1", "its process exited with code -9")]
    assert loop.dag.calls == [("executor_lost", "e1", "its process exited with code -9", 3.0)]
    assert loop.endpoint.event_counts["RemoveExecutor"] == 2


def test_queries_answer_from_the_loop_state(loop):
    loop.register("e1")
    (row,) = loop.replay(DescribeExecutors(), 2.0)
    assert row["id"] == "e1" and row["state"] == "ALIVE" and row["last_heartbeat_s_ago"] == 2.0
    assert loop.replay(Barrier()) is None
    assert loop.replay(Inspect(lambda: len(loop.endpoint.registry.alive()))) == 1


def test_drains_choose_an_executor_and_then_remove_it(loop):
    loop.register("e1", "e2")
    scaler = ExecutorScaler(loop.endpoint, backend=None, local=False, settle_s=2.0)
    loop.endpoint.fleet.registry.get("e1").running.add(1)  # busy: e2 goes first
    loop.replay(DrainExecutors(1, "rebalance"), 10.0)
    assert set(scaler.draining) == {"e2"} and loop.dag.draining == {"e2"}
    assert loop.endpoint.registry.get("e2").free_slots == 0
    loop.replay(FinishDrains(), 11.0)  # not settled yet
    assert loop.sent == [] and loop.endpoint.registry.get("e2").alive
    loop.replay(FinishDrains(), 12.5)
    assert loop.sent == [(b"e1", ExecutorLost("e2")), (b"e2", StopExecutor("removed: rebalance"))]
    assert scaler.removed == ["e2"] and loop.lost == [("e2", "removed (rebalance)")]


# -- post and call, without the loop thread ----------------------------------------------

def test_posted_events_run_in_order_and_a_failing_one_does_not_stop_the_rest(loop, caplog):
    loop.register("e1")
    loop.endpoint.post(RemoveExecutor("e9", "unknown executor"))
    loop.endpoint.post(Inspect(lambda: 1 / 0))
    loop.endpoint.post(RemoveRdd(1))
    loop.endpoint.post("not an event")
    with caplog.at_level(logging.WARNING):
        loop.endpoint._drain_events(1.0)
    assert "handling Inspect() failed" in caplog.text and "no handler for 'not an event'" in caplog.text
    assert loop.sent == [(b"e1", DropBlocks([], [], [1]))]


def test_call_answers_with_the_handler_result_or_its_error(loop):
    loop.register("e1")
    answers: list = []

    def ask() -> None:
        answers.append(loop.endpoint.call(BlocksHeld(("nothing",)), timeout_s=5.0))
        try:
            loop.endpoint.call(Inspect(lambda: 1 / 0), timeout_s=5.0)
        except ZeroDivisionError as exc:
            answers.append(exc)

    caller = threading.Thread(target=ask)
    caller.start()
    while caller.is_alive():
        loop.endpoint._drain_events(1.0)
        caller.join(0.001)
    assert answers[0] == [False] and isinstance(answers[1], ZeroDivisionError)
    with pytest.raises(UnknownEvent):
        loop.endpoint.call("not an event")
