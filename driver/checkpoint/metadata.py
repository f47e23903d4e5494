"""The streaming metadata checkpoint: enough to restart a driver where it stopped.

Written after every batch is generated and after it completes, atomically
(a temporary file renamed into place), as ``checkpoint-<batch ms>`` in the
checkpoint directory; the newest ten are kept. It holds the DStream graph
with its closures and input positions (files chosen, blocks claimed), the
batches generated but not yet completed, where each stateful stream's last
state checkpoint lies, and the received-block log's index.

A file starts with a small msgpack header (format, sluicegate version, a
fingerprint of the application's setup code, the shape of its DStream graph),
checked before anything is unpickled: a checkpoint from an incompatible
version, from changed application code or from a graph of another shape
(operators, durations, partition counts, batch duration) is refused with a
message saying so.

On recovery, state data directories (``<dir>/<application>/rdd-<id>``) that the
restored metadata does not reference -- written after the killed driver's last
metadata checkpoint, or superseded -- are deleted (``remove_unreferenced_data``).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import struct
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cloudpickle
import msgpack

log = logging.getLogger("sluicegate.checkpoint")

FORMAT = 1
MAGIC = b"SGCKPT\n"
KEEP_FILES = 10
PREFIX = "checkpoint-"


class CheckpointError(Exception):
    """A checkpoint that cannot or must not be used."""


@dataclass
class StreamingCheckpoint:
    sluicegate_version: str
    fingerprint: str
    app_name: str
    conf: dict
    batch_ms: int
    zero_ms: int
    time_ms: int
    pending_ms: list[int]
    graph: Any
    received_batches: dict = field(default_factory=dict)    # batch ms -> {stream: [BlockInfo]}
    received_unallocated: dict = field(default_factory=dict)  # stream -> [BlockInfo]
    received_metadata: dict = field(default_factory=dict)     # stream -> newest block metadata
    checkpoint_dir: str = ""
    wal_enabled: bool = False


def fingerprint(setup: Callable | None) -> str:
    """A hash of the application's setup code and the functions it calls."""
    if setup is None:
        return ""
    digest = hashlib.blake2b(digest_size=16)
    seen: set[int] = set()

    def add_code(code: types.CodeType, module_globals: dict, depth: int) -> None:
        if id(code) in seen or depth > 4:
            return
        seen.add(id(code))
        digest.update(code.co_code)
        digest.update(repr(code.co_names).encode())
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                add_code(const, module_globals, depth)
            else:
                digest.update(repr(const).encode())
        for name in code.co_names:
            target = module_globals.get(name)
            if isinstance(target, types.FunctionType) and target.__module__ == module_globals.get("__name__"):
                add_code(target.__code__, module_globals, depth + 1)

    code = getattr(setup, "__code__", None)
    if code is None:
        return ""
    add_code(code, getattr(setup, "__globals__", {}), 0)
    return digest.hexdigest()


def _version() -> str:
    from ..context.spark_context import VERSION
    return VERSION


def _compatible(version: str) -> bool:
    return version.split(".")[:2] == _version().split(".")[:2]


def write(directory: str | Path, checkpoint: StreamingCheckpoint) -> Path:
    """Write ``checkpoint`` atomically; drop all but the newest files."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    body = cloudpickle.dumps(checkpoint, protocol=5)
    header = msgpack.packb({"format": FORMAT, "version": checkpoint.sluicegate_version,
                            "fingerprint": checkpoint.fingerprint, "time_ms": checkpoint.time_ms,
                            "app": checkpoint.app_name, "shape": graph_shape(checkpoint.graph),
                            "body_bytes": len(body),
                            "body_hash": hashlib.blake2b(body, digest_size=16).hexdigest()})
    final = directory / f"{PREFIX}{checkpoint.time_ms}"
    tmp = directory / f".{final.name}.tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC + struct.pack(">I", len(header)) + header + body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    _fsync_dir(directory)
    for old in sorted(_files(directory), key=_time_of)[:-KEEP_FILES]:
        old.unlink(missing_ok=True)
    return final


def _files(directory: Path) -> list[Path]:
    return [p for p in directory.glob(f"{PREFIX}*") if p.name[len(PREFIX):].isdigit()]


def _time_of(path: Path) -> int:
    return int(path.name[len(PREFIX):])


def exists(directory: str | Path) -> bool:
    directory = Path(directory)
    return directory.is_dir() and bool(_files(directory))


def read_latest(directory: str | Path, expected_fingerprint: str | None,
                expected_shape: Callable[[], dict | None] | None = None
                ) -> StreamingCheckpoint | None:
    """The newest readable checkpoint in ``directory``; None if there is none.

    ``expected_shape()`` returns the current graph's ``graph_shape``. A torn or corrupt newest file falls back to the one before it; an
    incompatible version or a different application is refused: another setup
    fingerprint, or -- ``expected_shape()`` is called only once a checkpoint
    passed every other check -- a graph of another shape.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return None
    problems = []
    for path in sorted(_files(directory), key=_time_of, reverse=True):
        try:
            header, body = _read(path)
        except CheckpointError as exc:
            problems.append(f"{path.name}: {exc}")
            log.warning("skipping unreadable checkpoint %s: %s", path, exc)
            continue
        if header.get("format") != FORMAT or not _compatible(str(header.get("version"))):
            raise CheckpointError(
                f"checkpoint {path} was written by sluicegate {header.get('version')} "
                f"(format {header.get('format')}); this is sluicegate {_version()} (format {FORMAT}). "
                "Start without it: delete the checkpoint directory or use another one.")
        if expected_fingerprint and header.get("fingerprint") and \
                header["fingerprint"] != expected_fingerprint:
            raise CheckpointError(
                f"checkpoint {path} was written by a different version of this application: its "
                "setup function (the DStream graph) changed since. Recovering would run the old "
                "code. Delete the checkpoint directory to start afresh, or restore the old code.")
        if expected_shape is not None and header.get("shape") is not None:
            now = expected_shape()  # as graph_shape gives it: as the header carries it
            if now is not None:
                difference = shape_difference(header["shape"], now)
                if difference is not None:
                    raise CheckpointError(
                        f"checkpoint {path} was written by a different DStream graph than the one "
                        f"the setup function builds now: {difference}. Recovering would run the "
                        "checkpointed graph, not the new one. Delete the checkpoint directory "
                        f"{directory} to start afresh, or restore the old application.")
        try:
            return cloudpickle.loads(body)
        except Exception as exc:  # noqa: BLE001 - user classes may have changed
            raise CheckpointError(
                f"checkpoint {path} cannot be restored: {type(exc).__name__}: {exc}. The "
                "application's code probably changed since it was written.") from exc
    if problems:
        raise CheckpointError(f"no readable checkpoint in {directory}: " + "; ".join(problems))
    return None


