"""Configuration keys, their defaults, and the parsing of their values.

Keys follow Spark's names where Spark has one (``spark.task.maxFailures``,
``spark.streaming.blockInterval``); keys that only sluicegate has live under
``spark.sluicegate.``. Values arrive as strings (from ``SparkConf``) or numbers;
durations take Spark's unit suffixes (``200ms``, ``10s``, ``1min``) and sizes
take ``k``/``m``/``g``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from . import constants

# -- keys -------------------------------------------------------------------

MASTER = "spark.master"
APP_NAME = "spark.app.name"
DEFAULT_PARALLELISM = "spark.default.parallelism"
TASK_MAX_FAILURES = "spark.task.maxFailures"
STAGE_MAX_ATTEMPTS = "spark.stage.maxConsecutiveAttempts"
LOCALITY_WAIT = "spark.locality.wait"
SECRET = "spark.authenticate.secret"
SECRET_FILE = "spark.authenticate.secret.file"
DRIVER_HOST = "spark.driver.host"
DRIVER_BIND_ADDRESS = "spark.driver.bindAddress"
DRIVER_PORT = "spark.driver.port"
CHECKPOINT_DIR = "spark.checkpoint.dir"

HEARTBEAT_INTERVAL = "spark.executor.heartbeatInterval"
HEARTBEAT_TIMEOUT = "spark.network.timeout"
EXECUTOR_REGISTRATION_TIMEOUT = "spark.sluicegate.executor.registrationTimeout"
NO_EXECUTOR_TIMEOUT = "spark.sluicegate.executor.waitTimeout"
LOCAL_RESPAWN = "spark.sluicegate.local.respawnExecutors"
LOCAL_MAX_RESPAWNS = "spark.sluicegate.local.maxRespawns"
BLOCK_MEMORY_LIMIT = "spark.sluicegate.blocks.memoryLimit"
FETCH_TIMEOUT = "spark.sluicegate.shuffle.fetchTimeout"
REDUCER_MAX_SIZE_IN_FLIGHT = "spark.reducer.maxSizeInFlight"
PYTHON_WORKER_MEMORY = "spark.python.worker.memory"
# How long a killed task may take to stop before it is interrupted (without
# interruptOnCancel), and again before its executor is replaced; in seconds in
# ExecutorRegistered.conf.
TASK_KILL_TIMEOUT = "spark.python.task.killTimeout"
# Keys the driver hands each executor when it registers (ExecutorRegistered.conf).
EXECUTOR_KEYS = (REDUCER_MAX_SIZE_IN_FLIGHT, PYTHON_WORKER_MEMORY)
WORK_DIR = "spark.sluicegate.workDir"

UI_ENABLED = "spark.ui.enabled"
UI_PORT = "spark.ui.port"
UI_BIND_ADDRESS = "spark.ui.bindAddress"
PROGRESS = "spark.sluicegate.progress"

STREAMING_BLOCK_INTERVAL = "spark.streaming.blockInterval"
STREAMING_CONCURRENT_JOBS = "spark.streaming.concurrentJobs"
STREAMING_RECEIVER_MAX_RATE = "spark.streaming.receiver.maxRate"
STREAMING_STOP_GRACEFULLY_ON_SHUTDOWN = "spark.streaming.stopGracefullyOnShutdown"
STREAMING_GRACEFUL_STOP_TIMEOUT = "spark.streaming.gracefulStopTimeout"
STREAMING_WAL_ENABLE = "spark.streaming.receiver.writeAheadLog.enable"
STREAMING_RECEIVER_RESTART_DELAY = "spark.streaming.receiverRestartDelay"
RECEIVER_MAX_LINE_BYTES = "spark.sluicegate.receiver.maxLineBytes"

NETWORK_HANDSHAKE_TIMEOUT = "spark.sluicegate.network.handshakeTimeout"
NETWORK_MAX_PENDING_CONNECTIONS = "spark.sluicegate.network.maxPendingConnections"


# -- value parsing -----------------------------------------------------------

_DURATION_UNITS_S = {
    "us": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0,
    "h": 3600.0, "d": 86400.0,
}
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
               "g": 1 << 30, "gb": 1 << 30, "t": 1 << 40, "tb": 1 << 40}
_NUMBER_WITH_UNIT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_duration_s(value: Any, default_unit: str = "s") -> float:
    """Parse ``"200ms"``, ``"10s"``, ``"1min"`` or a bare number into seconds.

    A bare number is read in ``default_unit`` (Spark reads some keys in ms,
    others in s).
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) * _DURATION_UNITS_S[default_unit]
    match = _NUMBER_WITH_UNIT.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (expected e.g. '200ms', '10s', '1min')")
    number, unit = float(match.group(1)), (match.group(2).lower() or default_unit)
    if unit not in _DURATION_UNITS_S:
        raise ValueError(f"unknown duration unit {unit!r} in {value!r}")
    return number * _DURATION_UNITS_S[unit]


