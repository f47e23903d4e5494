"""Plain-Python models of PySpark's window and state semantics, batch by batch,
for the streaming tier to compare each batch's output with; and deterministic
keyed input batches to feed both.

Window and slide durations are multiples of the batch; ``w`` and ``s`` count
batches. The window ending at batch ``k`` (1-based) holds the batches
``(k - w, k]``, and a window stream produces output at ``k = s, 2s, ...``.
"""
from __future__ import annotations

import random
from collections import defaultdict
from operator import add


def model_windows(inputs: list, w: int, s: int, num_batches: int) -> list[list]:
    """The records of each window: batches (k - w, k] for k = s, 2s, ... <= num_batches."""
    out = []
    for k in range(s, num_batches + 1, s):
        out.append([r for j in range(max(1, k - w + 1), k + 1) if j <= len(inputs)
                    for r in inputs[j - 1]])
    return out


def count_values(records) -> dict:
    counts: dict = {}
    for r in records:
        counts[r] = counts.get(r, 0) + 1
    return counts


def reduce_pairs(pairs, func=add) -> dict:
    result: dict = {}
    for k, v in pairs:
        result[k] = func(result[k], v) if k in result else v
    return result


def model_reduce_by_key_and_window(inputs, w, s, num_batches, keep_zero_keys=False) -> list[list]:
    """reduceByKeyAndWindow(add, ...) per window. ``keep_zero_keys``: the incremental
    path without a filter keeps every key seen since the first batch (at 0 once gone)."""
    out = []
    for i, records in enumerate(model_windows(inputs, w, s, num_batches)):
        sums = reduce_pairs(records)
        if keep_zero_keys:
            k = (i + 1) * s
            for batch in inputs[:k]:
                for key, _ in batch:
                    sums.setdefault(key, 0)
        out.append(sorted(sums.items()))
    return out


def model_update_state(inputs, num_batches, update, initial=()) -> list[list]:
    """updateStateByKey: ``update(new_values, last)`` for every key, every batch."""
    state = dict(initial)
    out = []
    for i in range(num_batches):
        new = defaultdict(list)
        for k, v in (inputs[i] if i < len(inputs) else []):
            new[k].append(v)
        updated = {}
        for k in set(state) | set(new):
            value = update(sorted(new.get(k, [])), state.get(k))
            if value is not None:
                updated[k] = value
        state = updated
        out.append(sorted(state.items()))
    return out


class ModelState:
    """Spark's State for the mapWithState model."""

    def __init__(self, entry, timing_out=False):
        self.exists_, self.value, self.timing_out = entry is not None, entry, timing_out
        self.updated = self.removed = False

    def exists(self):
        return self.exists_

    def get(self):
        return self.value

    def getOption(self):
        return self.value if self.exists_ else None

    def update(self, value):
        if self.timing_out:
            raise ValueError("Cannot update the state that is timing out")
        self.value, self.exists_, self.updated = value, True, True

    def remove(self):
        if self.timing_out:
            raise ValueError("Cannot remove the state that is timing out")
        self.removed, self.exists_, self.value = True, False, None

    def isTimingOut(self):
        return self.timing_out


def model_map_with_state(inputs, num_batches, fn, timeout_batches=None, initial=()):
    """Per batch: (sorted mapped records, sorted state snapshot). A key last seen at
    batch j times out at the first batch k with j < k - timeout (batch times in s)."""
    state = {k: (v, 1) for k, v in initial}  # key -> (state, batch last seen)
    out = []
    for k in range(1, num_batches + 1):
        mapped = []
        for key, value in (inputs[k - 1] if k <= len(inputs) else []):
            entry = state.get(key)
            st = ModelState(entry[0] if entry else None)
            mapped.append(fn(key, value, st))
            if st.removed:
                state.pop(key, None)
            elif st.updated:
                state[key] = (st.value, k)
            elif entry is not None:
                state[key] = (entry[0], k)
        if timeout_batches is not None:
            for key, (value, seen) in sorted(state.items()):
                if seen < k - timeout_batches:
                    mapped.append(fn(key, None, ModelState(value, timing_out=True)))
                    del state[key]
        out.append((sorted(mapped), sorted((key, v) for key, (v, _) in state.items())))
    return out


def word_batches(seed: int, batches: int, keys: str = "abcdef", per_batch: int = 6,
                 distinct: bool = False) -> list[list]:
    """Deterministic (key, small int) batches, one of them empty. ``distinct``: no key
    twice in a batch (the order of a key's records within a batch is not defined)."""
    rng = random.Random(seed)
    out = [[(k, rng.randint(1, 5)) for k in (rng.sample(keys, per_batch) if distinct else
                                              [rng.choice(keys) for _ in range(per_batch)])]
           for _ in range(batches)]
    out[batches // 2] = []
    return out
