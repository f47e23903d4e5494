"""Input streams: where each batch's data comes from.

* ``QueueInput`` -- queueStream: one queued RDD (or all) per batch.
* ``FileInput`` -- textFileStream / binaryRecordsStream: files that appear in
  a directory after start, each read once. A file is taken only once its size
  and modification time held still between two scans, so one being written
  is never read half-written; names starting with ``.`` or ``_`` are ignored.
* ``ReceiverInput`` -- socketTextStream / receiverStream: the blocks its
  receiver produced before the batch time.
"""
from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .base import StreamOp

if TYPE_CHECKING:
    from ..rdd.base import RDD
    from ..receivers.blocks import ReceivedBlockTracker
    from .base import DStream


class InputOp(StreamOp):
    """An input stream: no parents, slides by the batch duration."""

    def __init__(self, batch_ms: int, stream_id: int):
        self.parents = []
        self.batch_ms = batch_ms
        self.stream_id = stream_id
        self.records_by_batch: dict[int, int] = {}

    def slide_ms(self) -> int:
        return self.batch_ms

    def start(self) -> None:
        """Called when the context starts."""

    def num_records(self, time_ms: int) -> int:
        return self.records_by_batch.get(time_ms, 0)

    def forget(self, time_ms: int, rdd) -> None:
        self.records_by_batch.pop(time_ms, None)


class QueueInput(InputOp):
    def __init__(self, batch_ms: int, stream_id: int, queue: collections.deque,
                 one_at_a_time: bool, default: "RDD | None", empty: Callable[[], "RDD"]):
        super().__init__(batch_ms, stream_id)
        self.queue = queue
        self.one_at_a_time = one_at_a_time
        self.default = default
        self.empty = empty

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
        return self.empty()

    def describe(self) -> str:
        return f"QueueInputDStream[{self.stream_id}]"


class FileInput(InputOp):
    def __init__(self, batch_ms: int, stream_id: int, directory: str,
                 read: Callable[[str], "RDD"], empty: Callable[[], "RDD"]):
        super().__init__(batch_ms, stream_id)
        self.directory = Path(directory)
        self.read = read
        self.empty = empty
        self.seen: set[str] = set()
        self.candidates: dict[str, tuple[int, int]] = {}
        self.files_by_batch: dict[int, list[str]] = {}

    def start(self) -> None:
        if not self.directory.is_dir():
            raise FileNotFoundError(f"textFileStream directory does not exist: {self.directory}")
        # Files present at start are old news (Spark's newFilesOnly).
        self.seen.update(str(p) for p, _ in self._listing())

    def _listing(self) -> list[tuple[Path, tuple[int, int]]]:
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

    def compute(self, stream: "DStream", time_ms: int):
        ready = []
        current: dict[str, tuple[int, int]] = {}
        for path, signature in self._listing():
            name = str(path)
            if name in self.seen:
                continue
            if self.candidates.get(name) == signature:
                ready.append(name)
                self.seen.add(name)
            else:
                current[name] = signature
        self.candidates = current
        ready.sort()
        self.files_by_batch[time_ms] = ready
        if not ready:
            return self.empty()
        rdds = [self.read(name) for name in ready]
        return rdds[0] if len(rdds) == 1 else stream._sc.union(rdds)

    def forget(self, time_ms: int, rdd) -> None:
        super().forget(time_ms, rdd)
        self.files_by_batch.pop(time_ms, None)

    def describe(self) -> str:
        return f"FileInputDStream[{self.directory}]"


class ReceiverInput(InputOp):
    def __init__(self, batch_ms: int, stream_id: int, tracker: "ReceivedBlockTracker",
                 blocks_rdd: Callable[[list[str]], "RDD"], empty: Callable[[], "RDD"],
                 drop_blocks: Callable[[list[str]], None], name: str):
        super().__init__(batch_ms, stream_id)
        self.tracker = tracker
        self.blocks_rdd = blocks_rdd
        self.empty = empty
        self.drop_blocks = drop_blocks
        self.name = name
        self.block_ids_by_batch: dict[int, list[str]] = {}

    def compute(self, stream: "DStream", time_ms: int):
        infos = self.tracker.blocks_of(time_ms, self.stream_id)
        self.records_by_batch[time_ms] = sum(i.num_records for i in infos)
        ids = [i.block_id for i in infos]
        self.block_ids_by_batch[time_ms] = ids
        return self.blocks_rdd(ids) if ids else self.empty()

    def forget(self, time_ms: int, rdd) -> None:
        super().forget(time_ms, rdd)
        self.tracker.forget_batch(time_ms)
        ids = self.block_ids_by_batch.pop(time_ms, [])
        if ids:
            self.drop_blocks(ids)

    def describe(self) -> str:
        return f"ReceiverInputDStream[{self.stream_id}: {self.name}]"
