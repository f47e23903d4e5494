"""PySpark's ``pyspark.errors``: the SQL exception classes (``AnalysisException``...).

They live in ``sluicegate.driver.sql.errors``; this module is the mirror of
PySpark's path, so ``from pyspark.errors import AnalysisException`` ports by
rewriting the import.
"""
from .sql.errors import (AnalysisException, ArithmeticException, IllegalArgumentException,  # noqa: F401
                         NumberFormatException, ParseException, PySparkException,
                         PySparkTypeError, PySparkValueError, QueryExecutionException)

__all__ = ["AnalysisException", "ArithmeticException", "IllegalArgumentException",
           "NumberFormatException", "ParseException", "PySparkException", "PySparkTypeError",
           "PySparkValueError", "QueryExecutionException"]
