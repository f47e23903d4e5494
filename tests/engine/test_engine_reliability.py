"""The batch engine on real processes: scale, spilling, and every way things go wrong.

No mocks: each test runs executor processes (and, for the driver-kill test,
a separate driver process) and checks exact answers or clear errors. The
machine may be loaded, so waits are generous and nothing asserts speed.

This module's functions travel to executors by value, as a job script's
(``__main__``) functions do; otherwise executors would import this test
module (and through it the driver package) to load them.
"""
from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from operator import add
from pathlib import Path

import cloudpickle
import msgpack
import psutil
import pytest
from waiting import wait_until
import zmq

from conftest import executor_processes, wait_for_no_executors
from executor_kills import BusyExecutorKiller
from sluicegate.common.protocol import MAGIC, PROTOCOL_VERSION
from sluicegate.common.protocol import executor as ex
from sluicegate.common.protocol import plan as p
from sluicegate.common.taskcontext import TaskContext
from sluicegate.common.transport import Transport, endpoint, send
from sluicegate.driver import JobFailedError, SparkConf, SparkContext

cloudpickle.register_pickle_by_value(sys.modules[__name__])

JOB_TIMEOUT_S = 90.0


def run_in_thread(fn, timeout_s: float = JOB_TIMEOUT_S):
    """Run ``fn`` in a thread; return (finished, result, error) after at most ``timeout_s``."""
    box: dict = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return not thread.is_alive(), box.get("result"), box.get("error")



# -- scale ------------------------------------------------------------------------------------

def test_shuffle_of_a_million_records(sc):
    pairs = sc.parallelize(range(1_000_000), 6).map(lambda x: (x % 1000, x))
    result = pairs.reduceByKey(add).collect()
    assert len(result) == 1000
    # Keys k, k+1000, ..., k+999000: 1000 values summing to 1000k + 1000*999*1000/2.
    assert sorted(result) == [(k, 1000 * k + 499_500_000) for k in range(1000)]
    counts = pairs.map(lambda kv: (kv[0] % 7, 1)).reduceByKey(add, 3).collectAsMap()
    assert counts == dict(Counter(x % 1000 % 7 for x in range(1_000_000)))


# -- user errors ------------------------------------------------------------------------------

def parse_record(x):
    if x == 7:
        raise ValueError(f"cannot parse record {x!r}")
    return x * 2


RAISE_LINE = parse_record.__code__.co_firstlineno + 2


def test_a_user_function_that_raises_fails_the_job_with_the_worker_traceback(sc):
    rdd = sc.parallelize(range(20), 4).map(parse_record)  # 7 is in partition 1 (5..9)
    with pytest.raises(JobFailedError) as info:
        rdd.collect()
    error = info.value
    text = str(error)
    assert "ValueError" in text and "cannot parse record 7" in text
    assert "parse_record" in text, "the worker-side traceback names the user's function"
    # The frame that raised, as the executor saw it. (cloudpickle ships by-value functions
    # with co_filename "<dynamic-code>"; the name and line number survive.)
    assert f"line {RAISE_LINE}, in parse_record" in text
    assert "Traceback from the executor" in text
    assert f"Task 1 in stage {error.stage_id}." in text and "failed 1 times" in text  # local[N]: one attempt, as Spark
    assert error.error_type == "ValueError" and error.partition == 1
    assert "cannot parse record 7" in error.error_message and "parse_record" in error.worker_traceback
    # The context survives a failed job.
    assert sc.parallelize(range(20), 4).filter(lambda x: x != 7).map(parse_record).sum() == 2 * (190 - 7)


def test_an_error_in_a_shuffle_map_task_fails_the_job_too(sc):
    def bad_key(x):
        return {}[x] if x == 3 else (x, 1)

    with pytest.raises(JobFailedError) as info:
        sc.parallelize(range(10), 2).map(bad_key).reduceByKey(add).collect()
    assert "KeyError" in str(info.value) and "bad_key" in str(info.value)


