"""Remote file systems through fsspec (``common.storage``).

* In one process, on ``memory://``: storage options from Spark's s3a keys, the
  commit of a directory of parts without a rename, metadata checkpoints and the
  write-ahead log as objects, and the refusals (``memory://`` for what executors
  read or write; a scheme whose backend is not installed).
* Against a real S3-protocol server on 127.0.0.1 (moto's standalone server,
  started by the ``s3`` fixture): textFile / saveAsTextFile and the Hadoop and
  pickle formats on ``s3a://``, RDD checkpoints there, a file stream watching a
  bucket prefix, and a stateful streaming driver killed with SIGKILL whose
  checkpoint directory, write-ahead log, input and output all live in the
  bucket -- restarted from it, its output equals that of a run never killed.
"""
from __future__ import annotations

import ast
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import psutil
import pytest
from waiting import wait_until

from sluicegate.common import storage
from sluicegate.driver import StreamingContext
from sluicegate.driver.checkpoint import metadata
from sluicegate.driver.checkpoint.wal import ReceivedBlockLog, RemoteBlockLog
from streaming_harness import Collector, ManualBatches

JOBS = Path(__file__).resolve().parents[1] / "jobs"
RECOVERY_JOB = JOBS / "stateful_recovery_job.py"


# -- in one process: options, commits, checkpoints on memory:// -------------------------------------

