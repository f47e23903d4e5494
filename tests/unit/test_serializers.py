"""PySpark's serializer classes (driver/serializers.py): length-framed streams."""
import io

import pytest

from sluicegate.driver.serializers import (
    AutoBatchedSerializer, BatchedSerializer, CloudPickleSerializer, MarshalSerializer,
    NoOpSerializer, PickleSerializer, UTF8Deserializer)

RECORDS = [0, 1, "two", (3, 4.5), None, [6]]


def _round_trip(serializer, records):
    stream = io.BytesIO()
    serializer.dump_stream(records, stream)
    stream.seek(0)
    return list(serializer.load_stream(stream))


@pytest.mark.parametrize("serializer", [
    PickleSerializer(), CloudPickleSerializer(), MarshalSerializer(),
    BatchedSerializer(PickleSerializer(), 4), BatchedSerializer(PickleSerializer()),
    AutoBatchedSerializer(PickleSerializer(), bestSize=8)])
def test_records_come_back_in_order(serializer):
    assert _round_trip(serializer, RECORDS) == RECORDS
    assert _round_trip(serializer, []) == []


def test_bytes_and_text_frames():
    assert _round_trip(NoOpSerializer(), [b"a", b"", b"bc"]) == [b"a", b"", b"bc"]
    assert _round_trip(UTF8Deserializer(), ["é", "", "x"]) == ["é", "", "x"]
    assert _round_trip(UTF8Deserializer(use_unicode=False), ["é"]) == ["é".encode()]


def test_each_frame_is_its_length_then_its_bytes():
    stream = io.BytesIO()
    NoOpSerializer().dump_stream([b"abc", b""], stream)
    assert stream.getvalue() == b"\x00\x00\x00\x03abc\x00\x00\x00\x00"


def test_load_stream_reads_lazily_and_a_cut_frame_is_an_error():
    stream = io.BytesIO(b"\x00\x00\x00\x01a\x00\x00\x00\x05ab")
    frames = NoOpSerializer().load_stream(stream)
    assert stream.tell() == 0  # nothing read before it is asked for
    assert next(frames) == b"a"
    with pytest.raises(EOFError, match="cut short at 2"):
        next(frames)
    with pytest.raises(EOFError, match="length was cut short"):
        list(NoOpSerializer().load_stream(io.BytesIO(b"\x00\x00")))