def test_an_unpicklable_closure_names_the_captured_variable(sc):
    guard_lock = threading.Lock()
    rdd = sc.parallelize(range(3), 3).map(lambda x: guard_lock.locked() or x)
    with pytest.raises(pickle.PicklingError) as info:
        rdd.collect()
    assert "guard_lock" in str(info.value) and "lock" in str(info.value).lower()
    assert sc.parallelize(range(3), 3).map(lambda x: x + 1).collect() == [1, 2, 3]


def test_referencing_the_context_or_an_rdd_in_a_closure_points_to_spark_5063(sc):
    numbers = sc.parallelize(range(3), 3)
    with pytest.raises(pickle.PicklingError, match="SPARK-5063"):
        numbers.map(lambda x: sc.defaultParallelism + x).collect()
    other = sc.parallelize([1, 2])
    with pytest.raises(pickle.PicklingError, match="SPARK-5063"):
        numbers.map(lambda x: other.count() * x).collect()
    assert numbers.collect() == [0, 1, 2]


def test_a_second_context_is_refused(sc):
    before = sorted(proc.pid for proc in executor_processes())
    conf = SparkConf().setMaster("local[1]").setAppName("second")
    with pytest.raises(ValueError, match="Cannot run multiple SparkContexts at once"):
        SparkContext(conf=conf)
    assert sorted(proc.pid for proc in executor_processes()) == before
    assert SparkContext._active_spark_context is sc
    assert sc.parallelize([1, 2, 3]).sum() == 6


def test_tasks_see_their_task_context(sc):
    def describe(iterator):
        context = TaskContext.get()
        yield (context.partitionId(), context.stageId(), context.attemptNumber(),
               context.taskAttemptId(), sum(iterator))

    rows = sc.parallelize(range(8), 4).mapPartitions(describe).collect()
    assert [(row[0], row[4]) for row in rows] == [(0, 1), (1, 5), (2, 9), (3, 13)]
    assert len({row[1] for row in rows}) == 1 and {row[2] for row in rows} == {0}
    assert len({row[3] for row in rows}) == 4
    assert TaskContext.get() is None  # on the driver
    after_shuffle = (sc.parallelize(range(8), 2).map(lambda x: (x, x)).partitionBy(3)
                     .mapPartitions(lambda it: [TaskContext.get().partitionId()]).collect())
    assert after_shuffle == [0, 1, 2]


# -- bad messages on the driver's port ----------------------------------------------------

def test_malformed_and_unauthenticated_messages_do_not_hurt_the_driver(sc):
    runtime = sc._runtime
    port = runtime.endpoint.port
    deep = [p.EmptySource.wire_code, []]
    for _ in range(450):
        deep = [p.MapNode.wire_code, [1, deep]]
    garbage = [
        [b"\x00\xffnot msgpack"],
        [msgpack.packb([MAGIC, PROTOCOL_VERSION + 1, 5, [1]])],
        [msgpack.packb([MAGIC, PROTOCOL_VERSION, 9999, []])],
        [msgpack.packb([MAGIC, PROTOCOL_VERSION, ex.TaskSucceeded.wire_code, ["x"] * 11])],
        [msgpack.packb([MAGIC, PROTOCOL_VERSION, ex.LaunchTask.wire_code,
                        [1, 0, 0, 0, 0, deep, [p.CollectSink.wire_code, []], {}, [], []]])],
        [msgpack.packb(list(range(10**4)))] + [b"extra"] * 3,
    ]
    insider = Transport(runtime.transport.secret)
    outsider = Transport(b"not-the-secret-of-this-application")
    sockets = []
    try:
        # An authenticated peer that talks nonsense...
        sock = insider.connect(zmq.DEALER, endpoint("127.0.0.1", port), b"confused-peer")
        sockets.append(sock)
        for frames in garbage:
            sock.send_multipart(frames)
        # ...valid messages with made-up ids...
        send(sock, ex.TaskSucceeded(10**9, 0, "exec-ghost", 1.0, 0, 0, 0, 0, None, [], True, False,
                                    payload=[b"forged"]))
        send(sock, ex.TaskFailed(10**9 + 1, 0, "exec-1", "error", "E", "m", "", None, None, None, 1.0))
        send(sock, ex.RegisterExecutor("exec-impostor", "h", "tcp://127.0.0.1:1", 4, 1, 1))
        # ...and a peer without the secret.
        stranger = outsider.connect(zmq.DEALER, endpoint("127.0.0.1", port), b"stranger")
        sockets.append(stranger)
        for frames in garbage:
            stranger.send_multipart(frames)
        time.sleep(1.0)
        assert runtime.endpoint.failure is None and runtime.endpoint.running
        assert "exec-impostor" not in {e.executor_id for e in runtime.endpoint.registry.alive()}
        assert sc.parallelize(range(100), 4).map(lambda x: (x % 3, x)).reduceByKey(add).collectAsMap() \
            == {0: 1683, 1: 1617, 2: 1650}
    finally:
        for sock in sockets:
            sock.close(0)
        insider.close()
        outsider.close()