def test_s3a_keys_become_s3fs_options():
    conf = {
        "spark.hadoop.fs.s3a.endpoint": "127.0.0.1:9000",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
        "spark.hadoop.fs.s3a.access.key": "AK",
        "spark.hadoop.fs.s3a.secret.key": "SK",
        "spark.hadoop.fs.s3a.session.token": "TOKEN",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.endpoint.region": "eu-west-1",
        "spark.hadoop.fs.s3a.encryption.algorithm": "SSE-KMS",
        "spark.hadoop.fs.s3a.encryption.key": "kms-key",
        "spark.hadoop.fs.s3a.bucket.special.access.key": "AK-special",
        "spark.sluicegate.fs.s3.default_block_size": "1048576",
        "spark.sluicegate.fs.s3.config_kwargs.retries": '{"max_attempts": 2}',
        "spark.sluicegate.fs.s3a.version_aware": "true",
        "spark.sluicegate.fs.s3.client_kwargs.verify": '"0"',  # a JSON string stays a string
        "spark.executor.memory": "1g",  # not a storage key
    }
    try:
        storage.configure(conf)
        assert storage.storage_options("s3a") == {
            "key": "AK", "secret": "SK", "token": "TOKEN", "use_ssl": False,
            "client_kwargs": {"region_name": "eu-west-1", "endpoint_url": "http://127.0.0.1:9000",
                              "verify": "0"},
            "config_kwargs": {"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 2}},
            "s3_additional_kwargs": {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "kms-key"},
            "default_block_size": 1048576, "version_aware": True}
        assert storage.storage_options("s3", "special")["key"] == "AK-special"
        assert "version_aware" not in storage.storage_options("s3")  # set for s3a:// only
        assert storage.storage_options("gs") == {}
        assert storage.storage_conf(conf) == {k: v for k, v in conf.items()
                                              if k != "spark.executor.memory"}
        storage.configure({"spark.hadoop.fs.s3a.aws.credentials.provider":
                           "org.apache.hadoop.fs.s3a.AnonymousAWSCredentialsProvider",
                           "spark.hadoop.fs.s3a.endpoint": "s3.example.com"})
        assert storage.storage_options("s3") == {
            "client_kwargs": {"endpoint_url": "https://s3.example.com"}, "anon": True}
        storage.configure({"spark.hadoop.fs.s3a.path.style.access": "yes"})
        with pytest.raises(ValueError, match="fs.s3a.path.style.access must be true or false"):
            storage.storage_options("s3")
    finally:
        storage.configure({})


def test_paths_keep_their_scheme_and_local_paths_stay_local(tmp_path):
    assert storage.scheme("s3a://b/k") == "s3a" and storage.scheme("/tmp/x") is None
    assert storage.scheme("file:///tmp/x") is None and not storage.is_remote(tmp_path)
    assert storage.absolute("s3a://b/dir/") == "s3a://b/dir"
    assert storage.join("s3a://b/dir/", "x") == "s3a://b/dir/x"
    assert storage.parent("s3a://b/dir/x") == "s3a://b/dir"
    assert storage.absolute(f"file:{tmp_path}/x") == f"{tmp_path}/x"
    base = f"memory://keep-{uuid.uuid4().hex}"
    storage.write_bytes(f"{base}/in/a.txt", b"one\n")
    storage.write_bytes(f"{base}/in/_SUCCESS", b"")
    storage.write_bytes(f"{base}/in/.hidden", b"")
    assert storage.expand_input(f"{base}/in") == [(f"{base}/in/a.txt", 4)]
    assert storage.expand_input(f"{base}/*/a.*") == [(f"{base}/in/a.txt", 4)]
    with pytest.raises(FileNotFoundError, match=f"Input path does not exist: {base}/nothing"):
        storage.expand_input(f"{base}/nothing")


def _staged(target: str, parts: dict[str, bytes]) -> str:
    staging = storage.staging_directory(target)
    for name, data in parts.items():
        storage.write_bytes(storage.join(staging, name), data)
    return staging


def _tree(url: str) -> dict[str, bytes]:
    r = storage.remote(url)
    return {p[len(r.path) + 1:]: r.fs.cat_file(p) for p in r.fs.find(r.path)}


def test_commit_without_rename_replaces_and_never_duplicates():
    target = f"memory://commit-{uuid.uuid4().hex}/out-1000"
    neighbour = target + "0"  # out-10000: its name starts with the target's
    storage.write_bytes(f"{neighbour}/part-00000", b"kept\n")
    storage.commit_directory(_staged(target, {"part-00000": b"a\n", "part-00001": b"b\n"}),
                             target, replace=False)
    assert _tree(target) == {"part-00000": b"a\n", "part-00001": b"b\n", "_SUCCESS": b""}
    # A killed attempt left its staging area; the replay has fewer partitions.
    _staged(target, {"part-00000": b"zombie\n"})
    storage.commit_directory(_staged(target, {"part-00000": b"again\n"}), target, replace=True)
    assert _tree(target) == {"part-00000": b"again\n", "_SUCCESS": b""}
    assert _tree(neighbour) == {"part-00000": b"kept\n"}
    # An RDD without partitions still commits a directory.
    empty = target + "-empty"
    storage.commit_directory(storage.staging_directory(empty), empty, replace=True)
    assert _tree(empty) == {"_SUCCESS": b""}


def _uploads_in_progress() -> set[str]:
    import tempfile

    return {p.name for p in Path(tempfile.gettempdir()).glob("sluicegate-upload-*")}


def test_a_large_write_spills_to_disk_and_a_failed_one_leaves_nothing(monkeypatch):
    monkeypatch.setattr(storage, "SPOOL_BYTES", 10)  # so that 24 bytes spill to a local file
    before = _uploads_in_progress()
    path = f"memory://spool-{uuid.uuid4().hex}/big"
    storage.write_file(path, lambda f: [f.write(b"%08d" % i) for i in range(3)])
    assert storage.read_bytes(path) == b"000000000000000100000002"

    def fails(f):
        f.write(b"x" * 40)
        raise RuntimeError("the task failed half way")

    with pytest.raises(RuntimeError):
        storage.write_file(path + "-failed", fails)
    assert not storage.exists(path + "-failed")
    assert _uploads_in_progress() == before


def test_a_file_system_with_rename_through_fsspec(sc, tmp_path):
    """``local://`` is fsspec's own local file system: not an object store, so files
    are uploaded to a hidden name and renamed (the path HDFS takes), and every process
    sees them -- the same code path as hdfs:// end to end."""
    url = f"local://{tmp_path}"
    sc.parallelize(range(20), 3).saveAsTextFile(f"{url}/out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "_SUCCESS", "part-00000", "part-00001", "part-00002"]
    assert sorted(map(int, sc.textFile(f"{url}/out").collect())) == list(range(20))
    assert sorted(name for name, _ in sc.wholeTextFiles(f"{url}/out").collect()) == [
        f"{url}/out/part-0000{i}" for i in range(3)]
    metadata.write(f"{url}/ckpt", _fake_checkpoint(1000))
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["checkpoint-1000"]


def _fake_checkpoint(time_ms: int):
    from sluicegate.driver.context.spark_context import VERSION

    return metadata.StreamingCheckpoint(VERSION, "f1", "app", {}, 1000, 0, time_ms, [],
                                        {"graph": time_ms})


def test_metadata_checkpoints_as_objects():
    directory = f"memory://ckpt-{uuid.uuid4().hex}/app"
    assert metadata.read_latest(directory, "f1") is None and not metadata.exists(directory)
    for t in range(1000, 14000, 1000):
        metadata.write(directory, _fake_checkpoint(t))
    names = sorted(n for n, _ in storage.list_names(directory))
    assert names == sorted(f"checkpoint-{t}" for t in range(4000, 14000, 1000))
    assert metadata.exists(directory)
    storage.write_bytes(f"{directory}/checkpoint-13000", b"torn")  # a damaged newest object
    found = metadata.read_latest(directory, "f1")
    assert (found.time_ms, found.graph) == (12000, {"graph": 12000})
    with pytest.raises(metadata.CheckpointError, match="different version of this application"):
        metadata.read_latest(directory, "f2")


def test_remove_unreferenced_state_data_on_an_object_store():
    root = f"memory://state-{uuid.uuid4().hex}"
    old, now = f"{root}/{'a' * 32}", f"{root}/{'b' * 32}"
    for data in (f"{old}/rdd-1", f"{old}/rdd-2", f"{now}/rdd-3", f"{root}/{'c' * 32}/rdd-4"):
        storage.write_bytes(f"{data}/part-00000", b"x")
    removed = metadata.remove_unreferenced_data(root, {f"{old}/rdd-1"}, now)
    assert sorted(storage.basename(p) for p in removed) == ["c" * 32, "rdd-2", "rdd-4"]
    assert sorted(_tree(root)) == [f"{'a' * 32}/rdd-1/part-00000", f"{'b' * 32}/rdd-3/part-00000"]


def test_write_ahead_log_one_object_per_block():
    directory = f"memory://wal-{uuid.uuid4().hex}/ckpt"
    wal = ReceivedBlockLog(directory)
    assert isinstance(wal, RemoteBlockLog)
    wal.write(0, "input_0_1", b"block one", 3, {"offset": 3})
    wal.write(0, "input_0_2", b"block two", 2, None)
    wal.write(4, "input_4_1", b"other", 1, 7)
    again = ReceivedBlockLog(directory)  # what a restarted driver finds
    assert again.stream_ids() == [0, 4]
    assert again.block_ids(0) == ["input_0_1", "input_0_2"]
    assert again.read(0, "input_0_1") == (b"block one", 3, {"offset": 3})
    again.delete(0, ["input_0_1", "input_0_missing"])
    assert again.block_ids(0) == ["input_0_2"] and again.read(0, "input_0_1") is None
    assert sorted(_tree(directory)) == ["receivedBlocks/0/input_0_2", "receivedBlocks/4/input_4_1"]


def test_memory_urls_are_refused_where_executors_read_or_write(sc):
    with pytest.raises(storage.StorageError, match="memory:// is the memory of one process"):
        sc.textFile("memory://x/in.txt").collect()
    with pytest.raises(storage.StorageError, match="executors are separate processes"):
        sc.parallelize([1]).saveAsTextFile("memory://x/out")
    with pytest.raises(storage.StorageError, match="checkpoint directory memory://x/ck"):
        sc.setCheckpointDir("memory://x/ck")


def test_a_scheme_without_its_backend_says_what_to_install():
    pytest.importorskip("fsspec")
    try:
        import gcsfs  # noqa: F401
        pytest.skip("gcsfs is installed: gs:// has its backend here")
    except ImportError:
        pass
    with pytest.raises(storage.StorageError, match=r"gs://b/x: fsspec needs a backend for gs://"):
        storage.exists("gs://b/x")


def test_local_paths_import_no_fsspec(tmp_path):
    """Without a URL, nothing of fsspec is imported, by the driver or its executors."""
    script = tmp_path / "local_io.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from sluicegate.driver import SparkConf, SparkContext
        sc = SparkContext(conf=SparkConf().setMaster("local[1]").set("spark.ui.enabled", "false"))
        Path({str(tmp_path / "in.txt")!r}).write_text("a\\nb\\n")
        rdd = sc.textFile({str(tmp_path / "in.txt")!r})
        rdd.saveAsTextFile({str(tmp_path / "out")!r})
        sc.setCheckpointDir({str(tmp_path / "ck")!r})
        rdd.checkpoint(); rdd.count()
        seen = sc.parallelize([0], 1).map(
            lambda _: sorted(m for m in __import__("sys").modules if m.split(".")[0] in
                             ("fsspec", "s3fs", "botocore"))).collect()
        print("DRIVER", sorted(m for m in sys.modules if m.split(".")[0] in
                                ("fsspec", "s3fs", "botocore")), "EXECUTOR", seen)
        sc.stop()
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "DRIVER [] EXECUTOR [[]]" in done.stdout, done.stdout


# -- a real S3-protocol server on 127.0.0.1 ------------------------------------------------------------

class S3:
    """moto's standalone S3 server in its own process, and a client of the test's own."""

    def __init__(self, log_path: Path):
        pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'sluicegate[remote]')")
        pytest.importorskip("moto.server", reason="moto[server] is not installed (the test extra)")
        import s3fs

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self._log = open(log_path, "wb")  # noqa: SIM115 - open while the server runs
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        self.endpoint = f"http://127.0.0.1:{port}"
        wait_until(self._answers, 60, "moto's S3 server to answer", 0.1)
        self.conf = {"spark.hadoop.fs.s3a.endpoint": self.endpoint,
                     "spark.hadoop.fs.s3a.access.key": "testing",
                     "spark.hadoop.fs.s3a.secret.key": "testing",
                     "spark.hadoop.fs.s3a.path.style.access": "true",
                     "spark.hadoop.fs.s3a.endpoint.region": "us-east-1"}
        self.fs = s3fs.S3FileSystem(
            key="testing", secret="testing", skip_instance_cache=True, use_listings_cache=False,
            client_kwargs={"endpoint_url": self.endpoint, "region_name": "us-east-1"},
            config_kwargs={"s3": {"addressing_style": "path"}})

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"moto's server exited with {self.proc.returncode}")
        try:
            urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).close()
            return True
        except OSError:
            return False

    def new_bucket(self) -> str:
        name = f"bucket-{uuid.uuid4().hex[:12]}"
        import boto3

        boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                     aws_secret_access_key="testing", region_name="us-east-1"
                     ).create_bucket(Bucket=name)
        return name

    def env(self) -> dict[str, str]:
        """The same settings for a job script, through SparkConf's environment variables."""
        return {"SLUICEGATE_CONF_" + key.replace(".", "_"): value for key, value in self.conf.items()}

    def tree(self, prefix: str) -> dict[str, bytes]:
        self.fs.invalidate_cache()
        return {p[len(prefix) + 1:]: self.fs.cat_file(p) for p in self.fs.find(prefix)}

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(15)
        self._log.close()


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.close()


