"""Errors as PySpark raises them: ParseException with a position, AnalysisException naming
what exists; both importable from ``sluicegate.driver.sql.utils`` and ``.errors``.

The messages were compared with PySpark 4.3's (local[2]) for the same inputs.
"""
from __future__ import annotations

import pytest

from sluicegate.driver.sql import SparkSession
from sluicegate.driver.sql import functions as F
from sluicegate.driver.sql import errors, utils


@pytest.fixture
def spark(sc):
    session = SparkSession(sc)
    session.createDataFrame([("a", 1)], ["word", "count"]).createOrReplaceTempView("t")
    return session


def test_exception_classes_are_importable_where_pyspark_has_them():
    assert utils.AnalysisException is errors.AnalysisException
    assert utils.ParseException is errors.ParseException
    assert issubclass(errors.ParseException, errors.AnalysisException)
    from sluicegate.driver.sql import AnalysisException, ParseException
    assert AnalysisException is errors.AnalysisException and ParseException is errors.ParseException
    from sluicegate.driver import errors as top  # pyspark.errors' mirror
    assert top.AnalysisException is errors.AnalysisException


def test_a_syntax_error_at_the_end_names_its_position(spark):
    with pytest.raises(utils.ParseException) as caught:
        spark.sql("SELECT FROM x WHERE")
    # PySpark 4.3 says exactly this (the caret line included)
    assert str(caught.value) == (
        "\n[PARSE_SYNTAX_ERROR] Syntax error at or near end of input. SQLSTATE: 42601 "
        "(line 1, pos 19)\n\n== SQL ==\nSELECT FROM x WHERE\n-------------------^^^\n")
    assert caught.value.getCondition() == "PARSE_SYNTAX_ERROR"
    assert caught.value.getSqlState() == "42601"


def test_a_syntax_error_inside_names_the_token_and_position(spark):
    with pytest.raises(errors.ParseException) as caught:
        spark.sql("SELECT a b c FROM t")
    message = str(caught.value)
    assert "[PARSE_SYNTAX_ERROR] Syntax error at or near 'c'" in message
    assert "(line 1, pos 11)" in message
    assert message.endswith("== SQL ==\nSELECT a b c FROM t\n-----------^^^\n")


def test_a_bad_expression_string_is_a_parse_error(spark):
    with pytest.raises(errors.ParseException, match=r"PARSE_SYNTAX_ERROR.*\(line 1, pos"):
        spark.table("t").selectExpr("count +* 2")


def test_an_unknown_column_names_the_columns_that_exist(spark):
    df = spark.table("t")
    with pytest.raises(utils.AnalysisException) as caught:
        df.select("nope")
    # PySpark 4.3's message, up to its plan dump
    assert str(caught.value).startswith(
        "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column, variable, or function parameter with name "
        "`nope` cannot be resolved. Did you mean one of the following? [`word`, `count`]. "
        "SQLSTATE: 42703")
    assert caught.value.getCondition() == "UNRESOLVED_COLUMN.WITH_SUGGESTION"
    with pytest.raises(errors.AnalysisException, match="`nope` cannot be resolved"):
        spark.sql("SELECT nope FROM t")
    with pytest.raises(errors.AnalysisException, match=r"\[`word`, `count`\]"):
        df.filter(F.col("wrod") == "a")


def test_an_unknown_table_names_the_views_that_exist(spark):
    with pytest.raises(errors.AnalysisException) as caught:
        spark.sql("SELECT * FROM nope")
    message = str(caught.value)
    assert message.startswith("[TABLE_OR_VIEW_NOT_FOUND] The table or view `nope` cannot be found.")
    assert "Temporary views in this session: [`t`]" in message
    with pytest.raises(errors.AnalysisException, match="TABLE_OR_VIEW_NOT_FOUND"):
        spark.table("missing")


def test_unknown_function_and_wrong_argument_count(spark):
    with pytest.raises(errors.AnalysisException, match=r"UNRESOLVED_ROUTINE.*`frobnicate`"):
        spark.sql("SELECT frobnicate(word) FROM t")
    with pytest.raises(errors.AnalysisException, match=r"WRONG_NUM_ARGS.*`upper` requires 1"):
        spark.sql("SELECT upper(word, word) FROM t")


def test_type_errors_are_analysis_errors(spark):
    df = spark.table("t")
    with pytest.raises(errors.AnalysisException, match="FILTER_NOT_BOOLEAN"):
        df.filter(F.col("count") + 1)
    with pytest.raises(errors.AnalysisException, match="UNSUPPORTED_JOIN_TYPE"):
        df.join(df, "word", "sideways")


def test_a_failing_query_fails_the_job_with_the_engines_reason(spark):
    from sluicegate.driver import JobFailedError
    df = spark.createDataFrame([(1, 0)], ["a", "b"])
    with pytest.raises(JobFailedError, match="DIVIDE_BY_ZERO"):
        df.select(F.col("a") / F.col("b")).collect()
