"""One home for the numbers and names every process must agree on.

The release (written into checkpoints and shown by the CLI), the liveness
and retry timings of the links between processes, and the ``SLUICEGATE_*``
environment variables through which the CLI, the cluster service, the job
keeper and the executors pass settings to the processes they start. A value
that users may change is a Spark setting in ``config``; its default is taken
from here so the two cannot drift apart.
"""
from __future__ import annotations

VERSION = "0.1.0"

# -- liveness: heartbeats and the silence after which a peer counts as gone -------------
# Spark's spark.executor.heartbeatInterval is 10 s; ours is short because a lost
# executor costs a streaming batch, and a heartbeat is one small message.
HEARTBEAT_INTERVAL_S = 0.5        # executor <-> driver, both ways
HEARTBEAT_TIMEOUT_S = 10.0        # spark.network.timeout's default here: silence = dead
WORKER_HEARTBEAT_INTERVAL_S = 1.0  # worker daemon <-> cluster service
WORKER_HEARTBEAT_TIMEOUT_S = 10.0
APP_REREGISTER_S = 3.0            # an application driver re-announces itself to the service
APP_REPORT_S = 1.0                # ... and reports its executors' state this often
APP_SILENCE_S = 15.0              # five missed re-announcements: the job's driver is gone
ADOPTION_GRACE_S = 5.0            # after a service restart, time for workers to report executors

# -- registration and retries ------------------------------------------------------------
EXECUTOR_REGISTRATION_TIMEOUT_S = 60.0  # an executor that cannot register gives up (wrong secret?)
EXECUTOR_REGISTER_RETRY_S = 1.0   # an unanswered RegisterExecutor is sent again
WORKER_REGISTER_RETRY_S = 1.0     # an unanswered RegisterWorker too: the service answers at once
APP_REGISTER_RETRY_S = 0.5        # an unanswered RegisterApplication: a job's start waits on it
EXECUTOR_STOP_GRACE_S = 3.0       # an executor told to stop gets this long before it exits anyway
WORKER_RECONNECT_MIN_S = 0.25     # a worker that lost the service retries with backoff ...
WORKER_RECONNECT_MAX_S = 8.0      # ... doubling up to this
WORKER_EXECUTOR_STOP_GRACE_S = 5.0  # SIGTERM, then SIGKILL after this
FETCH_TIMEOUT_S = 30.0            # a shuffle fetch without a reply fails the fetch
SOCKET_RECONNECT_MIN_MS = 100     # libzmq redials a dropped connection this soon: a restarted
SOCKET_RECONNECT_MAX_MS = 2000    # ... service is found within 2 s (backoff doubles up to here)
TASK_KILL_TIMEOUT_S = 2.0         # spark.python.task.killTimeout's default, as in PySpark

# -- the environment contract --------------------------------------------------------------
# Set by `sluicegate submit` / the service's job keeper for the job's driver process:
ENV_MASTER = "SLUICEGATE_MASTER"            # overrides the job's own setMaster()
ENV_JOB_ID = "SLUICEGATE_JOB_ID"            # the job id the service gave this run
ENV_CORES = "SLUICEGATE_CORES"              # cores the job may use on the cluster
ENV_APP_NAME = "SLUICEGATE_APP_NAME"        # from `submit --name`, if the job sets none
ENV_SECRET_FILE = "SLUICEGATE_SECRET_FILE"  # the cluster's shared secret
ENV_BIND_HOST = "SLUICEGATE_BIND_HOST"      # where the job's driver listens
ENV_CONF_PREFIX = "SLUICEGATE_CONF_"        # SLUICEGATE_CONF_spark_x_y=v sets spark.x.y=v
# Read by any process:
ENV_QUIET = "SLUICEGATE_QUIET"              # "1": no console progress bar
ENV_DRIVER = "SLUICEGATE_DRIVER"            # the CLI's default --driver host:port
ENV_HOME = "SLUICEGATE_HOME"                # where the default secret lives (~/.sluicegate)
ENV_LOG_LEVEL = "SLUICEGATE_LOG_LEVEL"      # executor and receiver processes' log level
ENV_SQL_THREADS = "SLUICEGATE_SQL_THREADS"  # DuckDB threads per SQL task
