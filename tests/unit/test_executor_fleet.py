"""The driver's executors as a pure state machine (driver/cluster/executor_fleet.py):
messages and ticks in, ``(identity, message)`` pairs out; no sockets, no processes.

The DAG scheduler is the real one, over the lineage fakes of tests/scheduler_fakes.py.
"""
from __future__ import annotations

import pytest

from scheduler_fakes import A, ADDR, B, C, FakeContext, new_dag, submit
from sluicegate.common.protocol.executor import (
    FAIL_MISSING_FUNCTION, DriverBlock, DriverHeartbeat, DropBlocks, ExecutorHeartbeat,
    ExecutorLost, ExecutorRegistered, FetchDriverBlock, LaunchTask, PushBlock, RegisterExecutor,
    RegistrationRefused, StopExecutor, TaskFailed, TaskSucceeded)
from sluicegate.driver.cluster.driver_blocks import DriverBlocks
from sluicegate.driver.cluster.executor_fleet import NOTHING, ExecutorFleet, FleetSettings

SETTINGS = FleetSettings(heartbeat_interval_s=0.5, heartbeat_timeout_s=10.0,
                         executor_conf={"spark.x": "1"})


class Fleet:
    """A fleet over a real DAG scheduler, recording what it tells its listeners."""

    def __init__(self, **dag_settings) -> None:
        self.ctx = FakeContext()
        self.dag = new_dag(self.ctx, executors=(), **dag_settings)
        self.blocks = DriverBlocks()
        self.added: list[str] = []
        self.lost: list[tuple[str, str]] = []
        self.fleet = ExecutorFleet(SETTINGS, self.dag, self.ctx._closures, self.blocks,
                                   on_added=lambda info: self.added.append(info.executor_id),
                                   on_lost=lambda e, why: self.lost.append((e, why)))

    def register(self, executor_id: str, now: float = 0.0, cores: int = 2,
                 identity: bytes | None = None) -> list:
        message = RegisterExecutor(executor_id=executor_id, host="h", block_address=ADDR[executor_id],
                                   cores=cores, memory_bytes=1 << 30, pid=1)
        return list(self.fleet.receive(identity or executor_id.encode(), message, now))

    def launch_all(self, now: float = 0.0) -> list[tuple]:
        """Place and deliver every task that fits: (run, message) each."""
        launched = []
        for run in self.fleet.assign(now):
            identity, message = self.fleet.launch(run)
            assert identity == run.executor_id.encode()
            self.fleet.launched(run, message)
            launched.append((run, message))
        return launched


@pytest.fixture
def fleet() -> Fleet:
    return Fleet()


def kinds(outgoing) -> list[tuple[bytes, str]]:
    return [(identity, type(message).__name__) for identity, message in outgoing]


def succeeded(run) -> TaskSucceeded:
    """A result task's success, as its executor reports it."""
    return TaskSucceeded(task_id=run.tid, attempt=run.attempt, executor_id=run.executor_id,
                         duration_ms=1.0, records_in=1, records_out=1, shuffle_read_bytes=0,
                         shuffle_write_bytes=0, map_block_sizes=None, cached_blocks=[],
                         has_result=True, has_accumulators=False, payload=[b"r"])


# -- registration -----------------------------------------------------------------------

def test_registration_answers_with_timings_and_joins_the_scheduler(fleet):
    replies = fleet.register(A)
    assert kinds(replies) == [(b"exec-A", "ExecutorRegistered")]
    registered = replies[0][1]
    assert isinstance(registered, ExecutorRegistered)
    assert (registered.heartbeat_interval_s, registered.heartbeat_timeout_s) == (0.5, 10.0)
    assert registered.conf == {"spark.x": "1"}
    assert fleet.dag.executors == {A: ADDR[A]}
    assert fleet.added == [A]


def test_a_newcomer_is_told_of_every_executor_already_lost(fleet):
    fleet.register(A)
    fleet.register(B)
    fleet.fleet.lose(A, "gone", 1.0)
    replies = fleet.register(C)
    assert kinds(replies) == [(b"exec-C", "ExecutorRegistered"), (b"exec-C", "ExecutorLost")]
    assert replies[1][1] == ExecutorLost(A)


def test_a_lost_id_is_refused_for_good(fleet):
    fleet.register(A)
    fleet.fleet.lose(A, "silent", 1.0)
    replies = fleet.register(A, now=2.0)
    assert len(replies) == 1 and isinstance(replies[0][1], RegistrationRefused)
    assert "declared lost (silent)" in replies[0][1].reason
    assert A not in fleet.dag.executors and fleet.added == [A]


def test_registering_again_while_alive_answers_again(fleet):
    fleet.register(A)
    info = fleet.fleet.registry.get(A)
    replies = fleet.register(A, now=3.0)
    assert kinds(replies) == [(b"exec-A", "ExecutorRegistered")]
    assert fleet.fleet.registry.get(A) is info and info.last_seen_s == 3.0