# -- executor processes dying --------------------------------------------------------------

def test_an_executor_killed_mid_job_does_not_change_the_answer(sc, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    wait_until(lambda: len(executor_processes()) == 3, 30, "three executors")

    def slow_pairs(index, iterator):
        (markers / f"{os.getpid()}-{index}").touch()
        time.sleep(0.5)
        for x in iterator:
            yield (x % 100, x)

    n = 60_000
    rdd = sc.parallelize(range(n), 12).mapPartitionsWithIndex(slow_pairs).reduceByKey(add, 4)
    killer = BusyExecutorKiller(markers)
    finished, result, error = run_in_thread(rdd.collect)
    assert finished, "the job hung after an executor was killed"
    assert error is None, f"the job failed: {error}"
    expected = {k: sum(range(k, n, 100)) for k in range(100)}
    assert dict(result) == expected
    # The killed executor is gone, and what it had computed was computed again elsewhere.
    killer.check_recovered()
    # The application gets its executor back, and keeps working.
    wait_until(lambda: len(executor_processes()) == 3, 30, "a replacement executor")
    assert sc.parallelize(range(10), 5).sum() == 45


def test_all_executors_killed_without_respawn_is_a_clear_error(own_context, tmp_path):
    ctx = own_context("local[2]", spark__sluicegate__local__respawnExecutors="false",
                      spark__sluicegate__executor__waitTimeout="2s")
    markers = tmp_path / "markers"
    markers.mkdir()

    def slow(x):
        (markers / f"{os.getpid()}-{x}").touch()
        time.sleep(3)
        return x

    def kill_all_when_busy():
        wait_until(lambda: list(markers.iterdir()), 60, "a task to start", 0.01)
        for proc in executor_processes():
            proc.kill()

    killer = threading.Thread(target=kill_all_when_busy, daemon=True)
    killer.start()
    finished, _, error = run_in_thread(lambda: ctx.parallelize(range(4), 4).map(slow).collect())
    killer.join(5)
    assert finished, "the job hung with every executor gone"
    assert isinstance(error, JobFailedError), repr(error)
    assert "no live executors" in str(error) and "every worker process is gone" in str(error)
    assert wait_for_no_executors(15) == []
    # A later job on the dead application also ends with an error rather than waiting forever.
    finished, _, error = run_in_thread(lambda: ctx.parallelize([1, 2]).collect())
    assert finished and isinstance(error, (JobFailedError, RuntimeError)), repr(error)


# -- spilling -------------------------------------------------------------------------------

def test_a_shuffle_bigger_than_block_memory_spills_to_disk(own_context):
    limit = 256 * 1024
    ctx = own_context("local[2]", spark__sluicegate__blocks__memoryLimit="256k")
    n = 200_000
    pairs = ctx.parallelize(range(n), 4).map(lambda x: (x % 5000, f"value-{x:012d}"))
    grouped = pairs.groupByKey(6).mapValues(lambda vs: (len(vs), sum(int(v[6:]) for v in vs)))
    result = dict(grouped.collect())
    assert len(result) == 5000
    assert result == {k: (40, sum(range(k, n, 5000))) for k in range(5000)}

    # Real evidence: the executors' block directories hold shuffle blocks on disk
    # (one output per map task, each bigger than the limit)...
    block_files = [path for path in ctx._runtime.app_dir.glob("exec-*/blocks/*")
                   if path.name.startswith("shuffle_") and not path.name.endswith(".tmp")]
    on_disk = sum(path.stat().st_size for path in block_files)
    assert len(block_files) == 4 and on_disk > 4 * limit, (len(block_files), on_disk)
    # ...and their heartbeats report bytes on disk with memory held under the limit.
    registry = ctx._runtime.endpoint.registry
    wait_until(lambda: all(e.disk_used > 0 for e in registry.alive()), 15, "heartbeats with disk use")
    assert all(e.memory_used <= limit for e in registry.alive())
    assert sum(e.disk_used for e in registry.alive()) >= on_disk // 2
    # Spilled blocks are still served (a second job reads the same shuffle output).
    assert grouped.map(lambda kv: kv[1][0]).sum() == n
    del grouped, pairs


# -- the driver side of the process tree ----------------------------------------------------

def test_executors_never_import_the_driver_package(own_context, tmp_path):
    ctx = own_context("local[2]")
    pairs = ctx.parallelize([(i % 7, i) for i in range(200)], 4)
    other = ctx.parallelize([(k, f"name-{k}") for k in range(5)], 2)
    counter = ctx.accumulator(0)
    table = ctx.broadcast({k: k * k for k in range(7)})

    assert dict(pairs.reduceByKey(add).collect()) == {k: sum(range(k, 200, 7)) for k in range(7)}
    assert {k: sorted(v) for k, v in pairs.groupByKey().collect()} == \
        {k: list(range(k, 200, 7)) for k in range(7)}
    assert len(pairs.join(other).collect()) == sum(1 for i in range(200) if i % 7 < 5)
    assert len(pairs.leftOuterJoin(other).collect()) == 200
    assert pairs.sortByKey(ascending=False).keys().first() == 6
    assert pairs.sortBy(lambda kv: -kv[1]).first() == (199 % 7, 199)
    assert pairs.values().top(3) == [199, 198, 197]
    assert pairs.values().takeOrdered(2) == [0, 1]
    assert pairs.keys().countByValue()[0] == 29
    assert pairs.countByKey()[6] == 28
    assert pairs.values().fold(0, add) == 19900
    assert pairs.values().aggregate((0, 0), lambda a, x: (a[0] + x, a[1] + 1),
                                    lambda a, b: (a[0] + b[0], a[1] + b[1])) == (19900, 200)
    assert pairs.values().distinct().count() == 200
    assert pairs.combineByKey(lambda v: [v], lambda c, v: c + [v], add).mapValues(len) \
        .collectAsMap()[1] == 29
    assert pairs.aggregateByKey(0, add, add).collectAsMap() == pairs.foldByKey(0, add).collectAsMap()
    assert pairs.cogroup(other).count() == 7
    assert pairs.values().repartition(3).glom().map(len).sum() == 200
    assert pairs.coalesce(1).values().max() == 199
    assert pairs.cartesian(other).count() == 1000
    assert pairs.union(other).count() == 205
    assert pairs.values().map(lambda x: table.value[x % 7]).sum() == sum((x % 7) ** 2 for x in range(200))
    pairs.values().foreach(lambda x: counter.add(x))
    assert counter.value == 19900
    pairs.cache()
    assert pairs.count() == 200 and pairs.count() == 200
    assert pairs.values().zipWithIndex().count() == 200
    assert pairs.lookup(3) == list(range(3, 200, 7))
    out = tmp_path / "saved"
    pairs.values().saveAsTextFile(str(out))
    assert sorted(int(line) for part in out.glob("part-*") for line in part.read_text().split()) \
        == list(range(200))
    assert ctx.parallelize(range(10), 2).mapPartitions(
        lambda it: [TaskContext.get().partitionId()]).collect() == [0, 1]

    def probe(_index, _iterator):
        time.sleep(0.2)  # keep each executor busy so both get probed
        loaded = sorted(name for name in sys.modules
                        if name == "sluicegate.driver" or name.startswith("sluicegate.driver."))
        return [(os.getpid(), loaded, "sluicegate.common.serializer" in sys.modules)]

    report = ctx.parallelize(range(8), 8).mapPartitionsWithIndex(probe).collect()
    executor_pids = {proc.pid for proc in executor_processes()}
    assert {pid for pid, _, _ in report} == executor_pids
    for pid, loaded, has_common in report:
        assert has_common
        assert loaded == [], f"executor {pid} imported driver modules: {loaded}"


def test_stop_leaves_no_executor_processes(own_context):
    ctx = own_context("local[2]")
    processes = wait_until(lambda: executor_processes() if len(executor_processes()) == 2 else None,
                           30, "two executors")
    app_dir = ctx._runtime.app_dir
    assert ctx.parallelize(range(10), 2).sum() == 45
    ctx.stop()
    gone, alive = psutil.wait_procs(processes, timeout=15)
    assert alive == [] and len(gone) == 2
    assert executor_processes() == []
    assert not app_dir.exists()
    assert SparkContext._active_spark_context is None
    ctx.stop()  # stopping twice is harmless
    with pytest.raises(RuntimeError, match="stopped SparkContext"):
        ctx.parallelize([1]).collect()


DRIVER_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from sluicegate.driver import SparkConf, SparkContext

    sc = SparkContext(conf=SparkConf().setMaster("local[2]").setAppName("doomed-driver"))
    total = sc.parallelize(range(100), 2).map(lambda x: (x % 2, x)).reduceByKey(lambda a, b: a + b)
    Path(sys.argv[1]).write_text(str(sorted(total.collect())))
    time.sleep(600)
""")


def test_a_driver_killed_with_sigkill_takes_its_executors_with_it(tmp_path):
    script = tmp_path / "doomed_driver.py"
    script.write_text(DRIVER_SCRIPT)
    ready = tmp_path / "ready"
    log = tmp_path / "driver.log"  # a file, not a pipe: executors inherit it and must never block
    with open(log, "wb") as log_file:
        driver = subprocess.Popen([sys.executable, str(script), str(ready)], cwd=tmp_path,
                                  stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
    executors: list[psutil.Process] = []
    work_dirs: list[Path] = []
    try:
        wait_until(lambda: ready.exists() and ready.read_text() or driver.poll() is not None,
                   60, "the driver script to run its first job")
        assert driver.poll() is None, log.read_text(errors="replace")
        assert ready.read_text() == str([(0, 2450), (1, 2500)])
        executors = [child for child in psutil.Process(driver.pid).children(recursive=True)
                     if "sluicegate.worker" in " ".join(child.cmdline())]
        assert len(executors) == 2
        for proc in executors:
            command = proc.cmdline()
            work_dirs.append(Path(command[command.index("--work-dir") + 1]))

        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(10)
        gone, alive = psutil.wait_procs(executors, timeout=10)
        assert alive == [], f"executors outlived their driver: {[p.pid for p in alive]}"
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(10)
        for proc in executors:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        for work_dir in work_dirs:  # the killed driver could not remove its app directory
            shutil.rmtree(work_dir.parent, ignore_errors=True)


def first_attempt_fails(x):
    if TaskContext.get().attemptNumber() == 0 and x == 3:
        raise ValueError("the first attempt fails")
    return x


def test_local_n_gives_a_task_one_attempt_and_local_n_f_gives_f_as_pyspark(own_context):
    # PySpark 4.3: local[2] fails this job at once; local[2,3] retries and succeeds.
    sc = own_context("local[2]")
    with pytest.raises(JobFailedError, match="failed 1 times"):
        sc.parallelize(range(6), 2).map(first_attempt_fails).collect()
    sc.stop()
    sc = own_context("local[2,3]")
    assert sc.parallelize(range(6), 2).map(first_attempt_fails).collect() == list(range(6))
    sc.stop()
    sc = own_context("local[2]", spark__task__maxFailures="2")  # an explicit setting is honoured
    assert sc.parallelize(range(6), 2).map(first_attempt_fails).collect() == list(range(6))
