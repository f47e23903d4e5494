"""Where each map task's shuffle output lives (Spark's MapOutputTracker)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MapStatus:
    executor_id: str
    block_address: str
    sizes: tuple[int, ...]


class MapOutputTracker:
    def __init__(self) -> None:
        self._outputs: dict[int, list[MapStatus | None]] = {}

    def register_shuffle(self, shuffle_id: int, num_maps: int) -> None:
        if shuffle_id not in self._outputs:
            self._outputs[shuffle_id] = [None] * num_maps

    def unregister_shuffle(self, shuffle_id: int) -> None:
        self._outputs.pop(shuffle_id, None)

    def add(self, shuffle_id: int, map_id: int, status: MapStatus) -> None:
        outputs = self._outputs.get(shuffle_id)
        if outputs is not None and 0 <= map_id < len(outputs):
            outputs[map_id] = status

    def missing(self, shuffle_id: int) -> list[int]:
        outputs = self._outputs.get(shuffle_id)
        if outputs is None:
            return []
        return [m for m, status in enumerate(outputs) if status is None]

    def is_available(self, shuffle_id: int) -> bool:
        return shuffle_id in self._outputs and not self.missing(shuffle_id)

    def locations(self, shuffle_id: int) -> list[list]:
        """``[[map_id, executor_id, block_address], ...]`` for the known outputs."""
        return [[m, s.executor_id, s.block_address]
                for m, s in enumerate(self._outputs.get(shuffle_id, [])) if s is not None]

    def remove_executor(self, executor_id: str, shuffle_id: int | None = None) -> set[int]:
        """Forget outputs held by ``executor_id``; return the shuffles that lost any."""
        affected = set()
        for sid, outputs in self._outputs.items():
            if shuffle_id is not None and sid != shuffle_id:
                continue
            for m, status in enumerate(outputs):
                if status is not None and status.executor_id == executor_id:
                    outputs[m] = None
                    affected.add(sid)
        return affected

    def remove_output(self, shuffle_id: int, map_id: int) -> None:
        outputs = self._outputs.get(shuffle_id)
        if outputs is not None and 0 <= map_id < len(outputs):
            outputs[map_id] = None

    def shuffle_ids(self) -> list[int]:
        return list(self._outputs)
