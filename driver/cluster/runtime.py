"""What one application's driver runs: the event loop, the scheduler, the
executors (local processes, or a cluster's), and the blocks it holds.

``SparkContext`` owns one runtime. Jobs are handed to the loop thread and
waited on here, in the caller's thread, where Ctrl-C cancels them; a job
cancelled from another thread (by group, tag, or all at once) raises here.
"""
from __future__ import annotations

import itertools
import logging
import os
import pickle
import shutil
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import sluicegate.common
from sluicegate.common import config as cfg
from sluicegate.common import storage
from sluicegate.common.transport import Transport, advertised_host, endpoint

from ..scheduler.batch_tag import BatchTag
from ..scheduler.closures import ClosureRegistry
from ..scheduler.dag import DAGScheduler
from ..scheduler.jobs import Job, JobCancelledError, JobFailedError
from ..status.store import StatusStore, task_status
from .driver_blocks import DriverBlocks
from .endpoint import DriverEndpoint
from .executor_fleet import FleetSettings
from .file_server import FileServer
from .cluster_backend import ClusterBackend
from .local_backend import LocalBackend
from .loop_events import (
    AllJobsCancelled, Barrier, BlocksHeld, JobCancelled, JobGroupCancelled, JobSubmitted,
    JobTagCancelled, PushInputBlock, RemoveBlocks, RemoveExecutor, RemoveRdd, RemoveShuffle)

log = logging.getLogger("sluicegate.driver")

# Frames in these directories are sluicegate's own (a call site is the user's frame).
_OWN_CODE = (os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,
             os.path.dirname(os.path.abspath(sluicegate.common.__file__)) + os.sep)
_STDLIB = os.path.dirname(os.path.abspath(threading.__file__)) + os.sep


@dataclass(frozen=True)
class MasterSpec:
    """Where an application's executors come from."""

    kind: str                     # "local" or "cluster"
    executors: int = 0            # local: how many processes
    max_failures: int | None = None
    service_endpoint: str = ""    # cluster: the driver service
    job_id: str = ""
    cores: int = 0                # cluster: cap (0: as many as given)


