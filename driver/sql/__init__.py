"""DataFrames and SQL (PySpark's ``pyspark.sql``), on Arrow partitions run by DuckDB.

Port a PySpark SQL program by changing its imports::

    from sluicegate.driver.sql import SparkSession, Row, functions as F

A DataFrame is partitioned across the executors as Arrow record batches;
each partition's work runs in a vectorized engine (DuckDB) in the executor
process, and aggregations, joins and sorts exchange Arrow IPC data through
the cluster's shuffle. See docs/architecture.md, "DataFrames and SQL".
"""
from . import functions, types, window  # noqa: F401
from .catalog import Catalog
from .column import Column
from .dataframe import DataFrame
from .errors import AnalysisException, ParseException
from .group import GroupedData
from .session import RuntimeConfig, SparkSession
from .types import Row
from .window import Window, WindowSpec
from . import live as _live
from .session import _install_rdd_to_df

_install_rdd_to_df()  # rdd.toDF()
_live.install()  # dstream.asTable(name): live SQL over a running stream

__all__ = [
    "AnalysisException", "Catalog", "Column", "DataFrame", "GroupedData", "ParseException", "Row",
    "RuntimeConfig", "SparkSession", "Window", "WindowSpec", "functions", "types", "window",
]
