"""``ExecutorRegistry`` (driver/cluster/executors.py): an application's executors'
liveness and slots, without sockets."""
from __future__ import annotations

from sluicegate.common.protocol.executor import ExecutorHeartbeat, RegisterExecutor
from sluicegate.driver.cluster.executors import ExecutorRegistry


def registration(executor_id: str, cores: int = 2) -> RegisterExecutor:
    return RegisterExecutor(executor_id=executor_id, host="h", block_address="tcp://h:1",
                            cores=cores, memory_bytes=1 << 30, pid=42)


def registry_of(*executor_ids: str, now: float = 0.0) -> ExecutorRegistry:
    registry = ExecutorRegistry()
    for executor_id in executor_ids:
        registry.register(registration(executor_id), now)
    return registry


def test_register_records_the_executor_with_at_least_one_core():
    registry = ExecutorRegistry()
    info = registry.register(registration("e1", cores=0), 5.0)
    assert registry.get("e1") is info
    assert (info.cores, info.registered_s, info.last_seen_s, info.alive) == (1, 5.0, 5.0, True)


def test_registering_a_live_id_again_refreshes_it():
    registry = registry_of("e1")
    first = registry.get("e1")
    assert registry.register(registration("e1", cores=8), 3.0) is first
    assert first.last_seen_s == 3.0 and first.cores == 2


def test_a_lost_id_is_refused_with_the_reason():
    registry = registry_of("e1")
    assert registry.mark_lost("e1", "its process exited")
    refusal = registry.register(registration("e1"), 1.0)
    assert refusal == "executor id e1 was declared lost (its process exited)"


def test_touch_counts_only_for_live_executors():
    registry = registry_of("e1", "e2")
    assert registry.touch("e1", 4.0).last_seen_s == 4.0
    registry.mark_lost("e2", "gone")
    assert registry.touch("e2", 4.0) is None and registry.get("e2").last_seen_s == 0.0
    assert registry.touch("unknown", 4.0) is None


def test_a_heartbeat_refreshes_liveness_and_the_reported_state():
    registry = registry_of("e1")
    registry.heartbeat(ExecutorHeartbeat(executor_id="e1", running_tasks=[[7, 0, 1500]],
                                         memory_bytes_used=10, disk_bytes_used=20,
                                         rss_bytes=30), 6.0)
    info = registry.get("e1")
    assert info.last_seen_s == 6.0 and info.running_report == [[7, 0, 1500]]
    assert (info.memory_used, info.disk_used, info.rss_bytes) == (10, 20, 30)
    registry.heartbeat(ExecutorHeartbeat(executor_id="nobody", running_tasks=[],
                                         memory_bytes_used=0, disk_bytes_used=0,
                                         rss_bytes=0), 7.0)  # ignored


def test_silent_since_names_live_executors_silent_past_the_timeout():
    registry = registry_of("e1", "e2", "e3")
    registry.touch("e2", 9.0)
    registry.mark_lost("e3", "gone")
    assert registry.silent_since(10.5, 10.0) == ["e1"]
    assert registry.silent_since(10.0, 10.0) == []  # exactly the timeout: not yet


def test_mark_lost_once_clears_running_tasks():
    registry = registry_of("e1")
    registry.get("e1").running.update({1, 2})
    assert registry.mark_lost("e1", "silent")
    info = registry.get("e1")
    assert (info.alive, info.lost_reason, info.running) == (False, "silent", set())
    assert not registry.mark_lost("e1", "again") and info.lost_reason == "silent"
    assert not registry.mark_lost("unknown", "?")
    assert registry.alive() == []


def test_free_slots_lists_live_executors_with_room():
    registry = registry_of("e1", "e2", "e3")
    registry.get("e1").running.update({1, 2})  # full
    registry.get("e2").running.add(3)
    registry.mark_lost("e3", "gone")
    assert registry.free_slots() == {"e2": 1}
    assert registry.get("e3").free_slots == 0


def test_a_draining_executor_has_no_free_slot():
    registry = registry_of("e1")
    registry.get("e1").cores = 0  # what the scaler does to drain it
    assert registry.free_slots() == {}


def test_describe_shows_the_longest_running_task_and_the_state():
    registry = registry_of("e1")
    info = registry.get("e1")
    info.running_report = [[1, 0, 200], [2, 0, 900]]
    row = info.describe(2.0)
    assert row["running_task_ms"] == 900 and row["last_heartbeat_s_ago"] == 2.0
    assert row["state"] == "ALIVE" and row["id"] == "e1" and row["cores"] == 2
    registry.mark_lost("e1", "exited")
    assert info.describe(3.0)["state"] == "LOST (exited)"
