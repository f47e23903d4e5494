"""Input streams: where each batch's data comes from.

* ``QueueInput`` -- queueStream: one queued RDD (or all) per batch.
* ``FileInput`` -- textFileStream / binaryRecordsStream: files that appear in
  a directory after start, each read once. A file is taken only once its size
  and modification time held still between two scans, so one being written
  is never read half-written; names starting with ``.`` or ``_`` are ignored.
  The directory may be a URL (``s3a://bucket/prefix``, ``common.storage``):
  an object's signature is its size and ETag, and a listing that fails finds
  nothing new that batch (as Spark's FileInputDStream).
* ``ReceiverInput`` -- socketTextStream / receiverStream: the blocks its
  receiver produced before the batch time, read through the ``ReceivedBlocks``
  the streaming scheduler hands it at start (``use_blocks``).

Operators reach the context through the stream at compute time and hold no
SparkContext or RDD themselves, so the graph can be checkpointed; what they
remember per batch (files chosen, blocks claimed) is their input position
and is restored on recovery, so a re-run batch reads exactly what it read.
"""
from __future__ import annotations

import collections
import copy
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from sluicegate.common import storage

from .ops import StreamOp

log = logging.getLogger("sluicegate.streaming")

if TYPE_CHECKING:
    from ..rdd.base import RDD
    from ..receivers.receiver import Receiver
    from ..streaming_scheduler.block_tracker import ReceivedBlocks
    from .base import DStream


class CheckpointUnsupported(Exception):
    """This input cannot be saved in a metadata checkpoint."""


class InputOp(StreamOp):
    """An input stream: no parents, slides by the batch duration."""

    # Whether a batch's BatchInfo.streamIdToInputInfo() has an entry for this input
    # (Spark reports none for queue streams).
    reports_input_info = True

    def __init__(self, batch_ms: int, stream_id: int):
        self.parents = []
        self.batch_ms = batch_ms
        self.stream_id = stream_id
        self.records_by_batch: dict[int, int] = {}

    def slide_ms(self) -> int:
        return self.batch_ms

    def start(self, stream: "DStream") -> None:
        """Called when the context starts (not again after recovery)."""

    def num_records(self, time_ms: int) -> int:
        return self.records_by_batch.get(time_ms, 0)

    def forget(self, stream: "DStream", time_ms: int, rdd) -> None:
        self.records_by_batch.pop(time_ms, None)

    def _remembered_times(self) -> set[int]:
        return set(self.records_by_batch)

    def clear_before(self, stream: "DStream", threshold_ms: int) -> None:
        """Forget every batch up to ``threshold_ms`` this input still remembers but did
        not generate in this run: after recovery, the batches the checkpoint holds
        that nothing computes again (their blocks, files, counts) are dropped too."""
        for time_ms in sorted(t for t in self._remembered_times() if t <= threshold_ms):
            self.forget(stream, time_ms, None)

    def shape(self) -> tuple[str, dict]:
        return type(self).__name__, {}

    # What says how far this kind of input has read: the attributes a code upgrade
    # carries over from the checkpointed graph's input (``take_position``). Each kind
    # declares its own; one that does not cannot be upgraded.
    position_attributes: tuple[str, ...] = ()

    def take_position(self, old: "InputOp") -> None:
        """Continue where ``old`` -- the same input in a checkpointed graph -- stopped: the
        batches it read and what each one held (a code upgrade of the application)."""
        if type(old) is not type(self) or old.stream_id != self.stream_id:
            raise ValueError(f"{self.describe()} cannot continue {old.describe()}: input streams "
                             "must be defined in the same order, with the same kinds")
        if "position_attributes" not in type(self).__dict__:
            raise ValueError(f"{type(self).__name__} does not say what its input position is, "
                             "so an upgrade cannot carry it over")
        for name in ("records_by_batch", *self.position_attributes):
            setattr(self, name, copy.deepcopy(getattr(old, name)))


class QueueInput(InputOp):
    reports_input_info = False  # as Spark: a queue stream reports no input info
    position_attributes = ()  # never checkpointed: nothing to carry over

    def __init__(self, batch_ms: int, stream_id: int, queue: collections.deque,
                 one_at_a_time: bool, default: "RDD | None"):
        super().__init__(batch_ms, stream_id)
        self.queue = queue
        self.one_at_a_time = one_at_a_time
        self.default = default

    def compute(self, stream: "DStream", time_ms: int):
        if self.queue:
            if self.one_at_a_time:
                rdd, count = self.queue.popleft()
            else:
                items = list(self.queue)
                self.queue.clear()
                rdd = stream._sc.union([r for r, _ in items])
                count = sum(c for _, c in items)
            self.records_by_batch[time_ms] = count
            return rdd
        if self.default is not None:
            return self.default
        # An empty batch of one partition, as PySpark's exhausted queue gives: so count()
        # of it (or of a window of such batches) is 0, not nothing.
        return stream._sc.parallelize([], 1)

    def __getstate__(self):
        raise CheckpointUnsupported("queueStream doesn't support checkpointing: its queued RDDs "
                                    "live only in this driver. Use a file or receiver source to "
                                    "recover with getOrCreate.")

    def describe(self) -> str:
        return f"QueueInputDStream[{self.stream_id}]"


