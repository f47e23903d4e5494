"""Recovery of a StreamingContext: ``getOrCreate``, ``getActiveOrCreate`` and code
upgrades (a mixin of ``StreamingContext``).

* No checkpoint: the setup function builds the context, which then checkpoints
  to the given path (PySpark's ``getOrCreate``).
* A checkpoint: the checkpointed context comes back -- graph, functions,
  configuration, clock, state, pending batches, input positions -- and the
  setup function is not called.
* An upgrade (opt-in): the setup function builds the new graph; if its inputs
  and stateful streams match the checkpointed ones, it takes over their state,
  pending batches and input positions (``_take_over``).

A graceful stop checkpoints every stateful stream's newest state (the
streaming scheduler's ``savepoint``), so a restart or an upgrade starts from
the last batch. The re-run of the batches a recovered checkpoint left pending
is the streaming scheduler's too (``JobScheduler.start``).
"""
from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any, Callable, Iterable

from sluicegate.common import config as cfg
from sluicegate.common import storage

from ..checkpoint import metadata
from ..dstream.inputs import ReceiverInput
from .conf import SparkConf
from .spark_context import SparkContext

if TYPE_CHECKING:
    from ..dstream.base import DStream
    from .streaming_context import StreamingContext

log = logging.getLogger("sluicegate.streaming")


class Recovery:
    """``StreamingContext``'s recovery methods."""

    @classmethod
    def getActiveOrCreate(cls, checkpointPath: str | None,
                          setupFunc: Callable[[], "StreamingContext"],
                          upgrade: bool | None = None) -> "StreamingContext":
        """The active context, else one recovered from ``checkpointPath``, else ``setupFunc()``
        (``upgrade``: as ``getOrCreate``)."""
        with cls._lock:
            active = cls._activeContext
            if active is not None:
                return active
            if checkpointPath is not None:
                return cls.getOrCreate(checkpointPath, setupFunc, upgrade)
            return _call_setup(setupFunc)

    @classmethod
    def getOrCreate(cls, checkpointPath: str, setupFunc: Callable[[], "StreamingContext"],
                    upgrade: bool | None = None) -> "StreamingContext":
        """Recover the context from the newest checkpoint in ``checkpointPath``, or, if
        there is none, build it with ``setupFunc()`` and checkpoint it to
        ``checkpointPath`` (PySpark's semantics).

        A recovered context is the checkpointed one -- its graph and functions, its
        configuration and clock, its state and input positions -- and ``setupFunc``
        is not called. On ``start()`` it first re-runs the batches that were pending
        (and those its downtime skipped), then goes on. It runs on the active
        SparkContext, or on a new one made from the checkpointed configuration
        (settings from the environment, ``SLUICEGATE_CONF_*``, win). A checkpoint
        written by another sluicegate version, or by a setup function whose code has
        changed since, is refused (beyond PySpark, which would run the old code).

        ``upgrade=True`` (or the setting ``spark.sluicegate.streaming.upgrade=true``
        in the active SparkContext's configuration or the environment) deploys new
        code on the checkpointed state: ``setupFunc()`` is called, its graph must
        have the checkpointed graph's inputs and stateful operators (same kinds,
        durations, partition counts and feeding; stateless operators and outputs
        may change), and the context then runs the new functions on the
        checkpointed state, pending batches and input positions. An incompatible
        graph is refused, naming the first stream that differs.
        """
        if upgrade is None:
            upgrade = _upgrade_requested()
        _configure_storage(checkpointPath)
        stamp = metadata.fingerprint(setupFunc)
        if upgrade:
            return cls._upgrade_or_create(checkpointPath, setupFunc, stamp)
        checkpoint = metadata.read_latest(checkpointPath, stamp)
        if checkpoint is None:
            return cls._create(checkpointPath, setupFunc, stamp)
        sc = SparkContext._active_spark_context
        if sc is None:
            conf = SparkConf(loadDefaults=False).setAll(checkpoint.conf.items())
            sc = SparkContext(conf=conf.setAll(SparkConf().getAll()))
        clock_ref = getattr(checkpoint, "clock", None)
        clock = clock_ref.resolve() if clock_ref is not None else None
        log.warning("recovering streaming context from the checkpoint of batch %s in %s",
                    checkpoint.time_ms, checkpointPath)
        ssc = cls._restore(sc, checkpoint, checkpointPath, stamp, clock)
        ssc._clock_ref = clock_ref if clock is not None else None
        return ssc

    @classmethod
    def _create(cls, checkpointPath: str, setupFunc: Callable[[], "StreamingContext"],
                stamp: str) -> "StreamingContext":
        """No checkpoint yet: ``setupFunc()``, then ``checkpoint(checkpointPath)``."""
        ssc = _call_setup(setupFunc)
        ssc._use_checkpoint_dir(checkpointPath)
        ssc._fingerprint = stamp
        return ssc

    @classmethod
    def _upgrade_or_create(cls, checkpointPath: str, setupFunc: Callable[[], "StreamingContext"],
                           stamp: str) -> "StreamingContext":
        checkpoint = metadata.read_latest(checkpointPath, None, lenient=True)
        if checkpoint is None:
            return cls._create(checkpointPath, setupFunc, stamp)
        had_context = SparkContext._active_spark_context
        ssc = _call_setup(setupFunc)
        try:
            ssc._take_over(checkpoint, checkpointPath, stamp)
        except BaseException:  # defined, never started: let go of what setup made
            ssc.stop(stopSparkContext=ssc.sparkContext is not had_context)
            raise
        log.warning("upgrading: the new application takes over the state of the checkpoint of "
                    "batch %s in %s", checkpoint.time_ms, checkpointPath)
        return ssc

    @classmethod
    def _restore(cls, sc: SparkContext, checkpoint: "metadata.StreamingCheckpoint",
                 directory: str, stamp: str, clock: Any = None) -> "StreamingContext":
        ssc = cls(sc, checkpoint.batch_ms / 1000.0, clock=clock)
        ssc._fingerprint = stamp
        ssc._scheduler.graph = checkpoint.graph
        streams = ssc._attach_streams()
        # A new application directory for this run's state, as Spark's recovered context
        # (the SparkContext's current one may hold what an earlier run left behind).
        ssc.checkpoint(directory)
        stream_ids = [-1]
        for op in ssc._graph.input_ops():
            stream_ids.append(op.stream_id)
            if isinstance(op, ReceiverInput):
                ssc._receivers.add(op.receiver, op.stream_id)
        ssc._stream_ids = itertools.count(max(stream_ids) + 1)
        ssc._resume_from(checkpoint, directory, streams)
        return ssc

    def _take_over(self, checkpoint: "metadata.StreamingCheckpoint", directory: str,
                   stamp: str) -> None:
        """A code upgrade: this context, just built by the new setup function, takes the
        checkpointed graph's state, pending batches and input positions."""
        old = checkpoint.graph.state_skeleton()
        new = self._graph.state_skeleton()
        difference = metadata.upgrade_difference(checkpoint.batch_ms, [e for _, e in old],
                                                 self._batch_ms, [e for _, e in new])
        if difference is not None:
            raise metadata.CheckpointError(
                f"checkpoint in {directory} was written by a different DStream graph than the "
                "one the setup function builds now, and an upgrade cannot carry its state over: "
                f"{difference}. An upgrade keeps the input streams and the stateful streams "
                "(updateStateByKey, mapWithState, windows), so the new graph must have the same "
                "ones, defined in the same order, with the same parameters and partitioning; "
                "stateless operations and outputs may change. Delete the checkpoint directory "
                f"{directory} to start afresh, or deploy the old application.")
        for (old_stream, _), (new_stream, _) in zip(old, new):
            if not old_stream._parents:
                try:
                    new_stream._op.take_position(old_stream._op)
                except ValueError as exc:
                    raise metadata.CheckpointError(
                        f"checkpoint in {directory}: an upgrade cannot carry its state over: "
                        f"{exc}") from None
            else:
                new_stream._checkpointed = dict(old_stream._checkpointed)
        streams = self._attach_streams()
        self.checkpoint(directory)  # a new application directory, as a recovery makes
        self._fingerprint = stamp
        self._resume_from(checkpoint, directory, streams)

    def _attach_streams(self) -> list["DStream"]:
        """Attach every stream of the graph (a checkpointed or taken-over one) to this
        context; return them."""
        streams = list({id(s): s for s in self._graph.all_streams() + self._graph.inputs}.values())
        for stream in streams:
            stream._attach(self)
        return streams

    def _resume_from(self, checkpoint: "metadata.StreamingCheckpoint", directory: str,
                     streams: Iterable["DStream"]) -> None:
        """Received blocks, batches claimed before the crash, and checkpoint data the
        restored streams do not use (deleted)."""
        for op in self._graph.input_ops():
            if isinstance(op, ReceiverInput):
                # Batches that claimed blocks before the crash: forgotten (blocks, WAL
                # files) once they fall out of memory, even if nothing computes them again.
                op.restored_batches = {t for t, by_stream in checkpoint.received_batches.items()
                                       if op.stream_id in by_stream}
        self._receivers.blocks.restore(checkpoint.received_batches,
                                       checkpoint.received_unallocated,
                                       checkpoint.received_metadata)
        referenced: set[str] = set()
        for stream in streams:
            referenced |= stream._checkpoint_paths()
        keep = self._sc.getCheckpointDir()
        removed = metadata.remove_unreferenced_data(
            directory, referenced, keep.removeprefix("file:") if keep else None)
        if removed:
            log.info("recovery: removed %d checkpoint data directories the restored metadata "
                     "does not use: %s", len(removed), ", ".join(storage.basename(p) for p in removed))
        self._recovered = checkpoint

    def _use_checkpoint_dir(self, directory: str) -> None:
        """``checkpoint(directory)``, keeping the SparkContext's application directory
        if it is already one under ``directory`` (the setup function just set it)."""
        current = self._sc.getCheckpointDir()
        if current is not None and storage.parent(current) == storage.absolute(directory):
            self._checkpoint_dir = storage.absolute(directory)
        else:
            self.checkpoint(directory)


