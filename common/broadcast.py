"""Broadcast variables: a read-only value shipped once to each executor.

On the driver a ``Broadcast`` holds its value and the driver keeps it as a
block. Pickled into a closure it becomes just its id; on an executor the value
is fetched from the driver the first time ``.value`` is read, then kept.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from .serializer import load_records

_UNSET = object()
_reader: Callable[[str], bytes] | None = None
_reader_lock = threading.Lock()


def block_id(broadcast_id: int) -> str:
    return f"broadcast_{broadcast_id}"


def install_block_reader(reader: Callable[[str], bytes]) -> None:
    """The executor says how to get a block's bytes (local store, else the driver)."""
    global _reader
    with _reader_lock:
        _reader = reader


class Broadcast:
    """A broadcast variable created with ``SparkContext.broadcast()``."""

    # ``Broadcast[List[str]]`` in annotations, as PySpark's generic Broadcast allows.
    __class_getitem__ = classmethod(__import__("types").GenericAlias)

    def __init__(self, broadcast_id: int, value: Any = _UNSET, on_release: Callable | None = None):
        self._id = broadcast_id
        self._value = value
        self._on_release = on_release

    @property
    def id(self) -> int:
        return self._id

    @property
    def value(self) -> Any:
        if self._value is _UNSET:
            if _reader is None:
                raise RuntimeError(f"Attempted to use broadcast {self._id} after it was destroyed")
            try:
                data = _reader(block_id(self._id))
            except Exception as exc:  # noqa: BLE001 - the block is gone: the variable was destroyed
                raise RuntimeError(f"Attempted to use broadcast {self._id} after it was destroyed "
                                   f"({exc})") from None
            (self._value,) = load_records(data)
        return self._value

    def unpersist(self, blocking: bool = False) -> None:
        """Drop the executors' copies; they fetch it again if used."""
        if self._on_release is not None:
            self._on_release(self._id, False)

    def destroy(self, blocking: bool = False) -> None:
        """Drop every copy, the driver's too; the variable cannot be used again."""
        if self._on_release is not None:
            self._on_release(self._id, True)
        self._value = _UNSET

    def __reduce__(self):
        return (_restore, (self._id,))

    def __repr__(self) -> str:
        return f"<Broadcast id={self._id}>"


def _restore(broadcast_id: int) -> Broadcast:
    return Broadcast(broadcast_id)