def graph_shape(graph: Any) -> dict | None:
    """The DStream graph's shape (``DStreamGraph.shape``), as msgpack gives it back."""
    shape = getattr(graph, "shape", None)
    if not callable(shape):
        return None
    return msgpack.unpackb(msgpack.packb(shape()))


def _describe_stream(entry: dict, streams: list) -> str:
    params = ", ".join(f"{k}={'default' if v is None else v}"
                       for k, v in (entry.get("params") or {}).items())
    text = f"{entry.get('op')}({params}) sliding every {(entry.get('slide_ms') or 0) / 1000:g}s"
    if entry.get("checkpoint_ms"):
        text += f", checkpointed every {entry['checkpoint_ms'] / 1000:g}s"
    parents = [i for i in entry.get("parents") or [] if 0 <= i < len(streams)]
    if parents:
        text += " from " + ", ".join(f"#{i} {streams[i].get('op')}" for i in parents)
    return text


def shape_difference(old: dict, new: dict) -> str | None:
    """How the graph ``new`` differs from the checkpointed ``old``; None if alike."""
    if old.get("batch_ms") != new.get("batch_ms"):
        return (f"the batch duration was {old.get('batch_ms', 0) / 1000:g}s and is now "
                f"{new.get('batch_ms', 0) / 1000:g}s")
    if old.get("remember_ms") != new.get("remember_ms"):
        return (f"remember() was {old.get('remember_ms')} ms and is now "
                f"{new.get('remember_ms')} ms")
    before, after = old.get("streams") or [], new.get("streams") or []
    for i, (a, b) in enumerate(zip(before, after)):
        if a != b:
            return (f"stream #{i} was {_describe_stream(a, before)} and is now "
                    f"{_describe_stream(b, after)}")
    if len(before) != len(after):
        common = min(len(before), len(after))
        longer, which = (before, "the checkpoint") if len(before) > common else (after, "the new graph")
        extra = "; ".join(f"#{i} {_describe_stream(e, longer)}"
                          for i, e in enumerate(longer[common:], start=common))
        return (f"the checkpoint has {len(before)} streams and the new graph {len(after)} "
                f"(only in {which}: {extra})")
    return None


_APP_DIR = re.compile(r"[0-9a-f]{32}")
_DATA_DIR = re.compile(r"rdd-\d+")


def remove_unreferenced_data(directory: str | Path, referenced: set[str],
                             keep: str | None = None) -> list[Path]:
    """Delete RDD checkpoint data under ``directory`` that no restored stream uses.

    ``SparkContext.setCheckpointDir`` gives every application its own
    subdirectory (32 hex digits) holding ``rdd-<id>`` directories. A driver
    killed between writing a state checkpoint and the metadata that names it
    leaves that data behind, and nothing else would ever delete it. Removes every
    ``rdd-*`` directory of an earlier application that is not in ``referenced``,
    then the application directories left empty. ``keep``, the running
    application's directory, is left alone. Returns what it removed.
    """
    directory = Path(directory)
    referenced = {str(Path(p).absolute()) for p in referenced}
    keep = str(Path(keep).absolute()) if keep else None
    removed: list[Path] = []
    try:
        app_dirs = [p for p in directory.iterdir() if p.is_dir() and _APP_DIR.fullmatch(p.name)]
    except FileNotFoundError:
        return removed
    for app_dir in app_dirs:
        if str(app_dir.absolute()) == keep:
            continue
        for data in list(app_dir.iterdir()):
            if data.is_dir() and _DATA_DIR.fullmatch(data.name) and \
                    str(data.absolute()) not in referenced:
                shutil.rmtree(data, ignore_errors=True)
                removed.append(data)
        if not any(app_dir.iterdir()):
            try:
                app_dir.rmdir()
                removed.append(app_dir)
            except OSError:
                pass
    return removed


def _read(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        raise CheckpointError("not a sluicegate checkpoint")
    (size,) = struct.unpack(">I", data[len(MAGIC):len(MAGIC) + 4])
    start = len(MAGIC) + 4
    try:
        header = msgpack.unpackb(data[start:start + size])
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"corrupt header: {exc}") from None
    body = data[start + size:]
    if len(body) != header.get("body_bytes") or \
            hashlib.blake2b(body, digest_size=16).hexdigest() != header.get("body_hash"):
        raise CheckpointError("truncated or corrupt body")
    return header, body


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