def test_a_registration_from_another_identity_is_dropped(fleet):
    assert fleet.register(A, identity=b"exec-B") == []
    assert fleet.fleet.registry.get(A) is None and fleet.dag.executors == {}


# -- heartbeats and loss ------------------------------------------------------------------

def test_each_tick_beats_to_the_live_executors(fleet):
    fleet.register(A)
    fleet.register(B)
    outgoing = fleet.fleet.tick(1.0, wall_ms=12345)
    assert sorted(kinds(outgoing)) == [(b"exec-A", "DriverHeartbeat"), (b"exec-B", "DriverHeartbeat")]
    assert outgoing[0][1] == DriverHeartbeat(12345)


def test_silence_past_the_timeout_loses_the_executor_and_tells_the_others(fleet):
    fleet.register(A, now=0.0)
    fleet.register(B, now=0.0)
    beat = ExecutorHeartbeat(executor_id=B, running_tasks=[], memory_bytes_used=0,
                             disk_bytes_used=0, rss_bytes=0)
    assert fleet.fleet.receive(b"exec-B", beat, 8.0) is NOTHING
    outgoing = fleet.fleet.tick(11.0, wall_ms=0)  # A silent for 11 s, B for 3 s
    assert kinds(outgoing) == [(b"exec-B", "ExecutorLost"), (b"exec-B", "DriverHeartbeat")]
    assert outgoing[0][1] == ExecutorLost(A)
    assert fleet.lost == [(A, "no heartbeat for 10s")]
    assert A not in fleet.dag.executors and not fleet.fleet.registry.get(A).alive
    assert fleet.fleet.tick(12.0, wall_ms=0) == [(b"exec-B", DriverHeartbeat(0))]


def test_losing_an_executor_twice_does_nothing_the_second_time(fleet):
    fleet.register(A)
    fleet.register(B)
    assert fleet.fleet.lose(A, "exited", 1.0) == [(b"exec-B", ExecutorLost(A))]
    assert fleet.fleet.lose(A, "exited", 2.0) == []
    assert fleet.lost == [(A, "exited")]


def test_losing_an_executor_reruns_its_tasks(fleet):
    fleet.register(A, cores=4)
    job = submit(fleet.dag, fleet.ctx.source(2).map(lambda x: x))
    assert len(fleet.launch_all()) == 2
    fleet.fleet.lose(A, "killed", 1.0)
    fleet.register(B, now=1.0)
    rerun = fleet.launch_all(now=1.0)
    assert {run.executor_id for run, _ in rerun} == {B} and len(rerun) == 2
    for run, _ in rerun:
        fleet.fleet.receive(b"exec-B", succeeded(run), 2.0)
    assert job.done and job.error is None


# -- launching ------------------------------------------------------------------------------

def test_a_launch_ships_closures_and_driver_blocks_once_per_executor(fleet):
    fleet.register(A, cores=1)
    fleet.blocks.put("input-0", b"block bytes")
    rdd = fleet.ctx.blocks(["input-0"]).map(lambda x: x + 1)
    submit(fleet.dag, rdd)
    (run, first), = fleet.launch_all()
    assert isinstance(first, LaunchTask) and first.task_id == run.tid
    assert first.function_ids and first.block_ids == ["input-0"]
    assert first.payload[-1] == b"block bytes"
    assert len(first.payload) == len(first.function_ids) + 1
    assert fleet.fleet.registry.get(A).running == {run.tid}
    fleet.fleet.receive(b"exec-A", succeeded(run), 0.5)
    submit(fleet.dag, rdd)  # the same closures and block again
    (_, second), = fleet.launch_all(now=1.0)
    assert second.function_ids == [] and second.block_ids == [] and second.payload == []


def test_an_executor_that_lost_its_closures_gets_them_again(fleet):
    fleet.register(A, cores=1)
    submit(fleet.dag, fleet.ctx.source(1).map(lambda x: x))
    (run, message), = fleet.launch_all()
    assert message.function_ids
    missing = TaskFailed(task_id=run.tid, attempt=run.attempt, executor_id=A,
                         reason=FAIL_MISSING_FUNCTION, error_type="", message="evicted",
                         traceback="", shuffle_id=None, map_id=None, peer_executor=None,
                         duration_ms=1.0)
    assert fleet.fleet.receive(b"exec-A", missing, 1.0) is NOTHING
    assert fleet.fleet.registry.get(A).functions == set()
    (_, again), = fleet.launch_all(now=1.0)
    assert again.function_ids == message.function_ids


