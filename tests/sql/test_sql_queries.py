"""``spark.sql``: Spark SQL text over temporary views, results as PySpark 4.3 gives them.

The QUERIES table was run unchanged on PySpark 4.3 (local[2]) over the same
views; its expected rows are what PySpark returned (sorted where the query
has no ORDER BY).
"""
from __future__ import annotations

import pytest

from sluicegate.driver.sql import Row, SparkSession
from sluicegate.driver.sql.catalog import Table


@pytest.fixture
def spark(sc):
    session = SparkSession(sc)
    session.createDataFrame(
        [("ann", "eng", 30, 100.0), ("bob", "eng", 40, 80.0), ("cid", "ops", 25, None),
         ("dee", "ops", 35, 50.0), ("eve", "hr", None, 70.0)],
        ["name", "dept", "age", "pay"]).createOrReplaceTempView("people")
    session.createDataFrame([("eng", "Engineering"), ("ops", "Operations"), ("fin", "Finance")],
                            ["dept", "title"]).createOrReplaceTempView("depts")
    session.createDataFrame([("a b a",), ("b c",)], ["line"]).createOrReplaceTempView("lines")
    return session


QUERIES = {
    "group_order": ("SELECT dept, count(*) AS n, sum(age) AS total FROM people GROUP BY dept "
                    "ORDER BY n DESC, dept",
                    [("eng", 2, 70), ("ops", 2, 60), ("hr", 1, None)]),
    "having": ("SELECT dept, avg(pay) AS avg_pay FROM people GROUP BY dept HAVING count(*) > 1 "
               "ORDER BY dept", [("eng", 90.0), ("ops", 50.0)]),
    "having_on_select_alias": ("SELECT dept, max(age) AS oldest FROM people GROUP BY dept "
                               "HAVING oldest > 36", [("eng", 40)]),
    "where_between_in_like": ("SELECT name FROM people WHERE age BETWEEN 26 AND 40 AND dept IN "
                              "('eng', 'ops') AND name LIKE '%e%' ORDER BY name", [("dee",)]),
    "is_null_coalesce": ("SELECT name, coalesce(pay, 0) AS p FROM people WHERE pay IS NULL OR "
                         "age IS NULL ORDER BY name", [("cid", 0.0), ("eve", 70.0)]),
    "case_when": ("SELECT name, CASE WHEN age >= 35 THEN 'senior' WHEN age < 35 THEN 'junior' "
                  "ELSE 'unknown' END AS level FROM people ORDER BY name",
                  [("ann", "junior"), ("bob", "senior"), ("cid", "junior"), ("dee", "senior"),
                   ("eve", "unknown")]),
    "inner_join": ("SELECT p.name, d.title FROM people p JOIN depts d ON p.dept = d.dept "
                   "ORDER BY p.name", [("ann", "Engineering"), ("bob", "Engineering"),
                                       ("cid", "Operations"), ("dee", "Operations")]),
    "left_join_using": ("SELECT dept, name, title FROM people LEFT JOIN depts USING (dept) "
                        "WHERE title IS NULL", [("hr", "eve", None)]),
    "anti_join": ("SELECT d.dept FROM depts d LEFT ANTI JOIN people p ON d.dept = p.dept",
                  [("fin",)]),
    "subquery": ("SELECT dept, n FROM (SELECT dept, count(*) AS n FROM people GROUP BY dept) t "
                 "WHERE n > 1 ORDER BY dept", [("eng", 2), ("ops", 2)]),
    "cte_union": ("WITH young AS (SELECT name FROM people WHERE age < 31) "
                  "SELECT name FROM young UNION ALL SELECT 'zed' ORDER BY name",
                  [("ann",), ("cid",), ("zed",)]),
    "union_distinct": ("SELECT dept FROM people UNION SELECT dept FROM depts ORDER BY dept",
                       [("eng",), ("fin",), ("hr",), ("ops",)]),
    "window": ("SELECT name, dept, row_number() OVER (PARTITION BY dept ORDER BY age DESC) AS rn "
               "FROM people ORDER BY dept, rn",
               [("bob", "eng", 1), ("ann", "eng", 2), ("eve", "hr", 1), ("dee", "ops", 1),
                ("cid", "ops", 2)]),
    "rank_of_an_aggregate": ("SELECT dept, sum(pay) AS s, rank() OVER (ORDER BY sum(pay) DESC) AS r "
                             "FROM people GROUP BY dept ORDER BY r",
                             [("eng", 180.0, 1), ("hr", 70.0, 2), ("ops", 50.0, 3)]),
    "explode_wordcount": ("SELECT word, count(*) AS c FROM (SELECT explode(split(line, ' ')) AS word "
                          "FROM lines) GROUP BY word ORDER BY c DESC, word",
                          [("a", 2), ("b", 2), ("c", 1)]),
    "lateral_view": ("SELECT w, count(*) AS c FROM lines LATERAL VIEW explode(split(line, ' ')) t "
                     "AS w GROUP BY w ORDER BY w", [("a", 2), ("b", 2), ("c", 1)]),
    "distinct_limit": ("SELECT DISTINCT dept FROM people ORDER BY dept LIMIT 2", [("eng",), ("hr",)]),
    "order_by_ordinal_and_hidden_column": ("SELECT name FROM people ORDER BY age DESC NULLS LAST "
                                           "LIMIT 2", [("bob",), ("dee",)]),
    "functions": ("SELECT upper(name), length(name), substring(name, 1, 2), concat(name, '!'), "
                  "count(*) OVER () FROM people WHERE name = 'ann'",
                  [("ANN", 3, "an", "ann!", 1)]),
    "no_from": ("SELECT 1 + 1 AS two, 'x' AS s", [(2, "x")]),
    "collect_list_sorted": ("SELECT dept, sort_array(collect_list(name)) AS names FROM people "
                            "GROUP BY dept ORDER BY dept",
                            [("eng", ["ann", "bob"]), ("hr", ["eve"]), ("ops", ["cid", "dee"])]),
}


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_query_gives_pysparks_rows(spark, name):
    query, expected = QUERIES[name]
    got = [tuple(r) for r in spark.sql(query).collect()]
    if "ORDER BY" not in query:
        got, expected = sorted(got, key=str), sorted(expected, key=str)
    assert got == expected


