"""Shared fixtures: one local[3] SparkContext for the suite, and a check that
no executor process outlives the tests; for the streaming tier, a check that a
test leaves no streaming context or thread running, checkpoint directories,
and the recovery scenarios (``recovery_scenarios``)."""
from __future__ import annotations

import threading
import time

import psutil
import pytest

from recovery_scenarios import ClockedScenario, Scenario, run_baseline
from sluicegate.driver import SparkConf, SparkContext, StreamingContext
from streaming_sources import streaming_threads
from waiting import wait_until


def executor_processes(pid: int | None = None) -> list[psutil.Process]:
    """Executor processes below process ``pid`` (default: this test process)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if "sluicegate.worker" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def wait_for_no_executors(timeout_s: float = 15.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = executor_processes()
        if not left:
            return []
        time.sleep(0.1)
    return executor_processes()


def make_context(master: str = "local[3]", **settings) -> SparkContext:
    conf = SparkConf().setMaster(master).setAppName("sluicegate-tests")
    for key, value in settings.items():
        conf.set(key.replace("__", "."), value)
    return SparkContext(conf=conf)


_shared: dict[str, SparkContext | None] = {"sc": None}


def _stop_active() -> None:
    active = SparkContext._active_spark_context
    if active is not None:
        active.stop()


@pytest.fixture
def sc() -> SparkContext:
    """The suite's shared local[3] SparkContext (started again if a test stopped it)."""
    ctx = _shared["sc"]
    if ctx is None or ctx._stopped:
        _stop_active()
        ctx = _shared["sc"] = make_context("local[3]")
    return ctx


@pytest.fixture
def own_context():
    """Start a SparkContext with special settings (the shared one is stopped first)."""
    contexts: list[SparkContext] = []

    def start(master: str = "local[2]", **settings) -> SparkContext:
        _stop_active()
        ctx = make_context(master, **settings)
        contexts.append(ctx)
        return ctx

    yield start
    for ctx in contexts:
        ctx.stop()


@pytest.fixture
def earlier_threads() -> frozenset:
    """Threads already running before the test (another file's leftovers are not ours)."""
    return frozenset(threading.enumerate())


@pytest.fixture
def no_streaming_leftovers(earlier_threads):
    """Every test stops what it started: no active context, no streaming threads."""
    yield
    active = StreamingContext.getActive()
    if active is not None:
        active.stop(stopSparkContext=False)
        pytest.fail("a test left a StreamingContext running")
    assert wait_until(lambda: not streaming_threads(earlier_threads), 10.0), \
        f"streaming threads left running: {streaming_threads(earlier_threads)}"


@pytest.fixture
def shared_context(sc):
    """The suite's local[3] context for tests whose expectations assume its three
    partitions; a checkpoint directory a test sets on it is that test's only."""
    assert sc.defaultParallelism == 3
    before = sc.getCheckpointDir()
    yield
    sc._checkpoint_dir = before


@pytest.fixture
def checkpointed(tmp_path):
    """``configure=`` for run_batches: a checkpoint directory under tmp_path."""
    return lambda ssc: ssc.checkpoint(str(tmp_path / "checkpoint"))


@pytest.fixture
def scenario(tmp_path):
    """A recovery scenario's directories; its job runs are ended afterwards."""
    found = Scenario(tmp_path)
    yield found
    found.close()


@pytest.fixture
def clocked(tmp_path):
    """A recovery scenario whose job's batch clock the test sets."""
    found = ClockedScenario(tmp_path)
    yield found
    found.close()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """What a clocked run never killed saves: batch directory -> file -> lines."""
    return run_baseline(tmp_path_factory.mktemp("baseline"))


def pytest_sessionfinish(session, exitstatus):
    ctx = SparkContext._active_spark_context
    if ctx is not None:
        ctx.stop()
    left = wait_for_no_executors()
    if left:
        print(f"\nORPHAN EXECUTORS after the suite: {[p.pid for p in left]}")
        for proc in left:
            proc.kill()
        session.exitstatus = 1
