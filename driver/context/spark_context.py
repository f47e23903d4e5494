"""SparkContext: the entry point of an application (PySpark's API).

Creating one starts the driver's event loop and its executors: for
``local[N]``, N executor processes on this machine. Every connection is
authenticated with the application's secret (a fresh random one in local
mode), so no other local user can send it a closure to run.
"""
from __future__ import annotations

import atexit
import inspect
import itertools
import logging
import os
import pickle
import re
import sys
import threading
import time
import uuid
from typing import Any, Callable, Iterable

from sluicegate.common import config as cfg
from sluicegate.common import constants
from sluicegate.common import storage
from sluicegate.common.accumulators import Accumulator, AccumulatorParam, default_param
from sluicegate.common.auth import (
    SecurityError, is_loopback, new_secret, read_secret_file, resolve_secret)
from sluicegate.common.broadcast import Broadcast, block_id as broadcast_block_id
from sluicegate.common.constants import VERSION
from sluicegate.common.protocol import plan as p
from sluicegate.common.serializer import SerializationError, dump_records, load_records

from ..cluster.runtime import DriverRuntime, MasterSpec
from ..rdd import lineage as lin
from ..rdd.base import RDD
from ..rdd.dependencies import ShuffleDependency
from ..rdd.partitioner import Partitioner
from ..scheduler.closures import ClosureRegistry
from ..scheduler.stages import lineage_rdds
from ..serializers import AutoBatchedSerializer, BatchedSerializer, CPickleSerializer
from ..status.metrics import AppMetrics
from ..status.server import AppStatusSource, StatusServer
from .conf import SparkConf, get_system_property, set_system_property
from .files import FileDistribution
from .hadoop_input import HadoopInputs
from .job_control import JobControl, LocalProperties

log = logging.getLogger("sluicegate.driver")

DEFAULT_APP_NAME = "pyspark-shell"  # PySpark's name for an application not given one

_SPARK_5063 = (
    "It appears that you are attempting to reference SparkContext from a broadcast variable, "
    "action, or transformation. SparkContext can only be used on the driver, not in code that it "
    "run on workers. For more information, see SPARK-5063.")

_LOCAL = re.compile(r"^local(?:\[(\*|\d+)(?:\s*,\s*(\d+))?\])?$")
_CLUSTER = re.compile(r"^sluicegate://([^:/]+):(\d+)/?$")


def parse_master(master: str, conf: dict) -> MasterSpec:
    """``local``, ``local[N]``, ``local[*]``, ``local[N,F]`` or ``sluicegate://HOST:PORT``."""
    cluster = _CLUSTER.match(master.strip())
    if cluster:
        return MasterSpec("cluster", service_endpoint=f"tcp://{cluster.group(1)}:{cluster.group(2)}",
                          job_id=os.environ.get(constants.ENV_JOB_ID) or f"app-{os.getpid()}-{int(time.time())}",
                          cores=int(os.environ.get(constants.ENV_CORES) or conf.get("spark.cores.max", 0)))
    executors, failures = parse_local_master(master)
    return MasterSpec("local", executors=executors, max_failures=failures)


def parse_local_master(master: str) -> tuple[int, int | None]:
    """``local`` -> (1, None); ``local[4]`` -> (4, None); ``local[*]``; ``local[2,3]`` -> (2, 3)."""
    match = _LOCAL.match(master.strip())
    if not match:
        raise ValueError(f"Could not parse Master URL: '{master}' (expected local, local[N], "
                         "local[*], local[N,F] or sluicegate://HOST:PORT)")
    count, failures = match.group(1), match.group(2)
    if count is None:
        n = 1
    elif count == "*":
        n = os.cpu_count() or 1
    else:
        n = int(count)
    if n < 1:
        raise ValueError(f"Master {master!r} asks for {n} executors; at least 1 is needed")
    return n, (int(failures) if failures else None)


