"""Hadoop's SequenceFile on-disk format (version 6), read and written without Hadoop.

A file is a header -- ``SEQ\\x06``, the key and value class names, two
compression flags (and the codec's class name), metadata, and a random
16-byte sync marker -- then records: ``int record_length, int key_length,
key bytes, value bytes``. Every ``SYNC_INTERVAL`` bytes the writer puts
``-1`` and the sync marker between two records, so a reader can start
anywhere and find the next record boundary: that is how a file is split
into byte ranges read by different tasks. A record belongs to the range in
which it starts, except that a range stops at the first sync marker at or
past its end (Hadoop's SequenceFileRecordReader), so every record is read
exactly once.

Block-compressed files hold blocks of records (each behind a sync marker):
a vint record count, then four compressed buffers -- key lengths, keys,
value lengths, values. Record-compressed files compress each value.
"""
from __future__ import annotations

import bz2
import gzip
import mmap
import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator

from . import storage
from .writables import read_text, read_vlong, write_text, write_vlong

MAGIC = b"SEQ"
VERSION = 6
SYNC_ESCAPE = b"\xff\xff\xff\xff"
SYNC_HASH_SIZE = 16
SYNC_SIZE = 4 + SYNC_HASH_SIZE
SYNC_INTERVAL = 5 * 1024 * SYNC_SIZE  # Hadoop 3's SequenceFile.SYNC_INTERVAL (100 KB)
BLOCK_SIZE = 1_000_000  # io.seqfile.compress.blocksize: uncompressed bytes per block

_INT = struct.Struct(">i")
_TWO_INTS = struct.Struct(">ii")

_CODEC = "org.apache.hadoop.io.compress."
# Hadoop's built-in gzip compressor writes a header with no time, flags or OS.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x00"


def _gzip(data: bytes) -> bytes:
    deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS)
    return (_GZIP_HEADER + deflate.compress(data) + deflate.flush()
            + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF))


DEFAULT_CODEC = _CODEC + "DefaultCodec"
# codec class -> (compress, decompress); Hadoop's streams are plain zlib, gzip and bzip2.
CODECS: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
    DEFAULT_CODEC: (zlib.compress, zlib.decompress),
    _CODEC + "DeflateCodec": (zlib.compress, zlib.decompress),
    _CODEC + "GzipCodec": (_gzip, gzip.decompress),
    _CODEC + "BZip2Codec": (bz2.compress, bz2.decompress),
}
# File name extensions the codecs give text output (CompressionCodec.getDefaultExtension).
CODEC_EXTENSIONS = {DEFAULT_CODEC: ".deflate", _CODEC + "DeflateCodec": ".deflate",
                    _CODEC + "GzipCodec": ".gz", _CODEC + "BZip2Codec": ".bz2"}


class SequenceFileError(ValueError):
    """A file that is not a SequenceFile this module can read, or a bad write request."""


def codec(name: str) -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    try:
        return CODECS[name]
    except KeyError:
        raise SequenceFileError(f"compression codec {name} is not supported; supported: "
                                f"{', '.join(CODECS)}") from None


@dataclass(frozen=True)
class Header:
    key_class: str
    value_class: str
    compressed: bool
    block_compressed: bool
    codec: str | None
    sync: bytes
    end: int  # offset of the first record (or block)
    metadata: dict = field(default_factory=dict)


def encode_header(key_class: str, value_class: str, sync: bytes, codec_name: str | None = None,
                  block: bool = False, metadata: dict | None = None) -> bytes:
    out = bytearray(MAGIC)
    out.append(VERSION)
    write_text(out, key_class)
    write_text(out, value_class)
    out.append(1 if codec_name else 0)
    out.append(1 if codec_name and block else 0)
    if codec_name:
        write_text(out, codec_name)
    out += _INT.pack(len(metadata or {}))
    for name, value in (metadata or {}).items():
        write_text(out, name)
        write_text(out, value)
    out += sync
    return bytes(out)