class DriverRuntime:
    def __init__(self, conf: dict, master: "MasterSpec", secret: bytes,
                 closures: ClosureRegistry, on_accumulators: Callable[[dict], None],
                 max_failures: int, app_name: str):
        self.conf = conf
        storage.configure(conf)  # this process's file system options (s3:// & co.)
        self.closures = closures
        self.transport = Transport(secret, conf)
        self.blocks = DriverBlocks()
        self._job_ids = itertools.count(0)
        self.status = StatusStore()
        self.dag = DAGScheduler(
            closures, max_failures=max_failures,
            on_task_end=lambda run, outcome, attempt: self.status.task_ended(
                task_status(run, outcome, attempt)),
            on_stage_submitted=self._stage_submitted,
            max_stage_attempts=cfg.get_setting(conf, cfg.STAGE_MAX_ATTEMPTS),
            locality_wait_s=cfg.get_setting(conf, cfg.LOCALITY_WAIT),
            no_executor_timeout_s=cfg.get_setting(conf, cfg.NO_EXECUTOR_TIMEOUT),
            on_accumulators=lambda data: on_accumulators(pickle.loads(data)))
        settings = FleetSettings(
            heartbeat_interval_s=cfg.get_setting(conf, cfg.HEARTBEAT_INTERVAL),
            heartbeat_timeout_s=cfg.get_setting(conf, cfg.HEARTBEAT_TIMEOUT),
            executor_conf={**{k: cfg.get_setting(conf, k) for k in cfg.EXECUTOR_KEYS if k in conf},
                           **storage.storage_conf(conf),  # file system options (credentials)
                           cfg.TASK_KILL_TIMEOUT: cfg.get_setting(conf, cfg.TASK_KILL_TIMEOUT)})
        host = conf.get(cfg.DRIVER_BIND_ADDRESS, "127.0.0.1")
        port = int(conf.get(cfg.DRIVER_PORT, 0))
        self.app_dir = Path(tempfile.mkdtemp(prefix="sluicegate-app-"))
        self.files = FileServer(self.app_dir)  # addFile & co., served to the executors
        self.endpoint = DriverEndpoint(self.transport, host, port, settings, self.dag, closures,
                                       self.blocks, on_executor_lost=self._executor_lost,
                                       files=self.files)
        self.master = master
        if master.kind == "local":
            self.backend = LocalBackend(
                master.executors, endpoint("127.0.0.1", self.endpoint.port), secret, self.app_dir,
                memory_limit=str(cfg.get_setting(conf, cfg.BLOCK_MEMORY_LIMIT)),
                fetch_timeout_s=cfg.get_setting(conf, cfg.FETCH_TIMEOUT),
                respawn=cfg.get_setting(conf, cfg.LOCAL_RESPAWN),
                max_respawns=cfg.get_setting(conf, cfg.LOCAL_MAX_RESPAWNS),
                on_exit=self._process_exited,
                executor_env={k[len("spark.executorEnv."):]: v for k, v in conf.items()
                              if k.startswith("spark.executorEnv.")})
        else:
            advertised = conf.get(cfg.DRIVER_HOST) or advertised_host(host)
            self.backend = ClusterBackend(
                self.transport, master.service_endpoint, master.job_id, app_name,
                endpoint(advertised, self.endpoint.port), master.cores,
                on_executor_removed=self._executor_removed,
                endpoint=self.endpoint, status=self.status)  # reported to the service
        self._stopped = False

    def start(self) -> None:
        self.endpoint.start()
        timeout = cfg.get_setting(self.conf, cfg.EXECUTOR_REGISTRATION_TIMEOUT)
        self.backend.start()
        if self.master.kind == "local":
            wanted = self.master.executors
        else:
            wanted = max(1, self.backend.executors_planned)
        registered = self.endpoint.wait_for_executors(wanted, timeout)
        if registered == 0 or (self.master.kind == "local" and registered < wanted):
            self.stop()
            where = "local executors" if self.master.kind == "local" else \
                f"executors from the cluster at {self.master.service_endpoint}"
            raise RuntimeError(f"only {registered} of {wanted} {where} registered within "
                               f"{timeout:.0f}s")

    def _stage_submitted(self, stage, task_set) -> None:
        kind = f"map for shuffle {stage.shuffle_dep.shuffle_id}" if stage.is_map_stage else "result"
        self.status.stage_submitted(stage.id, task_set.attempt, repr(stage.rdd), kind,
                                    len(task_set.tasks), sorted(stage.job_ids))

    # -- executor lifecycle (loop thread / watcher threads) ------------------------------
    def _process_exited(self, executor_id: str, code: int) -> None:
        self.endpoint.post(RemoveExecutor(executor_id, f"its process exited with code {code}"))

    def _executor_removed(self, executor_id: str, reason: str) -> None:
        """The cluster service removed one of this job's executors."""
        self.endpoint.post(RemoveExecutor(executor_id, reason))

    def _executor_lost(self, executor_id: str, reason: str) -> None:
        self.backend.replace(executor_id, reason)

    @property
    def total_cores(self) -> int:
        alive = self.endpoint.registry.alive()
        return sum(e.cores for e in alive) or self.master.executors or 1

    # -- jobs --------------------------------------------------------------------------------
    def run_job(self, rdd, partitions: list[int], description: str = "",
                properties: dict[str, str] | None = None) -> list[bytes]:
        """Run ``rdd``'s ``partitions`` and return each one's result batch, in order.

        ``properties``: the calling thread's local properties (job group, tags).
        """
        if self._stopped or not self.endpoint.alive:
            raise RuntimeError("Cannot call methods on a stopped SparkContext")
        call_site = _call_site()
        job = Job(next(self._job_ids), rdd, partitions, description, properties, call_site)
        tag = BatchTag.of(properties)  # the streaming batch and output operation, if any
        self.status.job_started(job.id, job_name(description, call_site, rdd, tag),
                                len(partitions), tag)
        self.endpoint.post(JobSubmitted(job))
        try:
            while not job.wait(0.25):
                if not self.endpoint.alive:
                    raise RuntimeError(
                        f"the driver stopped while job {job.id} was running: {self.endpoint.failure}")
        except KeyboardInterrupt:
            self.endpoint.post(JobCancelled(job.id, "interrupted"))
            raise
        finally:
            self.status.job_ended(job.id, job.stage_ids, job.error)
        if job.error is not None:
            error = job.error
            if isinstance(error, JobCancelledError):
                raise JobCancelledError(str(error)) from None
            if isinstance(error, JobFailedError):
                raise JobFailedError(f"Job {job.id} failed: {error}", error_type=error.error_type,
                                     error_message=error.error_message,
                                     worker_traceback=error.worker_traceback,
                                     stage_id=error.stage_id, partition=error.partition,
                                     executor_id=error.executor_id) from None
            raise error
        return [job.results[part] for part in partitions]

    def cancel(self, what: str, value: str | None = None) -> None:
        """Cancel active jobs: ``group`` (a job group), ``tag`` (a job tag) or ``all``.

        In the loop's order: a job submitted before this call is cancelled. Their
        actions raise ``JobCancelledError`` in the threads that run them.
        """
        if what == "group":
            self.endpoint.post(JobGroupCancelled(value))
        elif what == "tag":
            self.endpoint.post(JobTagCancelled(value))
        elif what == "all":
            self.endpoint.post(AllJobsCancelled())
        else:
            raise ValueError(f"cancel what: group, tag or all, not {what!r}")

    # -- blocks and cleanup (any thread) -------------------------------------------------
    def put_driver_block(self, block_id: str, data: bytes) -> None:
        self.blocks.put(block_id, data)

    def store_input_block(self, block_id: str, data: bytes) -> None:
        """Keep a received block and push it to an executor ahead of its batch.

        The driver's copy stays until the batch is forgotten, so losing the
        executor never loses the data: a task that needs it gets it attached.
        """
        self.blocks.put(block_id, data)
        self.endpoint.post(PushInputBlock(block_id, data))

    def drop_driver_blocks(self, block_ids: list[str]) -> None:
        """The driver's copies go, and the executors' (a destroyed broadcast, a
        forgotten batch's input)."""
        self.blocks.remove(block_ids)
        self.unpersist_blocks(block_ids)

    def unpersist_blocks(self, block_ids: list[str]) -> None:
        """The executors drop their copies of driver blocks; the driver keeps its own
        (an unpersisted broadcast ships again when a task needs it)."""
        self.endpoint.post(RemoveBlocks(tuple(block_ids)))

    def blocks_held(self, block_ids: list[str]) -> list[bool]:
        """For each block: does some executor hold it (as the loop knows now)?"""
        return self.endpoint.call(BlocksHeld(tuple(block_ids)))

    def wait_for_posted(self) -> None:
        """Return once everything handed to the loop before this call is done there."""
        self.endpoint.call(Barrier())

    def drop_rdd(self, rdd_id: int) -> None:
        self.endpoint.post(RemoveRdd(rdd_id))

    def drop_shuffle(self, shuffle_id: int) -> None:
        self.endpoint.post(RemoveShuffle(shuffle_id))

    def track_shuffle(self, dep) -> None:
        """Drop the shuffle's blocks everywhere once nothing references it."""
        weakref.finalize(dep, self.drop_shuffle, dep.shuffle_id)

    def track_rdd_blocks(self, rdd, block_ids: list[str]) -> None:
        weakref.finalize(rdd, self.drop_driver_blocks, block_ids)

    def track_cached_rdd(self, rdd) -> None:
        weakref.finalize(rdd, self.drop_rdd, rdd.id())

    # -- shutdown ---------------------------------------------------------------------------
    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.endpoint.stop()
        self.backend.stop()
        self.transport.close()
        shutil.rmtree(self.app_dir, ignore_errors=True)


def job_name(description: str, call_site: str, rdd, tag: BatchTag | None) -> str:
    """What the status pages call a job: the user's words, the output operation and batch
    it belongs to (``pprint at wordcount.py:12 (output operation 0 of batch 06:33:38)``),
    or the action's call site; the RDD's internal name only when nothing else is known."""
    if description:
        return description
    if tag is not None:
        when = time.strftime("%H:%M:%S", time.localtime(tag.batch_ms / 1000))
        if tag.batch_ms % 1000:
            when += f".{tag.batch_ms % 1000:03d}"
        return (f"{tag.output or call_site or 'output'} (output operation {tag.output_id} "
                f"of batch {when})")
    return call_site or repr(rdd)


def _call_site() -> str:
    """Spark's short call site of an action: ``collect at job.py:12`` (the first
    frame outside sluicegate, and the sluicegate function it called)."""
    frame = sys._getframe(1)
    called = ""
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_OWN_CODE):
            if filename.startswith(_STDLIB):  # e.g. a streaming job's thread: no user frame
                return ""
            return f"{called} at {filename}:{frame.f_lineno}" if called else ""
        called = frame.f_code.co_name
        frame = frame.f_back
    return ""
