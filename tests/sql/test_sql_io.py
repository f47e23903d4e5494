"""``spark.read`` / ``df.write``: text, CSV, JSON Lines and Parquet, in Spark's layout
(part files, ``_SUCCESS``, a staging directory renamed into place), save modes and partitionBy."""
from __future__ import annotations

import os

import pytest

from sluicegate.driver.sql import SparkSession
from sluicegate.driver.sql.errors import AnalysisException


@pytest.fixture
def spark(sc):
    return SparkSession(sc)


@pytest.fixture
def df(spark):
    return spark.createDataFrame([("a", 1, 2.5), ("b", 2, None), ("a", 3, 1.0)], ["k", "n", "x"])


def parts(path) -> list[str]:
    return sorted(os.listdir(path))


@pytest.mark.parametrize("fmt", ["parquet", "json", "csv"])
def test_write_and_read_back(spark, df, tmp_path, fmt):
    out = tmp_path / fmt
    writer = df.write.mode("overwrite")
    if fmt == "csv":
        writer = writer.option("header", True)
    getattr(writer, fmt)(str(out))
    names = parts(out)
    assert names[0] == "_SUCCESS"
    assert all(n.startswith("part-") and n.endswith("." + fmt) for n in names[1:])
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # staging is gone
    reader = spark.read
    if fmt == "csv":
        reader = reader.option("header", True).option("inferSchema", True)
    back = getattr(reader, fmt)(str(out))
    assert sorted(tuple(r) for r in back.collect()) == [("a", 1, 2.5), ("a", 3, 1.0), ("b", 2, None)] \
        or fmt == "json" and sorted(tuple(r) for r in back.collect()) == \
        [("a", 1, 2.5), ("a", 3, 1.0), ("b", 2, None)]


def test_text_round_trip_and_save_modes(spark, tmp_path):
    out = tmp_path / "lines"
    spark.createDataFrame([("one",), ("two",)], ["value"]).write.text(str(out))
    assert sorted(r.value for r in spark.read.text(str(out)).collect()) == ["one", "two"]
    with pytest.raises(AnalysisException, match="PATH_ALREADY_EXISTS"):
        spark.createDataFrame([("x",)], ["value"]).write.text(str(out))
    spark.createDataFrame([("three",)], ["value"]).write.mode("append").text(str(out))
    assert spark.read.text(str(out)).count() == 3
    spark.createDataFrame([("four",)], ["value"]).write.mode("ignore").text(str(out))
    assert spark.read.text(str(out)).count() == 3
    spark.createDataFrame([("five",)], ["value"]).write.mode("overwrite").text(str(out))
    assert [r.value for r in spark.read.text(str(out)).collect()] == ["five"]


def test_partition_by_writes_one_directory_per_value(df, tmp_path):
    out = tmp_path / "by_k"
    df.write.partitionBy("k").parquet(str(out))
    assert parts(out) == ["_SUCCESS", "k=a", "k=b"]
    import pyarrow.parquet as pq
    rows = pq.read_table(out / "k=a").to_pylist()
    assert sorted(r["n"] for r in rows) == [1, 3] and "k" not in rows[0]


def test_a_large_text_file_is_read_in_byte_ranges_without_losing_or_splitting_lines(spark, tmp_path):
    path = tmp_path / "big.txt"
    lines = [f"line {i} " + "x" * (i % 90) for i in range(200_000)]
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 8 << 20
    df = spark.read.text(str(path))
    assert df.rdd.getNumPartitions() >= 2
    assert df.count() == len(lines)
    got = [r.value for r in df.collect()]
    assert got == lines


def test_reading_a_missing_path_is_an_analysis_error(spark, tmp_path):
    with pytest.raises(AnalysisException, match="PATH_NOT_FOUND"):
        spark.read.text(str(tmp_path / "nope"))

