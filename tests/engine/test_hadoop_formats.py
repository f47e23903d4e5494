"""Hadoop's file formats without Hadoop: SequenceFiles, PySpark's pickle files,
TextOutputFormat/TextInputFormat, binaryFiles -- unit tests of the formats,
files PySpark 4.3 wrote (tests/data/hadoop) read and rewritten byte for
byte, round trips on real executor processes, per-batch streaming outputs
that stay exactly-once when batches are replayed, and (when PySpark is
installed) both engines reading each other's files live.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from hadoop_fixtures import CODEC, DATA, FIXTURES, SEQ_NEW, SEQ_OLD, TEXT_OLD, TEXT_OUTPUT_RECORDS
from sluicegate.common import object_file as objf
from sluicegate.common import writables as w
from sluicegate.common.hadoop_taskfuncs import read_offset_lines
from sluicegate.common.sequence_file import (SYNC_INTERVAL, SequenceFileError, SequenceFileReader,
                                             SequenceFileWriter, encode_header, parse_header)
from streaming_harness import ManualBatches

TEXT_IN = "org.apache.hadoop.mapred.TextInputFormat"
NEW_TEXT_IN = "org.apache.hadoop.mapreduce.lib.input.TextInputFormat"
SEQ_IN = "org.apache.hadoop.mapred.SequenceFileInputFormat"
NEW_SEQ_IN = "org.apache.hadoop.mapreduce.lib.input.SequenceFileInputFormat"
PROPS = settings(max_examples=40, deadline=None)

# What PySpark 4.3's sequenceFile/pickleFile return for each fixture (where that is
# not simply the records saved): BytesWritable comes back as bytearray.
READ_BACK = {
    "seq_null_bytes": [(None, bytearray(b"abc")), (None, bytearray(b"\x00\xff"))],
    "seq_map": [(1, {"a": 1}), (2, {"n": {"x": None}, "b": bytearray(b"\x01"), "f": 2.5})],
}


def fixture_dir(name: str, tmp_path: Path) -> Path:
    """The fixture's directory (a gzipped one unpacked into ``tmp_path``)."""
    packed = DATA / f"{name}.part-00000.gz"
    if not packed.exists():
        return DATA / name
    target = tmp_path / name
    target.mkdir()
    (target / "part-00000").write_bytes(gzip.decompress(packed.read_bytes()))
    (target / "_SUCCESS").touch()
    return target


def parts(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith("part-"))


def without_sync(data: bytes) -> bytes:
    """A SequenceFile with its random sync marker blanked out, to compare two writers."""
    return data.replace(parse_header(data, "file").sync, b"S" * 16)


def save(sc, kind: str, records: list, partitions: int, options: dict, target: Path) -> None:
    rdd = sc.parallelize(records, partitions)
    {"pickle": rdd.saveAsPickleFile, "sequence": rdd.saveAsSequenceFile,
     "hadoop": rdd.saveAsHadoopFile, "newapi": rdd.saveAsNewAPIHadoopFile}[kind](str(target), **options)


# -- unit: the encodings -------------------------------------------------------------------

@pytest.mark.parametrize("n, encoded", [
    (0, b"\x00"), (127, b"\x7f"), (-112, b"\x90"), (128, b"\x8f\x80"), (-113, b"\x87\x70"),
    (300, b"\x8e\x01\x2c"), (2**31 - 1, b"\x8c\x7f\xff\xff\xff"), (-2**63, b"\x80" + b"\x7f" + b"\xff" * 7),
])
def test_vlong_is_hadoops_encoding(n, encoded):
    out = bytearray()
    w.write_vlong(out, n)
    assert bytes(out) == encoded
    assert w.read_vlong(encoded, 0) == (n, len(encoded))


@PROPS
@given(st.integers(min_value=-2**63, max_value=2**63 - 1))
def test_vlong_round_trips(n):
    out = bytearray(b"x")
    w.write_vlong(out, n)
    assert w.read_vlong(bytes(out), 1) == (n, len(out))


@pytest.mark.parametrize("value, text", [
    (0.1, "0.1"), (1e7, "1.0E7"), (0.001, "0.001"), (1e-4, "1.0E-4"), (123456.789, "123456.789"),
    (float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity"), (-0.0, "-0.0"),
    (0.0, "0.0"), (1e21, "1.0E21"), (1e22, "1.0E22"), (100.0, "100.0"), (12345678.9, "1.23456789E7"),
    (-1.5e-7, "-1.5E-7"), (1234567.0, "1234567.0"),
])
def test_java_double_to_string(value, text):
    assert w.java_double_string(value) == text


def test_java_float_to_string_uses_float32_digits():
    assert w.java_string(0.1, w.FLOAT) == "0.1"
    assert w.java_string(1e10, w.FLOAT) == "1.0E10"
    assert w.java_string(16777217.0, w.FLOAT) == "1.6777216E7"


def test_writables_to_string_as_pyspark_4_3_writes_them():
    assert w.java_string((1, "x"), w.ARRAY) == ("ArrayWritable [valueClass=interface "
                                                "org.apache.hadoop.io.Writable, values=[1, x]]")
    assert w.java_string({"j": None, "k": 1.0}, w.MAP) == "{j=(null), k=1.0}"
    assert w.java_string(b"\x00\xab", w.BYTES) == "00 ab"
    assert w.java_string(False, w.BOOLEAN) == "false"


def test_python_values_map_to_pysparks_writable_classes():
    assert [w.natural_class(v) for v in ("s", 1, 2**31, -2**31, 2**40, 1.5, True, b"b",
                                         bytearray(b"b"), None, {1: 2}, (1, 2))] == [
        w.TEXT, w.INT, w.LONG, w.INT, w.LONG, w.DOUBLE, w.BOOLEAN, w.BYTES, w.BYTES, w.NULL,
        w.MAP, w.ARRAY]
    with pytest.raises(w.WritableError, match="does not fit a LongWritable"):
        w.natural_class(2**70)
    with pytest.raises(w.WritableError, match="data of type list cannot be written"):
        w.natural_class([1, 2])
    w.check_writable(1, w.LONG, "key")  # an int widens to LongWritable
    with pytest.raises(w.WritableError, match="wrong key class: .*LongWritable is not class "
                                              ".*IntWritable"):
        w.check_writable(2**40, w.INT, "key")


@PROPS
@given(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
                              st.floats(allow_nan=False), st.text(), st.binary()),
                    lambda inner: st.dictionaries(st.one_of(st.text(), st.integers(-99, 99)), inner,
                                                  max_size=4), max_leaves=12))
