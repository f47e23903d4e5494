"""SQL on every batch: PySpark's sql_network_wordcount with only its imports rewritten, our
own examples/sql_network_wordcount.py, and DataFrames inside ``dstream.transform``.

PySpark's example is read from the installed PySpark package (or a copy the
developer fetched to /tmp/sql_network_wordcount.py), never stored in this
project; it is rewritten into a scratch directory and run there as a script.
"""
from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from example_runs import Example, OneShotServer, ported
from sluicegate.driver.sql import Row, SparkSession
from sluicegate.driver.sql import functions as F

ROOT = Path(__file__).resolve().parents[2]
TABLE_ROW = re.compile(r"^\|\s*(\S+)\|\s*(\d+)\|$", re.M)


def shown_counts(text: str) -> list[dict]:
    """The ``word | total`` rows of each table ``show()`` printed."""
    tables, current, borders = [], None, 0
    for line in text.splitlines():
        if re.match(r"^\|\s*word\|total\|$", line):
            current, borders = {}, 0
            continue
        if current is None:
            continue
        if line.startswith("+"):
            borders += 1
            if borders == 2:
                tables.append(current)
                current = None
            continue
        found = TABLE_ROW.match(line)
        if found:
            current[found.group(1)] = int(found.group(2))
    return tables


@pytest.fixture
def pyspark_examples() -> Path:
    try:
        import pyspark
        found = Path(pyspark.__file__).parent / "examples" / "src" / "main" / "python" / "streaming"
        if (found / "sql_network_wordcount.py").exists():
            return found
    except ImportError:
        pass
    fetched = Path("/tmp/sql_network_wordcount.py")
    if fetched.exists():
        return fetched.parent
    pytest.skip("PySpark's sql_network_wordcount.py is not available on this machine")


def test_pysparks_sql_network_wordcount_runs_with_its_imports_rewritten(pyspark_examples, tmp_path):
    server = OneShotServer(b"apple banana apple\n" * 3 + b"cherry\n")
    script = ported(pyspark_examples, "sql_network_wordcount.py", tmp_path)
    run = Example(script, "127.0.0.1", str(server.port), cwd=tmp_path)
    try:
        expected = {"apple": 6, "banana": 3, "cherry": 1}
        assert run.wait_for(lambda text: expected in shown_counts(text), 120), \
            run.text + run.errors
        assert "=========" in run.text
    finally:
        server.close()
        assert run.end() in (0, -signal.SIGTERM)


def test_our_sql_streaming_example(tmp_path):
    server = OneShotServer(b"to be or not to be\n")
    run = Example(ROOT / "examples" / "sql_network_wordcount.py", "127.0.0.1", str(server.port),
                  cwd=tmp_path)
    try:
        expected = {"be": 2, "to": 2, "not": 1, "or": 1}
        assert run.wait_for(lambda text: "top words so far:" in text
                            and shown_counts(text).count(expected) >= 2, 120), \
            run.text + run.errors
        first = run.text.split("=========")[2]
        assert "|  be|    2|\n|  to|    2|\n| not|    1|\n|  or|    1|" in first
    finally:
        server.close()
        assert run.end() in (0, -signal.SIGTERM)


def test_dstream_transform_can_use_dataframes(sc):
    from streaming_harness import run_batches
    spark = SparkSession(sc)

    def by_sql(rdd):
        if rdd.isEmpty():
            return rdd
        df = spark.createDataFrame(rdd.map(lambda w: Row(word=w)))
        counted = df.groupBy("word").agg(F.count("*").alias("n"))
        return counted.rdd.map(lambda r: (r.word, r.n))

    batches = [["a", "b", "a"], [], ["c"]]
    out = run_batches(sc, batches, lambda s: s.transform(by_sql))
    assert [sorted(b) for b in out] == [[("a", 2), ("b", 1)], [], [("c", 1)]]
