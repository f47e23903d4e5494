"""Typed wire records and their single msgpack encoding.

Every message is a frozen dataclass registered here with a numeric code. A
message travels as ZeroMQ frames::

    frame 0     msgpack [MAGIC, PROTOCOL_VERSION, code, [field, ...], [record, ...]]
    frame 1..n  the message's ``payload`` (closures, record batches), raw bytes

Bulky bytes never ride inside the msgpack header. Decoding checks the magic,
the version, the code and every field's type, so garbage, truncated frames and
messages from another protocol version raise ``ProtocolError`` instead of
reaching the program.

Records may nest (a task's plan is a tree of records). Nested records travel
flat: a table of ``[code, fields]`` entries in post-order, a field naming a
nested record by its index in the table. Encoding and decoding are loops, not
recursion, so no depth of lineage can make them fail.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Callable, ClassVar

import msgpack

MAGIC = 0x5347  # "SG"
PROTOCOL_VERSION = 3  # 3: LaunchTask carries files_epoch and properties

_BY_CODE: dict[int, type] = {}


class ProtocolError(Exception):
    """Frames that are not a valid message of this protocol version."""


class WireRecord:
    """Base of every record; subclasses are made by ``@wire_record``."""

    wire_code: ClassVar[int]
    _wire_fields: ClassVar[tuple[str, ...]]
    _wire_checks: ClassVar[tuple[Callable[[Any, list], Any], ...]]
    _has_payload: ClassVar[bool]
    _record_fields: ClassVar[tuple[str, ...]]


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
        # Most messages (results, heartbeats) nest no records: encoding them skips the
        # search for nested records, which is the bulk of encoding a small message.
        cls._record_fields = tuple(n for n in names if _may_hold_records(hints[n]))
        _BY_CODE[code] = cls
        return cls

    return register


# -- encoding ------------------------------------------------------------------

def _holds_records(values: list | tuple) -> bool:
    # One C-level pass over the types: a list field can be long (a map task's
    # 10,000 segment sizes) and seldom holds records.
    return any(issubclass(kind, WireRecord) for kind in set(map(type, values)))


def _may_hold_records(hint: Any) -> bool:
    """Whether a field of this type can carry a nested record."""
    if hint is Any or hint in (list, tuple):
        return True
    if isinstance(hint, type):
        return issubclass(hint, WireRecord)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType, list, tuple):
        return any(a is not Ellipsis and _may_hold_records(a) for a in typing.get_args(hint))
    return False


def _child_records(record: WireRecord):
    for name in record._record_fields:
        value = getattr(record, name)
        if isinstance(value, WireRecord):
            yield value
        elif type(value) in (list, tuple) and _holds_records(value):
            yield from (v for v in value if isinstance(v, WireRecord))


def _field_to_wire(value: Any, index_of: dict[int, int]) -> Any:
    if isinstance(value, WireRecord):
        return index_of[id(value)]
    if type(value) in (list, tuple):
        if not _holds_records(value):
            return list(value)
        return [index_of[id(v)] if isinstance(v, WireRecord) else v for v in value]
    return value


def _flatten(message: WireRecord) -> tuple[list, list]:
    """The message's fields and its nested records' table (children first)."""
    if not message._record_fields:
        return [getattr(message, n) for n in message._wire_fields], []
    table: list = []
    index_of: dict[int, int] = {}
    stack = [(child, False) for child in _child_records(message)]
    while stack:
        record, children_done = stack.pop()
        if id(record) in index_of:
            continue
        if not children_done:
            stack.append((record, True))
            stack.extend((child, False) for child in _child_records(record))
            continue
        index_of[id(record)] = len(table)
        table.append([record.wire_code,
                      [_field_to_wire(getattr(record, n), index_of) for n in record._wire_fields]])
    fields = [_field_to_wire(getattr(message, n), index_of) for n in message._wire_fields]
    return fields, table


def encode(message: WireRecord) -> list[bytes]:
    """The frames of ``message``."""
    fields, table = _flatten(message)
    header = msgpack.packb([MAGIC, PROTOCOL_VERSION, message.wire_code, fields, table],
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
    if not (isinstance(header, list) and len(header) == 5):
        raise ProtocolError("header is not [magic, version, code, fields, records]")
    magic, version, code, fields, table = header
    if magic != MAGIC:
        raise ProtocolError(f"bad magic {magic!r}")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version!r}, this process speaks {PROTOCOL_VERSION}")
    if not isinstance(table, list):
        raise ProtocolError("nested records are not a list")
    decoded: list[WireRecord] = []
    for entry in table:
        if not (isinstance(entry, list) and len(entry) == 2):
            raise ProtocolError("a nested record is not [code, fields]")
        decoded.append(_from_wire_record(entry[0], entry[1], "nested record", decoded))
    message = _from_wire_record(code, fields, "message", decoded)
    if message._has_payload:
        object.__setattr__(message, "payload", [_as_bytes(f) for f in frames[1:]])
    elif len(frames) > 1:
        raise ProtocolError(f"{type(message).__name__} carries no payload but got {len(frames) - 1} frames")
    return message


def _as_bytes(frame: Any) -> Any:
    # zmq.Frame (copy=False receives) exposes .buffer; bytes pass through.
    return frame.buffer if hasattr(frame, "buffer") else frame


def _from_wire_record(code: Any, fields: Any, where: str, table: list) -> WireRecord:
    cls = _BY_CODE.get(code) if type(code) is int else None
    if cls is None:
        raise ProtocolError(f"{where}: unknown record code {code!r}")
    if not isinstance(fields, list) or len(fields) != len(cls._wire_fields):
        raise ProtocolError(f"{cls.__name__}: expected {len(cls._wire_fields)} fields")
    values = {}
    for name, check, value in zip(cls._wire_fields, cls._wire_checks, fields):
        values[name] = check(value, table)
    if cls._has_payload:
        values["payload"] = []
    return cls(**values)


# -- field checks (built once per record class from its annotations) ----------

def _checker_for(hint: Any, where: str) -> Callable[[Any, list], Any]:
    """A function ``check(value, table)`` that validates (and converts) one field;
    ``table`` holds the nested records decoded so far."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return lambda v, table: v
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        inner = _checker_for(options[0] if len(options) == 1 else Any, where)
        return lambda v, table: None if v is None else inner(v, table)
    if isinstance(hint, type) and issubclass(hint, WireRecord):
        return lambda v, table: _nested(v, table, hint, where)
    if origin in (list, tuple) or hint in (list, tuple):
        item = _checker_for(args[0], where) if args and args[0] is not Ellipsis else None
        build = tuple if (origin is tuple or hint is tuple) else list

        def check_list(v, table):
            if not isinstance(v, (list, tuple)):
                raise ProtocolError(f"{where}: expected a list, got {type(v).__name__}")
            return build(item(x, table) for x in v) if item else build(v)
        if args and args[0] in (int, str, bytes, bool):
            kind = args[0]

            def check_scalars(v, table):
                # One C-level pass over the types (a map task's 10,000 segment sizes).
                if isinstance(v, (list, tuple)) and set(map(type, v)) <= {kind}:
                    return build(v)
                return check_list(v, table)  # says what is wrong
            return check_scalars
        return check_list
    if origin is dict or hint is dict:
        def check_dict(v, table):
            if not isinstance(v, dict):
                raise ProtocolError(f"{where}: expected a map, got {type(v).__name__}")
            return v
        return check_dict
    if hint is float:
        def check_float(v, table):
            if type(v) not in (int, float):
                raise ProtocolError(f"{where}: expected a number, got {type(v).__name__}")
            return float(v)
        return check_float
    if hint in (int, str, bytes, bool):
        def check_exact(v, table, kind=hint):
            if type(v) is not kind:
                raise ProtocolError(f"{where}: expected {kind.__name__}, got {type(v).__name__}")
            return v
        return check_exact
    raise TypeError(f"{where}: unsupported wire field type {hint!r}")


def _nested(value: Any, table: list, base: type, where: str) -> WireRecord:
    """A field naming a nested record: an index into the records decoded before it."""
    if type(value) is not int or not 0 <= value < len(table):
        raise ProtocolError(f"{where}: expected the index of an earlier nested record")
    record = table[value]
    if not isinstance(record, base):
        raise ProtocolError(f"{where}: expected {base.__name__}, got {type(record).__name__}")
    return record