class FileInput(InputOp):
    position_attributes = ("seen", "candidates", "files_by_batch")

    def __init__(self, batch_ms: int, stream_id: int, directory: str, record_length: int | None):
        super().__init__(batch_ms, stream_id)
        # A local directory, or the URL of one on a file system fsspec opens (a bucket prefix).
        self.directory = storage.absolute(directory) if storage.is_remote(directory) \
            else Path(directory)
        if isinstance(self.directory, str):
            storage.check_shared(self.directory, "textFileStream directory")
        self.record_length = record_length
        self.seen: set[str] = set()
        self.candidates: dict[str, tuple[int, int]] = {}
        self.files_by_batch: dict[int, list[str]] = {}

    def start(self, stream: "DStream") -> None:
        if not storage.can_watch(str(self.directory)):
            raise FileNotFoundError(f"textFileStream directory does not exist: {self.directory}")
        # Files present at start are old news (Spark's newFilesOnly).
        self.seen.update(str(p) for p, _ in self._listing(tolerate_errors=False))

    def _listing(self, tolerate_errors: bool = True) -> list[tuple[Path | str, tuple]] | None:
        """Files and signatures now in the directory; None when a remote one cannot be
        listed (``tolerate_errors``; else the error is raised)."""
        if isinstance(self.directory, str):  # an object's signature: size and ETag
            if not tolerate_errors:
                return [(url, (size, stamp))
                        for _, url, size, stamp in storage.list_directory(self.directory)]
            try:
                return [(url, (size, stamp))
                        for _, url, size, stamp in storage.list_directory(self.directory)]
            except Exception as exc:  # noqa: BLE001 - as Spark: a failed listing finds nothing new
                log.warning("textFileStream: could not list %s (%s: %s); looking again at the "
                            "next batch", self.directory, type(exc).__name__, exc)
                return None
        found = []
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        for entry in entries:
            if entry.name.startswith((".", "_")):
                continue
            try:
                if entry.is_file():
                    stat = entry.stat()
                    found.append((Path(entry.path), (stat.st_size, stat.st_mtime_ns)))
            except FileNotFoundError:
                continue
        return found

    def _select(self, time_ms: int) -> list[str]:
        if time_ms in self.files_by_batch:  # a batch re-run after recovery
            return self.files_by_batch[time_ms]
        listing = self._listing()
        if listing is None:  # nothing is known to be new; what was seen stays seen
            self.files_by_batch[time_ms] = []
            return []
        ready = []
        current: dict[str, tuple[int, int]] = {}
        present = set()
        for path, signature in listing:
            name = str(path)
            present.add(name)
            if name in self.seen:
                continue
            if self.candidates.get(name) == signature:
                ready.append(name)
                self.seen.add(name)
            else:
                current[name] = signature
        self.candidates = current
        self.seen &= present | set(ready)  # forget files that are gone: bounded memory
        ready.sort()
        self.files_by_batch[time_ms] = ready
        return ready

    def compute(self, stream: "DStream", time_ms: int):
        sc = stream._sc
        files = self._select(time_ms)
        if not files:
            return sc.emptyRDD()
        if self.record_length is None:
            rdds = [sc.textFile(name) for name in files]
        else:
            rdds = [sc.binaryRecords(name, self.record_length) for name in files]
        return rdds[0] if len(rdds) == 1 else sc.union(rdds)

    def forget(self, stream: "DStream", time_ms: int, rdd) -> None:
        super().forget(stream, time_ms, rdd)
        self.files_by_batch.pop(time_ms, None)

    def _remembered_times(self) -> set[int]:
        return super()._remembered_times() | set(self.files_by_batch)

    def shape(self) -> tuple[str, dict]:
        if self.record_length is None:
            return "textFileStream", {}
        return "binaryRecordsStream", {"recordLength": self.record_length}

    def describe(self) -> str:
        return f"FileInputDStream[{self.directory}]"


class ReceiverInput(InputOp):
    # Its blocks and their claims are in the received-block tracker, restored apart.
    position_attributes = ("block_ids_by_batch",)
    # The received-block tracker, as the streaming scheduler hands it over at start;
    # never checkpointed (a recovered context hands over its own).
    blocks: "ReceivedBlocks | None" = None

    def __init__(self, batch_ms: int, stream_id: int, receiver: "Receiver"):
        super().__init__(batch_ms, stream_id)
        self.receiver = receiver
        self.block_ids_by_batch: dict[int, list[str]] = {}
        self.restored_batches: set[int] = set()  # claimed before a recovery (see clear_before)

    def use_blocks(self, blocks: "ReceivedBlocks") -> None:
        """Read the blocks each batch claimed from ``blocks`` (the streaming scheduler's)."""
        self.blocks = blocks

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("blocks", None)
        return state

    def compute(self, stream: "DStream", time_ms: int):
        infos = self.blocks.blocks_of(time_ms, self.stream_id)
        self.records_by_batch[time_ms] = sum(i.num_records for i in infos)
        ids = [i.block_id for i in infos]
        self.block_ids_by_batch[time_ms] = ids
        return stream._sc._blocks_rdd(ids) if ids else stream._sc.emptyRDD()

    def forget(self, stream: "DStream", time_ms: int, rdd) -> None:
        super().forget(stream, time_ms, rdd)
        if self.blocks is not None:  # never started: it holds no blocks
            self.blocks.forget_batch(time_ms, self.stream_id)  # and their WAL files
        self.block_ids_by_batch.pop(time_ms, None)
        self.restored_batches.discard(time_ms)

    def _remembered_times(self) -> set[int]:
        return (super()._remembered_times() | set(self.block_ids_by_batch)
                | self.restored_batches)

    def shape(self) -> tuple[str, dict]:
        return "receiverStream", {"receiver": type(self.receiver).__qualname__}

    def describe(self) -> str:
        return f"ReceiverInputDStream[{self.stream_id}: {type(self.receiver).__name__}]"
