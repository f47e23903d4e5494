"""Mirrors ``pyspark.serializers``: the serializer classes a job script names.

sluicegate chooses how records travel by itself (msgpack for plain data,
pickle for the rest, cloudpickle for functions), so ``SparkContext(serializer=
MarshalSerializer())`` is accepted and changes nothing on the wire. The classes
still work on their own as PySpark's do: ``dumps``/``loads`` one object, and
``dump_stream``/``load_stream`` a sequence of length-framed objects on a file.
"""
from __future__ import annotations

import marshal
import pickle
import struct
from itertools import islice
from typing import IO, Any, Iterable, Iterator

import cloudpickle

__all__ = [
    "Serializer", "FramedSerializer", "PickleSerializer", "CPickleSerializer",
    "CloudPickleSerializer", "MarshalSerializer", "BatchedSerializer", "AutoBatchedSerializer",
    "NoOpSerializer", "UTF8Deserializer",
]

_LENGTH = struct.Struct(">i")


def _write_frame(data: bytes, stream: IO[bytes]) -> None:
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)


def _write_frames(frames: Iterable[bytes], stream: IO[bytes]) -> None:
    for data in frames:
        _write_frame(data, stream)


def _read_frame(stream: IO[bytes]) -> bytes | None:
    header = stream.read(_LENGTH.size)
    if not header:
        return None
    if len(header) < _LENGTH.size:
        raise EOFError("a frame's length was cut short")
    (length,) = _LENGTH.unpack(header)
    data = stream.read(length)
    if len(data) < length:
        raise EOFError(f"a frame of {length} bytes was cut short at {len(data)}")
    return data


def _read_frames(stream: IO[bytes]) -> Iterator[bytes]:
    """The frames of ``stream`` up to its end, read as they are asked for."""
    while True:
        data = _read_frame(stream)
        if data is None:
            return
        yield data


class Serializer:
    """Turns objects into bytes and back."""

    def dumps(self, obj: Any) -> bytes:
        raise NotImplementedError

    def loads(self, data: bytes) -> Any:
        raise NotImplementedError

    def dump_stream(self, iterator: Iterable, stream: IO[bytes]) -> None:
        raise NotImplementedError

    def load_stream(self, stream: IO[bytes]) -> Iterator:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.__dict__ == self.__dict__

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(type(self).__name__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class FramedSerializer(Serializer):
    """Each object as one frame: its length (4 bytes, big-endian), then its bytes."""

    def dump_stream(self, iterator: Iterable, stream: IO[bytes]) -> None:
        _write_frames(map(self.dumps, iterator), stream)

    def load_stream(self, stream: IO[bytes]) -> Iterator:
        yield from map(self.loads, _read_frames(stream))


class PickleSerializer(FramedSerializer):
    """Objects as pickles."""

    def dumps(self, obj: Any) -> bytes:
        return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


CPickleSerializer = PickleSerializer


class CloudPickleSerializer(FramedSerializer):
    """Objects, functions and classes included, with cloudpickle."""

    def dumps(self, obj: Any) -> bytes:
        return cloudpickle.dumps(obj, pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


class MarshalSerializer(FramedSerializer):
    """Objects with ``marshal``: faster than pickle, for fewer types."""

    def dumps(self, obj: Any) -> bytes:
        return marshal.dumps(obj)

    def loads(self, data: bytes) -> Any:
        return marshal.loads(data)


class NoOpSerializer(FramedSerializer):
    """Bytes as they are."""

    def dumps(self, obj: Any) -> bytes:
        return obj

    def loads(self, data: bytes) -> Any:
        return data


class BatchedSerializer(Serializer):
    """Objects in lists of ``batchSize`` (all of them: ``UNLIMITED_BATCH_SIZE``), each
    list one frame of ``serializer``."""

    UNLIMITED_BATCH_SIZE = -1
    UNKNOWN_BATCH_SIZE = 0

    def __init__(self, serializer: Serializer, batchSize: int = UNLIMITED_BATCH_SIZE):
        self.serializer = serializer
        self.batchSize = batchSize

    def _batches(self, iterator: Iterable) -> Iterator[list]:
        if self.batchSize == self.UNLIMITED_BATCH_SIZE:
            yield list(iterator)
            return
        size = max(1, self.batchSize)
        it = iter(iterator)
        while True:
            batch = list(islice(it, size))
            if not batch:
                return
            yield batch

    def dump_stream(self, iterator: Iterable, stream: IO[bytes]) -> None:
        self.serializer.dump_stream(self._batches(iterator), stream)

    def load_stream(self, stream: IO[bytes]) -> Iterator:
        for batch in self.serializer.load_stream(stream):
            yield from batch

    def dumps(self, obj: Any) -> bytes:
        return self.serializer.dumps(obj)

    def loads(self, data: bytes) -> Any:
        return self.serializer.loads(data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.serializer!r}, {self.batchSize})"


class AutoBatchedSerializer(BatchedSerializer):
    """Batches that grow until a frame is about ``bestSize`` bytes."""

    def __init__(self, serializer: Serializer, bestSize: int = 1 << 16):
        super().__init__(serializer, self.UNKNOWN_BATCH_SIZE)
        self.bestSize = bestSize

    def dump_stream(self, iterator: Iterable, stream: IO[bytes]) -> None:
        it = iter(iterator)
        size = 1
        while True:
            batch = list(islice(it, size))
            if not batch:
                return
            data = self.serializer.dumps(batch)
            _write_frame(data, stream)
            if len(data) < self.bestSize:
                size *= 2
            elif len(data) > self.bestSize * 10 and size > 1:
                size //= 2

    def __repr__(self) -> str:
        return f"AutoBatchedSerializer({self.serializer!r})"


class UTF8Deserializer(Serializer):
    """Frames of UTF-8 text as ``str``."""

    def __init__(self, use_unicode: bool = True):
        self.use_unicode = use_unicode

    def loads(self, data: bytes) -> Any:
        return data.decode("utf-8") if self.use_unicode else data

    def dumps(self, obj: Any) -> bytes:
        return obj.encode("utf-8") if isinstance(obj, str) else obj

    def dump_stream(self, iterator: Iterable, stream: IO[bytes]) -> None:
        _write_frames(map(self.dumps, iterator), stream)

    def load_stream(self, stream: IO[bytes]) -> Iterator:
        yield from map(self.loads, _read_frames(stream))

    def __repr__(self) -> str:
        return f"UTF8Deserializer({self.use_unicode})"
