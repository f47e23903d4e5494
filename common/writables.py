"""Hadoop's Writable encodings, and how Python values map onto them.

Both engines must agree byte for byte: a SequenceFile written here is read
by Hadoop, and one written by PySpark is read here. Python values become
Writables the way PySpark's ``JavaToWritableConverter`` converts them (after
Pyrolite turned them into Java objects): ``str`` -> Text, ``int`` ->
IntWritable when it fits 32 bits else LongWritable, ``float`` ->
DoubleWritable, ``bool`` -> BooleanWritable, ``bytes``/``bytearray`` ->
BytesWritable, ``None`` -> NullWritable, ``dict`` -> MapWritable, ``tuple``
-> ArrayWritable. Reading gives what PySpark's ``WritableToJavaConverter``
gives (BytesWritable -> ``bytearray``, FloatWritable -> the float32 value).

``java_string`` is each Writable's ``toString()``, which TextOutputFormat
writes: Java's number formatting (``1.0E10``, ``NaN``, ``true``) included.
"""
from __future__ import annotations

import math
import struct
from decimal import Decimal
from typing import Any, Callable

_IO = "org.apache.hadoop.io."
TEXT = _IO + "Text"
INT = _IO + "IntWritable"
LONG = _IO + "LongWritable"
DOUBLE = _IO + "DoubleWritable"
FLOAT = _IO + "FloatWritable"
BOOLEAN = _IO + "BooleanWritable"
BYTES = _IO + "BytesWritable"
NULL = _IO + "NullWritable"
MAP = _IO + "MapWritable"
ARRAY = _IO + "ArrayWritable"
VINT = _IO + "VIntWritable"
VLONG = _IO + "VLongWritable"
BYTE = _IO + "ByteWritable"
SHORT = _IO + "ShortWritable"

_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")
_FLOAT64 = struct.Struct(">d")
_FLOAT32 = struct.Struct(">f")
_INT16 = struct.Struct(">h")

# AbstractMapWritable's fixed class ids; other classes get ids 1, 2, ... per map.
_MAP_CLASS_IDS = {ARRAY: -127, BOOLEAN: -126, BYTES: -125, FLOAT: -124, INT: -123, LONG: -122,
                  MAP: -121, _IO + "MD5Hash": -120, NULL: -119, _IO + "ObjectWritable": -118,
                  _IO + "SortedMapWritable": -117, TEXT: -116, _IO + "TwoDArrayWritable": -115,
                  VINT: -114, VLONG: -113}
_MAP_CLASS_OF_ID = {v: k for k, v in _MAP_CLASS_IDS.items()}


class WritableError(ValueError):
    """A value that has no Writable form, or bytes that are not the Writable expected."""


# -- variable-length integers (WritableUtils.writeVLong / readVLong) ----------------

def write_vlong(out: bytearray, n: int) -> None:
    if -112 <= n <= 127:
        out.append(n & 0xFF)
        return
    prefix = -112
    if n < 0:
        n = ~n
        prefix = -120
    size = (n.bit_length() + 7) // 8
    out.append((prefix - size) & 0xFF)
    out += n.to_bytes(size, "big")


def read_vlong(buf, pos: int) -> tuple[int, int]:
    """The vlong at ``pos`` and the position after it."""
    first = buf[pos]
    if first >= 0x80:
        first -= 0x100
    if first >= -112:
        return first, pos + 1
    negative = first < -120
    size = (-119 - first) if negative else (-111 - first)
    n = int.from_bytes(buf[pos + 1:pos + size], "big")
    return (~n if negative else n), pos + size


def write_text(out: bytearray, s: str) -> None:
    """Text.writeString: a vint byte length, then UTF-8."""
    data = s.encode("utf-8", "surrogatepass")
    write_vlong(out, len(data))
    out += data


def read_text(buf, pos: int) -> tuple[str, int]:
    size, pos = read_vlong(buf, pos)
    return bytes(buf[pos:pos + size]).decode("utf-8", "replace"), pos + size


def _write_java_utf(out: bytearray, s: str) -> None:
    data = s.encode("utf-8")
    out += struct.pack(">H", len(data)) + data


# -- Python -> Writable ---------------------------------------------------------------

