"""Closures by id: pickled once per job, shipped once per executor.

A function gets an id from the hash of its cloudpickled bytes, so the same
closure rebuilt every batch (a DStream's lambda, a library helper) keeps one
id and is never re-shipped. Each action pickles its closures afresh (as
PySpark does), so a closure sees the current value of what it captured; the
scheduler then finds that job's pickle by object identity instead of
pickling again. Both caches are bounded, so a job that makes new closures
every batch does not grow the driver without end.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Callable

from sluicegate.common.serializer import dump_function

MAX_FUNCTIONS = 20_000


class ClosureRegistry:
    def __init__(self, capacity: int = MAX_FUNCTIONS):
        self._capacity = capacity
        self._by_object: OrderedDict[int, tuple[Callable, int]] = OrderedDict()
        self._by_digest: dict[bytes, int] = {}
        self._bytes: OrderedDict[int, tuple[bytes, bytes]] = OrderedDict()  # id -> (digest, data)
        self._next_id = 1
        self._lock = threading.Lock()

    def register(self, fn: Callable, fresh: bool = False) -> int:
        """The id of ``fn``. With ``fresh`` (once per action) it is pickled now,
        capturing current values; otherwise the last pickle of this very object
        is reused. Raises ``SerializationError`` when it cannot be pickled."""
        key = id(fn)
        if not fresh:
            with self._lock:
                hit = self._by_object.get(key)
                if hit is not None and hit[0] is fn:
                    self._by_object.move_to_end(key)
                    self._bytes.move_to_end(hit[1])
                    return hit[1]
        data = dump_function(fn)
        digest = hashlib.blake2b(data, digest_size=16).digest()
        with self._lock:
            function_id = self._by_digest.get(digest)
            if function_id is None:
                function_id = self._next_id
                self._next_id += 1
                self._by_digest[digest] = function_id
                self._bytes[function_id] = (digest, data)
            self._bytes.move_to_end(function_id)
            # Holding fn keeps id(fn) from being reused by another object.
            self._by_object[key] = (fn, function_id)
            self._evict_locked()
            return function_id

    def data(self, function_id: int) -> bytes:
        with self._lock:
            return self._bytes[function_id][1]

    def _evict_locked(self) -> None:
        while len(self._by_object) > self._capacity:
            self._by_object.popitem(last=False)
        while len(self._bytes) > self._capacity:
            _, (digest, _) = self._bytes.popitem(last=False)
            self._by_digest.pop(digest, None)

    def __len__(self) -> int:
        return len(self._bytes)
