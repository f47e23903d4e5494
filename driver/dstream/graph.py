"""The DStream graph of one streaming context: its inputs and outputs.

At start it fixes the zero time and tells every stream how long to remember
its RDDs (outputs need one batch; windows and state need more of their
parents). Each batch it asks every output for its job, in definition order,
and after the batch it lets streams forget RDDs that fell out of memory.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .base import DStream
    from .inputs import InputOp
    from .output import ForEach

# The operators whose RDDs carry over from batch to batch: a code upgrade must keep them.
STATEFUL_KINDS = frozenset({"updateStateByKey", "mapWithState", "reduceByKeyAndWindow", "window"})


class DStreamGraph:
    def __init__(self, batch_ms: int):
        self.batch_ms = batch_ms
        self.inputs: list["DStream"] = []
        self.outputs: list["DStream"] = []
        self.zero_ms: int | None = None
        self.remember_ms: int | None = None
        self._lock = threading.Lock()

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_lock")
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def add_input(self, stream: "DStream") -> None:
        with self._lock:
            self.inputs.append(stream)

    def add_output(self, stream: "DStream") -> None:
        with self._lock:
            stream._op.output_id = len(self.outputs)
            self.outputs.append(stream)

    def input_ops(self) -> list["InputOp"]:
        return [s._op for s in self.inputs]

    def output_ops(self) -> list["ForEach"]:
        return [s._op for s in self.outputs]

    def all_streams(self) -> list["DStream"]:
        """Every stream the outputs depend on, each once."""
        seen: dict[int, "DStream"] = {}
        stack = list(self.outputs)
        while stack:
            stream = stack.pop()
            if id(stream) not in seen:
                seen[id(stream)] = stream
                stack.extend(stream._parents)
        return list(seen.values())

    def ordered_streams(self) -> list["DStream"]:
        """Every stream in the order of the graph's shape: outputs in definition order,
        each preceded by what it is made of (parents first, in order), then the inputs
        no output reads."""
        index: dict[int, int] = {}
        ordered: list["DStream"] = []

        def visit(root: "DStream") -> None:
            stack: list[tuple["DStream", bool]] = [(root, False)]
            while stack:  # post-order without recursion: parents first, in order
                stream, parents_done = stack.pop()
                if id(stream) in index:
                    continue
                if not parents_done:
                    stack.append((stream, True))
                    stack.extend((p, False) for p in reversed(stream._parents))
                    continue
                index[id(stream)] = len(ordered)
                ordered.append(stream)

        for stream in self.outputs:
            visit(stream)
        for stream in self.inputs:  # an input no output reads still runs its receiver
            visit(stream)
        return ordered

    def shape(self) -> dict:
        """The graph's shape: the batch duration, the remember duration and every
        stream (in ``ordered_streams`` order) as ``{op, params, slide_ms,
        checkpoint_ms, parents (indexes)}``.

        Parameters are durations and partition counts as the user gave them, never
        functions, paths or hosts. A metadata checkpoint records it, and a context
        recovered from that checkpoint must build the same shape (see
        ``checkpoint.metadata``). Works before and after ``start``."""
        ordered = self.ordered_streams()
        index = {id(stream): i for i, stream in enumerate(ordered)}
        streams = [{**stream._shape(), "parents": [index[id(p)] for p in stream._parents]}
                   for stream in ordered]
        return {"batch_ms": self.batch_ms, "remember_ms": self.remember_ms, "streams": streams}

    def state_skeleton(self) -> list[tuple["DStream", dict]]:
        """What a code upgrade must keep: the inputs (in definition order) and the
        stateful streams (``STATEFUL_KINDS``, in the shape's order), each with an entry
        ``{op, params, slide_ms, feeds, index}``. ``feeds`` are the skeleton positions
        of its nearest input or stateful ancestors (the stateless streams between them
        may change); ``index`` is its place in the full shape (for messages)."""
        ordered = self.ordered_streams()
        index = {id(stream): i for i, stream in enumerate(ordered)}
        inputs = [s for s in self.inputs if id(s) in index]
        stateful = [s for s in ordered if s._parents and s._shape()["op"] in STATEFUL_KINDS]
        kept = inputs + stateful
        position = {id(s): i for i, s in enumerate(kept)}

        def feeds(stream: "DStream") -> list[int]:
            found: list[int] = []
            stack = list(reversed(stream._parents))
            seen: set[int] = set()
            while stack:
                parent = stack.pop()
                if id(parent) in seen:
                    continue
                seen.add(id(parent))
                if id(parent) in position:
                    if position[id(parent)] not in found:
                        found.append(position[id(parent)])
                else:
                    stack.extend(reversed(parent._parents))
            return found

        skeleton = []
        for stream in kept:
            shape = stream._shape()
            skeleton.append((stream, {"op": shape["op"], "params": shape["params"],
                                      "slide_ms": shape["slide_ms"], "feeds": feeds(stream),
                                      "index": index[id(stream)]}))
        return skeleton

    def validate(self) -> None:
        if not self.outputs:
            raise ValueError("No output operations registered, so nothing to execute")
        for stream in self.outputs:
            slide = stream._slide_ms
            if slide % self.batch_ms:
                raise ValueError(f"{stream!r} slides every {slide} ms, not a multiple of the "
                                 f"batch duration {self.batch_ms} ms")

    def start(self, zero_ms: int) -> None:
        self.validate()
        self.zero_ms = zero_ms
        for stream in self.outputs:
            stream._initialize(zero_ms)
        for stream in self.outputs:
            stream._remember(self.remember_ms or 0)

    def generate_jobs(self, time_ms: int) -> list[tuple["ForEach", Callable[[], None]]]:
        """Each output's job for the batch at ``time_ms`` (outputs with no RDD skip)."""
        jobs = []
        for stream in self.outputs:
            op = stream._op
            if (time_ms - self.zero_ms) % stream._slide_ms:
                continue
            job = op.generate_job(time_ms)
            if job is not None:
                jobs.append((op, job))
        return jobs

    def clear_old(self, time_ms: int) -> None:
        for stream in self.outputs:
            stream._clear_old(time_ms)

    def remember(self, duration_ms: int) -> None:
        self.remember_ms = duration_ms
