"""The streaming metadata checkpoint: enough to restart a driver where it stopped.

Written after every batch is generated (durable before any of its jobs runs)
and after it completes, atomically (a temporary file renamed into place), as
``checkpoint-<batch ms>`` in the checkpoint directory, by the streaming
scheduler's checkpoint writer thread; the newest ten are kept. It holds the
DStream graph with its closures and input positions (files chosen, blocks
claimed), the batches generated but not yet completed, where each stateful
stream's last state checkpoint lies, and the received-block log's index.

A file starts with a small msgpack header (format, sluicegate version, a
fingerprint of the application's setup code, the shape of its DStream graph),
checked before anything is unpickled: a checkpoint from an incompatible
version or from changed application code is refused with a message saying so
(``read_latest`` can also be asked to compare the header's shape with the
current graph's).

A recovered context is the checkpointed one: its graph and functions, its
configuration, its clock (``ClockRef``); the setup function is not called. A
code upgrade (``getOrCreate(..., upgrade=True)``) instead calls it and keeps
only the state, the pending batches and the input positions, for a new graph
whose ``state_skeleton`` matches the checkpointed one's (``upgrade_difference``
names the first stream that differs). The old functions are never called
then, so classes or functions the new code no longer has are loaded as
stand-ins (``lenient``).

The directory may be a URL (``s3a://bucket/ckpt``, ``common.storage``): each
file is then one object, whose upload appears whole or not at all.

On recovery, state data directories (``<dir>/<application>/rdd-<id>``) that the
restored metadata does not reference -- written after the killed driver's last
metadata checkpoint, or superseded -- are deleted (``remove_unreferenced_data``).
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import re
import shutil
import struct
import types
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cloudpickle
import msgpack

from sluicegate.common import storage
from sluicegate.common.constants import VERSION

log = logging.getLogger("sluicegate.checkpoint")

FORMAT = 1
MAGIC = b"SGCKPT\n"
KEEP_FILES = 10
PREFIX = "checkpoint-"
UPGRADE_KEY = "spark.sluicegate.streaming.upgrade"


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
    clock: "ClockRef | None" = None  # None: the system clock


# Clocks that contexts of this process ran on, by ClockRef token.
_CLOCKS: "weakref.WeakValueDictionary[str, Any]" = weakref.WeakValueDictionary()


class ClockRef:
    """A streaming context's clock as its checkpoint holds it (Spark keeps its clock
    in the checkpointed configuration): a context recovered without calling its
    setup function goes on with it. In the process whose context wrote it, it
    resolves to that very clock (a test's ``ManualClock``); in another process, to a
    copy if the clock pickles, else to nothing (the system clock)."""

    def __init__(self, clock: Any):
        self.token = uuid.uuid4().hex
        self._register(clock)
        try:
            self.payload: bytes | None = cloudpickle.dumps(clock, protocol=5)
        except Exception:  # noqa: BLE001 - a clock with locks: only this process can have it
            self.payload = None

    def _register(self, clock: Any) -> None:
        try:
            _CLOCKS[self.token] = clock
        except TypeError:  # not weakly referenceable: kept for this process's lifetime
            _STRONG_CLOCKS[self.token] = clock

    def resolve(self) -> Any:
        clock = _CLOCKS.get(self.token) or _STRONG_CLOCKS.get(self.token)
        if clock is None and self.payload is not None:
            try:
                clock = cloudpickle.loads(self.payload)
            except Exception as exc:  # noqa: BLE001 - the clock's class may be gone
                log.warning("the checkpointed clock cannot be restored (%s: %s); the recovered "
                            "context runs on the system clock", type(exc).__name__, exc)
                return None
            self._register(clock)
        return clock


_STRONG_CLOCKS: dict[str, Any] = {}


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
    return VERSION


def _compatible(version: str) -> bool:
    return version.split(".")[:2] == _version().split(".")[:2]


def write(directory: str | Path, checkpoint: StreamingCheckpoint) -> Path | str:
    """Write ``checkpoint`` atomically; drop all but the newest files.

    ``directory`` may be an fsspec URL: there the file is one upload, which appears
    whole or not at all (``storage.write_bytes``)."""
    return write_serialized(directory, checkpoint.time_ms, serialize(checkpoint))


def serialize(checkpoint: StreamingCheckpoint) -> bytes:
    """The bytes of a checkpoint file: the header, then the pickled checkpoint. The
    streaming scheduler serializes on its loop thread (the graph must hold still)
    and leaves the writing to its checkpoint writer's thread."""
    body = cloudpickle.dumps(checkpoint, protocol=5)
    header = msgpack.packb({"format": FORMAT, "version": checkpoint.sluicegate_version,
                            "fingerprint": checkpoint.fingerprint, "time_ms": checkpoint.time_ms,
                            "app": checkpoint.app_name, "shape": graph_shape(checkpoint.graph),
                            "body_bytes": len(body),
                            "body_hash": hashlib.blake2b(body, digest_size=16).hexdigest()})
    return MAGIC + struct.pack(">I", len(header)) + header + body


def write_serialized(directory: str | Path, time_ms: int, data: bytes) -> Path | str:
    """Write a ``serialize``d checkpoint of the batch at ``time_ms`` atomically (a
    temporary file fsynced and renamed into place); drop all but the newest files."""
    if storage.is_remote(directory):
        return _write_remote(str(directory), f"{PREFIX}{time_ms}", data)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{PREFIX}{time_ms}"
    tmp = directory / f".{final.name}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    _fsync_dir(directory)
    for old in sorted(_files(directory), key=_time_of)[:-KEEP_FILES]:
        old.unlink(missing_ok=True)
    return final


def _write_remote(directory: str, name: str, data: bytes) -> str:
    final = storage.join(directory, name)
    storage.write_bytes(final, data)
    names = sorted(_names(directory), key=_time_of_name)
    storage.remove_files(storage.join(directory, old) for old in names[:-KEEP_FILES])
    return final


def _files(directory: Path) -> list[Path]:
    return [p for p in directory.glob(f"{PREFIX}*") if p.name[len(PREFIX):].isdigit()]


def _names(directory: str | Path) -> list[str]:
    """The names of the checkpoint files in ``directory`` (a local path or a URL)."""
    if not storage.is_remote(directory):
        return [p.name for p in _files(Path(directory))] if Path(directory).is_dir() else []
    return [name for name, is_dir in storage.list_names(str(directory))
            if not is_dir and name.startswith(PREFIX) and name[len(PREFIX):].isdigit()]


def _time_of(path: Path) -> int:
    return int(path.name[len(PREFIX):])


def _time_of_name(name: str) -> int:
    return int(name[len(PREFIX):])


def exists(directory: str | Path) -> bool:
    return bool(_names(directory))


def read_latest(directory: str | Path, expected_fingerprint: str | None,
                expected_shape: Callable[[], dict | None] | None = None,
                lenient: bool = False) -> StreamingCheckpoint | None:
    """The newest readable checkpoint in ``directory``; None if there is none.

    ``expected_shape()`` returns the current graph's ``graph_shape``. A torn or
    corrupt newest file falls back to the one before it; an incompatible version
    or a different application is refused: another setup fingerprint, or --
    ``expected_shape()`` is called only once a checkpoint passed every other
    check -- a graph of another shape. ``lenient`` (a code upgrade, which never
    calls the old functions) loads a checkpoint whose classes or functions the
    application no longer has, with stand-ins. A remote ``directory`` needs the
    file systems configured (``storage.configure``) first.
    """
    problems = []
    for name in sorted(_names(directory), key=_time_of_name, reverse=True):
        path = storage.join(directory, name)
        try:
            header, body = _read(path)
        except CheckpointError as exc:
            problems.append(f"{name}: {exc}")
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
                "code. To run the new code on the checkpointed state, upgrade explicitly: "
                "StreamingContext.getOrCreate(path, setup, upgrade=True) or the setting "
                f"{UPGRADE_KEY}=true. Or delete the checkpoint directory to start afresh, or "
                "restore the old code.")
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
        return _unpickle(path, body, lenient)
    if problems:
        raise CheckpointError(f"no readable checkpoint in {directory}: " + "; ".join(problems))
    return None


