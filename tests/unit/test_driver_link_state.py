"""The executor's link handler as a pure state machine: each message from the
driver, and the passing of time, to the instruction the link carries out."""
from __future__ import annotations

from sluicegate.common.constants import EXECUTOR_REGISTER_RETRY_S, HEARTBEAT_TIMEOUT_S
from sluicegate.common.protocol import plan as p
from sluicegate.common.protocol.executor import (
    DriverHeartbeat, DropBlocks, ExecutorLost, ExecutorRegistered, FetchDriverBlock, KillTask,
    LaunchTask, PushBlock, RegisterExecutor, RegistrationRefused, StopExecutor)
from sluicegate.worker.executor.driver_link_state import (
    CHECK_LIVENESS, Configure, DriverLinkState, Stop, Unexpected, blocks_dropped_by)

REGISTRATION = RegisterExecutor(executor_id="exec-1", host="h", block_address="tcp://h:1",
                                cores=1, memory_bytes=1 << 30, pid=42)


def registered_state(now: float = 0.0, interval_s: float = 0.5, timeout_s: float = 10.0,
                     conf: dict | None = None) -> DriverLinkState:
    state = DriverLinkState(REGISTRATION, now)
    state.receive(ExecutorRegistered("exec-1", interval_s, timeout_s, conf or {}), now)
    return state


def launch(task_id: int) -> LaunchTask:
    return LaunchTask(task_id=task_id, attempt=0, job_id=1, stage_id=1, partition=0,
                      plan=p.EmptySource(),
                      sink=p.CollectSink(), shuffle_locations={}, function_ids=[], block_ids=[])


def test_registration_goes_out_at_once_then_every_retry_interval_until_answered():
    state = DriverLinkState(REGISTRATION, 100.0)
    assert state.tick(100.0) is REGISTRATION
    assert state.tick(100.0 + EXECUTOR_REGISTER_RETRY_S / 2) is None
    assert state.tick(100.0 + EXECUTOR_REGISTER_RETRY_S) is REGISTRATION
    assert not state.registered


def test_the_driver_s_answer_configures_the_executor_and_ends_the_retries():
    state = DriverLinkState(REGISTRATION, 0.0)
    conf = {"spark.python.task.killTimeout": 4, "spark.reducer.maxSizeInFlight": "1m"}
    instruction = state.receive(ExecutorRegistered("exec-1", 0.25, 6.0, conf), 1.0)
    assert instruction == Configure(conf, 4.0)
    assert state.registered
    assert (state.heartbeat_interval_s, state.heartbeat_timeout_s) == (0.25, 6.0)
    assert registered_state(interval_s=0.1).poll_s == 0.1, "it ticks once per heartbeat interval"
    assert state.poll_s == registered_state(interval_s=1.0).poll_s == 0.2, \
        "and at least 5 times a second (the kill switch's timers)"
    # No kill timeout in the conf: the executor keeps its own.
    assert state.receive(ExecutorRegistered("exec-1", 0.25, 6.0, {}), 1.5).kill_timeout_s is None
    assert state.tick(2.0) is CHECK_LIVENESS  # no registration any more


def test_a_refused_registration_or_a_stop_stops_the_executor_with_the_reason():
    state = DriverLinkState(REGISTRATION, 0.0)
    assert state.receive(RegistrationRefused("wrong version"), 1.0) == \
        Stop("driver refused registration: wrong version")
    assert registered_state().receive(StopExecutor("application ended"), 1.0) == \
        Stop("application ended")


def test_work_comes_back_as_it_came_with_no_wrapper():
    state = registered_state()
    task = launch(7)
    kill = KillTask(7, "job cancelled", True)
    push = PushBlock("input-0-1", payload=[b"data"])
    drop = DropBlocks(["input-0-1"], [3], [5])
    for message in (task, kill, push, drop):
        assert state.receive(message, 1.0) is message


def test_heartbeats_and_lost_peers_change_state_only():
    state = registered_state()
    assert state.receive(DriverHeartbeat(123), 4.0) is None
    assert state.last_heard == 4.0
    assert state.receive(ExecutorLost("exec-2"), 5.0) is None
    assert "exec-2" in state.lost_executors and "exec-3" not in state.lost_executors


def test_a_message_an_executor_does_not_take_is_named():
    assert registered_state().receive(FetchDriverBlock(1, "b"), 1.0) == \
        Unexpected("FetchDriverBlock")


def test_liveness_is_checked_once_per_heartbeat_interval_after_registration():
    state = registered_state(now=10.0, interval_s=0.5)
    assert state.tick(10.0) is CHECK_LIVENESS
    assert state.tick(10.4) is None
    assert state.tick(10.5) is CHECK_LIVENESS
    unregistered = DriverLinkState(REGISTRATION, 10.0)
    unregistered.tick(10.0)
    assert unregistered.tick(10.5) is None, "no liveness checks before registration"


def test_the_driver_is_gone_when_silent_past_the_timeout_or_when_the_parent_died():
    state = registered_state(now=0.0, timeout_s=10.0)
    state.receive(DriverHeartbeat(1), 5.0)  # any message counts as a heartbeat
    assert state.judge(15.0) is None
    assert state.judge(15.1) == Stop("no word from the driver for 10s")
    assert state.judge(6.0, parent_alive=False) == Stop("the driver process is gone")
    default = DriverLinkState(REGISTRATION, 0.0)
    assert default.judge(HEARTBEAT_TIMEOUT_S) is None
    assert default.judge(HEARTBEAT_TIMEOUT_S + 0.1) is not None


def test_dropped_blocks_match_by_name_shuffle_and_rdd():
    doomed = blocks_dropped_by(DropBlocks(["input-0-1"], [3], [5]))
    assert doomed("input-0-1")
    assert doomed("shuffle_3_0") and not doomed("shuffle_30_0")
    assert doomed("rdd_5_2") and not doomed("rdd_50_2")
    assert not doomed("input-0-2")
    assert not blocks_dropped_by(DropBlocks([], [], []))("rdd_5_2")