def test_an_undelivered_launch_ships_again_next_time(fleet):
    fleet.register(A, cores=1)
    submit(fleet.dag, fleet.ctx.source(1).map(lambda x: x))
    (run,) = fleet.fleet.assign(0.0)
    _, message = fleet.fleet.launch(run)  # never delivered: no launched()
    fleet.fleet.launch_failed(run, ValueError("cannot encode"), 0.1)
    assert fleet.fleet.registry.get(A).running == set()
    (_, again), = fleet.launch_all(now=0.2)
    assert again.function_ids == message.function_ids  # the retry ships them


def test_a_launch_that_cannot_be_encoded_fails_its_task():
    fleet = Fleet(max_failures=1)
    fleet.register(A, cores=1)
    job = submit(fleet.dag, fleet.ctx.source(1).map(lambda x: x))
    (run,) = fleet.fleet.assign(0.0)
    fleet.fleet.launch(run)
    fleet.fleet.launch_failed(run, ValueError("cannot encode"), 0.1)
    assert job.done and "the task could not be sent to its executor: cannot encode" in str(job.error)


def test_task_replies_count_on_the_executor(fleet):
    fleet.register(A, cores=2)
    submit(fleet.dag, fleet.ctx.source(1).map(lambda x: x))
    (run, _), = fleet.launch_all()
    assert fleet.fleet.receive(b"exec-A", succeeded(run), 1.0) is NOTHING
    info = fleet.fleet.registry.get(A)
    assert info.running == set() and info.tasks_done == 1 and info.last_seen_s == 1.0


def test_kills_go_to_the_executors_running_the_tasks(fleet):
    fleet.register(A, cores=2)
    job = submit(fleet.dag, fleet.ctx.source(2).map(lambda x: x))
    fleet.launch_all()
    assert fleet.fleet.kills() == []
    fleet.dag.cancel_job(job.id, "test")
    kills = fleet.fleet.kills()
    assert kinds(kills) == [(b"exec-A", "KillTask")] * 2
    assert fleet.fleet.kills() == []


# -- blocks and queries -------------------------------------------------------------------

def test_driver_blocks_are_served_to_executors(fleet):
    fleet.register(A)
    fleet.blocks.put("broadcast_0", b"value")
    (found,) = fleet.fleet.receive(b"exec-A/task", FetchDriverBlock(7, "broadcast_0"), 1.0)
    (missing,) = fleet.fleet.receive(b"exec-A/task", FetchDriverBlock(8, "nope"), 1.0)
    assert found == (b"exec-A/task", DriverBlock(7, "broadcast_0", True, payload=[b"value"]))
    assert missing[1] == DriverBlock(8, "nope", False, payload=[])
    assert fleet.fleet.registry.get(A).last_seen_s == 1.0


def test_input_blocks_are_pushed_to_the_live_executors_in_turn(fleet):
    assert fleet.fleet.push_input("input-0", b"x") is None
    fleet.register(A)
    fleet.register(B)
    targets = []
    for n in range(4):
        identity, message = fleet.fleet.push_input(f"input-{n}", b"x")
        assert message == PushBlock(f"input-{n}", payload=[b"x"])
        targets.append(identity)
        fleet.fleet.pushed(identity.decode(), f"input-{n}")
    assert targets == [b"exec-A", b"exec-B", b"exec-A", b"exec-B"]
    assert fleet.fleet.blocks_held(["input-1", "input-9"]) == [True, False]


def test_removing_blocks_forgets_them_and_tells_every_executor(fleet):
    fleet.register(A)
    fleet.register(B)
    for block_id in ("broadcast_1", "rdd_3_0", "rdd_30_0"):
        fleet.fleet.pushed(A, block_id)
    assert fleet.fleet.remove_blocks(("broadcast_1",)) == [
        (b"exec-A", DropBlocks(["broadcast_1"], [], [])),
        (b"exec-B", DropBlocks(["broadcast_1"], [], []))]
    assert kinds(fleet.fleet.remove_rdd(3)) == [(b"exec-A", "DropBlocks"), (b"exec-B", "DropBlocks")]
    assert fleet.fleet.blocks_held(["broadcast_1", "rdd_3_0", "rdd_30_0"]) == [False, False, True]
    assert fleet.fleet.remove_shuffle(5)[0][1] == DropBlocks([], [5], [])


def test_describe_and_stop_all(fleet):
    fleet.register(A)
    fleet.register(B)
    fleet.fleet.lose(B, "exited", 2.0)
    rows = {row["id"]: row for row in fleet.fleet.describe(4.0)}
    assert rows[A]["state"] == "ALIVE" and rows[A]["last_heartbeat_s_ago"] == 4.0
    assert rows[B]["state"] == "LOST (exited)"
    assert fleet.fleet.stop_all("bye") == [(b"exec-A", StopExecutor("bye"))]


def test_an_unexpected_message_is_logged_not_answered(fleet, caplog):
    assert fleet.fleet.receive(b"exec-A", StopExecutor("?"), 0.0) is NOTHING
    assert "unexpected StopExecutor" in caplog.text