def _unpickle(path: str, body: bytes, lenient: bool) -> StreamingCheckpoint:
    try:
        return cloudpickle.loads(body)
    except Exception as exc:  # noqa: BLE001 - user classes may have changed
        if lenient:
            try:
                restored = _LenientUnpickler(io.BytesIO(body)).load()
            except Exception:  # noqa: BLE001 - reported as the first failure below
                pass
            else:
                log.warning("checkpoint %s names code the application no longer has (%s: %s); "
                            "the upgrade replaces it", path, type(exc).__name__, exc)
                return restored
        raise CheckpointError(
            f"checkpoint {path} cannot be restored: {type(exc).__name__}: {exc}. The "
            "application's code probably changed since it was written.") from exc


class _Removed:
    """Stands in for a class or function of the checkpointed application that the
    upgraded one no longer has: an upgrade never calls the old code."""

    def __init__(self, *args: Any, **kwargs: Any):
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise CheckpointError(f"{type(self).__module__}.{type(self).__qualname__} is no longer "
                              "part of the application")


class _LenientUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return type(name.rsplit(".", 1)[-1], (_Removed,), {"__module__": module,
                                                              "__qualname__": name})


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


def _describe_kept(entry: dict, skeleton: list[dict]) -> str:
    params = ", ".join(f"{k}={'default' if v is None else v}"
                       for k, v in (entry.get("params") or {}).items())
    text = f"{entry['op']}({params}) sliding every {(entry.get('slide_ms') or 0) / 1000:g}s"
    feeds = [skeleton[i] for i in entry.get("feeds") or [] if 0 <= i < len(skeleton)]
    if feeds:
        text += " fed by " + ", ".join(f"#{f['index']} {f['op']}" for f in feeds)
    return text


