"""Where each map task's shuffle output lives (Spark's MapOutputTracker).

A map task reports the size of every reduce partition's segment. Kept as
that list, a 10,000 x 10,000 shuffle would hold 10^8 numbers on the driver;
so, as Spark's ``HighlyCompressedMapStatus`` does, a status keeps only which
segments are non-empty (their ids, while they are few; past an eighth of
the partitions just "all of them") and the total bytes. A reduce task is
told only about the map outputs that hold data for it: the tracker keeps,
per shuffle, the map ids by reduce partition, built once when first asked
and rebuilt only after outputs change.
"""
from __future__ import annotations

from array import array
from itertools import compress


class MapStatus:
    """One map output: where it is, and which reduce partitions it has data for."""

    __slots__ = ("executor_id", "block_address", "num_partitions", "nonempty", "total_bytes")

    def __init__(self, executor_id: str, block_address: str, sizes) -> None:
        """``sizes``: the byte size of each reduce partition's segment."""
        self.executor_id = executor_id
        self.block_address = block_address
        self.num_partitions = len(sizes)
        self.total_bytes = sum(sizes)
        ids = array("I", compress(range(len(sizes)), sizes))
        # None: (nearly) every partition has data; a reducer asks whatever it holds.
        self.nonempty: array | None = ids if len(ids) * 8 <= len(sizes) else None

    def __repr__(self) -> str:
        return (f"MapStatus({self.executor_id!r}, {self.block_address!r}, "
                f"{self.num_partitions} partitions, {self.total_bytes} bytes)")


class MapOutputTracker:
    def __init__(self) -> None:
        self._outputs: dict[int, list[MapStatus | None]] = {}
        self._by_reduce: dict[int, tuple] = {}  # shuffle -> _index()
        self._known: dict[int, int] = {}  # shuffle -> outputs with a known place

    def register_shuffle(self, shuffle_id: int, num_maps: int) -> None:
        if shuffle_id not in self._outputs:
            self._outputs[shuffle_id] = [None] * num_maps
            self._known[shuffle_id] = 0

    def unregister_shuffle(self, shuffle_id: int) -> None:
        self._outputs.pop(shuffle_id, None)
        self._by_reduce.pop(shuffle_id, None)
        self._known.pop(shuffle_id, None)

    def add(self, shuffle_id: int, map_id: int, status: MapStatus) -> None:
        outputs = self._outputs.get(shuffle_id)
        if outputs is not None and 0 <= map_id < len(outputs):
            if outputs[map_id] is None:
                self._known[shuffle_id] += 1
            outputs[map_id] = status
            self._by_reduce.pop(shuffle_id, None)

    def missing(self, shuffle_id: int) -> list[int]:
        outputs = self._outputs.get(shuffle_id)
        if outputs is None:
            return []
        return [m for m, status in enumerate(outputs) if status is None]

    def is_available(self, shuffle_id: int) -> bool:
        outputs = self._outputs.get(shuffle_id)
        return outputs is not None and self._known[shuffle_id] == len(outputs)

    def locations(self, shuffle_id: int) -> list[list]:
        """``[[map_id, executor_id, block_address], ...]`` for the known outputs."""
        return [[m, s.executor_id, s.block_address]
                for m, s in enumerate(self._outputs.get(shuffle_id, [])) if s is not None]

    def reduce_locations(self, shuffle_id: int, reduce_ids: list[int]) -> list[list]:
        """What a task reading ``reduce_ids`` of the shuffle must fetch:
        ``[[map_id, executor_id, block_address], ...]`` for the outputs with
        data for any of them, then ``[map_id, None, None]`` for every output
        whose place is not known (the task fails its fetch on those)."""
        outputs = self._outputs.get(shuffle_id)
        if outputs is None:
            return []
        everywhere, by_reduce, missing = self._index(shuffle_id, outputs)
        if len(reduce_ids) == 1 and not everywhere:
            wanted = by_reduce.get(reduce_ids[0], ())  # ascending already
        else:
            wanted = sorted(set(everywhere).union(*(by_reduce.get(r, ()) for r in reduce_ids)))
        located = []
        for m in wanted:
            status = outputs[m]
            located.append([m, status.executor_id, status.block_address])
        located.extend([m, None, None] for m in missing)
        return located

    def _index(self, shuffle_id: int, outputs: list):
        """(outputs with data for every partition, {reduce id: outputs with data
        for it}, outputs missing), kept until the shuffle's outputs change."""
        index = self._by_reduce.get(shuffle_id)
        if index is None:
            everywhere: list[int] = []
            by_reduce: dict[int, list[int]] = {}
            missing: list[int] = []
            for m, status in enumerate(outputs):
                if status is None:
                    missing.append(m)
                elif status.nonempty is None:
                    everywhere.append(m)
                else:
                    for reduce_id in status.nonempty:
                        ids = by_reduce.get(reduce_id)
                        if ids is None:
                            by_reduce[reduce_id] = ids = []
                        ids.append(m)
            index = self._by_reduce[shuffle_id] = (everywhere, by_reduce, missing)
        return index

    def remove_executor(self, executor_id: str, shuffle_id: int | None = None) -> set[int]:
        """Forget outputs held by ``executor_id``; return the shuffles that lost any."""
        affected = set()
        for sid, outputs in self._outputs.items():
            if shuffle_id is not None and sid != shuffle_id:
                continue
            for m, status in enumerate(outputs):
                if status is not None and status.executor_id == executor_id:
                    outputs[m] = None
                    self._known[sid] -= 1
                    affected.add(sid)
        for sid in affected:
            self._by_reduce.pop(sid, None)
        return affected

    def remove_output(self, shuffle_id: int, map_id: int) -> None:
        outputs = self._outputs.get(shuffle_id)
        if outputs is not None and 0 <= map_id < len(outputs) and outputs[map_id] is not None:
            outputs[map_id] = None
            self._known[shuffle_id] -= 1
            self._by_reduce.pop(shuffle_id, None)

    def shuffle_ids(self) -> list[int]:
        return list(self._outputs)