@pytest.fixture
def s3_context(s3, own_context):
    return own_context("local[2]", **s3.conf)


def test_text_file_round_trip_on_s3(s3, s3_context):
    sc, bucket = s3_context, s3.new_bucket()
    lines = [f"line {i} " + "x" * (i % 7) for i in range(200)]
    s3.fs.pipe_file(f"{bucket}/in/a.txt", ("\n".join(lines[:120]) + "\n").encode())
    s3.fs.pipe_file(f"{bucket}/in/b.txt", ("\n".join(lines[120:]) + "\n").encode())
    s3.fs.pipe_file(f"{bucket}/in/_SUCCESS", b"")
    import gzip
    s3.fs.pipe_file(f"{bucket}/zipped/c.txt.gz", gzip.compress(b"zipped 1\nzipped 2\n"))

    rdd = sc.textFile(f"s3a://{bucket}/in", 5)
    assert rdd.getNumPartitions() >= 5  # byte-range splits of the objects, as for local files
    assert rdd.collect() == lines
    assert sc.textFile(f"s3a://{bucket}/in/*.txt,s3a://{bucket}/zipped").count() == 202
    rdd.map(str.upper).saveAsTextFile(f"s3a://{bucket}/out")
    saved = s3.tree(f"{bucket}/out")
    assert sorted(saved) == ["_SUCCESS"] + [f"part-{i:05d}" for i in range(rdd.getNumPartitions())]
    assert b"".join(saved[f"part-{i:05d}"] for i in range(rdd.getNumPartitions())).decode() \
        == "".join(f"{line.upper()}\n" for line in lines)
    assert sc.textFile(f"s3a://{bucket}/out").collect() == [line.upper() for line in lines]

    with pytest.raises(FileExistsError, match=f"Output directory s3a://{bucket}/out already exists"):
        rdd.saveAsTextFile(f"s3a://{bucket}/out")
    with pytest.raises(FileNotFoundError, match=f"Input path does not exist: s3a://{bucket}/none"):
        sc.textFile(f"s3a://{bucket}/none").collect()
    assert sorted(sc.wholeTextFiles(f"s3a://{bucket}/zipped").collect()) == [
        (f"s3a://{bucket}/zipped/c.txt.gz", "zipped 1\nzipped 2\n")]
    assert sorted(name for name, _ in sc.binaryFiles(f"s3a://{bucket}/in").collect()) == [
        f"s3a://{bucket}/in/a.txt", f"s3a://{bucket}/in/b.txt"]
    s3.fs.pipe_file(f"{bucket}/records.bin", bytes(range(12)))
    assert sc.binaryRecords(f"s3a://{bucket}/records.bin", 4).collect() == [
        bytes(range(0, 4)), bytes(range(4, 8)), bytes(range(8, 12))]
    offsets = sc.hadoopFile(f"s3a://{bucket}/in/b.txt",
                            "org.apache.hadoop.mapred.TextInputFormat",
                            "org.apache.hadoop.io.LongWritable", "org.apache.hadoop.io.Text")
    expected_offsets, at = [], 0
    for line in lines[120:]:
        expected_offsets.append((at, line))
        at += len(line) + 1
    assert offsets.collect() == expected_offsets

    # A job that fails leaves no output behind: the directory is still free.
    def boom(x):
        raise RuntimeError("no")

    with pytest.raises(Exception, match="no"):
        sc.parallelize(range(4), 2).map(boom).saveAsTextFile(f"s3a://{bucket}/failed")
    assert s3.tree(f"{bucket}/failed") == {}