def _kept_key(entry: dict) -> tuple:
    return (entry.get("op"), repr(entry.get("params")), entry.get("slide_ms"),
            tuple(entry.get("feeds") or ()))


def upgrade_difference(old_batch_ms: int, old: list[dict], new_batch_ms: int,
                       new: list[dict]) -> str | None:
    """Why a new graph cannot take over the checkpointed graph's state; None if it can.

    ``old`` and ``new`` are the graphs' ``state_skeleton`` entries: the inputs and
    the stateful streams must be alike, in order -- same operators, parameters
    (durations, partition counts) and feeding -- whatever the stateless streams
    between them and the outputs. Names the first stream that differs."""
    if old_batch_ms != new_batch_ms:
        return (f"the batch duration was {old_batch_ms / 1000:g}s and is now "
                f"{new_batch_ms / 1000:g}s")
    for a, b in zip(old, new):
        if _kept_key(a) != _kept_key(b):
            now = "" if a["index"] == b["index"] else f"#{b['index']} "
            return (f"stream #{a['index']} was {_describe_kept(a, old)} and is now "
                    f"{now}{_describe_kept(b, new)}")
    if len(new) > len(old):
        extra = new[len(old)]
        return (f"the new graph adds stream #{extra['index']} {_describe_kept(extra, new)}, "
                "which has no state in the checkpoint")
    if len(old) > len(new):
        gone = old[len(new)]
        return (f"the new graph has nothing in place of the checkpoint's stream #{gone['index']} "
                f"{_describe_kept(gone, old)}, whose state would be lost")
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
    application's directory, is left alone. Returns what it removed (paths, or URLs
    for a remote ``directory``).
    """
    if storage.is_remote(directory):
        return _remove_unreferenced_remote(str(directory), referenced, keep)
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


def _remove_unreferenced_remote(directory: str, referenced: set[str],
                                keep: str | None) -> list[str]:
    referenced = {storage.absolute(p) for p in referenced}
    keep = storage.absolute(keep) if keep else None
    removed: list[str] = []
    for app_name, is_dir in storage.list_names(directory):
        app_dir = storage.join(directory, app_name)
        if not is_dir or not _APP_DIR.fullmatch(app_name) or storage.absolute(app_dir) == keep:
            continue
        contents = storage.list_names(app_dir)
        for name, data_is_dir in contents:
            data = storage.join(app_dir, name)
            if data_is_dir and _DATA_DIR.fullmatch(name) and storage.absolute(data) not in referenced:
                storage.remove_tree(data)
                removed.append(data)
        if not storage.list_names(app_dir):
            storage.remove_tree(app_dir)  # an object store has no empty directories anyway
            removed.append(app_dir)
    return removed


def _read(path: str) -> tuple[dict, bytes]:
    data = storage.read_bytes(path)
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