def natural_class(value: Any) -> str:
    """The Writable class PySpark would write ``value`` as."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        if -2**31 <= value < 2**31:
            return INT
        if -2**63 <= value < 2**63:
            return LONG
        raise WritableError(f"the int {value} does not fit a LongWritable (64 bits); PySpark cannot "
                            "write it either (java.math.BigInteger cannot be used)")
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, str):
        return TEXT
    if isinstance(value, (bytes, bytearray)):
        return BYTES
    if isinstance(value, dict):
        return MAP
    if isinstance(value, tuple):
        return ARRAY
    raise WritableError(
        f"data of type {type(value).__name__} cannot be written as a Hadoop Writable "
        "(supported: str, int, float, bool, bytes, bytearray, None, dict, tuple)")


# Which target classes a value of a natural class may be written as (numeric widening).
_WIDENS_TO = {INT: {INT, LONG, DOUBLE, FLOAT}, LONG: {LONG, DOUBLE, FLOAT},
              DOUBLE: {DOUBLE, FLOAT}}


def check_writable(value: Any, target: str, what: str) -> None:
    """Raise unless ``value`` can be written as ``target`` (``what``: "key" or "value").

    Hadoop's writer refuses a record whose class differs from the file's;
    a numeric value that widens losslessly (an int as LongWritable) is let through."""
    found = natural_class(value)
    if found != target and target not in _WIDENS_TO.get(found, ()):
        raise WritableError(f"wrong {what} class: {found} is not class {target}")


def encode(value: Any, target: str, out: bytearray) -> None:
    """Append ``value`` written as Writable class ``target``."""
    if target == TEXT:
        write_text(out, value)
    elif target == INT:
        out += _INT32.pack(value)
    elif target == LONG:
        out += _INT64.pack(value)
    elif target == DOUBLE:
        out += _FLOAT64.pack(value)
    elif target == FLOAT:
        out += _FLOAT32.pack(value)
    elif target == BOOLEAN:
        out.append(1 if value else 0)
    elif target == BYTES:
        out += _INT32.pack(len(value))
        out += value
    elif target == NULL:
        pass
    elif target == MAP:
        _encode_map(value, out)
    elif target == ARRAY:
        out += _INT32.pack(len(value))
        for item in value:
            encode(item, natural_class(item), out)
    else:
        raise WritableError(f"cannot write Writable class {target} (supported: {', '.join(WRITABLE_CLASSES)})")


def _encode_map(mapping: dict, out: bytearray) -> None:
    """MapWritable: a table of the classes without a fixed id, then the entries."""
    entries = [(k, natural_class(k), v, natural_class(v)) for k, v in mapping.items()]
    new_classes: dict[str, int] = {}
    for _, kc, _, vc in entries:
        for cls in (kc, vc):
            if cls not in _MAP_CLASS_IDS and cls not in new_classes:
                new_classes[cls] = len(new_classes) + 1
    out.append(len(new_classes))
    for cls, class_id in new_classes.items():
        out.append(class_id)
        _write_java_utf(out, cls)
    out += _INT32.pack(len(entries))
    for k, kc, v, vc in entries:
        out.append(_MAP_CLASS_IDS.get(kc, new_classes.get(kc, 0)) & 0xFF)
        encode(k, kc, out)
        out.append(_MAP_CLASS_IDS.get(vc, new_classes.get(vc, 0)) & 0xFF)
        encode(v, vc, out)


# -- Writable -> Python ---------------------------------------------------------------

Decoder = Callable[[Any, int], "tuple[Any, int]"]


def _fixed(st: struct.Struct) -> Decoder:
    unpack, size = st.unpack_from, st.size
    return lambda buf, pos: (unpack(buf, pos)[0], pos + size)


def _decode_bytes(buf, pos: int) -> tuple[bytearray, int]:
    size = _INT32.unpack_from(buf, pos)[0]
    return bytearray(buf[pos + 4:pos + 4 + size]), pos + 4 + size


def _decode_map(buf, pos: int) -> tuple[dict, int]:
    classes = dict(_MAP_CLASS_OF_ID)
    count = buf[pos]
    pos += 1
    for _ in range(count):
        class_id = struct.unpack_from(">b", buf, pos)[0]
        size = struct.unpack_from(">H", buf, pos + 1)[0]
        classes[class_id] = bytes(buf[pos + 3:pos + 3 + size]).decode("utf-8")
        pos += 3 + size
    entries = _INT32.unpack_from(buf, pos)[0]
    pos += 4
    result = {}
    for _ in range(entries):
        key, pos = _decode_tagged(classes, buf, pos)
        value, pos = _decode_tagged(classes, buf, pos)
        result[key] = value
    return result, pos


def _decode_tagged(classes: dict, buf, pos: int) -> tuple[Any, int]:
    class_id = struct.unpack_from(">b", buf, pos)[0]
    cls = classes.get(class_id)
    if cls is None:
        raise WritableError(f"MapWritable entry with unknown class id {class_id}")
    return decoder(cls)(buf, pos + 1)


def _refuse_array(buf, pos):
    raise WritableError("an ArrayWritable cannot be read back: its element class is not in the "
                        "file (Hadoop fails here too: ArrayWritable has no no-argument constructor)")


_DECODERS: dict[str, Decoder] = {
    TEXT: read_text,
    INT: _fixed(_INT32),
    LONG: _fixed(_INT64),
    DOUBLE: _fixed(_FLOAT64),
    FLOAT: _fixed(_FLOAT32),
    BOOLEAN: lambda buf, pos: (buf[pos] != 0, pos + 1),
    BYTES: _decode_bytes,
    NULL: lambda buf, pos: (None, pos),
    MAP: _decode_map,
    VINT: read_vlong,
    VLONG: read_vlong,
    BYTE: _fixed(struct.Struct(">b")),
    SHORT: _fixed(_INT16),
    ARRAY: _refuse_array,
}

WRITABLE_CLASSES = (TEXT, INT, LONG, DOUBLE, FLOAT, BOOLEAN, BYTES, NULL, MAP, ARRAY)


def decoder(cls: str) -> Decoder:
    """``decode(buf, pos) -> (value, next_pos)`` for Writable class ``cls``."""
    try:
        return _DECODERS[cls]
    except KeyError:
        raise WritableError(
            f"cannot read Writable class {cls}; supported: "
            f"{', '.join(c for c in _DECODERS if c != ARRAY)}") from None


# -- toString(), as TextOutputFormat writes it --------------------------------------

def java_double_string(x: float) -> str:
    """Java's ``Double.toString``: plain between 1e-3 and 1e7, else ``d.dddE[-]n``."""
    return _java_float_string(x, repr(abs(x)))


