"""SparkContext's API beyond RDDs, checked against what PySpark 4.3 does:
the default application name, files shipped with a job (addFile, addPyFile,
addArchive, SparkFiles) in local mode and on a real cluster, the status
tracker, thread-local properties, job tags, system properties, that no
public PySpark SparkContext method is missing, and ``local[*]`` (one executor
per core).
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import socketserver
import tarfile
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import pytest

from cluster_harness import LocalCluster
from conftest import _stop_active, executor_processes
from sluicegate.common.taskcontext import TaskContext
from sluicegate.driver import SparkConf, SparkContext
from sluicegate.driver.files import SparkFiles
from sluicegate.driver.scheduler.jobs import JobFailedError
from sluicegate.driver.status import SparkJobInfo, SparkStageInfo, StatusTracker
from sluicegate.driver.util import InheritableThread, inheritable_thread_target

HERE = os.path.abspath(__file__)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def where_tasks_ran(sc, fn, partitions: int = 6) -> list:
    """``fn()`` in ``partitions`` tasks, with each task's executor pid."""
    return sc.parallelize(range(partitions), partitions).map(lambda _: (os.getpid(), fn())).collect()


# -- item 4: an application name is not required ------------------------------------------

def test_a_context_without_an_app_name_is_named_pyspark_shell(tmp_path):
    """PySpark: SparkContext(), SparkContext(conf=SparkConf()) and SparkContext(master) all
    start, and appName (and the conf's spark.app.name) is 'pyspark-shell'."""
    _stop_active()
    SparkContext.setSystemProperty("spark.master", "local[1]")  # what SparkContext() uses
    try:
        with SparkContext() as sc:
            assert sc.master == "local[1]"
            assert sc.appName == "pyspark-shell"
            assert sc.getConf().get("spark.app.name") == "pyspark-shell"
    finally:
        SparkContext.setSystemProperty("spark.master", None)
    data = write(tmp_path / "conf_file.txt", "from spark.files")
    module = write(tmp_path / "ctor_module.py", "WHAT = 'from pyFiles'\n")
    conf = SparkConf().setMaster("local[1]").set("spark.files", str(data))
    with SparkContext(conf=conf, pyFiles=[str(module)]) as sc:
        assert sc.appName == "pyspark-shell"
        assert sorted(sc.listFiles) == sorted([f"file:{data}", f"file:{module}"])
        assert sc.parallelize([0], 1).map(
            lambda _: (open(SparkFiles.get("conf_file.txt")).read(),
                       __import__("ctor_module").WHAT)).collect() == [
            ("from spark.files", "from pyFiles")]
    with SparkContext("local[1]") as sc:
        assert sc.appName == "pyspark-shell" and sc.master == "local[1]"
    with SparkContext("local[1]", "named") as sc:
        assert sc.appName == "named"


# -- addFile --------------------------------------------------------------------------------

def test_add_file_reaches_every_executor_from_a_snapshot(sc, tmp_path):
    source = write(tmp_path / "multiplier.txt", "7")
    sc.addFile(str(source))
    assert f"file:{source}" in sc.listFiles
    driver_copy = SparkFiles.get("multiplier.txt")
    assert driver_copy.startswith(SparkFiles.getRootDirectory())
    assert open(driver_copy).read() == "7"
    source.unlink()  # added files are snapshots: executors never read the original

    def read():
        path = SparkFiles.get("multiplier.txt")
        return path, SparkFiles.getRootDirectory(), open(path).read()

    seen = where_tasks_ran(sc, read)
    assert {content for _, (_, _, content) in seen} == {"7"}
    assert len({pid for pid, _ in seen}) > 1
    for pid, (path, root, _) in seen:
        assert path == os.path.join(root, "multiplier.txt")
        assert root != SparkFiles.getRootDirectory()  # each executor holds its own copy
    assert len({root for _, (_, root, _) in seen}) == len({pid for pid, _ in seen})

    listed = list(sc.listFiles)
    write(source, "8")
    sc.addFile(str(source))  # the same path again: ignored, as PySpark
    assert sc.listFiles == listed
    assert {c for _, (_, _, c) in where_tasks_ran(sc, read)} == {"7"}