def test_writables_round_trip(value):
    cls = w.natural_class(value)
    out = bytearray()
    w.encode(value, cls, out)
    decoded, end = w.decoder(cls)(bytes(out), 0)
    assert end == len(out)

    def as_read(v):  # BytesWritable reads back as bytearray, as in PySpark
        if isinstance(v, bytes):
            return bytearray(v)
        if isinstance(v, dict):
            return {as_read(k): as_read(x) for k, x in v.items()}
        return v
    assert decoded == as_read(value)


def test_java_serialized_batches_round_trip_and_match_the_jvm(tmp_path):
    batches = [pickle.dumps([i, str(i)]) for i in range(3)] + [b"", b"x" * 5000]
    data = objf.serialize_byte_arrays(batches)
    assert data.startswith(b"\xac\xed\x00\x05ur\x00\x03[[B")
    assert objf.deserialize_byte_arrays(data) == batches
    # the first record of a file PySpark wrote: ten pickled batches of ten numbers
    with SequenceFileReader(str(DATA / "pickle_range" / "part-00000")) as reader:
        _, value = next(reader.records())
    arrays = objf.deserialize_byte_arrays(value[4:])
    assert [pickle.loads(a) for a in arrays] == [list(range(i, i + 10)) for i in range(0, 50, 10)]
    assert objf.serialize_byte_arrays(arrays) == value[4:]
    with pytest.raises(objf.ObjectFileError, match="no Java serialization stream header"):
        objf.deserialize_byte_arrays(b"garbage")
    with pytest.raises(objf.ObjectFileError, match="data cut short"):
        objf.deserialize_byte_arrays(data[:-3])


def test_auto_batching_grows_like_pysparks():
    sizes = [len(pickle.loads(b)) for b in objf.pickled_batches(range(1000), 0)]
    assert sizes == [1, 2, 4, 8, 16, 32, 64, 128, 256, 489]
    assert [len(pickle.loads(b)) for b in objf.pickled_batches(range(25), 10)] == [10, 10, 5]
    assert [pickle.loads(b) for b in objf.pickled_batches([], -1)] == [[]]  # PySpark's UNLIMITED
    assert [len(pickle.loads(b)) for b in objf.pickled_batches(range(25), -1)] == [25]


# -- unit: SequenceFile layout and splits ----------------------------------------------------

def write_sequence_file(path: Path, records: list, key_class=w.INT, value_class=w.TEXT, **kw) -> None:
    with open(path, "wb") as f:
        writer = SequenceFileWriter(f, key_class, value_class, **kw)
        for key, value in records:
            kb, vb = bytearray(), bytearray()
            w.encode(key, key_class, kb)
            w.encode(value, value_class, vb)
            writer.append(bytes(kb), bytes(vb))
        writer.close()


def read_split(path: Path, start: int, length: int) -> list:
    with SequenceFileReader(str(path)) as reader:
        return [(w.decoder(w.INT)(k, 0)[0], w.decoder(w.TEXT)(v, 0)[0])
                for k, v in reader.records(start, length)]


def test_header_is_hadoops():
    out = io.BytesIO()
    SequenceFileWriter(out, w.INT, w.TEXT, sync=b"0123456789abcdef").close()
    assert out.getvalue() == (b"SEQ\x06\x20org.apache.hadoop.io.IntWritable\x19org.apache.hadoop.io"
                              b".Text\x00\x00\x00\x00\x00\x000123456789abcdef")
    header = parse_header(out.getvalue(), "f")
    assert (header.key_class, header.value_class, header.compressed, header.end) == (
        w.INT, w.TEXT, False, len(out.getvalue()))


@pytest.mark.parametrize("options", [{}, {"codec_name": CODEC + "DefaultCodec"},
                                     {"codec_name": CODEC + "BZip2Codec", "block": True}])
def test_every_record_is_read_by_exactly_one_split(tmp_path, options):
    records = [(i, "r" * (i % 211)) for i in range(6000)]
    path = tmp_path / "f.seq"
    write_sequence_file(path, records, **options)
    size = path.stat().st_size
    if not options:
        data = path.read_bytes()
        assert data.count(b"\xff\xff\xff\xff" + parse_header(data, "f").sync) == size // SYNC_INTERVAL
    # 13 bytes: most splits hold no record start (1 byte took 40 s and proves no more)
    for split_size in (13, 97, 20_000, SYNC_INTERVAL, size // 3 + 1, size):
        got = []
        for start in range(0, size, split_size):
            got.extend(read_split(path, start, min(split_size, size - start)))
        assert got == records, split_size


@PROPS
@given(st.lists(st.integers(min_value=1, max_value=400_000), max_size=6))
def test_any_cut_into_splits_reads_each_record_once(tmp_path_factory, cuts):
    path = tmp_path_factory.getbasetemp() / "any-cut.seq"
    records = [(i, "q" * (i % 113)) for i in range(7000)]
    if not path.exists():
        write_sequence_file(path, records)
    size = path.stat().st_size
    bounds = sorted({0, size, *(c % size for c in cuts)})
    got = [r for a, b in zip(bounds, bounds[1:]) for r in read_split(path, a, b - a)]
    assert got == records


def test_bad_sequence_files_are_named(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"PAR1 not a sequence file")
    with pytest.raises(SequenceFileError, match=f"{bad} is not a SequenceFile"):
        SequenceFileReader(str(bad))
    truncated = tmp_path / "truncated"
    write_sequence_file(truncated, [(1, "one"), (2, "two")])
    truncated.write_bytes(truncated.read_bytes()[:-3])
    with pytest.raises(SequenceFileError, match="corrupt at byte"):
        read_split(truncated, 0, -1)
    snappy = tmp_path / "snappy"
    snappy.write_bytes(encode_header(w.TEXT, w.TEXT, b"s" * 16, CODEC + "SnappyCodec", block=True))
    with pytest.raises(SequenceFileError, match="SnappyCodec is not supported; supported: .*GzipCodec"):
        SequenceFileReader(str(snappy))


def test_text_input_lines_and_offsets_follow_hadoops_line_reader(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"ab\ncd\r\nef\rgh\n\nlast")
    everything = read_offset_lines(str(path), 0, -1)
    assert everything == [(0, "ab"), (3, "cd"), (7, "ef"), (10, "gh"), (13, ""), (14, "last")]
    size = path.stat().st_size
    for split in range(1, size + 1):
        got = [x for start in range(0, size, split)
               for x in read_offset_lines(str(path), start, min(split, size - start))]
        assert got == everything, split
    # a line starting exactly at a split's start belongs to the split before it
    assert read_offset_lines(str(path), 0, 3) == [(0, "ab"), (3, "cd")]
    assert read_offset_lines(str(path), 3, 4) == [(7, "ef")]


# -- PySpark's files, read and rewritten -------------------------------------------------------

@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_reads_files_pyspark_wrote(sc, tmp_path, name):
    kind, records, partitions, options = FIXTURES[name]
    directory = fixture_dir(name, tmp_path)
    if kind == "pickle":
        assert sc.pickleFile(str(directory)).collect() == records
        assert sc.pickleFile(str(directory)).getNumPartitions() == partitions
    elif name == "text_output":
        expected = [x for x in (directory / "part-00000").read_text().splitlines()]
        lines = sc.hadoopFile(str(directory), TEXT_IN, "org.apache.hadoop.io.LongWritable",
                              "org.apache.hadoop.io.Text").values().collect()
        assert lines == expected
    else:
        assert sc.sequenceFile(str(directory)).collect() == READ_BACK.get(name, records)


@pytest.mark.parametrize("name", sorted(n for n in FIXTURES if n != "seq_block_bzip2"))
def test_writes_what_pyspark_writes_byte_for_byte(sc, tmp_path, name):
    """Same records, same partitions: the same bytes (the random sync marker aside).
    MapWritable entries follow dict order (Java's HashMap order may differ), and
    bzip2's Java encoder is not libbz2, so those are compared as records."""
    kind, records, partitions, options = FIXTURES[name]
    ours = tmp_path / "ours"
    save(sc, kind, records, partitions, options, ours)
    theirs = fixture_dir(name, tmp_path)
    assert [p.name for p in parts(ours)] == [p.name for p in parts(theirs)]
    assert (ours / "_SUCCESS").exists()
    for mine, pysparks in zip(parts(ours), parts(theirs)):
        if name == "text_output":
            assert mine.read_bytes() == pysparks.read_bytes()
        elif name == "seq_map":
            assert read_values(mine) == read_values(pysparks) != []
        else:
            assert without_sync(mine.read_bytes()) == without_sync(pysparks.read_bytes()), mine.name


def read_values(path: Path) -> list:
    with SequenceFileReader(str(path)) as reader:
        kd, vd = w.decoder(reader.header.key_class), w.decoder(reader.header.value_class)
        return [(kd(k, 0)[0], vd(v, 0)[0]) for k, v in reader.records()]


def test_bzip2_blocks_are_read_by_both_sides(sc, tmp_path):
    records = FIXTURES["seq_block_bzip2"][1]
    sc.parallelize(records, 1).saveAsSequenceFile(str(tmp_path / "o"), CODEC + "BZip2Codec")
    header = parse_header((tmp_path / "o" / "part-00000").read_bytes(), "o")
    assert (header.compressed, header.block_compressed, header.codec) == (True, True, CODEC + "BZip2Codec")
    assert sc.sequenceFile(str(tmp_path / "o")).collect() == records
    assert sc.sequenceFile(str(DATA / "seq_block_bzip2")).collect() == records


# -- round trips on executors ----------------------------------------------------------------

@pytest.mark.parametrize("batch_size", [1, 3, 10, 0, -1])
def test_pickle_file_round_trip(sc, tmp_path, batch_size):
    records = [None, 1, "two", 3.0, (4, [5]), {"six": {6}}, b"\x07", 2**80] * 40
    sc.parallelize(records, 3).saveAsPickleFile(str(tmp_path / "p"), batch_size)
    assert [p.name for p in parts(tmp_path / "p")] == ["part-00000", "part-00001", "part-00002"]
    back = sc.pickleFile(str(tmp_path / "p"))
    assert back.collect() == records
    assert back.getNumPartitions() == 3  # one split per file: each is under a sync interval
    assert sc.pickleFile(f"file://{tmp_path / 'p'}", 1).count() == len(records)


def test_pickle_file_of_empty_rdd_and_existing_directory(sc, tmp_path):
    sc.emptyRDD().saveAsPickleFile(str(tmp_path / "e"))
    assert sorted(os.listdir(tmp_path / "e")) == ["_SUCCESS"]
    assert sc.pickleFile(str(tmp_path / "e")).collect() == []
    with pytest.raises(FileExistsError, match=f"Output directory file:{tmp_path / 'e'} already exists"):
        sc.parallelize([1]).saveAsPickleFile(str(tmp_path / "e"))
    with pytest.raises(ValueError, match="batchSize must be an int"):
        sc.parallelize([1]).saveAsPickleFile(str(tmp_path / "n"), 2.5)
    with pytest.raises(FileNotFoundError, match="Input path does not exist"):
        sc.pickleFile(str(tmp_path / "missing")).collect()


def test_sequence_file_round_trip_of_every_type(sc, tmp_path):
    cases = {
        "ints": [(i, -i * 1000) for i in range(20)],
        "longs": [(2**40 + i, 2**62) for i in range(5)],
        "text": [("ключ", "значение\n"), ("", "")],
        "floats": [(1.5, True), (-0.0, False)],
        "nulls": [(None, None)] * 3,
        "maps": [({"a": {1: 2.5}}, {"n": None})],
    }
    for name, records in cases.items():
        sc.parallelize(records, 2).saveAsSequenceFile(str(tmp_path / name))
        assert sc.sequenceFile(str(tmp_path / name)).collect() == records, name
    sc.parallelize([(b"k", bytearray(b"v"))], 1).saveAsSequenceFile(str(tmp_path / "bytes"))
    assert sc.sequenceFile(str(tmp_path / "bytes")).collect() == [(bytearray(b"k"), bytearray(b"v"))]


def test_sequence_file_classes_come_from_the_first_record(sc, tmp_path):
    with pytest.raises(Exception, match=r"wrong key class: org.apache.hadoop.io.Text is not class "
                                        r"org.apache.hadoop.io.IntWritable \(element 1 of partition 0\)"):
        sc.parallelize([(1, 2), ("a", 3)], 1).saveAsSequenceFile(str(tmp_path / "mixed"))
    assert not (tmp_path / "mixed").exists()  # a failed save leaves nothing behind
    assert [n for n in os.listdir(tmp_path)] == []
    # explicit classes: ints widen to LongWritable/DoubleWritable
    sc.parallelize([(1, 2), (2**40, 3)], 1).saveAsHadoopFile(
        str(tmp_path / "wide"), SEQ_OLD, "org.apache.hadoop.io.LongWritable",
        "org.apache.hadoop.io.DoubleWritable")
    header = parse_header((tmp_path / "wide" / "part-00000").read_bytes(), "wide")
    assert (header.key_class, header.value_class) == (w.LONG, w.DOUBLE)
    assert sc.sequenceFile(str(tmp_path / "wide")).collect() == [(1, 2.0), (2**40, 3.0)]


def test_bad_output_requests_get_clear_errors(sc, tmp_path):
    pairs = sc.parallelize([(1, "a")], 1)
    with pytest.raises(ValueError, match="output format org.example.Parquet is not supported; "
                                         "supported: org.apache.hadoop.mapred.SequenceFileOutputFormat"):
        pairs.saveAsHadoopFile(str(tmp_path / "x"), "org.example.Parquet")
    with pytest.raises(ValueError, match="output format .*mapred.TextOutputFormat is not supported; "
                                         r"supported: .*mapreduce.lib.output.SequenceFileOutputFormat"):
        pairs.saveAsNewAPIHadoopFile(str(tmp_path / "x"), TEXT_OLD)
    with pytest.raises(ValueError, match="converter com.example.Conv is a JVM class"):
        pairs.saveAsHadoopFile(str(tmp_path / "x"), SEQ_OLD, keyConverter="com.example.Conv")
    with pytest.raises(ValueError, match="codec com.example.Lzo is not supported"):
        pairs.saveAsSequenceFile(str(tmp_path / "x"), "com.example.Lzo")
    with pytest.raises(ValueError, match="Writable class .*VIntWritable is not supported"):
        pairs.saveAsHadoopFile(str(tmp_path / "x"), SEQ_OLD, "org.apache.hadoop.io.VIntWritable",
                               "org.apache.hadoop.io.Text")
    with pytest.raises(ValueError, match="the RDD is empty, so the key and value classes cannot"):
        sc.emptyRDD().saveAsSequenceFile(str(tmp_path / "x"))
    with pytest.raises(ValueError, match="RDD element of type int cannot be used"):
        sc.parallelize([1, 2], 1).saveAsSequenceFile(str(tmp_path / "x"))
    with pytest.raises(Exception, match="data of type list cannot be written as a Hadoop Writable"):
        sc.parallelize([(1, [1, 2])], 1).saveAsSequenceFile(str(tmp_path / "x"))
    with pytest.raises(Exception, match=r"2\*\*70|1180591620717411303424 does not fit a LongWritable"):
        sc.parallelize([(2**70, 1)], 1).saveAsSequenceFile(str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="input format org.example.Orc is not supported"):
        sc.hadoopFile(str(tmp_path), "org.example.Orc", "k", "v")
    with pytest.raises(ValueError, match="converter com.example.Conv is a JVM class"):
        sc.sequenceFile(str(tmp_path), valueConverter="com.example.Conv")
    (tmp_path / "notseq").mkdir()
    (tmp_path / "notseq" / "part-00000").write_text("just text\n")
    with pytest.raises(Exception, match="notseq/part-00000 is not a SequenceFile"):
        sc.sequenceFile(str(tmp_path / "notseq")).collect()
    with pytest.raises(Exception, match="is not a pickle file: its records are .*IntWritable"):
        sc.pickleFile(str(DATA / "seq_int_text")).collect()
    with pytest.raises(Exception, match="ArrayWritable cannot be read back"):
        sc.parallelize([(1, (1, 2))], 1).saveAsSequenceFile(str(tmp_path / "arr"))
        sc.sequenceFile(str(tmp_path / "arr")).collect()


def test_text_output_format_and_compression(sc, tmp_path):
    sc.parallelize(TEXT_OUTPUT_RECORDS, 2).saveAsHadoopFile(
        str(tmp_path / "t"), TEXT_OLD, conf={"mapreduce.output.textoutputformat.separator": ","})
    text = "".join(p.read_text() for p in parts(tmp_path / "t"))
    pysparks = (DATA / "text_output" / "part-00000").read_text().splitlines(keepends=True)
    assert text == "".join(line.replace("\t", ",", 1) for line in pysparks)  # keys hold no tab
    for codec, suffix, opener in [("GzipCodec", ".gz", gzip.decompress),
                                  ("BZip2Codec", ".bz2", __import__("bz2").decompress),
                                  ("DefaultCodec", ".deflate", __import__("zlib").decompress)]:
        out = tmp_path / codec
        sc.parallelize([("k", 1), ("l", 2)], 2).saveAsHadoopFile(
            str(out), TEXT_OLD, compressionCodecClass=CODEC + codec)
        assert [p.name for p in parts(out)] == [f"part-00000{suffix}", f"part-00001{suffix}"]
        assert [opener(p.read_bytes()) for p in parts(out)] == [b"k\t1\n", b"l\t2\n"]
        if suffix != ".deflate":
            assert sorted(sc.textFile(str(out)).collect()) == ["k\t1", "l\t2"]
        assert sorted(sc.hadoopFile(str(out), TEXT_IN, "k", "v").collect()) == [(0, "k\t1"), (0, "l\t2")]


def test_compressed_sequence_files_round_trip(sc, tmp_path):
    records = [(i, "v" * (i % 300)) for i in range(5000)]
    for codec in ("DefaultCodec", "GzipCodec", "BZip2Codec"):
        sc.parallelize(records, 2).saveAsSequenceFile(str(tmp_path / codec), CODEC + codec)
        assert sc.sequenceFile(str(tmp_path / codec)).collect() == records
    conf = {"mapreduce.output.fileoutputformat.compress": "true"}  # RECORD compression, DefaultCodec
    sc.parallelize(records, 2).saveAsHadoopFile(str(tmp_path / "rec"), SEQ_OLD, conf=conf)
    header = parse_header(parts(tmp_path / "rec")[0].read_bytes(), "rec")
    assert (header.compressed, header.block_compressed, header.codec) == (True, False, CODEC + "DefaultCodec")
    assert sc.sequenceFile(str(tmp_path / "rec"), minSplits=5).collect() == records


def test_new_api_and_dataset_variants(sc, tmp_path):
    pairs = sc.parallelize([("a", 1), ("b", 2), ("c", 3)], 2)
    pairs.saveAsNewAPIHadoopFile(str(tmp_path / "n"), SEQ_NEW)
    assert [p.name for p in parts(tmp_path / "n")] == ["part-r-00000", "part-r-00001"]
    assert sc.newAPIHadoopFile(str(tmp_path / "n"), NEW_SEQ_IN, "k", "v").collect() == pairs.collect()
    assert sc.hadoopFile(str(tmp_path / "n"), SEQ_IN, "k", "v").collect() == pairs.collect()
    pairs.saveAsHadoopDataset({"mapreduce.output.fileoutputformat.outputdir": str(tmp_path / "d"),
                               "mapred.output.format.class": SEQ_OLD})
    assert sc.hadoopRDD(SEQ_IN, "k", "v", conf={
        "mapreduce.input.fileinputformat.inputdir": str(tmp_path / "d")}).collect() == pairs.collect()
    pairs.saveAsNewAPIHadoopDataset({"mapreduce.output.fileoutputformat.outputdir": str(tmp_path / "nd")})
    assert [p.read_text() for p in parts(tmp_path / "nd")] == ["a\t1\n", "b\t2\nc\t3\n"]  # TextOutputFormat
    assert sc.newAPIHadoopRDD(NEW_TEXT_IN, "k", "v", conf={
        "mapred.input.dir": str(tmp_path / "nd")}).collect() == [(0, "a\t1"), (0, "b\t2"), (4, "c\t3")]
    assert sc.hadoopFile(str(tmp_path / "nd"), "org.apache.hadoop.mapred.KeyValueTextInputFormat",
                         "k", "v").collect() == [("a", "1"), ("b", "2"), ("c", "3")]
    with pytest.raises(ValueError, match="conf must name the output directory"):
        pairs.saveAsHadoopDataset({})
    with pytest.raises(ValueError, match="conf must name the input"):
        sc.hadoopRDD(SEQ_IN, "k", "v", conf={})


def test_text_input_format_offsets_and_splits_match_pyspark(sc, tmp_path):
    path = tmp_path / "aligned.txt"
    path.write_text("".join(f"line {i:04d}\n" for i in range(1000)))  # lines at multiples of 10
    rdd = sc.hadoopFile(str(path), TEXT_IN, "org.apache.hadoop.io.LongWritable", "org.apache.hadoop.io.Text")
    # PySpark 4.3 on this file: two splits of 5000 bytes; the line at byte 5000 is the first's
    assert rdd.glom().map(lambda p: (len(p), p[0], p[-1])).collect() == [
        (501, (0, "line 0000"), (5000, "line 0500")), (499, (5010, "line 0501"), (9990, "line 0999"))]
    assert sc.newAPIHadoopFile(str(path), NEW_TEXT_IN, "k", "v").getNumPartitions() == 1


def test_sequence_file_splits_match_pyspark(sc, tmp_path):
    """Records per partition that PySpark 4.3 gives for this data saved as one file
    (bytes identical to ours but for the sync marker)."""
    sc.parallelize([(i, "y" * (i % 97)) for i in range(30000)], 1).saveAsSequenceFile(str(tmp_path / "s"))
    expected = {1: [30000], 2: [15120, 14880], 5: [6735, 6715, 5038, 6712, 4800],
                9: [3371, 3364, 3345, 3370, 3355, 3355, 3367, 3341, 3132],
                20: [1697, 1674, 1669, 1695, 1676, 1669, 1691, 1679, 1670, 1685, 1683, 1672, 1676,
                     1691, 1673, 1668, 1698, 1434]}
    for min_splits, sizes in expected.items():
        assert sc.sequenceFile(str(tmp_path / "s"), minSplits=min_splits).glom().map(len).collect() == sizes


def test_binary_files(sc, tmp_path):
    (tmp_path / "b").mkdir()
    contents = {"f0": b"\x00\x01\xff", "f1": b"", "f2": os.urandom(5000), ".hidden": b"no", "_meta": b"no"}
    for name, data in contents.items():
        (tmp_path / "b" / name).write_bytes(data)
    got = sc.binaryFiles(str(tmp_path / "b")).collect()
    assert got == [(f"file:{tmp_path / 'b' / n}", contents[n]) for n in ("f0", "f1", "f2")]
    assert all(type(v) is bytes for _, v in got)
    assert sc.binaryFiles(str(tmp_path / "b")).getNumPartitions() == 1  # small files share a split
    assert sc.binaryFiles(str(tmp_path / "b" / "f2")).collect() == [(f"file:{tmp_path / 'b' / 'f2'}",
                                                                     contents["f2"])]


def test_binary_files_partitions_pack_like_pyspark(sc, tmp_path):
    """PySpark 4.3 packs these files (3, 5, 2 and 7 MB, plus tiny and empty ones) into
    groups of these sizes; it orders the files by hash, we order them by name."""
    sizes = {"a": 5 << 20, "b": 7 << 20, "c": 3 << 20, "d": 2 << 20, "e": 0, "f": 100, "g": 10}
    (tmp_path / "b").mkdir()
    for name, size in sizes.items():
        (tmp_path / "b" / name).write_bytes(b"x" * size)
    for min_partitions, groups in {3: [4, 3], 5: [2, 5], 10: [1, 1, 2, 3]}.items():
        rdd = sc.binaryFiles(str(tmp_path / "b"), min_partitions)
        assert rdd.glom().map(len).collect() == groups


# -- streaming: per-batch outputs, exactly once ------------------------------------------------

BATCHES = [[("a", 1), ("b", 2)], [], [("c", 3)]]


def define_outputs(stream, out: Path) -> None:
    stream.saveAsPickleFiles(str(out / "pick"), "p")
    stream.saveAsObjectFiles(str(out / "obj"))
    stream.saveAsHadoopFiles(str(out / "seq"), "seq")
    stream.saveAsHadoopFiles(str(out / "txt"), None, TEXT_OLD)
    stream.saveAsNewAPIHadoopFiles(str(out / "new"), None, SEQ_NEW, "org.apache.hadoop.io.Text",
                                   "org.apache.hadoop.io.LongWritable")


def read_outputs(sc, out: Path, time_ms: int) -> dict:
    return {
        "pick": sc.pickleFile(str(out / f"pick-{time_ms}.p")).collect(),
        "obj": sc.pickleFile(str(out / f"obj-{time_ms}")).collect(),
        "seq": sc.sequenceFile(str(out / f"seq-{time_ms}.seq")).collect(),
        "txt": sc.textFile(str(out / f"txt-{time_ms}")).collect(),
        "new": sc.sequenceFile(str(out / f"new-{time_ms}")).collect(),
    }


def expected_outputs(batch: list) -> dict:
    return {"pick": batch, "obj": batch, "seq": batch, "new": batch,
            "txt": [f"{k}\t{v}" for k, v in batch]}


def run_outputs(sc, out: Path, batches: list) -> None:
    with ManualBatches(sc, 1.0) as run:
        define_outputs(run.ssc.queueStream(batches), out)
        run.start()
        run.step(len(batches))
        run.ssc.awaitTerminationOrTimeout(0)


def test_streaming_hadoop_outputs_per_batch(sc, tmp_path):
    run_outputs(sc, tmp_path, BATCHES)
    names = sorted(os.listdir(tmp_path))
    assert names == sorted(f"{p}-{t}{s}" for t in (1000, 2000, 3000)
                           for p, s in [("pick", ".p"), ("obj", ""), ("seq", ".seq"), ("txt", ""),
                                        ("new", "")])
    for t, batch in zip((1000, 2000, 3000), BATCHES):
        assert read_outputs(sc, tmp_path, t) == expected_outputs(batch), t
        assert all((tmp_path / n / "_SUCCESS").exists() for n in names)
    # an empty batch still writes valid (empty) SequenceFiles with the classes given or NullWritable
    header = parse_header(parts(tmp_path / "seq-2000.seq")[0].read_bytes(), "seq")
    assert (header.key_class, header.value_class) == (w.NULL, w.NULL)
    header = parse_header(parts(tmp_path / "new-2000")[0].read_bytes(), "new")
    assert (header.key_class, header.value_class) == (w.TEXT, w.LONG)
    assert parts(tmp_path / "new-1000")[0].name.startswith("part-r-")


def test_streaming_outputs_are_exactly_once_when_batches_are_replayed(sc, tmp_path):
    """A recovered driver runs batches again that an earlier run saved, or half saved
    before it died: each batch directory is replaced whole, never added to, and the
    dead run's staging and swapped-out directories are cleaned up."""
    run_outputs(sc, tmp_path, BATCHES)
    # what a driver killed in the middle of batch 3000's save leaves behind
    shutil.rmtree(tmp_path / "seq-3000.seq")
    half = tmp_path / ".seq-3000.seq.staging-deadbeef0000"
    half.mkdir()
    (half / "part-00000").write_bytes(b"SEQ\x06 half written")
    (tmp_path / ".pick-2000.p.old-deadbeef0000").mkdir()

    replayed = [[("a", 10)], [("z", 26)], [("c", 30), ("d", 40)]]
    run_outputs(sc, tmp_path, replayed)
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []
    for t, batch in zip((1000, 2000, 3000), replayed):
        assert read_outputs(sc, tmp_path, t) == expected_outputs(batch), t


def test_streaming_output_requests_are_checked_when_defined(sc, tmp_path):
    with ManualBatches(sc, 1.0) as run:
        stream = run.ssc.queueStream([[("a", 1)]])
        with pytest.raises(ValueError, match="saveAsHadoopFiles: output format org.example.X is not"):
            stream.saveAsHadoopFiles(str(tmp_path / "x"), None, "org.example.X")
        with pytest.raises(ValueError, match="batchSize must be an int"):
            stream.saveAsPickleFiles(str(tmp_path / "x"), None, "10")


# -- both engines, live (needs PySpark and Java) -------------------------------------------

PYSPARK_SCRIPT = textwrap.dedent("""
    import json, sys
    from pyspark import SparkConf, SparkContext
    ours, theirs = sys.argv[1], sys.argv[2]
    sc = SparkContext(conf=SparkConf().setMaster("local[2]").setAppName("cross-engine"))
    sc.setLogLevel("OFF")
    try:
        result = {
            "pickle": sc.pickleFile(ours + "/pickle").collect(),
            "seq": [list(kv) for kv in sc.sequenceFile(ours + "/seq").collect()],
            "seq_gzip": sc.sequenceFile(ours + "/seq_gzip").count(),
            "seq_parts": sc.sequenceFile(ours + "/big", minSplits=5).glom().map(len).collect(),
            "text": sc.textFile(ours + "/text").collect(),
        }
        sc.parallelize([{"k": [1, 2]}, (3, 4), "five"], 2).saveAsPickleFile(theirs + "/pickle", 1)
        sc.parallelize([("x", 1.25), ("y", -2.0)], 2).saveAsSequenceFile(theirs + "/seq")
        print("RESULT " + json.dumps(result))
    finally:
        sc.stop()
""")


def test_pyspark_and_sluicegate_read_each_others_files(sc, tmp_path):
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("PySpark needs Java")
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    sc.parallelize([1, "two", [3.0], {"four": 4}], 2).saveAsPickleFile(str(ours / "pickle"), 3)
    sc.parallelize([("é", 1), ("b", 2**40)], 1).saveAsHadoopFile(
        str(ours / "seq"), SEQ_OLD, valueClass="org.apache.hadoop.io.LongWritable")
    sc.parallelize([(i, "g" * (i % 40)) for i in range(300)], 1).saveAsSequenceFile(
        str(ours / "seq_gzip"), CODEC + "GzipCodec")
    sc.parallelize([(i, "y" * (i % 97)) for i in range(30000)], 1).saveAsSequenceFile(str(ours / "big"))
    sc.parallelize([("k", None), (None, 0.5)], 1).saveAsHadoopFile(str(ours / "text"), TEXT_OLD)
    script = tmp_path / "cross.py"
    script.write_text(PYSPARK_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(ours), str(theirs)], capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(lines[0][len("RESULT "):])
    assert result == {"pickle": [1, "two", [3.0], {"four": 4}], "seq": [["é", 1], ["b", 2**40]],
                      "seq_gzip": 300, "seq_parts": [6735, 6715, 5038, 6712, 4800],
                      "text": ["k", "0.5"]}
    assert sc.pickleFile(str(theirs / "pickle")).collect() == [{"k": [1, 2]}, (3, 4), "five"]
    assert sc.sequenceFile(str(theirs / "seq")).collect() == [("x", 1.25), ("y", -2.0)]


# -- the driver killed in the middle of a save (real processes) ------------------------------

RECOVERY_JOB = Path(__file__).resolve().parents[1] / "jobs" / "hadoop_outputs_recovery_job.py"


class OutputsJob:
    """tests/jobs/hadoop_outputs_recovery_job.py as a subprocess, its log in a file."""

    def __init__(self, root: Path, name: str):
        self.root = root
        self.log = root / f"{name}.log"
        self._log_file = open(self.log, "wb")  # noqa: SIM115 - open while the job runs
        self.proc = subprocess.Popen(
            [sys.executable, str(RECOVERY_JOB), *(str(root / d) for d in ("checkpoint", "inbox", "out",
                                                                          "clock", "hold"))],
            cwd=root, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT)
        self.children: list = []

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, predicate, what: str, timeout_s: float = 90.0) -> None:
        import time

        deadline = time.monotonic() + timeout_s
        while not predicate():
            assert self.proc.poll() is None, f"the job exited while waiting for {what}:\n{self.output()[-4000:]}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{self.output()[-4000:]}"
            time.sleep(0.05)
        self._remember_children()

    def _remember_children(self) -> None:
        import psutil

        try:
            self.children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            pass

    def kill(self) -> None:
        """SIGKILL the driver; its executors must go away by themselves."""
        import psutil

        self._remember_children()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        _, alive = psutil.wait_procs(self.children, timeout=30)
        for proc in alive:
            proc.kill()
        self._log_file.close()
        assert alive == [], f"executors outlived their driver: {[p.pid for p in alive]}"


def saved_records(out: Path, prefix: str) -> list:
    """Every record of every batch directory ``prefix-*`` (all complete, or it fails)."""
    from sluicegate.common.hadoop_taskfuncs import read_pickle_file, read_sequence_file

    found = []
    reader = read_pickle_file if prefix.startswith("pick") else read_sequence_file
    for directory in sorted(out.glob(prefix if "*" in prefix else f"{prefix}-*")):
        assert (directory / "_SUCCESS").exists(), f"{directory.name} is incomplete"
        for part in parts(directory):
            found.extend(reader(str(part), 0, -1))
    return found


@pytest.mark.slow
def test_streaming_outputs_stay_exactly_once_when_the_driver_is_killed_mid_save(tmp_path):
    """SIGKILLed while a batch's pickle files are half written, the job restarts from
    its checkpoint and runs that batch again: every line fed ends up in exactly one
    batch directory of each output, and nothing half written is left."""
    from collections import Counter

    out, inbox, clock, hold = tmp_path / "out", tmp_path / "inbox", tmp_path / "clock", tmp_path / "hold"
    out.mkdir()
    inbox.mkdir()
    clock.write_text("0")
    fed: Counter = Counter()
    now = {"ms": 0}

    def feed(tag: str, lines: int) -> None:
        rows = [f"{tag}-{i}" for i in range(lines)]
        (inbox / f".{tag}.tmp").write_text("\n".join(rows) + "\n")
        os.rename(inbox / f".{tag}.tmp", inbox / f"{tag}.txt")
        fed.update((row, len(row)) for row in rows)

    def advance() -> int:
        now["ms"] += 500
        (tmp_path / ".clock").write_text(str(now["ms"]))
        os.replace(tmp_path / ".clock", clock)
        return now["ms"]

    def batch_saved(t: int) -> bool:
        return all((out / name / "_SUCCESS").exists() for name in (f"pick-{t}", f"seq-{t}.seq"))

    job = OutputsJob(tmp_path, "first")
    try:
        job.wait_for(lambda: "STREAMING STARTED" in job.output(), "the job to start")
        feed("a", 6)
        for _ in range(3):
            t = advance()
            job.wait_for(lambda: batch_saved(t), f"batch {t} to be saved")
        assert Counter(saved_records(out, "pick")) == fed
        hold.touch()
        feed("b", 9)
        holding = Path(f"{hold}.holding")
        for _ in range(4):
            t = advance()
            job.wait_for(lambda: batch_saved(t) or holding.exists(), f"batch {t} to be saved or held")
            if holding.exists():
                break
        job.wait_for(lambda: any(out.glob(".pick-*.staging-*/part-00000")), "a half-written save")
        killed_at = t
        assert (out / f"seq-{t}.seq" / "_SUCCESS").exists()  # saved before the held output
    finally:
        job.kill()
    assert not batch_saved(killed_at)
    hold.unlink()
    holding.unlink()
    feed("c", 4)

    again = OutputsJob(tmp_path, "again")
    try:
        again.wait_for(lambda: "STREAMING STARTED" in again.output(), "the job to restart")
        again.wait_for(lambda: batch_saved(killed_at), f"the killed batch {killed_at} to be re-run")
        assert "recovering streaming context" in again.output()
        for _ in range(6):
            t = advance()
            again.wait_for(lambda: batch_saved(t), f"batch {t} to be saved")
            if Counter(saved_records(out, "pick")) == fed:
                break
    finally:
        again.kill()
    assert [n for n in os.listdir(out) if n.startswith(".")] == []
    b_lines = Counter({(f"b-{i}", 3): 1 for i in range(9)})
    for prefix in ("pick", "seq"):  # the re-run batch replaced what the killed run wrote
        assert Counter(saved_records(out, f"{prefix}-{killed_at}*")) == b_lines
    assert Counter(saved_records(out, "pick")) == fed
    assert Counter(saved_records(out, "seq")) == fed
