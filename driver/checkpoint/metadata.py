"""The streaming metadata checkpoint: enough to restart a driver where it stopped.

Written after every batch is generated and after it completes, atomically
(a temporary file renamed into place), as ``checkpoint-<batch ms>`` in the
checkpoint directory; the newest ten are kept. It holds the DStream graph
with its closures and input positions (files chosen, blocks claimed), the
batches generated but not yet completed, where each stateful stream's last
state checkpoint lies, and the received-block log's index.

A file starts with a small msgpack header (format, sluicegate version, a
fingerprint of the application's setup code), checked before anything is
unpickled: a checkpoint from an incompatible version or from changed
application code is refused with a message saying so.
"""
from __future__ import annotations

import hashlib
import logging
import os
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
                            "app": checkpoint.app_name, "body_bytes": len(body),
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


def read_latest(directory: str | Path, expected_fingerprint: str | None) -> StreamingCheckpoint | None:
    """The newest readable checkpoint in ``directory``; None if there is none.

    A torn or corrupt newest file falls back to the one before it; an
    incompatible version or a different application is refused.
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
        try:
            return cloudpickle.loads(body)
        except Exception as exc:  # noqa: BLE001 - user classes may have changed
            raise CheckpointError(
                f"checkpoint {path} cannot be restored: {type(exc).__name__}: {exc}. The "
                "application's code probably changed since it was written.") from exc
    if problems:
        raise CheckpointError(f"no readable checkpoint in {directory}: " + "; ".join(problems))
    return None


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