def test_add_file_refuses_what_it_cannot_ship(sc, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sc.addFile(str(tmp_path / "missing.txt"))
    folder = tmp_path / "a_folder"
    folder.mkdir()
    with pytest.raises(ValueError, match="is a directory.*recursive=True"):
        sc.addFile(str(folder))
    first = write(tmp_path / "one" / "clash_name.txt", "1")
    second = write(tmp_path / "two" / "clash_name.txt", "2")
    sc.addFile(str(first))
    with pytest.raises(ValueError, match=r"already added under the name 'clash_name.txt'"):
        sc.addFile(f"file:{second}")
    assert f"file:{second}" not in sc.listFiles
    assert sc.parallelize([0], 1).map(lambda _: open(SparkFiles.get("clash_name.txt")).read()
                                      ).collect() == ["1"]
    with pytest.raises(ValueError, match="not from 'hdfs:'"):
        sc.addFile("hdfs://namenode/data.txt")
    with pytest.raises(NotImplementedError):
        SparkFiles()


def test_add_directory_recursively(sc, tmp_path):
    tree = tmp_path / "lookup_tree"
    write(tree / "top.txt", "top")
    write(tree / "nested" / "deep.txt", "deep")
    sc.addFile(str(tree), recursive=True)
    assert f"file:{tree}/" in sc.listFiles  # a directory is listed with a trailing slash

    def read():
        root = SparkFiles.get("lookup_tree")
        return (open(os.path.join(root, "top.txt")).read(),
                open(os.path.join(root, "nested", "deep.txt")).read())

    assert {r for _, r in where_tasks_ran(sc, read, 3)} == {("top", "deep")}
    assert read() == ("top", "deep")  # on the driver too


def test_add_file_downloads_an_http_url_once_on_the_driver(sc, tmp_path):
    served = write(tmp_path / "web" / "served_over_http.txt", "from the web")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served.parent))
    with socketserver.TCPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/served_over_http.txt"
        try:
            sc.addFile(url)
        finally:
            server.shutdown()
    assert url in sc.listFiles
    assert {r for _, r in where_tasks_ran(sc, lambda: open(
        SparkFiles.get("served_over_http.txt")).read(), 3)} == {"from the web"}


# -- addPyFile ---------------------------------------------------------------------------------

def test_add_py_file_modules_import_in_tasks_and_on_the_driver(sc, tmp_path):
    module = write(tmp_path / "shipped_tripler.py", "def triple(x):\n    return 3 * x\n")
    package = tmp_path / "shipped_pkg.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("shipped_pkg/__init__.py", "VALUE = 42\n")
    egg = tmp_path / "shipped_egg-1.0-py3.egg"
    with zipfile.ZipFile(egg, "w") as archive:
        archive.writestr("shipped_egg_mod.py", "NAME = 'egg'\n")
    for path in (module, package, egg):
        sc.addPyFile(str(path))
        assert f"file:{path}" in sc.listFiles

    def use(x):
        import shipped_egg_mod
        import shipped_pkg
        import shipped_tripler
        return (shipped_tripler.triple(x), shipped_pkg.VALUE, shipped_egg_mod.NAME,
                shipped_tripler.__file__.startswith(SparkFiles.getRootDirectory()),
                shipped_pkg.__file__.startswith(SparkFiles.get("shipped_pkg.zip")))

    assert sc.parallelize(range(6), 6).map(use).collect() == [
        (3 * x, 42, "egg", True, True) for x in range(6)]
    import shipped_tripler  # the driver imports it from its own copy, as PySpark's does
    assert shipped_tripler.triple(2) == 6
    assert shipped_tripler.__file__ == SparkFiles.get("shipped_tripler.py")


def test_a_module_added_later_is_found_by_running_executors(sc, tmp_path):
    assert sc.parallelize(range(3), 3).map(lambda x: x).collect() == [0, 1, 2]  # all started
    module = write(tmp_path / "late_module.py", "ANSWER = 'late'\n")
    sc.addPyFile(str(module))
    assert set(sc.parallelize(range(6), 6).map(lambda _: __import__("late_module").ANSWER)
               .collect()) == {"late"}