def _job_conf(conf: SparkConf | None, master: str | None, app_name: str | None,
              environment: dict[str, str] | None) -> SparkConf:
    """A new context's configuration: ``conf`` with the constructor's arguments, what a
    cluster running a submitted script decides, then PySpark's defaults."""
    job_conf = conf.copy() if conf is not None else SparkConf()
    if master:
        job_conf.setMaster(master)
    if app_name:
        job_conf.setAppName(app_name)
    for key, value in (environment or {}).items():
        job_conf.setExecutorEnv(key, value)
    # A cluster that runs a submitted script decides where it runs, and how.
    override = os.environ.get(constants.ENV_MASTER)
    if override:
        job_conf.setMaster(override)
        for env, key in ((constants.ENV_SECRET_FILE, cfg.SECRET_FILE),
                         (constants.ENV_BIND_HOST, cfg.DRIVER_BIND_ADDRESS)):
            if os.environ.get(env):
                job_conf.set(key, os.environ[env])
        if os.environ.get(constants.ENV_APP_NAME) and not job_conf.contains(cfg.APP_NAME):
            job_conf.setAppName(os.environ[constants.ENV_APP_NAME])
    if not job_conf.contains(cfg.MASTER):
        # As a pip-installed PySpark does (spark-submit's default).
        job_conf.setMaster("local[*]")
    if not job_conf.contains(cfg.APP_NAME):
        job_conf.setAppName(DEFAULT_APP_NAME)
    return job_conf


def _max_task_failures(master: MasterSpec, conf: dict) -> int:
    """Attempts a task gets: ``local[N,F]``'s F; Spark's single attempt for ``local[N]``
    (a task's error fails its job at once); ``spark.task.maxFailures`` otherwise, or when
    set explicitly (Spark ignores it in local mode; sluicegate honours it)."""
    if master.max_failures:
        return master.max_failures
    if master.kind == "local" and cfg.TASK_MAX_FAILURES not in conf:
        return 1
    return cfg.get_setting(conf, cfg.TASK_MAX_FAILURES)


