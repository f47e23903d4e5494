"""mapWithState's state: versioned per batch, so a batch costs what its keys cost.

A ``StateMap`` maps key -> (state, last_seen_ms). Each batch makes a new
version that stores only that batch's changes and reads through to its
parent, so the previous version stays exact (a retried task sees it as it
was) and making a version costs O(keys in the batch). As in Spark, that
holds when the mapping function replaces a state (``state.update``) rather
than changing the object ``state.get()`` returned in place. Versions older than
``keep`` are folded into the base in place, O(their keys) each; by then no
task can need them.

Idle keys are found without scanning the state: every version remembers
which keys it touched, so a timeout sweep looks only at keys last seen in
batches that just became too old (a key seen again since is skipped).

Both sides need these: executors run the updates, and the driver reads
states back from checkpoints.
"""
from __future__ import annotations

from typing import Any, Iterator

_MISSING = object()
_REMOVED = object()


class StateMap:
    __slots__ = ("_parent", "_delta", "_touched", "time_ms", "_depth", "swept_until_ms",
                 "__weakref__")

    def __init__(self, parent: "StateMap | None", time_ms: int):
        self._parent = parent
        self._delta: dict = {}
        self._touched: dict[int, list] = {}  # seen_ms -> keys updated then
        self.time_ms = time_ms
        self._depth = 0 if parent is None else parent._depth + 1
        self.swept_until_ms = -1 if parent is None else parent.swept_until_ms

    @classmethod
    def from_pairs(cls, pairs, time_ms: int) -> "StateMap":
        base = cls(None, time_ms)
        for key, state in pairs:
            base.put(key, state, time_ms)
        return base

    # -- reading ------------------------------------------------------------------
    def get(self, key) -> tuple[Any, int] | None:
        """``(state, last_seen_ms)`` or None."""
        version = self
        while version is not None:
            entry = version._delta.get(key, _MISSING)
            if entry is not _MISSING:
                return None if entry is _REMOVED else entry
            version = version._parent
        return None

    def items(self) -> Iterator[tuple[Any, Any]]:
        """Every ``(key, state)`` of this version (reads the whole state)."""
        chain = []
        version = self
        while version is not None:
            chain.append(version)
            version = version._parent
        merged: dict = {}
        for version in reversed(chain):
            for key, entry in version._delta.items():
                if entry is _REMOVED:
                    merged.pop(key, None)
                else:
                    merged[key] = entry
        return ((key, entry[0]) for key, entry in merged.items())

    def __len__(self) -> int:
        return sum(1 for _ in self.items())

    # -- writing this version ----------------------------------------------------------
    def put(self, key, state, seen_ms: int) -> None:
        self._delta[key] = (state, seen_ms)
        self._touched.setdefault(seen_ms, []).append(key)

    def remove(self, key) -> None:
        if self._parent is not None and self._parent.get(key) is not None:
            self._delta[key] = _REMOVED
        else:
            self._delta.pop(key, None)

    # -- versions ------------------------------------------------------------------------
    def next_version(self, time_ms: int, keep: int) -> "StateMap":
        """The version for the batch at ``time_ms``, folding the oldest if the chain is long."""
        child = StateMap(self, time_ms)
        if child._depth > keep:
            child._fold_oldest()
        return child

    def _fold_oldest(self) -> None:
        chain = []
        version = self
        while version._parent is not None:
            chain.append(version)
            version = version._parent
        base, oldest = version, chain[-1]
        for key, entry in oldest._delta.items():
            if entry is _REMOVED:
                base._delta.pop(key, None)
            else:
                base._delta[key] = entry
        for seen_ms, keys in oldest._touched.items():
            if seen_ms > oldest.swept_until_ms:
                base._touched.setdefault(seen_ms, []).extend(keys)
        base._touched = {t: k for t, k in base._touched.items() if t > oldest.swept_until_ms}
        base.time_ms = oldest.time_ms
        base.swept_until_ms = oldest.swept_until_ms
        if len(chain) > 1:
            chain[-2]._parent = base
        for version in chain[:-1]:
            version._depth -= 1

    def expired(self, threshold_ms: int) -> list[tuple[Any, Any]]:
        """Keys last seen before ``threshold_ms`` and not swept yet, with their states."""
        if threshold_ms <= self.swept_until_ms:
            return []
        found = []
        version = self
        while version is not None:
            for seen_ms, keys in version._touched.items():
                if self.swept_until_ms < seen_ms < threshold_ms:
                    for key in keys:
                        entry = self.get(key)
                        if entry is not None and entry[1] == seen_ms:
                            found.append((key, entry[0]))
            version = version._parent
        self.swept_until_ms = threshold_ms - 1
        return list(dict(found).items())

    # -- checkpoints: a flat copy ----------------------------------------------------------
    def __reduce__(self):
        entries = {}
        chain = []
        version = self
        while version is not None:
            chain.append(version)
            version = version._parent
        for version in reversed(chain):
            for key, entry in version._delta.items():
                if entry is _REMOVED:
                    entries.pop(key, None)
                else:
                    entries[key] = entry
        return (_restore_state_map, (entries, self.time_ms, self.swept_until_ms))