def _upgrade_requested() -> bool:
    """``spark.sluicegate.streaming.upgrade`` in the active SparkContext's
    configuration, else in the environment's (``SLUICEGATE_CONF_*``)."""
    sc = SparkContext._active_spark_context
    value = sc._conf.get(metadata.UPGRADE_KEY) if sc is not None else None
    if value is None:
        value = SparkConf().get(metadata.UPGRADE_KEY)
    if value is None:
        return False
    try:
        return cfg.parse_bool(value)
    except ValueError:
        raise ValueError(f"{metadata.UPGRADE_KEY} must be true or false, got {value!r}") from None


def _configure_storage(directory: str) -> None:
    """Reading a remote checkpoint may come before any SparkContext configured the file
    systems (``getOrCreate`` recovers the configuration from the checkpoint): until one
    does, the options come from the environment's configuration (``SLUICEGATE_CONF_*``,
    system properties)."""
    if storage.is_remote(directory) and not storage.is_configured():
        storage.configure(dict(SparkConf().getAll()))


def _call_setup(setupFunc: Callable[[], "StreamingContext"]) -> "StreamingContext":
    ssc = setupFunc()
    if not isinstance(ssc, Recovery):
        raise TypeError(f"setupFunc should return a StreamingContext, got {type(ssc).__name__}")
    return ssc