class SparkContext(FileDistribution, JobControl, HadoopInputs):
    """Main entry point for sluicegate functionality (PySpark's ``SparkContext``).

    >>> sc = SparkContext(conf=SparkConf().setMaster("local[3]").setAppName("demo"))
    >>> sc.parallelize(range(10), 3).map(lambda x: x * x).sum()
    285
    """

    _active_spark_context: "SparkContext | None" = None
    _lock = threading.RLock()

    def __init__(self, master: str | None = None, appName: str | None = None,
                 sparkHome: str | None = None, pyFiles: list[str] | None = None,
                 environment: dict[str, str] | None = None, batchSize: int = 0,
                 serializer: Any = None, conf: SparkConf | None = None, gateway: Any = None,
                 jsc: Any = None, profiler_cls: Any = None, udf_profiler_cls: Any = None,
                 memory_profiler_cls: Any = None):
        from sluicegate.common.taskcontext import assert_on_driver
        assert_on_driver()  # as PySpark: never inside a task, never on an executor
        with SparkContext._lock:
            active = SparkContext._active_spark_context
            if active is not None:
                raise ValueError(
                    "Cannot run multiple SparkContexts at once; existing "
                    f"SparkContext(app={active.appName}, master={active.master}) created by "
                    f"{active._callsite}")
            self._conf = _job_conf(conf, master, appName, environment)
            self.master = self._conf.get(cfg.MASTER)
            self.appName = self._conf.get(cfg.APP_NAME)
            self._set_pyspark_attributes(sparkHome, serializer, batchSize)
            self._start_time = int(time.time() * 1000)
            self._callsite = _callsite()
            conf_dict = self._conf.as_dict()
            master_spec = parse_master(self.master, conf_dict)
            self._application_id = master_spec.job_id or f"local-{self._start_time}"
            self._closures = ClosureRegistry()
            self._rdd_ids = itertools.count(0)
            self._shuffle_ids = itertools.count(0)
            self._data_ids = itertools.count(0)
            self._broadcast_ids = itertools.count(0)
            self._accumulator_ids = itertools.count(0)
            self._accumulators: dict[int, Accumulator] = {}
            self._checkpoint_dir: str | None = None
            self._local_properties = LocalProperties()  # per thread, as PySpark's
            self._stopped = False
            self._stop_hooks: list[Callable[[], None]] = []  # e.g. a StreamingContext on it
            self._start_runtime(conf_dict, master_spec, pyFiles)
            SparkContext._active_spark_context = self
            atexit.register(self._stop_at_exit)

    def _set_pyspark_attributes(self, spark_home: str | None, serializer: Any,
                                batch_size: int) -> None:
        """PySpark's public attributes; records travel as sluicegate chooses whatever
        they say."""
        self.sparkHome = spark_home
        self.pythonExec = os.environ.get("PYSPARK_PYTHON", "python3")
        self.pythonVer = "%d.%d" % sys.version_info[:2]
        unbatched = serializer if serializer is not None else CPickleSerializer()
        self.serializer = (AutoBatchedSerializer(unbatched) if batch_size == 0
                           else BatchedSerializer(unbatched, batch_size))
        self.profiler_collector = None  # spark.python.profile is not supported
        self.environment = {k[len("spark.executorEnv."):]: v for k, v in self._conf.getAll()
                            if k.startswith("spark.executorEnv.")}

    def _start_runtime(self, conf_dict: dict, master_spec: MasterSpec,
                       py_files: list[str] | None) -> None:
        """Start the executors and the driver's event loop, the metrics, the status
        pages and the job's files; if any fails, stop what started."""
        self._ui = None
        self._runtime = DriverRuntime(conf_dict, master_spec, _secret(conf_dict, master_spec),
                                      self._closures, self._apply_accumulator_updates,
                                      _max_task_failures(master_spec, conf_dict), self.appName)
        self._runtime.start()
        try:
            self._metrics = AppMetrics(lambda: len(self._runtime.endpoint.registry.alive()))
            self._runtime.status.listeners.append(self._metrics)
            self._ui = self._start_ui(conf_dict)
            self._start_files(py_files)
        except BaseException:  # e.g. a refused UI bind address: no executors left behind
            if self._ui is not None:
                self._ui.stop()
            self._stop_files()
            self._runtime.stop()
            raise

    # -- lifecycle -----------------------------------------------------------------
    @classmethod
    def getOrCreate(cls, conf: SparkConf | None = None) -> "SparkContext":
        """The active SparkContext, or a new one from ``conf``."""
        with cls._lock:
            if cls._active_spark_context is None:
                SparkContext(conf=conf or SparkConf())
            return cls._active_spark_context

    def stop(self) -> None:
        """Stop the executors and the driver; the context cannot be used again."""
        with SparkContext._lock:
            if self._stopped:
                return
            self._stopped = True
            if self._ui is not None:
                self._ui.stop()
            for hook in list(self._stop_hooks):
                try:
                    hook()
                except Exception:  # noqa: BLE001 - stopping must go on
                    log.exception("error in a stop hook")
            self._runtime.stop()
            self._stop_files()
            if SparkContext._active_spark_context is self:
                SparkContext._active_spark_context = None

    def _stop_at_exit(self) -> None:
        try:
            self.stop()
        except Exception:  # noqa: BLE001 - interpreter is exiting
            pass

    def __enter__(self) -> "SparkContext":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __reduce__(self):
        raise RuntimeError(_SPARK_5063)

    def __repr__(self) -> str:
        return f"<SparkContext master={self.master} appName={self.appName}>"

    @classmethod
    def setSystemProperty(cls, key: str, value: str) -> None:
        """Set a system property of this process (PySpark sets a JVM one); a ``spark.*``
        one is a default of every SparkConf made afterwards. Call it before creating
        the SparkContext."""
        set_system_property(key, value)

    @classmethod
    def getSystemProperty(cls, key: str) -> str | None:
        """A system property set with ``setSystemProperty`` (or a standard one such as
        ``user.name``), or None."""
        return get_system_property(key)

    # -- information ------------------------------------------------------------------
    @property
    def version(self) -> str:
        return VERSION

    @property
    def applicationId(self) -> str:
        """The application's id: ``local-<start ms>`` in local mode, the job id on a cluster."""
        return self._application_id

    @property
    def startTime(self) -> int:
        """When the SparkContext started, in milliseconds since the epoch."""
        return self._start_time

    @property
    def resources(self) -> dict:
        """Custom resources (GPUs, FPGAs) of the driver: sluicegate schedules none."""
        return {}

    def show_profiles(self) -> None:
        """Print Python profiles (PySpark with ``spark.python.profile``): not collected here."""
        raise RuntimeError(_no_profiles(self._conf))

    def dump_profiles(self, path: str) -> None:
        """Dump Python profiles (PySpark with ``spark.python.profile``): not collected here."""
        raise RuntimeError(_no_profiles(self._conf))

    @property
    def defaultParallelism(self) -> int:
        """spark.default.parallelism if set, else the executors' total cores."""
        if self._conf.contains(cfg.DEFAULT_PARALLELISM):
            return int(self._conf.get(cfg.DEFAULT_PARALLELISM))
        return self._runtime.total_cores

    @property
    def defaultMinPartitions(self) -> int:
        return min(self.defaultParallelism, 2)

    @property
    def uiWebUrl(self) -> str | None:
        """The status pages' address (None when spark.ui.enabled is false)."""
        return self._ui.url if self._ui is not None else None

    def _start_ui(self, conf: dict) -> "StatusServer | None":
        if not cfg.get_setting(conf, cfg.UI_ENABLED):
            return None
        host = cfg.get_setting(conf, cfg.UI_BIND_ADDRESS)
        explicit_secret = conf.get(cfg.SECRET) or conf.get(cfg.SECRET_FILE)
        if not explicit_secret and not is_loopback(host):
            raise SecurityError(
                f"refusing to serve the status pages on {host} without a shared secret: they show "
                "the application's data. Set spark.authenticate.secret (or "
                "spark.authenticate.secret.file), or keep spark.ui.bindAddress at 127.0.0.1.")
        try:
            source = AppStatusSource(self.appName, self._runtime.status, self._metrics, self._runtime,
                                     self.applicationId)
            server = StatusServer(source, host, cfg.get_setting(conf, cfg.UI_PORT)).start()
        except OSError as exc:  # a busy port must not stop the application
            log.warning("status pages disabled: %s", exc)
            return None
        log.info("status pages at %s", server.url)
        if self._runtime.master.kind == "cluster":  # the service links to them, `jobs` lists them
            self._runtime.backend.ui_url = server.url
        # The port moves on (4041, 4042, ...) when 4040 is taken: printing it is the only way
        # a user learns where this application's pages are. Quiet runs stay quiet, and a
        # submitted job's `sluicegate submit` prints it (the service tells it).
        if (cfg.get_setting(conf, cfg.PROGRESS) and os.environ.get(constants.ENV_QUIET) != "1"
                and not os.environ.get(constants.ENV_JOB_ID)):
            print(f"sluicegate: {self.appName} ({self.applicationId}): status pages at {server.url}",
                  file=sys.stderr, flush=True)
        return server

    def getConf(self) -> SparkConf:
        return self._conf.copy()

    def sparkUser(self) -> str:
        return os.environ.get("USER", "unknown")

    def setLogLevel(self, logLevel: str) -> None:
        """Set the log level of sluicegate's loggers (ALL, DEBUG, INFO, WARN, ERROR, OFF...)."""
        level = {"ALL": logging.NOTSET, "TRACE": logging.DEBUG, "WARN": logging.WARNING,
                 "FATAL": logging.CRITICAL, "OFF": logging.CRITICAL + 10}.get(
            logLevel.upper(), getattr(logging, logLevel.upper(), None))
        if not isinstance(level, int):
            raise ValueError(f"unknown log level {logLevel!r}")
        logging.getLogger("sluicegate").setLevel(level)

    # -- creating RDDs ------------------------------------------------------------------
    def parallelize(self, c: Iterable, numSlices: int | None = None) -> RDD:
        """Distribute a local collection as an RDD of ``numSlices`` partitions."""
        num = int(numSlices) if numSlices is not None else self.defaultParallelism
        if num < 1:
            raise ValueError(f"numSlices must be at least 1, got {num}")
        if isinstance(c, range):
            size = len(c)
            if size == 0:
                return self.parallelize([], num)
            start, step = c[0], c.step

            def start_of(split: int) -> int:
                return start + int(split * size / num) * step

            slices: list[p.PlanNode] = [p.RangeSource(start_of(i), start_of(i + 1), step)
                                        for i in range(num)]
            return RDD(self, lin.ParallelCollection(slices))
        data = c if isinstance(c, list) else list(c)
        n = len(data)
        # PySpark's layout: the list travels in batches of max(1, min(n // num, 1024))
        # items and the JVM cuts the sequence of batches, not of items.
        batch = max(1, min(n // num, 1024))
        batches = -(-n // batch)

        def start_of(split: int) -> int:
            return min(n, (split * batches // num) * batch)

        data_id = next(self._data_ids)
        block_ids = [f"data_{data_id}_{i}" for i in range(num)]
        for i, block_id in enumerate(block_ids):
            self._runtime.put_driver_block(block_id, dump_records(data[start_of(i):start_of(i + 1)]))
        rdd = RDD(self, lin.ParallelCollection([p.BlockSource(b) for b in block_ids]))
        self._runtime.track_rdd_blocks(rdd, block_ids)
        return rdd

    def range(self, start: int, end: int | None = None, step: int = 1,
              numSlices: int | None = None) -> RDD:
        if end is None:
            start, end = 0, start
        return self.parallelize(range(start, end, step), numSlices)

    def emptyRDD(self) -> RDD:
        return RDD(self, lin.Empty())

    def textFile(self, name: str, minPartitions: int | None = None, use_unicode: bool = True) -> RDD:
        """Lines of a text file, a directory of them, a glob, or a comma-separated list."""
        minimum = minPartitions if minPartitions is not None else self.defaultMinPartitions
        return RDD(self, lin.TextFiles(name, minimum))

    def wholeTextFiles(self, path: str, minPartitions: int | None = None,
                       use_unicode: bool = True) -> RDD:
        """``(path, content)`` for each file of a directory."""
        minimum = minPartitions if minPartitions is not None else self.defaultMinPartitions
        return RDD(self, lin.WholeTextFiles(path, minimum))

    def binaryRecords(self, path: str, recordLength: int) -> RDD:
        if recordLength <= 0:
            raise ValueError(f"recordLength must be positive, got {recordLength}")
        return RDD(self, lin.BinaryRecords(path, recordLength))

    def union(self, rdds: list[RDD]) -> RDD:
        """All elements of several RDDs; co-partitioned inputs stay co-partitioned."""
        rdds = list(rdds)
        if not rdds:
            raise ValueError("union() needs at least one RDD")
        first = rdds[0].partitioner
        if first is not None and all(r.partitioner == first and
                                     r.getNumPartitions() == rdds[0].getNumPartitions() for r in rdds):
            return RDD(self, lin.PartitionerAwareUnion(rdds), first)
        return RDD(self, lin.Union(rdds))

    def _blocks_rdd(self, block_ids: list[str]) -> RDD:
        return RDD(self, lin.Blocks(block_ids))

    # -- shared variables ----------------------------------------------------------------
    def broadcast(self, value: Any) -> Broadcast:
        """Ship a read-only value to each executor once (PySpark's ``broadcast``)."""
        bid = next(self._broadcast_ids)
        self._runtime.put_driver_block(broadcast_block_id(bid), dump_records([value]))
        return Broadcast(bid, value, on_release=self._release_broadcast)

    def _release_broadcast(self, bid: int, destroy: bool) -> None:
        block = broadcast_block_id(bid)
        if destroy:
            self._runtime.drop_driver_blocks([block])
        else:
            self._runtime.unpersist_blocks([block])

    def accumulator(self, value: Any, accum_param: AccumulatorParam | None = None) -> Accumulator:
        """A variable tasks add to; its value is read on the driver."""
        param = accum_param if accum_param is not None else default_param(value)
        aid = next(self._accumulator_ids)
        acc = Accumulator(aid, value, param)
        self._accumulators[aid] = acc
        return acc

    def _apply_accumulator_updates(self, updates: dict) -> None:
        for aid, value in updates.items():
            acc = self._accumulators.get(aid)
            if acc is not None:
                acc.merge_update(value)

    # -- checkpoints -----------------------------------------------------------------------
    def setCheckpointDir(self, dirName: str) -> None:
        """Directory for RDD checkpoints (created if missing): a local path, or a URL of
        a file system every executor reaches (``s3a://bucket/checkpoints``)."""
        # One subdirectory per application (Spark's layout), so a restarted
        # driver's rdd-N directories never meet the old run's.
        storage.check_shared(str(dirName), "checkpoint directory")
        path = storage.join(storage.absolute(str(dirName)), uuid.uuid4().hex)
        storage.makedirs(path)
        self._checkpoint_dir = path

    def getCheckpointDir(self) -> str | None:
        return self._checkpoint_dir

    # -- running jobs ------------------------------------------------------------------------
    def runJob(self, rdd: RDD, partitionFunc: Callable, partitions: list[int] | None = None,
               allowLocal: bool = False) -> list:
        """Run ``partitionFunc`` on the given partitions and return the results flattened."""
        mapped = rdd.mapPartitions(partitionFunc)
        return [x for part in self._run_job(mapped, partitions) for x in part]

    def _run_job(self, rdd: RDD, partitions: Iterable[int] | None = None) -> list[list]:
        """Each requested partition's records, in order (the engine under every action)."""
        if self._stopped:
            raise RuntimeError("Cannot call methods on a stopped SparkContext")
        if partitions is None:
            partitions = range(rdd.getNumPartitions())
        partitions = list(partitions)
        total = rdd.getNumPartitions()
        bad = [x for x in partitions if not 0 <= x < total]
        if bad:
            raise ValueError(f"partitions {bad} out of range for {rdd!r} with {total} partitions")
        self._prepare(rdd)
        results = self._runtime.run_job(rdd, partitions, properties=self._job_properties())
        decoded = [load_records(data) if data else [] for data in results]
        self._checkpoint_marked(rdd)
        return decoded

    def _prepare(self, rdd: RDD) -> None:
        """Fail at the action, in the caller's thread, for what can be known now:
        missing input paths and closures that cannot be serialized."""
        for current in lineage_rdds(rdd):
            current.getNumPartitions()
            for fn in current._closures():
                try:
                    self._closures.register(fn, fresh=True)  # capture current values, as PySpark
                except SerializationError as exc:
                    raise pickle.PicklingError(f"Could not serialize object: {exc}") from exc

    def _checkpoint_marked(self, rdd: RDD) -> None:
        for current in lineage_rdds(rdd):
            current._checkpoint_after_job()  # reliable or local checkpoints asked for

    # -- ids -------------------------------------------------------------------------------------
    def _next_rdd_id(self) -> int:
        return next(self._rdd_ids)

    def _new_shuffle_id(self) -> int:
        return next(self._shuffle_ids)

    def _new_shuffle(self, rdd: RDD, partitioner: Partitioner, combiner, map_side_combine: bool):
        dep = ShuffleDependency(rdd, self._new_shuffle_id(), partitioner, combiner, map_side_combine)
        self._runtime.track_shuffle(dep)
        return dep


def _secret(conf: dict, master: MasterSpec) -> bytes:
    if conf.get(cfg.SECRET):
        return conf[cfg.SECRET].encode()
    if conf.get(cfg.SECRET_FILE):
        return read_secret_file(conf[cfg.SECRET_FILE])
    host = str(conf.get(cfg.DRIVER_BIND_ADDRESS, "127.0.0.1")).strip()
    if not is_loopback(host):  # "" and "*" included: they bind every address
        # Without a secret chosen on purpose, nothing listens beyond loopback.
        raise SecurityError(
            f"refusing to bind the driver to {host or '*'} (spark.driver.bindAddress) without a "
            "shared secret: anyone who can reach it could run code in this application. Set "
            "spark.authenticate.secret, or spark.authenticate.secret.file (a file of mode 600), "
            "or keep spark.driver.bindAddress at 127.0.0.1.")
    if master.kind == "cluster":  # a same-host cluster's default secret
        return resolve_secret(None, "127.0.0.1", create=False)[0]
    return new_secret()  # local mode: a fresh secret nobody else knows


def _no_profiles(conf: SparkConf) -> str:
    if (conf.get("spark.python.profile", "false").lower() != "true"
            and conf.get("spark.python.profile.memory", "false").lower() != "true"):
        return ("[INCORRECT_CONF_FOR_PROFILE] `spark.python.profile` or "
                "`spark.python.profile.memory` configuration must be set to `true` to enable "
                "Python profile.")
    return "sluicegate does not collect Python profiles (spark.python.profile is not supported)"


def _callsite() -> str:
    for frame in inspect.stack()[2:]:
        if "sluicegate" not in frame.filename:
            return f"__init__ at {frame.filename}:{frame.lineno}"
    return "__init__"