def test_sql_column_names_follow_spark(spark):
    df = spark.sql("SELECT dept, count(*), sum(age + 1), max(age div 2) FROM people GROUP BY dept")
    assert df.columns == ["dept", "count(1)", "sum((age + 1))", "max((age div 2))"]


def test_views_tables_and_catalog(spark):
    assert spark.table("people").count() == 5
    assert [t.name for t in spark.catalog.listTables()] == ["depts", "lines", "people"]
    assert spark.catalog.listTables()[0] == Table("depts", None, [], None, "TEMPORARY", True)
    spark.sql("SELECT dept FROM people").createOrReplaceGlobalTempView("just_depts")
    assert spark.sql("SELECT count(*) AS n FROM global_temp.just_depts").first() == Row(n=5)
    assert spark.catalog.dropTempView("lines")
    assert [t.name for t in spark.catalog.listTables()] == ["depts", "people"]


def test_parameters_and_dataframe_arguments(spark):
    df = spark.sql("SELECT name FROM people WHERE age > :min ORDER BY name", args={"min": 34})
    assert [r.name for r in df.collect()] == ["bob", "dee"]
    people = spark.table("people")
    assert spark.sql("SELECT count(*) AS n FROM {t}", t=people).first().n == 5


def test_a_query_result_feeds_the_dataframe_api(spark):
    from sluicegate.driver.sql import functions as F
    counts = spark.sql("SELECT dept, count(*) AS n FROM people GROUP BY dept")
    assert [tuple(r) for r in counts.filter(F.col("n") > 1).orderBy("dept").collect()] == \
        [("eng", 2), ("ops", 2)]
