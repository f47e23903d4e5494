"""Reading a job's output back from the files its keeper writes (``job_keeper``).

A job's stdout and stderr are each a byte stream kept in segment files named
by the stream offset of their first byte (``sluicegate.common.segment_files``).
A reader holds an offset per stream: it can start anywhere (``tail -n`` lines
from the end included), follow the stream as it grows, and notices when the
segments it had not read yet were dropped (the stream's size cap), in which
case it goes on from the oldest byte still there and the gap shows in the
offsets it returns. The service streams output to ``submit`` and ``logs`` this
way, and a re-attached client says the offsets it has, so nothing comes twice.
"""
from __future__ import annotations

from pathlib import Path

from sluicegate.common.segment_files import OutputTail as _SegmentTail
from sluicegate.common.segment_files import start_of_last_lines, stream_end

from .job_keeper import OUTPUT_DIR, STREAMS

__all__ = ["OUTPUT_DIR", "STREAMS", "OutputTail", "start_of_last_lines", "stream_end"]


class OutputTail(_SegmentTail):
    """One stream (``stdout`` or ``stderr``) of a job's output, read from ``offset`` on."""

    def __init__(self, directory: Path, stream: str, offset: int = 0):
        if stream not in STREAMS:
            raise ValueError(f"no output stream {stream!r} (one of {', '.join(STREAMS)})")
        super().__init__(directory, stream, offset)
