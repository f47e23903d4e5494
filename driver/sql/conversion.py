"""``createDataFrame``: rows, RDDs, pandas and Arrow as a DataFrame's plan.

The schema comes from the caller (a StructType, a DDL string, an atomic
type, or a list of column names) or is inferred as PySpark infers it:
from every row of a local list, from the first row of an RDD (more rows
when the first has None fields). Local data becomes Arrow IPC partitions on
the driver; an RDD's rows are turned into Arrow on the executors.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sluicegate.common import sql_tasks as st

from . import logical as L
from . import types as T
from .errors import PySparkTypeError, PySparkValueError
from .expressions import Attr
from .typing_rules import from_arrow, to_arrow

if TYPE_CHECKING:
    from .session import SparkSession

INFER_SAMPLE_ROWS = 100


def _row_fields(row: Any) -> tuple[list[str], list]:
    """Field names and values of one row, as PySpark infers them."""
    if isinstance(row, dict):
        items = sorted(row.items())
        return [k for k, _ in items], [v for _, v in items]
    if isinstance(row, T.Row) and hasattr(row, "__fields__"):
        return list(row.__fields__), list(row)
    if hasattr(row, "_fields") and isinstance(row, tuple):  # namedtuple
        return list(row._fields), list(row)
    if isinstance(row, (tuple, list)):
        return [f"_{i + 1}" for i in range(len(row))], list(row)
    if hasattr(row, "__dict__"):
        items = sorted(row.__dict__.items())
        return [k for k, _ in items], [v for _, v in items]
    raise PySparkTypeError(f"[CANNOT_INFER_SCHEMA_FOR_TYPE] Can not infer schema for type: "
                           f"`{type(row).__name__}`.")


def infer_schema(rows: list, names: list[str] | None = None) -> T.StructType:
    if not rows:
        raise PySparkValueError("[CANNOT_INFER_EMPTY_SCHEMA] Can not infer schema from empty dataset.")
    field_names, _ = _row_fields(rows[0])
    types: list[T.DataType] = [T.NullType()] * len(field_names)
    for row in rows:
        _, values = _row_fields(row)
        if len(values) != len(types):
            raise PySparkValueError(f"[LENGTH_SHOULD_BE_THE_SAME] rows have {len(types)} and "
                                    f"{len(values)} fields: {row!r}")
        types = [T.merge_types(t, T.infer_type(v)) for t, v in zip(types, values)]
    if names:
        field_names = list(names) + field_names[len(names):]
    for name, t in zip(field_names, types):
        if isinstance(t, T.NullType):
            raise PySparkValueError(f"[CANNOT_DETERMINE_TYPE] Some of types cannot be determined "
                                    f"after inferring (field `{name}` is always None).")
    return T.StructType([T.StructField(n, t, True) for n, t in zip(field_names, types)])


def _normalize_schema(schema: Any) -> tuple[T.DataType | None, list[str] | None]:
    if schema is None:
        return None, None
    if isinstance(schema, str):
        schema = T.parse_schema(schema)
    if isinstance(schema, (list, tuple)):
        if all(isinstance(x, str) for x in schema):
            return None, list(schema)
        raise PySparkTypeError("[NOT_LIST_OF_STR] schema as a list must name columns")
    if isinstance(schema, T.DataType):
        return schema, None
    raise PySparkTypeError(f"[NOT_DATATYPE_OR_STR_OR_LIST] schema should be a StructType, a DDL "
                           f"string or a list of names, got {type(schema).__name__}")


def _attrs(struct: T.StructType) -> list[Attr]:
    return [Attr(f.name, f.dataType, f.nullable) for f in struct.fields]


def _arrow_schema(attrs: list[Attr]):
    import pyarrow as pa
    return pa.schema([pa.field(a.col, to_arrow(a.dtype)) for a in attrs])


def create_dataframe(session: "SparkSession", data: Any, schema: Any,
                     sampling_ratio: float | None) -> L.Plan:
    from ..rdd.base import RDD
    dtype, names = _normalize_schema(schema)
    atomic = dtype is not None and not isinstance(dtype, T.StructType)
    if atomic:
        dtype = T.StructType([T.StructField("value", dtype, True)])
    if isinstance(data, RDD):
        return _from_rdd(session, data, dtype, names, atomic)
    if _is_pandas(data):
        import pyarrow as pa
        table = pa.Table.from_pandas(data, preserve_index=False)
        return _from_arrow(session, table, dtype, names)
    if type(data).__module__.startswith("pyarrow") and hasattr(data, "schema"):
        return _from_arrow(session, data, dtype, names)
    if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
        raise PySparkTypeError(f"[CANNOT_ACCEPT_OBJECT_IN_TYPE] `createDataFrame` can not accept "
                               f"object `{data!r}` in type `{type(data).__name__}`.")
    rows = list(data)
    if dtype is None:
        dtype = infer_schema(rows, names)
    elif names:
        dtype = T.StructType([T.StructField(n, f.dataType, f.nullable)
                              for n, f in zip(names, dtype.fields)])
    attrs = _attrs(dtype)
    return L.LocalRelation(attrs, _local_partitions(session, rows, attrs, atomic))


def _local_partitions(session: "SparkSession", rows: list, attrs: list[Attr],
                      atomic: bool) -> list[bytes]:
    schema = _arrow_schema(attrs)
    to_arrow_rows = st.RowsToArrow(schema, atomic)
    n = max(1, min(session.sparkContext.defaultParallelism, len(rows) or 1))
    parts = []
    for i in range(n):
        chunk = [_as_row(r, attrs) for r in rows[i * len(rows) // n:(i + 1) * len(rows) // n]]
        encoded = list(to_arrow_rows(chunk))
        parts.append(encoded[0] if encoded else st.dump(schema.empty_table()))
    return parts


def _as_row(row: Any, attrs: list[Attr]) -> Any:
    if isinstance(row, dict):
        return tuple(row.get(a.name) for a in attrs)
    if isinstance(row, (tuple, list)) or not hasattr(row, "__dict__"):
        return row
    return tuple(getattr(row, a.name, None) for a in attrs)


def _from_rdd(session: "SparkSession", rdd: Any, dtype: T.DataType | None,
              names: list[str] | None, atomic: bool) -> L.Plan:
    if dtype is None:
        first = rdd.take(1)
        if not first:
            raise PySparkValueError("[CANNOT_INFER_EMPTY_SCHEMA] Can not infer schema from empty "
                                    "dataset.")
        try:
            dtype = infer_schema(first, names)
        except PySparkValueError:
            dtype = infer_schema(rdd.take(INFER_SAMPLE_ROWS), names)
    elif names:
        dtype = T.StructType([T.StructField(n, f.dataType, f.nullable)
                              for n, f in zip(names, dtype.fields)])
    attrs = _attrs(dtype)
    source = rdd if atomic else rdd.map(_DictToTuple([a.name for a in attrs]))
    node = L.RDDRelation(attrs, source, "rows")
    node.atomic = atomic
    return node


class _DictToTuple:
    """Rows given as dicts are read by field name; Rows and tuples by position."""

    def __init__(self, names: list[str]):
        self.names = names

    def __call__(self, row: Any) -> Any:
        if isinstance(row, dict):
            return tuple(row.get(n) for n in self.names)
        return row


def _from_arrow(session: "SparkSession", table: Any, dtype: T.DataType | None,
                names: list[str] | None) -> L.Plan:
    import pyarrow as pa
    if dtype is not None:
        fields = dtype.fields
        table = table.rename_columns([f.name for f in fields])
    else:
        fields = [T.StructField(f.name, from_arrow(f.type), True) for f in table.schema]
        if names:
            fields = [T.StructField(n, f.dataType, True) for n, f in zip(names, fields)]
    attrs = [Attr(f.name, f.dataType, f.nullable) for f in fields]
    schema = _arrow_schema(attrs)
    columns = []
    for i, field in enumerate(schema):
        column = table.column(i)
        columns.append(column.cast(field.type) if column.type != field.type else column)
    table = pa.Table.from_arrays(columns, schema=schema)
    n = max(1, min(session.sparkContext.defaultParallelism, table.num_rows or 1))
    parts = []
    for i in range(n):
        start, stop = i * table.num_rows // n, (i + 1) * table.num_rows // n
        parts.append(st.dump(table.slice(start, stop - start)))
    return L.LocalRelation(attrs, parts)


def _is_pandas(data: Any) -> bool:
    return type(data).__name__ == "DataFrame" and type(data).__module__.startswith("pandas")