def test_hadoop_pickle_formats_and_rdd_checkpoints_on_s3(s3, s3_context, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a URL taken for a local path would leave directories
    sc, bucket = s3_context, s3.new_bucket()
    base = f"s3a://{bucket}"
    sc.parallelize(range(100), 3).saveAsPickleFile(f"{base}/pickled", 7)
    assert sorted(sc.pickleFile(f"{base}/pickled", 4).collect()) == list(range(100))
    pairs = [(f"k{i}", i) for i in range(50)]
    sc.parallelize(pairs, 2).saveAsSequenceFile(f"{base}/seq",
                                                "org.apache.hadoop.io.compress.GzipCodec")
    assert sorted(sc.sequenceFile(f"{base}/seq").collect()) == sorted(pairs)
    sc.parallelize(pairs, 2).saveAsNewAPIHadoopFile(
        f"{base}/text", "org.apache.hadoop.mapreduce.lib.output.TextOutputFormat")
    assert sorted(s3.tree(f"{bucket}/text")) == ["_SUCCESS", "part-r-00000", "part-r-00001"]
    assert sorted(sc.textFile(f"{base}/text").collect()) == sorted(f"k{i}\t{i}" for i in range(50))
    sc.parallelize(pairs, 2).saveAsHadoopFile(
        f"{base}/zipped", "org.apache.hadoop.mapred.TextOutputFormat",
        compressionCodecClass="org.apache.hadoop.io.compress.GzipCodec")
    assert sorted(s3.tree(f"{bucket}/zipped")) == ["_SUCCESS", "part-00000.gz", "part-00001.gz"]
    assert sorted(sc.textFile(f"{base}/zipped").collect()) == sorted(f"k{i}\t{i}" for i in range(50))

    sc.setCheckpointDir(f"{base}/checkpoints")
    assert sc.getCheckpointDir().startswith(f"{base}/checkpoints/")
    doubled = sc.parallelize(range(10), 2).map(lambda x: x * 2)
    doubled.checkpoint()
    assert doubled.count() == 10
    assert doubled.getCheckpointFile() == f"{sc.getCheckpointDir()}/rdd-{doubled.id()}"
    assert sorted(s3.tree(doubled.getCheckpointFile()[len("s3a://"):])) == ["part-00000",
                                                                           "part-00001"]
    assert doubled.collect() == list(range(0, 20, 2))  # read back from the bucket
    assert list(tmp_path.iterdir()) == []


def test_file_stream_watches_a_bucket_prefix(s3, s3_context):
    sc, bucket = s3_context, s3.new_bucket()
    s3.fs.pipe_file(f"{bucket}/watched/old.txt", b"old line\n")  # there at start: not new
    with ManualBatches(sc, 1.0) as run:
        collector = Collector(run.ssc.textFileStream(f"s3a://{bucket}/watched"))
        empty = Collector(run.ssc.textFileStream(f"s3a://{bucket}/not-yet"))  # no object yet
        run.start()
        s3.fs.pipe_file(f"{bucket}/watched/a.txt", b"a1\na2\n")
        s3.fs.pipe_file(f"{bucket}/watched/_ignored", b"underscore\n")
        s3.fs.pipe_file(f"{bucket}/watched/sub/deeper.txt", b"in a subdirectory\n")
        run.step(2)  # a.txt: seen by one scan, unchanged at the next -> read
        s3.fs.pipe_file(f"{bucket}/watched/b.txt", b"b1\nb2\nb3\n")
        s3.fs.pipe_file(f"{bucket}/not-yet/c.txt", b"c1\n")
        run.step(2)
        s3.fs.pipe_file(f"{bucket}/watched/old.txt", b"old line\nchanged\n")  # stays old news
        run.step(2)
    assert collector.in_order(sort=True) == [[], ["a1", "a2"], [], ["b1", "b2", "b3"], [], []]
    assert empty.in_order() == [[], [], [], ["c1"], [], []]


def test_file_stream_needs_an_existing_bucket(s3, s3_context):
    ssc = StreamingContext(s3_context, 1.0)
    ssc.textFileStream(f"s3a://no-such-bucket-{uuid.uuid4().hex[:8]}/in").pprint()
    with pytest.raises(FileNotFoundError, match="textFileStream directory does not exist"):
        ssc.start()
    ssc.stop(stopSparkContext=False)


# -- a driver killed with SIGKILL, everything in the bucket -------------------------------------

BATCH_MS = 500
STEPS = 8
KILL_AT = 5


class Job:
    """One run of the recovery job script; its output goes to a log file."""

    def __init__(self, root: Path, name: str, args: list[str], env: dict):
        self.log = root / f"{name}.log"
        self._log_file = open(self.log, "wb")  # noqa: SIM115 - open while the job runs
        self.proc = subprocess.Popen([sys.executable, str(RECOVERY_JOB), *args], cwd=root,
                                     stdin=subprocess.DEVNULL, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, env={**os.environ, **env})
        self.executors: list[psutil.Process] = []

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, predicate, what: str, timeout_s: float = 90) -> None:
        def check():
            if self.proc.poll() is not None:
                raise AssertionError(f"the job exited ({self.proc.returncode}) while waiting "
                                     f"for {what}:\n{self.output()[-4000:]}")
            return predicate()

        try:
            wait_until(check, timeout_s, what, 0.05)
        except AssertionError as exc:
            if "the job exited" in str(exc):
                raise
            raise AssertionError(f"{exc}\njob output:\n{self.output()[-4000:]}") from None

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """``signum`` to the driver; wait until it and its executors are gone."""
        try:
            self.executors = [c for c in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)
        self.proc.wait(30)
        _, alive = psutil.wait_procs(self.executors, timeout=30)
        assert alive == [], f"executors outlived their driver: {[p.pid for p in alive]}"
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        for proc in self.executors:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        self._log_file.close()


