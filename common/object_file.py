"""PySpark's pickle files: what ``saveAsPickleFile`` writes and ``pickleFile`` reads.

PySpark pickles the records in batches (lists of ``batchSize`` records, or
growing batches for ``batchSize=0``), and the JVM saves those byte strings
with ``saveAsObjectFile``: a SequenceFile of NullWritable keys and
BytesWritable values, each value a Java-serialized ``byte[][]`` holding up
to ten pickled batches. Matching that byte for byte lets either engine read
the other's files.

Only the Java serialization of a ``byte[][]`` is implemented here -- the
one object an object file written from Python ever holds.
"""
from __future__ import annotations

import itertools
import pickle
import struct
from typing import Iterable, Iterator

from .writables import BYTES, NULL

KEY_CLASS = NULL
VALUE_CLASS = BYTES
BATCHES_PER_RECORD = 10  # saveAsObjectFile groups its elements ten at a time
AUTO_BATCH_BEST_SIZE = 1 << 16  # AutoBatchedSerializer's target batch size (bytes)

_STREAM_MAGIC = b"\xac\xed\x00\x05"
_TC_NULL, _TC_REFERENCE, _TC_CLASSDESC, _TC_ARRAY, _TC_ENDBLOCKDATA = 0x70, 0x71, 0x72, 0x75, 0x78
_BASE_HANDLE = 0x7E0000
# Class descriptors of byte[][] and byte[] with their serialVersionUIDs, as the JVM writes them.
_BYTE_MATRIX_DESC = (bytes([_TC_CLASSDESC]) + b"\x00\x03[[B" + bytes.fromhex("4bfd19156767db37")
                     + b"\x02\x00\x00" + bytes([_TC_ENDBLOCKDATA, _TC_NULL]))
_BYTE_ARRAY_DESC = (bytes([_TC_CLASSDESC]) + b"\x00\x02[B" + bytes.fromhex("acf317f8060854e0")
                    + b"\x02\x00\x00" + bytes([_TC_ENDBLOCKDATA, _TC_NULL]))
_BYTE_ARRAY_DESC_HANDLE = _BASE_HANDLE + 2  # after byte[][]'s descriptor and the outer array
_INT = struct.Struct(">i")


class ObjectFileError(ValueError):
    """Bytes that are not a pickle file's Java-serialized batches."""


def pickled_batches(records: Iterable, batch_size: int) -> Iterator[bytes]:
    """Each batch of records as one pickle of a list: ``batch_size`` records a batch,
    all of them in one for -1, growing batches for 0 (PySpark's BatchedSerializer and
    AutoBatchedSerializer)."""
    iterator = iter(records)
    if batch_size < 0:
        batch = list(iterator)
        if batch or batch_size == -1:  # PySpark's UNLIMITED batch exists even when empty
            yield pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)
        return
    if batch_size > 0:
        while True:
            batch = list(itertools.islice(iterator, batch_size))
            if not batch:
                return
            yield pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)
    size = 1
    while True:
        batch = list(itertools.islice(iterator, size))
        if not batch:
            return
        data = pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)
        yield data
        if len(data) < AUTO_BATCH_BEST_SIZE:
            size *= 2
        elif len(data) > AUTO_BATCH_BEST_SIZE * 10 and size > 1:
            size //= 2


def serialize_byte_arrays(arrays: list[bytes]) -> bytes:
    """``ObjectOutputStream.writeObject(byte[][])`` of ``arrays``."""
    out = bytearray(_STREAM_MAGIC)
    out.append(_TC_ARRAY)
    out += _BYTE_MATRIX_DESC
    out += _INT.pack(len(arrays))
    for i, data in enumerate(arrays):
        out.append(_TC_ARRAY)
        if i == 0:
            out += _BYTE_ARRAY_DESC
        else:
            out += bytes([_TC_REFERENCE]) + _INT.pack(_BYTE_ARRAY_DESC_HANDLE)
        out += _INT.pack(len(data))
        out += data
    return bytes(out)


class _JavaArrays:
    """A reader of the serialized arrays-of-byte-arrays subset of Java serialization."""

    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.handles: list = []

    def fail(self, why: str) -> ObjectFileError:
        return ObjectFileError(f"not a pickle file's batch (Java serialization of byte[][]): "
                               f"{why} at byte {self.pos}")

    def take(self, n: int):
        if self.pos + n > len(self.data):
            raise self.fail("data cut short")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def i32(self) -> int:
        return _INT.unpack(self.take(4))[0]

    def class_desc(self) -> str | None:
        tag = self.u8()
        if tag == _TC_NULL:
            return None
        if tag == _TC_REFERENCE:
            return self.reference(str)
        if tag != _TC_CLASSDESC:
            raise self.fail(f"expected a class descriptor, found tag 0x{tag:02x}")
        name = bytes(self.take(struct.unpack(">H", self.take(2))[0])).decode("utf-8")
        self.take(8 + 1)  # serialVersionUID, flags
        if struct.unpack(">h", self.take(2))[0] != 0:
            raise self.fail(f"class {name} has fields; only arrays are expected")
        self.handles.append(name)
        if self.u8() != _TC_ENDBLOCKDATA:
            raise self.fail(f"class {name} carries annotations")
        self.class_desc()  # the superclass: none for arrays
        return name

    def reference(self, kind: type):
        index = self.i32() - _BASE_HANDLE
        if not 0 <= index < len(self.handles) or not isinstance(self.handles[index], kind):
            raise self.fail(f"bad back-reference {index}")
        return self.handles[index]

    def value(self):
        tag = self.u8()
        if tag == _TC_NULL:
            return None
        if tag == _TC_REFERENCE:
            return self.reference((bytes, list))
        if tag != _TC_ARRAY:
            raise self.fail(f"expected an array, found tag 0x{tag:02x}")
        name = self.class_desc()
        length = self.i32()
        if name == "[B":
            array = bytes(self.take(length))
            self.handles.append(array)
            return array
        if name is None or not name.startswith("[["):
            raise self.fail(f"unexpected array class {name}")
        items: list = []
        self.handles.append(items)
        items.extend(self.value() for _ in range(length))
        return items


def deserialize_byte_arrays(data) -> list[bytes]:
    """The ``byte[]`` elements of a Java-serialized ``byte[][]``."""
    reader = _JavaArrays(data)
    if bytes(reader.take(4)) != _STREAM_MAGIC:
        raise reader.fail("no Java serialization stream header")
    arrays = reader.value()
    if not isinstance(arrays, list) or not all(isinstance(a, bytes) for a in arrays):
        raise reader.fail("the object is not an array of byte arrays")
    return arrays


def unpickle_batches(arrays: list[bytes]) -> Iterator:
    """The records of each pickled batch."""
    for data in arrays:
        batch = pickle.loads(data)
        if not isinstance(batch, list):
            raise ObjectFileError(f"a pickled batch holds a {type(batch).__name__}, not a list "
                                  "of records: the file was not written by saveAsPickleFile")
        yield from batch