# -- addArchive --------------------------------------------------------------------------------

def test_add_archive_is_unpacked_on_every_executor(sc, tmp_path):
    content = write(tmp_path / "inner" / "value.txt", "99")
    zipped = tmp_path / "bundle_a.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.write(content, "inner/value.txt")
    tarred = tmp_path / "bundle_b.tar.gz"
    with tarfile.open(tarred, "w:gz") as archive:
        archive.add(content, arcname="inner/value.txt")
    sc.addArchive(str(zipped))
    sc.addArchive(f"{tarred}#bundle_alias")
    assert sc.listArchives[-2:] == [f"file:{zipped}", f"file:{tarred}#bundle_alias"]
    assert f"file:{zipped}" not in sc.listFiles  # archives are listed apart, as PySpark
    sc.addArchive(str(zipped))  # again: ignored
    assert sc.listArchives.count(f"file:{zipped}") == 1

    def read():
        return tuple(open(os.path.join(SparkFiles.get(name), "inner", "value.txt")).read()
                     for name in ("bundle_a.zip", "bundle_alias"))

    assert {r for _, r in where_tasks_ran(sc, read, 3)} == {("99", "99")}
    assert read() == ("99", "99")  # unpacked for the driver too
    assert os.path.isdir(SparkFiles.get("bundle_a.zip"))

    not_an_archive = write(tmp_path / "plain_archive.txt", "as is")
    sc.addArchive(str(not_an_archive))  # Spark copies what it cannot unpack, as it is
    assert sc.parallelize([0], 1).map(lambda _: open(SparkFiles.get("plain_archive.txt")).read()
                                      ).collect() == ["as is"]


# -- a real cluster: files travel to executors over the protocol ----------------------------

CLUSTER_JOB = """
    import json, os, sys, time
    from sluicegate.driver import SparkContext
    from sluicegate.driver.files import SparkFiles
    data, module, package, archive = sys.argv[1:5]
    sc = SparkContext(appName="files")
    sc.addFile(data)
    sc.addPyFile(module)
    sc.addPyFile(package)
    sc.addArchive(archive + "#unpacked")

    def probe(x):
        time.sleep(0.2)  # spread the tasks over the executors
        import cluster_mod, cluster_pkg
        return {"pid": os.getpid(), "root": SparkFiles.getRootDirectory(),
                "data": open(SparkFiles.get(os.path.basename(data))).read(),
                "mod": cluster_mod.double(x), "pkg": cluster_pkg.VALUE,
                "archive": open(os.path.join(SparkFiles.get("unpacked"), "a.txt")).read()}

    print("DRIVER_ROOT", SparkFiles.getRootDirectory())
    print("RESULT", json.dumps(sc.parallelize(range(8), 8).map(probe).collect()))
    sc.stop()
"""


@pytest.fixture(scope="module")
def two_worker_cluster(tmp_path_factory):
    cluster = LocalCluster(tmp_path_factory.mktemp("files-cluster"))
    try:
        cluster.start_driver()
        cluster.start_worker("fw1", cores=1)
        cluster.start_worker("fw2", cores=1)
        yield cluster
    finally:
        cluster.close()


def test_cluster_executors_get_the_added_files(two_worker_cluster, tmp_path):
    cluster = two_worker_cluster
    inputs = tmp_path / "inputs"
    data = write(inputs / "cluster_data.txt", "shipped")
    module = write(inputs / "cluster_mod.py", "def double(x):\n    return 2 * x\n")
    package = inputs / "cluster_pkg.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("cluster_pkg/__init__.py", "VALUE = 'zip'\n")
    bundle = inputs / "bundle.tgz"
    with tarfile.open(bundle, "w:gz") as archive:
        archive.add(data, arcname="a.txt")
    script = write(tmp_path / "files_job.py", textwrap.dedent(CLUSTER_JOB))
    done = cluster.submit(script, str(data), str(module), str(package), str(bundle),
                          timeout_s=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in done.stdout.splitlines()
             if line.startswith(("RESULT ", "DRIVER_ROOT "))}
    results = json.loads(lines["RESULT"])
    assert [r["mod"] for r in results] == [2 * x for x in range(8)]
    assert {(r["data"], r["pkg"], r["archive"]) for r in results} == {("shipped", "zip", "shipped")}
    assert len({r["pid"] for r in results}) == 2  # both workers' executors ran tasks
    worker_work = str(cluster.base / "worker-work")
    for r in results:  # each executor's own copy, under its worker's directory
        assert r["root"].startswith(worker_work) and r["root"] != lines["DRIVER_ROOT"]
    assert len({r["root"] for r in results}) == 2