class BucketScenario:
    """The recovery job with its checkpoint directory, input directory and outputs in a
    bucket (only the receiver's source file and the batch clock are local)."""

    def __init__(self, s3: S3, root: Path):
        self.s3, self.root = s3, root
        self.bucket = s3.new_bucket()
        self.clock, self.hold, self.source = root / "clock", root / "hold", root / "source.txt"
        self.source.write_text("")
        self.fed: Counter = Counter()
        self.files = self.lines = self.stored = 0
        self.jobs: list[Job] = []
        self.set_clock(0)

    def url(self, name: str) -> str:
        return f"s3a://{self.bucket}/{name}"

    def start(self) -> Job:
        job = Job(self.root, f"run{len(self.jobs)}",
                  [self.url("checkpoint"), self.url("inbox"), str(self.source), self.url("out")],
                  {**self.s3.env(), "RECOVERY_JOB_CLOCK": str(self.clock),
                   "RECOVERY_JOB_HOLD": str(self.hold)})
        self.jobs.append(job)
        job.wait_for(lambda: "STREAMING STARTED" in job.output(), "the job to start")
        return job

    def set_clock(self, ms: int) -> None:
        tmp = self.root / ".clock.tmp"
        tmp.write_text(str(ms))
        os.replace(tmp, self.clock)

    def feed(self, files: int, lines: int, tag: str, job: Job | None) -> None:
        for i in range(files):
            self.files += 1
            words = [f"{tag}{j % 5}" for j in range(i, i + 12)] + ["shared"]
            text = "\n".join(" ".join(words[k:k + 4]) for k in range(0, len(words), 4)) + "\n"
            self.s3.fs.pipe_file(f"{self.bucket}/inbox/file-{self.files}.txt", text.encode())
            self.fed.update(words)
        words = [f"line{j % 7}" for j in range(self.lines, self.lines + lines)] + [tag]
        with open(self.source, "a") as f:
            f.write("".join(f"{w}\n" for w in words))
        self.lines += len(words)
        self.fed.update(words)
        if job is not None and self.stored != self.lines:  # until its blocks are in the WAL
            job.wait_for(lambda: f"STORED {self.lines}\n" in job.output(),
                         f"the receiver to store line {self.lines}")
            self.stored = self.lines

    def done(self, k: int) -> bool:
        self.s3.fs.invalidate_cache()
        return self.s3.fs.exists(f"{self.bucket}/out/state-{k * BATCH_MS}/_SUCCESS")

    def step(self, k: int, job: Job) -> None:
        self.feed(k % 2 if k <= STEPS - 2 else 0, (3 * k) % 11, f"b{k}", job)
        self.set_clock(k * BATCH_MS)
        job.wait_for(lambda: self.done(k), f"batch {k} to be saved")
        if k == KILL_AT - 1:
            self.feed(1, 14, f"a{k}", job)

    def saved(self) -> dict[str, dict[str, list[str]]]:
        """Every saved batch directory in the bucket: its objects and their lines, sorted."""
        by_dir: dict[str, dict[str, list[str]]] = {}
        for name, data in self.s3.tree(f"{self.bucket}/out").items():
            directory, _, obj = name.partition("/")
            by_dir.setdefault(directory, {})[obj] = sorted(data.decode().splitlines())
        return by_dir

    def close(self) -> None:
        for job in self.jobs:
            job.close()


