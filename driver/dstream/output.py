"""Output operations: what turns a DStream's batches into jobs.

Each output operation registers with the streaming graph; every batch it
yields one job (a callable run by the streaming scheduler) in the order the
outputs were defined.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..rdd.actions import save_text_atomically
from .ops import StreamOp, to_datetime, to_ms

if TYPE_CHECKING:
    from ..rdd.base import RDD
    from .base import DStream


class ForEach(StreamOp):
    """``func(time, rdd)`` for every batch of ``parent``: an output operation."""

    def __init__(self, parent: "DStream", func: Callable, name: str, description: str):
        self.parents = [parent]
        self.func = func
        self.name = name
        self.description = description
        self.output_id = -1

    def compute(self, stream, time_ms):
        return None

    def describe(self) -> str:
        return self.name

    def shape(self) -> tuple[str, dict]:
        return self.name, {}

    def generate_job(self, time_ms: int) -> Callable[[], None] | None:
        """The job for ``time_ms``: builds the RDD now, runs the action later."""
        rdd = self.parents[0]._get_or_compute(time_ms)
        if rdd is None:
            return None
        when = to_datetime(time_ms)
        return lambda: self.func(when, rdd)


def _callsite(name: str) -> str:
    """``name at file.py:line`` of the user's code that defined the output.

    Frames are told apart by module name, not path: an editable install's
    files need not live under a directory called ``sluicegate``."""
    frame = sys._getframe(2)
    while frame is not None:
        if not frame.f_globals.get("__name__", "").startswith("sluicegate."):
            return f"{name} at {Path(frame.f_code.co_filename).name}:{frame.f_lineno}"
        frame = frame.f_back
    return name


def batch_path(prefix: str, suffix: str | None, time_ms: int) -> str:
    """``prefix-<ms>[.suffix]``, as PySpark names each batch's output."""
    path = f"{prefix}-{time_ms}"
    return f"{path}.{suffix}" if suffix else path


class Outputs:
    def _output(self: "DStream", func: Callable, name: str) -> None:
        stream = self._stream(ForEach(self, func, name, _callsite(name)))
        self._ssc._graph.add_output(stream)

    def foreachRDD(self: "DStream", func: Callable) -> None:
        """Run ``func(rdd)`` or ``func(time, rdd)`` on the driver for every batch."""
        from .stateless import with_time

        self._output(with_time(func), "foreachRDD")

    def pprint(self: "DStream", num: int = 10) -> None:
        """Print the first ``num`` elements of each batch, in PySpark's format."""

        def take_and_print(time, rdd: "RDD") -> None:
            taken = rdd.take(num + 1)
            lines = ["-------------------------------------------", f"Time: {time}",
                     "-------------------------------------------"]
            lines.extend(str(record) for record in taken[:num])
            if len(taken) > num:
                lines.append("...")
            lines.append("")
            print("\n".join(lines), flush=True)

        self._output(take_and_print, "pprint")

    def saveAsTextFiles(self: "DStream", prefix: str, suffix: str | None = None) -> None:
        """Save each batch as text in ``prefix-<batch ms>[.suffix]``, atomically:
        a batch's directory appears complete (with ``_SUCCESS``) or not at all, and a
        replayed batch replaces it rather than duplicating it."""
        def save(time, rdd: "RDD") -> None:
            path = batch_path(prefix, suffix, to_ms(time))
            save_text_atomically(rdd, path, replace=True)  # a local path or a URL

        self._output(save, "saveAsTextFiles")
