"""PySpark's ``pyspark.sql.utils``: the SQL exception classes, importable from here too."""
from .errors import (AnalysisException, IllegalArgumentException, ParseException,  # noqa: F401
                     PySparkException, QueryExecutionException)

CapturedException = PySparkException

__all__ = ["AnalysisException", "CapturedException", "IllegalArgumentException", "ParseException",
           "PySparkException", "QueryExecutionException"]