# -- status tracker ----------------------------------------------------------------------------

def test_status_tracker_reports_jobs_and_stages(sc):
    tracker = sc.statusTracker()
    assert isinstance(tracker, StatusTracker)
    outcome = {}

    def grouped():
        sc.setJobGroup("tracker-group", "two jobs")
        outcome["pairs"] = sc.parallelize(range(20), 4).map(lambda x: (x % 3, 1)) \
            .reduceByKey(lambda a, b: a + b, 2).collect()  # line of the action: see below
        outcome["count"] = sc.parallelize(range(5), 5).count()

    worker = threading.Thread(target=grouped)
    worker.start()
    worker.join()
    first, second = tracker.getJobIdsForGroup("tracker-group")
    assert first not in tracker.getJobIdsForGroup()  # None: the jobs outside any group
    info = tracker.getJobInfo(first)
    assert isinstance(info, SparkJobInfo) and info.status == "SUCCEEDED"
    assert len(info.stageIds) == 2  # the map stage of reduceByKey, then the result stage
    stages = [tracker.getStageInfo(stage_id) for stage_id in info.stageIds]
    assert all(isinstance(stage, SparkStageInfo) for stage in stages)
    result_stage = next(stage for stage in stages if stage.numTasks == 2)
    assert next(stage for stage in stages if stage.numTasks == 4).numCompletedTasks == 4
    assert result_stage.name.startswith("collect at " + HERE + ":")
    assert (result_stage.numTasks, result_stage.numCompletedTasks, result_stage.numActiveTasks,
            result_stage.numFailedTasks, result_stage.currentAttemptId) == (2, 2, 0, 0, 0)
    count_stage = tracker.getStageInfo(tracker.getJobInfo(second).stageIds[0])
    assert count_stage.name.startswith("count at ") and count_stage.numCompletedTasks == 5
    assert tracker.getJobInfo(10**9) is None and tracker.getStageInfo(10**9) is None
    assert first not in tracker.getActiveJobsIds()

    release = threading.Event()
    running = {}

    def slow_job():
        try:
            running["out"] = sc.parallelize(range(2), 2).map(
                lambda x: time.sleep(1.0) or x).collect()
        finally:
            release.set()

    threading.Thread(target=slow_job).start()
    deadline = time.monotonic() + 30
    while not tracker.getActiveJobsIds() and time.monotonic() < deadline:
        time.sleep(0.02)
    active = tracker.getActiveJobsIds()
    assert len(active) == 1 and tracker.getJobInfo(active[0]).status == "RUNNING"
    assert tracker.getActiveStageIds() == tracker.getJobInfo(active[0]).stageIds
    assert release.wait(30) and running["out"] == [0, 1]

    def boom(x):
        raise ValueError("no")

    with pytest.raises(JobFailedError):
        sc.parallelize([1], 1).map(boom).collect()
    failed = tracker.getJobIdsForGroup()[-1]
    assert tracker.getJobInfo(failed).status == "FAILED"
    stage = tracker.getStageInfo(tracker.getJobInfo(failed).stageIds[0])
    assert stage.numFailedTasks == 1 and stage.numCompletedTasks == 0  # local[N]: one attempt


# -- local properties, job groups and tags -----------------------------------------------------

