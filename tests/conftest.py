"""Shared fixtures: one local[3] SparkContext for the suite, and a check that
no executor process outlives the tests."""
from __future__ import annotations

import time

import psutil
import pytest

from sluicegate.driver import SparkConf, SparkContext


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
