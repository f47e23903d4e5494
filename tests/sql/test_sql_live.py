"""Live SQL over a running stream's state: ``stream.asTable(name)`` (beyond PySpark).

The view always holds the latest completed batch of the stream; queries from
another thread see one consistent batch while the stream keeps running.
"""
from __future__ import annotations

import threading
import time

import pytest

from waiting import wait_until

from sluicegate.driver import StreamingContext
from sluicegate.driver.sql import Row, SparkSession


def add_counts(new_values, last):
    return sum(new_values) + (last or 0)


@pytest.fixture
def ssc(sc, tmp_path):
    sc.setCheckpointDir(str(tmp_path / "checkpoints"))
    context = StreamingContext(sc, 0.5)
    yield context
    context.stop(stopSparkContext=False, stopGraceFully=False)


def test_state_stream_as_a_table_answers_sql_while_the_stream_runs(sc, ssc):
    spark = SparkSession(sc)
    batches = [sc.parallelize(["a b a"]), sc.parallelize(["b c"]), sc.parallelize(["a"])]
    lines = ssc.queueStream(batches, oneAtATime=True)
    counts = lines.flatMap(lambda l: l.split(" ")).map(lambda w: (w, 1)) \
        .updateStateByKey(add_counts)
    table = counts.asTable("word_counts", ["word", "count"], session=spark)
    seen: list = []
    stop = threading.Event()

    def query_while_running():
        while not stop.is_set():
            try:
                rows = spark.sql("SELECT word, count FROM word_counts ORDER BY count DESC, word")
                seen.append([tuple(r) for r in rows.collect()])
            except Exception:  # noqa: BLE001 - the view appears after the first batch
                pass
            time.sleep(0.05)

    querier = threading.Thread(target=query_while_running, daemon=True)
    ssc.start()
    querier.start()
    final = [("a", 3), ("b", 2), ("c", 1)]
    wait_until(lambda: seen and seen[-1] == final, 60, "the view to show the third batch's state")
    stop.set()
    querier.join(10)
    # every answer was one whole batch's state, never a mix
    states = {(("a", 2), ("b", 1)), (("a", 2), ("b", 2), ("c", 1)), tuple(final)}
    assert {tuple(s) for s in seen} <= states
    assert table.batch_time is not None
    assert spark.table("word_counts").schema.names == ["word", "count"]
    assert spark.sql("SELECT sum(count) AS n FROM word_counts").first() == Row(n=6)