def _restore_state_map(entries: dict, time_ms: int, swept_until_ms: int) -> StateMap:
    state_map = StateMap(None, time_ms)
    for key, (state, seen_ms) in entries.items():
        state_map.put(key, state, seen_ms)
    state_map.swept_until_ms = swept_until_ms
    return state_map


class StateRecord:
    """One partition of a mapWithState state RDD: the state and this batch's output."""

    __slots__ = ("state_map", "mapped")

    def __init__(self, state_map: StateMap, mapped: list):
        self.state_map = state_map
        self.mapped = mapped

    def __reduce__(self):
        return (StateRecord, (self.state_map, self.mapped))


class State:
    """The state of one key, as the mapping function sees it (Spark's ``State``)."""

    __slots__ = ("_key", "_value", "_exists", "_updated", "_removed", "_timing_out")

    def _bind(self, key, entry: tuple | None, timing_out: bool) -> None:
        self._key = key
        self._exists = entry is not None
        self._value = entry[0] if entry is not None else None
        self._updated = False
        self._removed = False
        self._timing_out = timing_out

    def exists(self) -> bool:
        return self._exists

    def get(self):
        if not self._exists:
            raise KeyError(f"State is not set for key {self._key!r}")
        return self._value

    def getOption(self):
        return self._value if self._exists else None

    def update(self, newState) -> None:
        if self._removed:
            raise ValueError("Cannot update the state after it has been removed")
        if self._timing_out:
            raise ValueError("Cannot update the state that is timing out")
        self._value = newState
        self._exists = True
        self._updated = True

    def remove(self) -> None:
        if self._timing_out:
            raise ValueError("Cannot remove the state that is timing out; it is already being removed")
        if self._removed:
            raise ValueError("Cannot remove the state that has already been removed")
        self._removed = True
        self._exists = False
        self._value = None

    def isTimingOut(self) -> bool:
        return self._timing_out

    def __repr__(self) -> str:
        return f"State({self._value!r})" if self._exists else "State(<not set>)"


def map_with_state(previous: StateMap, time_ms: int, keep: int, pairs, fn,
                   timeout_ms: int | None) -> StateRecord:
    """Apply one batch to the state: ``fn(key, value, state)`` per record, then
    ``fn(key, None, state)`` for keys idle past the timeout (which are removed)."""
    current = previous.next_version(time_ms, keep)
    mapped = []
    state = State()
    for key, value in pairs:
        entry = current.get(key)
        state._bind(key, entry, False)
        mapped.append(fn(key, value, state))
        if state._removed:
            current.remove(key)
        elif state._updated:
            current.put(key, state._value, time_ms)
        elif entry is not None:
            current.put(key, entry[0], time_ms)  # new data refreshes the timeout
    if timeout_ms is not None:
        for key, value in current.expired(time_ms - timeout_ms):
            state._bind(key, (value, 0), True)
            mapped.append(fn(key, None, state))
            current.remove(key)
    return StateRecord(current, mapped)