def parse_size_bytes(value: Any) -> int:
    """Parse ``"512m"``, ``"2g"``, ``"4096"`` or a number into bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _NUMBER_WITH_UNIT.match(str(value))
    if not match:
        raise ValueError(f"not a size: {value!r} (expected e.g. '512m', '2g')")
    unit = match.group(2).lower()
    if unit not in _SIZE_UNITS:
        raise ValueError(f"unknown size unit {unit!r} in {value!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


@dataclass(frozen=True)
class Setting:
    """One key: its default and how its value is read."""

    key: str
    default: Any
    parse: Callable[[Any], Any]
    doc: str


def _duration(unit: str) -> Callable[[Any], float]:
    return lambda v: parse_duration_s(v, unit)


SETTINGS: dict[str, Setting] = {s.key: s for s in [
    Setting(TASK_MAX_FAILURES, 4, int, "attempts of one task before its job fails"),
    Setting(STAGE_MAX_ATTEMPTS, 4, int, "consecutive attempts of a stage after lost shuffle output"),
    Setting(LOCALITY_WAIT, "3s", _duration("ms"),
            "how long a task waits for a slot on the executor holding its data"),
    Setting(HEARTBEAT_INTERVAL, f"{int(constants.HEARTBEAT_INTERVAL_S * 1000)}ms", _duration("ms"), "executor <-> driver heartbeat period"),
    Setting(HEARTBEAT_TIMEOUT, f"{constants.HEARTBEAT_TIMEOUT_S:g}s", _duration("s"), "silence after which a peer is dead"),
    Setting(EXECUTOR_REGISTRATION_TIMEOUT, f"{constants.EXECUTOR_REGISTRATION_TIMEOUT_S:g}s", _duration("s"),
            "how long SparkContext waits for its local executors to register"),
    Setting(NO_EXECUTOR_TIMEOUT, "30s", _duration("s"),
            "how long tasks wait when no executor is alive before their job fails"),
    Setting(LOCAL_RESPAWN, True, parse_bool, "local mode: replace an executor that died"),
    Setting(LOCAL_MAX_RESPAWNS, 16, int, "local mode: replacements before giving up"),
    Setting(BLOCK_MEMORY_LIMIT, "512m", parse_size_bytes,
            "bytes of blocks an executor keeps in memory before spilling to disk"),
    Setting(FETCH_TIMEOUT, f"{constants.FETCH_TIMEOUT_S:g}s", _duration("s"), "a shuffle fetch without reply fails after this"),
    Setting(REDUCER_MAX_SIZE_IN_FLIGHT, "48m", parse_size_bytes,
            "shuffle bytes a reduce task has requested from peers and not yet merged"),
    Setting(PYTHON_WORKER_MEMORY, "512m", parse_size_bytes,
            "memory a task's shuffle aggregation may use before spilling it to disk"),
    Setting(TASK_KILL_TIMEOUT, f"{constants.TASK_KILL_TIMEOUT_S:g}s", _duration("ms"),
            "a killed task's time to stop before it is interrupted (then: its executor goes)"),
    Setting(UI_ENABLED, True, parse_bool, "serve the status pages, REST API and /metrics"),
    Setting(UI_PORT, 4040, int, "status page port (the next free one if taken; 0: any)"),
    Setting(UI_BIND_ADDRESS, "127.0.0.1", str, "status page address (beyond loopback needs a secret)"),
    Setting(PROGRESS, True, parse_bool, "print a live line per completed batch to stderr"),
    Setting(STREAMING_BLOCK_INTERVAL, "200ms", _duration("ms"), "receiver block cutting period"),
    Setting(STREAMING_CONCURRENT_JOBS, 1, int, "output jobs that may run at once"),
    Setting(STREAMING_RECEIVER_MAX_RATE, 0, int, "records/s cap per receiver (0: none)"),
    Setting(STREAMING_STOP_GRACEFULLY_ON_SHUTDOWN, False, parse_bool,
            "SIGTERM/SIGINT stop the StreamingContext gracefully"),
    Setting(STREAMING_GRACEFUL_STOP_TIMEOUT, None, lambda v: None if v is None else parse_duration_s(v, "ms"),
            "how long a graceful stop waits for received data (default: 10 batches, at least 10 s)"),
    Setting(STREAMING_WAL_ENABLE, False, parse_bool, "receiver write-ahead log"),
    Setting(STREAMING_RECEIVER_RESTART_DELAY, "2s", _duration("ms"),
            "delay before a failed receiver is restarted"),
    Setting(RECEIVER_MAX_LINE_BYTES, "64m", parse_size_bytes,
            "socketTextStream drops (and counts) a line longer than this"),
    Setting(NETWORK_HANDSHAKE_TIMEOUT, "10s", _duration("s"),
            "a connection that has not authenticated within this is closed"),
    Setting(NETWORK_MAX_PENDING_CONNECTIONS, 64, int,
            "connections per listening port that may be mid-handshake at once (0: no cap)"),
]}


def get_setting(conf: Mapping[str, Any], key: str) -> Any:
    """The parsed value of ``key`` in ``conf``, or its parsed default."""
    setting = SETTINGS[key]
    raw = conf.get(key, setting.default)
    try:
        return setting.parse(raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad value for {key}: {raw!r} ({exc})") from None


# -- flow control and elasticity (keys read by driver/streaming_scheduler/flow_control.py
# and driver/streaming_scheduler/allocation_manager.py) -----------------------------------
BACKPRESSURE_ENABLED = "spark.streaming.backpressure.enabled"
BACKPRESSURE_INITIAL_RATE = "spark.streaming.backpressure.initialRate"
BACKPRESSURE_ESTIMATOR = "spark.streaming.backpressure.rateEstimator"
BACKPRESSURE_PID_PROPORTIONAL = "spark.streaming.backpressure.pid.proportional"
BACKPRESSURE_PID_INTEGRAL = "spark.streaming.backpressure.pid.integral"
BACKPRESSURE_PID_DERIVED = "spark.streaming.backpressure.pid.derived"
BACKPRESSURE_PID_MIN_RATE = "spark.streaming.backpressure.pid.minRate"
MAX_QUEUED_BATCHES = "spark.sluicegate.maxQueuedBatches"
RECEIVER_MAX_BUFFER_BYTES = "spark.sluicegate.receiver.maxBufferBytes"
RECEIVER_ISOLATION = "spark.sluicegate.receiver.isolation"
DYN_ALLOCATION_ENABLED = "spark.streaming.dynamicAllocation.enabled"
DYN_ALLOCATION_SCALING_INTERVAL = "spark.streaming.dynamicAllocation.scalingInterval"
DYN_ALLOCATION_UP_RATIO = "spark.streaming.dynamicAllocation.scalingUpRatio"
DYN_ALLOCATION_DOWN_RATIO = "spark.streaming.dynamicAllocation.scalingDownRatio"
DYN_ALLOCATION_MIN_EXECUTORS = "spark.streaming.dynamicAllocation.minExecutors"
DYN_ALLOCATION_MAX_EXECUTORS = "spark.streaming.dynamicAllocation.maxExecutors"


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None or v == "" else parse(v)


SETTINGS.update({s.key: s for s in [
    Setting(BACKPRESSURE_ENABLED, False, parse_bool,
            "set each input stream's rate from the last batches' delays (PID)"),
    Setting(BACKPRESSURE_INITIAL_RATE, None, _optional(float),
            "records/s each input stream may take before the first estimate (default: no limit)"),
    Setting(BACKPRESSURE_ESTIMATOR, "pid", str, "the rate estimator (only 'pid')"),
    Setting(BACKPRESSURE_PID_PROPORTIONAL, 1.0, float, "PID: weight of the current error"),
    Setting(BACKPRESSURE_PID_INTEGRAL, 0.2, float, "PID: weight of the scheduling delay"),
    Setting(BACKPRESSURE_PID_DERIVED, 0.0, float, "PID: weight of the error's change"),
    Setting(BACKPRESSURE_PID_MIN_RATE, 100.0, float, "PID: the lowest rate it sets (records/s)"),
    Setting(MAX_QUEUED_BATCHES, 10, int,
            "batches generated and not finished at most; the next waits (0: no cap)"),
    Setting(RECEIVER_MAX_BUFFER_BYTES, "128m", parse_size_bytes,
            "bytes a receiver may have stored that no batch has finished with; store() waits"),
    Setting(RECEIVER_ISOLATION, "thread", str,
            "where receivers run: 'thread' (driver threads) or 'process' (a process each)"),
    Setting(DYN_ALLOCATION_ENABLED, False, parse_bool, "scale executors with batch processing time"),
    Setting(DYN_ALLOCATION_SCALING_INTERVAL, "60s", _duration("s"), "how often to decide"),
    Setting(DYN_ALLOCATION_UP_RATIO, 0.9, float, "add executors at processing/interval >= this"),
    Setting(DYN_ALLOCATION_DOWN_RATIO, 0.3, float, "remove one at processing/interval <= this"),
    Setting(DYN_ALLOCATION_MIN_EXECUTORS, None, _optional(int), "fewest executors (default 1)"),
    Setting(DYN_ALLOCATION_MAX_EXECUTORS, None, _optional(int),
            "most executors (default: local[N]'s N, or no cap on a cluster)"),
]})
