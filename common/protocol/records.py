"""Typed wire records and their single msgpack encoding.

Every message is a frozen dataclass registered here with a numeric code. A
message travels as ZeroMQ frames::

    frame 0     msgpack [MAGIC, PROTOCOL_VERSION, code, [field, ...]]
    frame 1..n  the message's ``payload`` (closures, record batches), raw bytes

Bulky bytes never ride inside the msgpack header. Decoding checks the magic,
the version, the code and every field's type, so garbage, truncated frames and
messages from another protocol version raise ``ProtocolError`` instead of
reaching the program. Records may nest (a task's plan is a tree of records).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Callable, ClassVar

import msgpack

MAGIC = 0x5347  # "SG"
PROTOCOL_VERSION = 1

_BY_CODE: dict[int, type] = {}


class ProtocolError(Exception):
    """Frames that are not a valid message of this protocol version."""


class WireRecord:
    """Base of every record; subclasses are made by ``@wire_record``."""

    wire_code: ClassVar[int]
    _wire_fields: ClassVar[tuple[str, ...]]
    _wire_checks: ClassVar[tuple[Callable[[Any], Any], ...]]
    _has_payload: ClassVar[bool]


def wire_record(code: int):
    """Register a frozen dataclass as a wire record with ``code``.

    A field named ``payload`` (``list[bytes]``) is carried as extra frames.
    """

    def register(cls):
        if code in _BY_CODE:
            raise ValueError(f"wire code {code} used by {_BY_CODE[code].__name__} and {cls.__name__}")
        cls = dataclasses.dataclass(frozen=True, slots=True)(cls)
        hints = typing.get_type_hints(cls)
        names = tuple(f.name for f in dataclasses.fields(cls) if f.name != "payload")
        cls.wire_code = code
        cls._wire_fields = names
        cls._wire_checks = tuple(_checker_for(hints[n], f"{cls.__name__}.{n}") for n in names)
        cls._has_payload = "payload" in {f.name for f in dataclasses.fields(cls)}
        _BY_CODE[code] = cls
        return cls

    return register


# -- encoding ------------------------------------------------------------------

def _to_wire(value: Any) -> Any:
    if isinstance(value, WireRecord):
        return [value.wire_code, [_to_wire(getattr(value, n)) for n in value._wire_fields]]
    if type(value) in (list, tuple):
        return [_to_wire(v) for v in value]
    if type(value) is dict:
        return {k: _to_wire(v) for k, v in value.items()}
    return value


def encode(message: WireRecord) -> list[bytes]:
    """The frames of ``message``."""
    header = msgpack.packb(
        [MAGIC, PROTOCOL_VERSION, message.wire_code,
         [_to_wire(getattr(message, n)) for n in message._wire_fields]],
        use_bin_type=True)
    if message._has_payload:
        return [header, *message.payload]
    return [header]


def decode(frames: list) -> WireRecord:
    """The message carried by ``frames``; ``ProtocolError`` if they are not one."""
    if not frames:
        raise ProtocolError("no frames")
    try:
        header = msgpack.unpackb(frames[0], strict_map_key=False)
    except Exception as exc:
        raise ProtocolError(f"header is not msgpack: {type(exc).__name__}: {exc}") from None
    if not (isinstance(header, list) and len(header) == 4):
        raise ProtocolError("header is not [magic, version, code, fields]")
    magic, version, code, fields = header
    if magic != MAGIC:
        raise ProtocolError(f"bad magic {magic!r}")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version!r}, this process speaks {PROTOCOL_VERSION}")
    try:
        message = _from_wire_record(code, fields, "message")
    except RecursionError:
        raise ProtocolError("records nest too deeply") from None
    if message._has_payload:
        object.__setattr__(message, "payload", [_as_bytes(f) for f in frames[1:]])
    elif len(frames) > 1:
        raise ProtocolError(f"{type(message).__name__} carries no payload but got {len(frames) - 1} frames")
    return message


def _as_bytes(frame: Any) -> Any:
    # zmq.Frame (copy=False receives) exposes .buffer; bytes pass through.
    return frame.buffer if hasattr(frame, "buffer") else frame


def _from_wire_record(code: Any, fields: Any, where: str) -> WireRecord:
    cls = _BY_CODE.get(code) if type(code) is int else None
    if cls is None:
        raise ProtocolError(f"{where}: unknown record code {code!r}")
    if not isinstance(fields, list) or len(fields) != len(cls._wire_fields):
        raise ProtocolError(f"{cls.__name__}: expected {len(cls._wire_fields)} fields")
    values = {}
    for name, check, value in zip(cls._wire_fields, cls._wire_checks, fields):
        values[name] = check(value)
    if cls._has_payload:
        values["payload"] = []
    return cls(**values)


# -- field checks (built once per record class from its annotations) ----------

def _checker_for(hint: Any, where: str) -> Callable[[Any], Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return lambda v: v
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        inner = _checker_for(options[0] if len(options) == 1 else Any, where)
        return lambda v: None if v is None else inner(v)
    if isinstance(hint, type) and issubclass(hint, WireRecord):
        return lambda v: _decode_nested(v, hint, where)
    if origin in (list, tuple) or hint in (list, tuple):
        item = _checker_for(args[0], where) if args and args[0] is not Ellipsis else None
        build = tuple if (origin is tuple or hint is tuple) else list

        def check_list(v):
            if not isinstance(v, (list, tuple)):
                raise ProtocolError(f"{where}: expected a list, got {type(v).__name__}")
            return build(item(x) for x in v) if item else build(v)
        return check_list
    if origin is dict or hint is dict:
        def check_dict(v):
            if not isinstance(v, dict):
                raise ProtocolError(f"{where}: expected a map, got {type(v).__name__}")
            return v
        return check_dict
    if hint is float:
        def check_float(v):
            if type(v) not in (int, float):
                raise ProtocolError(f"{where}: expected a number, got {type(v).__name__}")
            return float(v)
        return check_float
    if hint in (int, str, bytes, bool):
        def check_exact(v, kind=hint):
            if type(v) is not kind:
                raise ProtocolError(f"{where}: expected {kind.__name__}, got {type(v).__name__}")
            return v
        return check_exact
    raise TypeError(f"{where}: unsupported wire field type {hint!r}")


def _decode_nested(value: Any, base: type, where: str) -> WireRecord:
    if not (isinstance(value, list) and len(value) == 2):
        raise ProtocolError(f"{where}: expected a nested record")
    record = _from_wire_record(value[0], value[1], where)
    if not isinstance(record, base):
        raise ProtocolError(f"{where}: expected {base.__name__}, got {type(record).__name__}")
    return record