@pytest.mark.slow
def test_driver_killed_recovers_exactly_from_a_bucket(s3, tmp_path):
    """The same clocked run twice, never killed and killed with SIGKILL in the middle of
    batch 5's save (its first part uploaded to the staging area, the second held, blocks
    in the write-ahead log). Restarted with getOrCreate from the checkpoint in the bucket,
    the killed run saves exactly the batch directories, object for object and line for
    line, of the run never killed: the replayed batch replaced its half-done save."""
    (tmp_path / "never").mkdir()
    baseline = BucketScenario(s3, tmp_path / "never")
    try:
        job = baseline.start()
        for k in range(1, STEPS + 1):
            baseline.step(k, job)
        job.kill(signal.SIGTERM)
        expected = baseline.saved()
    finally:
        baseline.close()
    assert sorted(expected) == sorted(f"state-{k * BATCH_MS}" for k in range(1, STEPS + 1))
    assert all(sorted(files) == ["_SUCCESS", "part-00000", "part-00001"]
               for files in expected.values()), expected
    newest = dict(ast.literal_eval(line) for part in ("part-00000", "part-00001")
                  for line in expected[f"state-{STEPS * BATCH_MS}"][part])
    assert newest == dict(baseline.fed)

    (tmp_path / "killed").mkdir()
    scenario = BucketScenario(s3, tmp_path / "killed")
    try:
        job = scenario.start()
        for k in range(1, KILL_AT):
            scenario.step(k, job)
        scenario.hold.touch()  # batch 5's save: partition 1 waits, partition 0 is uploaded
        scenario.feed(KILL_AT % 2, (3 * KILL_AT) % 11, f"b{KILL_AT}", job)
        scenario.set_clock(KILL_AT * BATCH_MS)
        staged = f"{scenario.bucket}/out/state-{KILL_AT * BATCH_MS}/_temporary/*/part-00000"
        job.wait_for(lambda: Path(f"{scenario.hold}.holding").exists()
                     and bool(s3.fs.glob(staged)), "batch 5 to be half saved")
        wal = s3.fs.find(f"{scenario.bucket}/checkpoint/receivedBlocks")
        assert wal and all(re.fullmatch(r".*/receivedBlocks/\d+/input_[\w-]+", p) for p in wal), \
            f"not one object per block in the write-ahead log: {wal}"
        job.kill(signal.SIGKILL)
        assert job.proc.returncode == -signal.SIGKILL
        scenario.hold.unlink()
        assert not scenario.done(KILL_AT)

        again = scenario.start()
        again.wait_for(lambda: scenario.done(KILL_AT), "the pending batch 5 to be re-run")
        output = again.output()
        assert "recovering streaming context" in output
        replayed = [int(n) for n in re.findall(r"recovery: (\d+) blocks back from the write-ahead "
                                               r"log", output)]
        assert replayed and replayed[0] > 0, "no block came back from the write-ahead log"
        for k in range(KILL_AT + 1, STEPS + 1):
            scenario.step(k, again)
        again.kill(signal.SIGTERM)
        saved = scenario.saved()
        assert sorted(saved) == sorted(expected), "not the batch directories of the run never killed"
        for name in expected:
            assert saved[name] == expected[name], f"{name} differs from the run never killed"
        checkpoints = [p for p in s3.fs.ls(f"{scenario.bucket}/checkpoint")
                       if p.rpartition("/")[2].startswith("checkpoint-")]
        assert 0 < len(checkpoints) <= metadata.KEEP_FILES
        # State checkpoints of the killed run that no metadata names were deleted.
        state_dirs = s3.fs.glob(f"{scenario.bucket}/checkpoint/*/rdd-*")
        assert 0 < len(state_dirs) <= 3, state_dirs
        assert not [p for p in scenario.root.iterdir() if p.name.startswith("s3")], \
            "a URL was taken for a local path"
    finally:
        scenario.close()
