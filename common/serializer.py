"""How functions and records become bytes.

Functions travel as cloudpickle; only the executor ever unpickles them, and
only from an authenticated peer. Records travel in *record batches*: one tag
byte, then the payload:

``M``  a msgpack array of msgpack-native records (no tuples, no sets)
``P``  key/value pairs as two msgpack columns ``[keys, values]`` -- the shape
       every shuffle block has, and ~2x faster than pickle for it
``K``  pickle protocol 5, for anything msgpack cannot carry exactly
       (tuples nested in records, sets, user classes, big ints)
``L``  UTF-8 text lines separated by ``\\n`` (receiver input: the driver never
       splits lines, executors do)

Tuples always come back as tuples: msgpack would turn them into lists, so a
batch holding one falls back to columns or pickle.
"""
from __future__ import annotations

import io
import pickle
import types
from collections import ChainMap
from typing import Any, Callable, Iterable

import cloudpickle
import msgpack

TAG_MSGPACK = b"M"
TAG_PAIRS = b"P"
TAG_PICKLE = b"K"
TAG_LINES = b"L"


class SerializationError(Exception):
    """Something could not be turned into bytes, or bytes back into it."""


# -- functions ---------------------------------------------------------------

def _code_keeping_filename(code: types.CodeType):
    # cloudpickle writes "<dynamic-code>" for determinism; the real path is just
    # as deterministic, and it is what makes a worker traceback point at the bug.
    constructor, args = cloudpickle.cloudpickle._code_reduce(code)
    return constructor, tuple(code.co_filename if a == "<dynamic-code>" else a for a in args)


class _FunctionPickler(cloudpickle.Pickler):
    dispatch_table = ChainMap({types.CodeType: _code_keeping_filename},
                              cloudpickle.Pickler.dispatch_table)


def dump_function(fn: Callable) -> bytes:
    """cloudpickle ``fn``; on failure say which captured object is to blame."""
    try:
        buffer = io.BytesIO()
        _FunctionPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(fn)
        return buffer.getvalue()
    except Exception as exc:
        culprit = _find_unpicklable_capture(fn)
        where = f" {culprit}" if culprit else ""
        raise SerializationError(
            f"could not serialize function {_describe(fn)}:{where}: {type(exc).__name__}: {exc}"
        ) from exc


def load_function(data: bytes) -> Callable:
    return cloudpickle.loads(data)