def parse_header(buf, where: str) -> Header:
    """The header at the start of ``buf``; ``where`` names the file in errors."""
    if len(buf) < 4 or bytes(buf[:3]) != MAGIC:
        raise SequenceFileError(f"{where} is not a SequenceFile (it does not start with 'SEQ')")
    version = buf[3]
    if not 4 <= version <= VERSION:
        raise SequenceFileError(f"{where} is a SequenceFile of version {version}; "
                                f"versions 4 to {VERSION} can be read")
    try:
        key_class, pos = read_text(buf, 4)
        value_class, pos = read_text(buf, pos)
        compressed, block_compressed = buf[pos] != 0, buf[pos + 1] != 0
        pos += 2
        codec_name = None
        if compressed:
            if version >= 5:
                codec_name, pos = read_text(buf, pos)
            else:
                codec_name = DEFAULT_CODEC
        metadata = {}
        if version >= 6:
            count = _INT.unpack_from(buf, pos)[0]
            pos += 4
            for _ in range(count):
                name, pos = read_text(buf, pos)
                metadata[name], pos = read_text(buf, pos)
        sync = bytes(buf[pos:pos + SYNC_HASH_SIZE])
        if len(sync) != SYNC_HASH_SIZE:
            raise IndexError
    except (IndexError, struct.error):
        raise SequenceFileError(f"{where}: the SequenceFile header is truncated") from None
    return Header(key_class, value_class, compressed, block_compressed, codec_name, sync,
                  pos + SYNC_HASH_SIZE, metadata)


class SequenceFileWriter:
    """Appends already-encoded keys and values to ``f``, as Hadoop's Writer does.

    With ``codec_name`` the values (record compression) or whole blocks of
    records (``block=True``) are compressed with that codec.
    """

    def __init__(self, f: BinaryIO, key_class: str, value_class: str,
                 codec_name: str | None = None, block: bool = False, sync: bytes | None = None,
                 metadata: dict | None = None):
        self._f = f
        self._sync = sync if sync is not None else os.urandom(SYNC_HASH_SIZE)
        self._compress = codec(codec_name)[0] if codec_name else None
        self._block = bool(codec_name) and block
        header = encode_header(key_class, value_class, self._sync, codec_name, block, metadata)
        f.write(header)
        self._pos = len(header)
        self._last_sync = 0
        self._keys: list[bytes] = []
        self._values: list[bytes] = []
        self._buffered = 0

    def append(self, key: bytes, value: bytes) -> None:
        if self._block:
            self._keys.append(key)
            self._values.append(value)
            self._buffered += len(key) + len(value)
            if self._buffered >= BLOCK_SIZE:
                self._write_block()
            return
        if self._pos >= self._last_sync + SYNC_INTERVAL:
            self._write_sync()
        if self._compress is not None:
            value = self._compress(value)
        self._write(_TWO_INTS.pack(len(key) + len(value), len(key)) + key + value)

    def close(self) -> None:
        """Write what is buffered (the last block); the caller closes the file."""
        if self._block and self._keys:
            self._write_block()

    def _write(self, data: bytes) -> None:
        self._f.write(data)
        self._pos += len(data)

    def _write_sync(self) -> None:
        if self._pos != self._last_sync:
            self._write(SYNC_ESCAPE + self._sync)
            self._last_sync = self._pos

    def _write_block(self) -> None:
        self._write_sync()
        out = bytearray()
        write_vlong(out, len(self._keys))
        for data in (self._lengths(self._keys), b"".join(self._keys),
                     self._lengths(self._values), b"".join(self._values)):
            packed = self._compress(data)
            write_vlong(out, len(packed))
            out += packed
        self._write(bytes(out))
        self._keys, self._values, self._buffered = [], [], 0

    @staticmethod
    def _lengths(items: list[bytes]) -> bytes:
        out = bytearray()
        for item in items:
            write_vlong(out, len(item))
        return bytes(out)


