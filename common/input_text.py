"""Input text with invalid UTF-8: replaced with U+FFFD as PySpark does, and counted.

Lines of text files and sockets are decoded with replacement (Hadoop's
``Text.toString`` and Java's ``InputStreamReader`` do the same for PySpark),
so a stray byte never fails a job. The lines where that happened are counted
so that it is not silent: ``invalid_utf8_lines`` counts them in raw bytes (the
socket receiver, on the driver), ``split_lines_counting`` decodes and counts
in one pass (text files, on executors). ASCII input costs one ``isascii``.

Executors report their counts with the task's accumulator updates, under the
reserved id ``INVALID_UTF8_ACCUMULATOR_ID`` (a dict: source -> lines), so they
need no message of their own and are merged once per successful task.
"""
from __future__ import annotations

import codecs
import re
import threading
from typing import Any

from . import accumulators
from .serializer import split_lines

INVALID_UTF8_ACCUMULATOR_ID = -1  # user accumulators count up from 0

_LINE_BREAK = re.compile(rb"[\r\n]")
_ERROR_HANDLER = "sluicegate.count-replaced"
_errors = threading.local()


def _replace_and_note(error: UnicodeDecodeError) -> tuple[str, int]:
    _errors.starts.append(error.start)
    return "\ufffd", error.end  # what the "replace" handler returns


codecs.register_error(_ERROR_HANDLER, _replace_and_note)


def _decode_noting_errors(raw: bytes) -> tuple[str, list[int]]:
    """``raw`` decoded as ``raw.decode("utf-8", "replace")``, and where each
    invalid sequence starts (byte offsets, ascending)."""
    _errors.starts = []
    try:
        return raw.decode("utf-8", _ERROR_HANDLER), _errors.starts
    finally:
        _errors.starts = []


def _lines_holding(raw: bytes, offsets: list[int]) -> int:
    """How many lines of ``raw`` (ended by \\n, \\r\\n or \\r) hold one of ``offsets``."""
    count, line_end = 0, -1
    for offset in offsets:
        if offset > line_end:  # an invalid byte is never a line break itself
            count += 1
            found = _LINE_BREAK.search(raw, offset)
            line_end = found.start() if found else len(raw)
    return count


def invalid_utf8_lines(raw: bytes | bytearray | memoryview) -> int:
    """Lines of ``raw`` that hold invalid UTF-8 (and would decode with U+FFFD)."""
    raw = bytes(raw) if not isinstance(raw, bytes) else raw
    if raw.isascii():
        return 0
    try:
        raw.decode("utf-8")
        return 0
    except UnicodeDecodeError:
        return _lines_holding(raw, _decode_noting_errors(raw)[1])


def decode_counting(raw: bytes) -> tuple[str, int]:
    """``raw.decode("utf-8", "replace")``, and how many lines held invalid UTF-8."""
    if raw.isascii():
        return raw.decode("ascii"), 0
    text, offsets = _decode_noting_errors(raw)
    return text, _lines_holding(raw, offsets) if offsets else 0


def split_lines_counting(raw: bytes) -> tuple[list[str], int]:
    """``split_lines(raw)``, and how many of the lines held invalid UTF-8."""
    if raw.isascii():
        return split_lines(raw), 0
    text, offsets = _decode_noting_errors(raw)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines, _lines_holding(raw, offsets) if offsets else 0


class _AddCounts(accumulators.AccumulatorParam):
    def zero(self, value: Any) -> dict:
        return {}

    def addInPlace(self, value1: dict, value2: dict) -> dict:
        for source, lines in value2.items():
            value1[source] = value1.get(source, 0) + lines
        return value1


def note_invalid_utf8(source: str, lines: int) -> None:
    """Executor: the running task decoded ``lines`` lines of ``source`` with U+FFFD."""
    if lines <= 0:
        return
    with accumulators._lock:
        counter = accumulators._executor_accumulators.get(INVALID_UTF8_ACCUMULATOR_ID)
        if counter is None:
            counter = accumulators._executor_accumulators[INVALID_UTF8_ACCUMULATOR_ID] = \
                accumulators.Accumulator(INVALID_UTF8_ACCUMULATOR_ID, {}, _AddCounts(),
                                         _on_driver=False)
    counter.add({source: lines})


def invalid_utf8_of(updates: dict) -> dict[str, int]:
    """Driver: the counts in one task's accumulator updates (empty if none)."""
    counts = updates.get(INVALID_UTF8_ACCUMULATOR_ID)
    if not isinstance(counts, dict):
        return {}
    return {str(k): v for k, v in counts.items() if isinstance(v, int) and v > 0}