def _describe(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    code = getattr(fn, "__code__", None)
    if code is not None:
        return f"{name!r} ({code.co_filename}:{code.co_firstlineno})"
    return repr(name)


def _find_unpicklable_capture(fn: Any, _depth: int = 0) -> str | None:
    """Name the first closure variable or global of ``fn`` that fails to pickle."""
    if _depth > 3:
        return None
    if isinstance(fn, types.MethodType):
        fn = fn.__func__
    code = getattr(fn, "__code__", None)
    captured: list[tuple[str, Any]] = []
    if code is not None:
        for name, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
            try:
                captured.append((f"closure variable {name!r}", cell.cell_contents))
            except ValueError:  # empty cell
                continue
        fn_globals = getattr(fn, "__globals__", {})
        for name in _global_names(code):
            if name in fn_globals:
                captured.append((f"global {name!r}", fn_globals[name]))
    elif hasattr(fn, "func"):  # functools.partial
        captured.append(("partial function", fn.func))
        captured.extend((f"partial argument {i}", a) for i, a in enumerate(fn.args))
    for label, value in captured:
        if isinstance(value, types.ModuleType):
            continue
        try:
            cloudpickle.dumps(value)
        except Exception as exc:  # noqa: BLE001 - we are diagnosing any failure
            inner = _find_unpicklable_capture(value, _depth + 1) if callable(value) else None
            if inner:
                return f"{label} -> {inner}"
            return f"{label} (a {type(value).__module__}.{type(value).__qualname__}: {exc})"
    return None


def _global_names(code: types.CodeType) -> Iterable[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _global_names(const)


# -- records -----------------------------------------------------------------

def _refuse(obj: Any) -> Any:
    raise TypeError(type(obj).__name__)


def _has_bytearray(items: list) -> bool:
    kinds = set(map(type, items))  # C speed; recurse only into the containers
    if bytearray in kinds:
        return True
    if list in kinds or dict in kinds:
        for item in items:
            kind = type(item)
            if kind is list and _has_bytearray(item):
                return True
            if kind is dict and (_has_bytearray(list(item)) or _has_bytearray(list(item.values()))):
                return True
    return False


def _pack_exact(obj: Any) -> bytes:
    """msgpack ``obj`` only if it comes back as the same types.

    msgpack packs bytearray as bin, which unpacks as bytes; a batch holding one
    must take the pickle path. Only a batch whose packing holds a bin marker
    byte can hold one, so the common batch pays one ``memchr`` for the check.
    """
    packed = msgpack.packb(obj, strict_types=True, default=_refuse)
    if (b"\xc4" in packed or b"\xc5" in packed or b"\xc6" in packed) and _has_bytearray(obj):
        raise TypeError("bytearray")
    return packed


def dump_records(records: list) -> bytes:
    """Encode a list of records as one tagged batch."""
    if records and type(records[0]) is tuple and len(records[0]) == 2:
        if all(type(r) is tuple and len(r) == 2 for r in records):
            keys = [r[0] for r in records]
            values = [r[1] for r in records]
            return dump_pairs(keys, values)
    else:
        try:
            return TAG_MSGPACK + _pack_exact(records)
        except (TypeError, ValueError, OverflowError):
            pass
    return _dump_pickle(records)


def dump_pairs(keys: list, values: list) -> bytes:
    """Encode pairs given as two parallel columns (what a combine dict yields)."""
    try:
        return TAG_PAIRS + _pack_exact([keys, values])
    except (TypeError, ValueError, OverflowError):
        return _dump_pickle(list(zip(keys, values)))


def _dump_pickle(records: list) -> bytes:
    try:
        return TAG_PICKLE + pickle.dumps(records, protocol=5)
    except Exception:  # noqa: BLE001 - fall back to cloudpickle for lambdas in records
        try:
            return TAG_PICKLE + cloudpickle.dumps(records, protocol=5)
        except Exception as exc:
            bad = next((r for r in records if not _picklable(r)), None)
            raise SerializationError(
                f"record of type {type(bad).__qualname__} cannot be serialized: {exc}") from exc


def _picklable(obj: Any) -> bool:
    try:
        cloudpickle.dumps(obj)
        return True
    except Exception:  # noqa: BLE001
        return False


def dump_lines(text: bytes) -> bytes:
    """Wrap raw newline-separated UTF-8 bytes as a batch of lines."""
    return TAG_LINES + text


def load_records(data: bytes | memoryview) -> list:
    """Decode a batch made by ``dump_records``/``dump_pairs``/``dump_lines``."""
    if not data:
        raise SerializationError("empty record batch")
    view = memoryview(data)
    tag, body = bytes(view[:1]), view[1:]
    try:
        if tag == TAG_PAIRS:
            keys, values = msgpack.unpackb(body, strict_map_key=False)
            return list(zip(keys, values))
        if tag == TAG_MSGPACK:
            return msgpack.unpackb(body, strict_map_key=False)
        if tag == TAG_PICKLE:
            return pickle.loads(body)
        if tag == TAG_LINES:
            return split_lines(bytes(body))
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(f"corrupt record batch (tag {tag!r}): {exc}") from exc
    raise SerializationError(f"unknown record batch tag {tag!r}")


def split_lines(raw: bytes) -> list[str]:
    """Split received text into lines as ``BufferedReader.readLine`` would."""
    text = raw.decode("utf-8", "replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines
