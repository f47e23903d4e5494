"""The datasets behind tests/data/hadoop: each was saved by PySpark 4.3
(tests/data/hadoop/make_fixtures.py), and tests/test_hadoop_formats.py saves
the same data with sluicegate and reads PySpark's files back.

Every entry: name -> (how it is saved, records, partitions, options).
"""
from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent / "data" / "hadoop"

SEQ_OLD = "org.apache.hadoop.mapred.SequenceFileOutputFormat"
SEQ_NEW = "org.apache.hadoop.mapreduce.lib.output.SequenceFileOutputFormat"
TEXT_OLD = "org.apache.hadoop.mapred.TextOutputFormat"
CODEC = "org.apache.hadoop.io.compress."

TEXT_OUTPUT_RECORDS = [
    ("a", 1), ("b", None), (None, 2.5), ("c", True), ("d", 1e10), ("e", b"ab"), (None, None),
    ("f", 0.001), ("g", 1e-4), ("h", -0.0), ("i", float("nan")), ("j", float("-inf")),
    (7, 123456.789), ("k", 2**40), ("l", 1234567.0), ("m", 12345678.9), ("n", 100.0),
    ("o", "tab\tinside"), ("ü", "ünï"),
]

FIXTURES = {
    # saveAsPickleFile
    "pickle_range": ("pickle", list(range(100)), 2, {"batchSize": 10}),
    "pickle_objects": ("pickle", [{"a": (1, 2)}, None, 1.5, "s", b"b", [1, [2]], {3, 4},
                                  2**70, "ünïcødé", (None,), True], 2, {"batchSize": 2}),
    "pickle_auto": ("pickle", list(range(1000)), 2, {"batchSize": 0}),
    # saveAsSequenceFile
    "seq_int_text": ("sequence", [(i, f"v{i}") for i in range(50)], 2, {}),
    "seq_text_double": ("sequence", [(f"k{i}", i * 1.5) for i in range(10)], 1, {}),
    "seq_long_bool": ("sequence", [(2**40, True), (-2**41, False)], 1, {}),
    "seq_null_bytes": ("sequence", [(None, b"abc"), (None, bytearray(b"\x00\xff"))], 1, {}),
    "seq_unicode": ("sequence", [("é中", "x\ny"), ("😀", "")], 1, {}),
    "seq_map": ("sequence", [(1, {"a": 1}), (2, {"n": {"x": None}, "b": b"\x01", "f": 2.5})], 1, {}),
    "seq_block_deflate": ("sequence", [(i, f"v{i}") for i in range(200)], 1,
                          {"compressionCodecClass": CODEC + "DefaultCodec"}),
    "seq_block_gzip": ("sequence", [(i, f"v{i}") for i in range(200)], 1,
                       {"compressionCodecClass": CODEC + "GzipCodec"}),
    "seq_block_bzip2": ("sequence", [(i, f"v{i}") for i in range(200)], 1,
                        {"compressionCodecClass": CODEC + "BZip2Codec"}),
    "seq_record_deflate": ("hadoop", [(i, f"v{i}") for i in range(200)], 1,
                           {"outputFormatClass": SEQ_OLD,
                            "conf": {"mapreduce.output.fileoutputformat.compress": "true",
                                     "mapreduce.output.fileoutputformat.compress.type": "RECORD"}}),
    # over one sync interval (100 KB), so it holds a sync marker; committed gzipped
    "seq_sync": ("sequence", [(i, "x" * (i % 50)) for i in range(3000)], 1, {}),
    "seq_newapi": ("newapi", [("a", 1), ("b", 2)], 2, {"outputFormatClass": SEQ_NEW}),
    # saveAsHadoopFile with TextOutputFormat
    "text_output": ("hadoop", TEXT_OUTPUT_RECORDS, 1, {"outputFormatClass": TEXT_OLD}),
}

GZIPPED = {"seq_sync"}  # stored as <name>.part-00000.gz; tests unpack it to a directory