def java_float_string(x: float) -> str:
    """Java's ``Float.toString`` of a float32 value: its shortest round-tripping digits."""
    for precision in range(1, 10):
        text = f"{abs(x):.{precision}g}"
        if _FLOAT32.unpack(_FLOAT32.pack(float(text)))[0] == abs(x):
            break
    return _java_float_string(x, text)


def _java_float_string(x: float, digits_text: str) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        return sign + "0.0"
    _, digits, exponent = Decimal(digits_text).normalize().as_tuple()
    digits = "".join(map(str, digits))
    magnitude = len(digits) + exponent - 1  # x = d.ddd * 10**magnitude
    if -3 <= magnitude < 7:
        if exponent >= 0:
            return f"{sign}{digits}{'0' * exponent}.0"
        point = len(digits) + exponent
        if point > 0:
            return f"{sign}{digits[:point]}.{digits[point:]}"
        return f"{sign}0.{'0' * -point}{digits}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{magnitude}"


def java_string(value: Any, cls: str) -> str:
    """What ``toString()`` of ``value`` written as ``cls`` returns."""
    if cls == TEXT:
        return value
    if cls == BOOLEAN:
        return "true" if value else "false"
    if cls in (INT, LONG):
        return str(int(value))
    if cls == DOUBLE:
        return java_double_string(float(value))
    if cls == FLOAT:
        return java_float_string(_FLOAT32.unpack(_FLOAT32.pack(float(value)))[0])
    if cls == BYTES:
        return " ".join(f"{b:02x}" for b in value)
    if cls == NULL:
        return "(null)"
    if cls == MAP:  # a HashMap's toString; Java orders the entries by hash, we keep dict order
        return "{" + ", ".join(f"{java_string(k, natural_class(k))}={java_string(v, natural_class(v))}"
                               for k, v in value.items()) + "}"
    if cls == ARRAY:
        values = ", ".join(java_string(v, natural_class(v)) for v in value)
        return f"ArrayWritable [valueClass=interface {_IO}Writable, values=[{values}]]"
    raise WritableError(f"cannot format Writable class {cls}")