def test_local_properties_belong_to_the_thread_and_reach_tasks(sc):
    sc.setLocalProperty("owner", "main")
    try:
        seen = {}
        plain = threading.Thread(target=lambda: seen.setdefault("plain", sc.getLocalProperty("owner")))
        plain.start()
        plain.join()
        inherited = InheritableThread(target=lambda: seen.setdefault(
            "inherited", sc.getLocalProperty("owner")))
        inherited.start()
        inherited.join()
        wrapped = threading.Thread(target=inheritable_thread_target(
            lambda: seen.setdefault("wrapped", sc.getLocalProperty("owner"))))
        wrapped.start()
        wrapped.join()
        assert seen == {"plain": None, "inherited": "main", "wrapped": "main"}
        assert sc.parallelize([0], 1).map(
            lambda _: TaskContext.get().getLocalProperty("owner")).collect() == ["main"]
    finally:
        sc.setLocalProperty("owner", None)
    assert sc.getLocalProperty("owner") is None


def test_job_group_and_tags_are_local_properties(sc):
    def in_thread():
        sc.setJobGroup("g1", "described", interruptOnCancel=True)
        assert (sc.getLocalProperty("spark.jobGroup.id"), sc.getLocalProperty("spark.job.description"),
                sc.getLocalProperty("spark.job.interruptOnCancel")) == ("g1", "described", "true")
        sc.setInterruptOnCancel(False)
        assert sc.getLocalProperty("spark.job.interruptOnCancel") == "false"
        sc.setJobDescription("changed")
        assert sc.getLocalProperty("spark.job.description") == "changed"
        for bad, text in (("a,b", "cannot contain ','"), ("", "cannot be an empty string")):
            with pytest.raises(ValueError, match=text):
                sc.addJobTag(bad)
        sc.addJobTag("t1")
        sc.addJobTag("t2")
        assert sc.getJobTags() == {"t1", "t2"}
        sc.removeJobTag("t1")
        sc.removeJobTag("never-added")
        assert sc.getJobTags() == {"t2"}
        sc.clearJobTags()
        assert sc.getJobTags() == set()

    errors = []
    worker = threading.Thread(target=_record, args=(in_thread, errors))
    worker.start()
    worker.join()
    assert errors == []
    assert sc.getLocalProperty("spark.jobGroup.id") is None and sc.getJobTags() == set()


def _record(fn, errors: list) -> None:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
        errors.append(exc)


# -- system properties and the rest of the API ------------------------------------------------

def test_system_properties_are_classmethods_and_feed_new_confs():
    SparkContext.setSystemProperty("spark.sluicegate.test.property", "from-system")
    try:
        assert SparkContext.getSystemProperty("spark.sluicegate.test.property") == "from-system"
        assert SparkConf().get("spark.sluicegate.test.property") == "from-system"
        assert SparkConf(loadDefaults=False).get("spark.sluicegate.test.property") is None
    finally:
        SparkContext.setSystemProperty("spark.sluicegate.test.property", None)
    assert SparkContext.getSystemProperty("spark.sluicegate.test.property") is None
    assert SparkContext.getSystemProperty("user.dir") == os.getcwd()
    assert SparkContext.getSystemProperty("no.such.property") is None


def test_informational_api(sc):
    assert sc.applicationId.startswith("local-")
    assert abs(sc.startTime - time.time() * 1000) < 24 * 3600 * 1000
    assert sc.resources == {}
    assert sc.PACKAGE_EXTENSIONS == (".zip", ".egg", ".jar")
    for dump in (sc.show_profiles, lambda: sc.dump_profiles("/tmp/profiles")):
        with pytest.raises(RuntimeError, match="spark.python.profile"):
            dump()


def test_no_public_pyspark_spark_context_method_is_missing():
    pyspark = pytest.importorskip("pyspark")
    theirs = {name for name in dir(pyspark.SparkContext) if not name.startswith("_")}
    ours = {name for name in dir(SparkContext) if not name.startswith("_")}
    assert sorted(theirs - ours) == []


# -- the master local[*] -------------------------------------------------------------------------

@pytest.mark.skipif((os.cpu_count() or 1) > 8, reason="starts one executor process per core")
def test_local_star_starts_one_executor_per_core(own_context):
    sc = own_context("local[*]")
    assert len(executor_processes()) == os.cpu_count()
    assert len(sc._runtime.endpoint.registry.alive()) == os.cpu_count()
    assert sc.defaultParallelism == os.cpu_count()