class SequenceFileReader:
    """Raw ``(key_bytes, value_bytes)`` records of one SequenceFile, by byte range."""

    def __init__(self, path: str):
        self.path = path
        self._file = None
        try:
            if storage.is_remote(path):  # no mmap of a remote object: read it whole
                self._buf = storage.read_bytes(path)
                self.size = len(self._buf)
            else:
                self._file = open(path, "rb")
                self.size = os.fstat(self._file.fileno()).st_size
                self._buf = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if self.size else b""
            self.header = parse_header(self._buf, path)
        except BaseException:
            self.close()
            raise
        self._decompress = codec(self.header.codec)[1] if self.header.compressed else None

    def close(self) -> None:
        buf = getattr(self, "_buf", None)
        if isinstance(buf, mmap.mmap):
            buf.close()
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> "SequenceFileReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def records(self, start: int = 0, length: int = -1) -> Iterator[tuple[bytes, bytes]]:
        """Records of the split ``[start, start + length)`` (``length < 0``: to the end)."""
        end = self.size if length < 0 else start + length
        pos = self.header.end
        if start > pos:
            pos = self._next_sync(start)
        if pos >= end:  # a split inside the header, or with no sync marker: nothing starts in it
            return iter(())
        if self.header.block_compressed:
            return self._blocks(pos, end)
        return self._records(pos, end)

    def _next_sync(self, position: int) -> int:
        """Where the first sync marker at or after ``position`` starts (Reader.sync)."""
        if position + SYNC_SIZE >= self.size:
            return self.size
        found = self._buf.find(self.header.sync, position + 4)
        return self.size if found < 0 else found - 4

    def _corrupt(self, pos: int, why: str) -> SequenceFileError:
        return SequenceFileError(f"{self.path} is corrupt at byte {pos}: {why}")

    def _read_sync(self, pos: int) -> int:
        if self._buf[pos + 4:pos + SYNC_SIZE] != self.header.sync:
            raise self._corrupt(pos, "a sync marker does not match the header's")
        return pos + SYNC_SIZE

    def _records(self, pos: int, end: int) -> Iterator[tuple[bytes, bytes]]:
        buf, size, decompress = self._buf, self.size, self._decompress
        unpack = _TWO_INTS.unpack_from
        while pos < size:
            record_start = pos
            sync_seen = False
            if buf[pos:pos + 4] == SYNC_ESCAPE:
                pos = self._read_sync(pos)
                sync_seen = True
                if pos >= size:
                    return
            if pos + 8 > size:
                raise self._corrupt(pos, "a record is cut short")
            record_length, key_length = unpack(buf, pos)
            body = pos + 8
            pos = body + record_length
            if record_length < key_length or key_length < 0 or pos > size:
                raise self._corrupt(record_start, f"record length {record_length}, key length "
                                                  f"{key_length}, file size {size}")
            if record_start >= end and sync_seen:
                return
            value = buf[body + key_length:pos]
            yield buf[body:body + key_length], (decompress(value) if decompress else value)

    def _blocks(self, pos: int, end: int) -> Iterator[tuple[bytes, bytes]]:
        buf, size, decompress = self._buf, self.size, self._decompress
        while pos < size:
            block_start = pos
            if buf[pos:pos + 4] != SYNC_ESCAPE:
                raise self._corrupt(pos, "a compressed block does not start with a sync marker")
            pos = self._read_sync(pos)
            if block_start >= end or pos >= size:
                return
            count, pos = read_vlong(buf, pos)
            parts = []
            for _ in range(4):
                packed_size, pos = read_vlong(buf, pos)
                parts.append(decompress(buf[pos:pos + packed_size]))
                pos += packed_size
            key_lengths, keys, value_lengths, values = parts
            key_at = value_at = key_len_at = value_len_at = 0
            for _ in range(count):
                key_size, key_len_at = read_vlong(key_lengths, key_len_at)
                value_size, value_len_at = read_vlong(value_lengths, value_len_at)
                yield keys[key_at:key_at + key_size], values[value_at:value_at + value_size]
                key_at += key_size
                value_at += value_size
