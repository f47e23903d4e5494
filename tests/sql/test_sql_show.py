"""``DataFrame.show()`` prints exactly what PySpark 4.3 prints.

Each expected string was captured from PySpark 4.3 (local[1]) with
``df._jdf.showString(n, truncate, vertical)`` on the same data; ``show()``
prints that string and a newline.
"""
from __future__ import annotations

import pytest

from sluicegate.driver.sql import SparkSession


@pytest.fixture
def spark(sc):
    return SparkSession(sc)


@pytest.fixture
def words(spark):
    return spark.createDataFrame([("hello", 3), ("a", 1), ("world", None), ("longer word here", 12345678901)],
                                 ["word", "count"])


PYSPARK = {
    (20, True, False): '+----------------+-----------+\n|            word|      count|\n+----------------+-----------+\n|           hello|          3|\n|               a|          1|\n|           world|       NULL|\n|longer word here|12345678901|\n+----------------+-----------+\n',
    (2, True, False): '+-----+-----+\n| word|count|\n+-----+-----+\n|hello|    3|\n|    a|    1|\n+-----+-----+\nonly showing top 2 rows',
    (20, False, False): '+----------------+-----------+\n|word            |count      |\n+----------------+-----------+\n|hello           |3          |\n|a               |1          |\n|world           |NULL       |\n|longer word here|12345678901|\n+----------------+-----------+\n',
    (20, 5, False): '+-----+-----+\n| word|count|\n+-----+-----+\n|hello|    3|\n|    a|    1|\n|world| NULL|\n|lo...|12...|\n+-----+-----+\n',
    (20, 2, False): '+----+-----+\n|word|count|\n+----+-----+\n|  he|    3|\n|   a|    1|\n|  wo|   NU|\n|  lo|   12|\n+----+-----+\n',
    (20, True, True): '-RECORD 0-----------------\n word  | hello            \n count | 3                \n-RECORD 1-----------------\n word  | a                \n count | 1                \n-RECORD 2-----------------\n word  | world            \n count | NULL             \n-RECORD 3-----------------\n word  | longer word here \n count | 12345678901      \n',
    (2, True, True): '-RECORD 0------\n word  | hello \n count | 3     \n-RECORD 1------\n word  | a     \n count | 1     \nonly showing top 2 rows',
    (1, True, False): '+-----+-----+\n| word|count|\n+-----+-----+\n|hello|    3|\n+-----+-----+\nonly showing top 1 row',
    (20, False, True): '-RECORD 0-----------------\n word  | hello            \n count | 3                \n-RECORD 1-----------------\n word  | a                \n count | 1                \n-RECORD 2-----------------\n word  | world            \n count | NULL             \n-RECORD 3-----------------\n word  | longer word here \n count | 12345678901      \n',
}


@pytest.mark.parametrize("args", sorted(PYSPARK, key=str), ids=str)
def test_show_string_matches_pyspark(words, args):
    assert words._show_string(*args) == PYSPARK[args]


def test_show_prints_the_string_and_a_newline(words, capsys):
    words.show(2)
    assert capsys.readouterr().out == PYSPARK[(2, True, False)] + "\n"
    words.show()
    assert capsys.readouterr().out == PYSPARK[(20, True, False)] + "\n"


def test_show_empty_and_wide_characters(spark):
    empty = spark.createDataFrame([], "a int, b string")
    assert empty._show_string() == '+---+---+\n|  a|  b|\n+---+---+\n+---+---+\n'
    assert empty._show_string(vertical=True) == '(0 rows)'
    wide = spark.createDataFrame([("日本語", 1)], ["w", "n"])
    assert wide._show_string() == '+------+---+\n|     w|  n|\n+------+---+\n|日本語|  1|\n+------+---+\n'


def test_show_renders_values_as_spark_casts_them(spark):
    df = spark.sql("select array(1, null) as a, map('k', null) as m, struct(null as x, 2 as y) as s, "
                   "1.0D d, 123456789.0D dd, 0.001D e, 1.0E-4D f, cast(1.5 as float) g, "
                   "timestamp'2024-01-02 03:04:05.123' i, cast(12.50 as decimal(5,2)) j, X'0AFF' k, "
                   "true l, date'2024-01-02' m2, cast(null as string) n")
    assert df._show_string() == '+---------+-----------+---------+---+------------+-----+------+---+--------------------+-----+-------+----+----------+----+\n|        a|          m|        s|  d|          dd|    e|     f|  g|                   i|    j|      k|   l|        m2|   n|\n+---------+-----------+---------+---+------------+-----+------+---+--------------------+-----+-------+----+----------+----+\n|[1, NULL]|{k -> NULL}|{NULL, 2}|1.0|1.23456789E8|0.001|1.0E-4|1.5|2024-01-02 03:04:...|12.50|[0A FF]|true|2024-01-02|NULL|\n+---------+-----------+---------+---+------------+-----+------+---+--------------------+-----+-------+----+----------+----+\n'


def test_show_of_a_word_count_and_of_a_range(spark):
    df = spark.createDataFrame([("a",), ("b",), ("a",)], ["word"])
    assert df.groupBy("word").count().orderBy("word")._show_string() == '+----+-----+\n|word|count|\n+----+-----+\n|   a|    2|\n|   b|    1|\n+----+-----+\n'
    assert spark.range(5)._show_string(4) == '+---+\n| id|\n+---+\n|  0|\n|  1|\n|  2|\n|  3|\n+---+\nonly showing top 4 rows'
