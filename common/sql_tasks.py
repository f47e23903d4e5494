"""DataFrame partitions on the executors: Arrow record batches run through the engine.

A DataFrame partition travels as Arrow IPC stream bytes -- in the block
store, in shuffle segments and in task results -- never as pickled rows.
The functions here are what a DataFrame stage's task runs over its
partition (they are pickled by reference, so their closure ids stay
stable across batches):

* ``RunSql`` gathers the partition's IPC pieces into Arrow tables, runs one
  SQL query over them in DuckDB (the per-partition engine, one thread per
  executor), and emits the result as IPC bytes -- or cut into pieces keyed
  by reduce partition (hash, round-robin, range or single), which the
  existing shuffle moves as ``(reduce_id, bytes)`` pairs;
* ``RowsToArrow`` turns an RDD's Python rows into Arrow (createDataFrame of
  an RDD); ``ArrowToRows`` turns Arrow back into ``Row`` objects (df.rdd);
* ``ReadFiles`` and ``RangeBatch`` produce partitions from files and ranges.
"""
from __future__ import annotations

import os
import threading
from typing import Iterable, Iterator

from . import constants

_engine = None
_engine_lock = threading.Lock()
# One connection serves one query at a time (the driver's threads share it).
_query_lock = threading.RLock()
ENGINE_THREADS_ENV = constants.ENV_SQL_THREADS


def engine():
    """This process's DuckDB connection (created on first use)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            import duckdb
            threads = int(os.environ.get(ENGINE_THREADS_ENV, "1"))
            _engine = duckdb.connect(config={"threads": threads})
        return _engine


def dump(table) -> bytes:
    """A table or record batch as Arrow IPC stream bytes."""
    import pyarrow as pa
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write(table)
    return sink.getvalue().to_pybytes()


def load(data: bytes):
    import pyarrow as pa
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def concat(pieces: list, schema):
    """One table of ``pieces`` (or an empty one of ``schema``)."""
    import pyarrow as pa
    if not pieces:
        return schema.empty_table()
    if len(pieces) == 1:
        table = pieces[0]
    else:
        try:
            table = pa.concat_tables(pieces)
        except pa.ArrowInvalid:
            table = pa.concat_tables(pieces, promote_options="permissive")
    if schema is not None and table.schema.names != schema.names:
        table = table.rename_columns(schema.names)
    return table


class TableSpec:
    """One input table of a query: its name and schema (columns named as the SQL reads them)."""

    def __init__(self, name: str, schema):
        self.name = name
        self.schema = schema


class RunSql:
    """Run ``sql`` over the partition's tables; emit the result as ``output`` says.

    Records are IPC bytes (table 0), or ``(key, bytes)`` pairs from a
    shuffle whose table is ``key // split_n``. ``output``:

    * ``("ipc",)``: one IPC bytes object (nothing for an empty result);
    * ``("hash", key_sqls, n, side)``: ``(side * n + reduce_id, bytes)``
      pieces, reduce id = engine hash of the key expressions modulo n;
    * ``("roundrobin", n, side)`` and ``("single", side)``;
    * ``("range", sort_sql, bounds_bytes, n, side)``: reduce id = how many
      range bounds sort before the row (bounds are upper-inclusive).
    """

    reads_whole_partition = True

    def __init__(self, sql: str | None, tables: list[TableSpec], output: tuple,
                 split_n: int = 1, broadcasts: list | None = None, udfs: list | None = None):
        self.sql = sql
        self.tables = tables
        self.output = output
        self.split_n = split_n
        self.broadcasts = broadcasts or []  # [(name, Broadcast of IPC bytes, schema)]
        self.udfs = udfs or []  # [(engine name, function, argument types, return type)]

    def __call__(self, records: Iterable) -> Iterator:
        inputs = gather(records, self.tables, self.split_n)
        register_udfs(self.udfs)
        result = run_query(self.sql, inputs, self.broadcasts, self.output)
        return emit(result, self.output)


_registered_udfs: set = set()


def register_udfs(udfs: list) -> None:
    """Python UDFs the query calls, registered once per process with the engine."""
    import inspect
    if not udfs:
        return
    import duckdb
    with _query_lock:
        con = engine()
        for name, func, arg_types, return_type in udfs:
            if name in _registered_udfs:
                continue

            def call(*values, _func=func):
                return _func(*values)
            call.__signature__ = inspect.Signature(
                [inspect.Parameter(f"a{i}", inspect.Parameter.POSITIONAL_ONLY)
                 for i in range(len(arg_types))])
            con.create_function(name, call, [duckdb.type(t) for t in arg_types],
                                duckdb.type(return_type), null_handling="special")
            _registered_udfs.add(name)


def gather(records: Iterable, tables: list[TableSpec], split_n: int) -> dict:
    pieces: list[list] = [[] for _ in tables]
    for record in records:
        if type(record) is tuple:
            key, data = record
            pieces[min(int(key) // split_n, len(tables) - 1)].append(load(data))
        elif record is not None:
            pieces[0].append(load(record) if isinstance(record, (bytes, bytearray, memoryview))
                             else record)
    return {spec.name: concat(p, spec.schema) for spec, p in zip(tables, pieces)}


def run_query(sql: str | None, inputs: dict, broadcasts: list, output: tuple):
    if sql is None:
        (table,) = inputs.values()
        if output[0] in ("ipc", "single", "roundrobin"):
            return table
        sql = f"SELECT * FROM {next(iter(inputs))}"
    with _query_lock:
        return _run_locked(sql, inputs, broadcasts, output)


def _run_locked(sql: str, inputs: dict, broadcasts: list, output: tuple):
    con = engine()
    registered = []
    try:
        for name, table in inputs.items():
            con.register(name, table)
            registered.append(name)
        for name, variable, schema in broadcasts:
            con.register(name, concat([load(b) for b in variable.value], schema))
            registered.append(name)
        if output[0] == "hash":
            keys = ", ".join(output[1])  # SQL expressions over the query's columns
            sql = f"SELECT *, (hash({keys}) % {int(output[2])}) AS __rid FROM ({sql})"
        elif output[0] == "range":
            sort_sql, bounds = output[1], output[2]
            con.register("__bounds", load(bounds))
            registered.append("__bounds")
            keys = [f"__k{i}" for i in range(len(sort_sql))]
            with_keys = ", ".join(f"{expr} AS __k{i}" for i, (expr, _) in enumerate(sort_sql))
            order = ", ".join(f"{k} {how}" for k, (_, how) in zip(keys, sort_sql))
            sql = (f"SELECT * EXCLUDE (__isb, {', '.join(keys)}) FROM ("
                   f"SELECT *, sum(__isb) OVER (ORDER BY {order}, __isb ASC ROWS UNBOUNDED PRECEDING)"
                   f" AS __rid FROM (SELECT *, 0 AS __isb, {with_keys} FROM ({sql}) UNION ALL BY NAME"
                   f" SELECT *, 1 AS __isb FROM __bounds)) WHERE __isb = 0")
        return con.sql(sql).to_arrow_table()
    finally:
        for name in registered:
            try:
                con.unregister(name)
            except Exception:  # noqa: BLE001 - unregistering is best effort
                pass


def emit(table, output: tuple) -> Iterator:
    kind = output[0]
    if kind == "ipc":
        return iter([dump(table)] if table.num_rows else [])
    if kind == "single":
        return iter([(output[1], dump(table))] if table.num_rows else [])
    if kind == "roundrobin":
        n, side = output[1], output[2]
        rows = table.num_rows
        out = []
        for rid in range(n):
            start, stop = rid * rows // n, (rid + 1) * rows // n
            if stop > start:
                out.append((side * n + rid, dump(table.slice(start, stop - start))))
        return iter(out)
    if kind in ("hash", "range"):
        n = output[2] if kind == "hash" else output[3]
        side = output[3] if kind == "hash" else output[4]
        return iter(split_by_rid(table, n, side))
    raise ValueError(f"unknown output {output!r}")


def split_by_rid(table, n: int, side: int) -> list:
    import numpy as np
    rid = table.column("__rid").to_numpy(zero_copy_only=False).astype(np.int64)
    table = table.drop_columns(["__rid"])
    if table.num_rows == 0:
        return []
    order = np.argsort(rid, kind="stable")
    counts = np.bincount(rid, minlength=n)
    ordered = table.take(order)
    out, start = [], 0
    for reduce_id in range(n):
        count = int(counts[reduce_id])
        if count:
            out.append((side * n + reduce_id, dump(ordered.slice(start, count))))
        start += count
    return out


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- sources -------------------------------------------------------------------------------------

class RowsToArrow:
    """An RDD partition of Python rows (Row, tuple, dict, or one value per row when
    ``atomic``) as one IPC bytes object of ``schema``."""

    reads_whole_partition = True

    def __init__(self, schema, atomic: bool = False):
        self.schema = schema
        self.atomic = atomic

    def __call__(self, records: Iterable) -> Iterator:
        import pyarrow as pa
        rows = list(records)
        if not rows:
            return iter([])
        names = self.schema.names
        if self.atomic:
            columns = [rows]
        else:
            first = rows[0]
            if isinstance(first, dict):
                columns = [[r.get(n) for r in rows] for n in names]
            else:
                width = len(names)
                for r in rows:
                    if len(r) != width:
                        raise ValueError(
                            f"[LENGTH_SHOULD_BE_THE_SAME] a row has {len(r)} fields, the schema "
                            f"{width}: {r!r}")
                columns = [list(c) for c in zip(*rows)] if width else []
        arrays = []
        for field, values in zip(self.schema, columns):
            try:
                arrays.append(pa.array(_for_arrow(values, field.type), type=field.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
                raise TypeError(f"[FIELD_DATA_TYPE_UNACCEPTABLE] field {field.name}: {exc}") from None
        table = pa.Table.from_arrays(arrays, schema=self.schema) if arrays \
            else pa.table({"_": [None] * len(rows)}).select([])
        return iter([dump(table)])


def _for_arrow(values: list, arrow_type) -> list:
    """Values pyarrow cannot take as they are: Row structs (tuples) and maps given as dicts."""
    import pyarrow.types as pt
    if pt.is_struct(arrow_type):
        names = [arrow_type.field(i).name for i in range(arrow_type.num_fields)]
        return [dict(zip(names, v)) if isinstance(v, tuple) else v for v in values]
    if pt.is_map(arrow_type):
        return [list(v.items()) if isinstance(v, dict) else v for v in values]
    return values


class ArrowToRows:
    """IPC partitions as ``Row`` objects with the DataFrame's column names."""

    reads_whole_partition = True

    def __init__(self, names: list[str]):
        self.names = names

    def __call__(self, records: Iterable) -> Iterator:
        out: list = []
        for record in records:
            data = record[1] if type(record) is tuple else record
            out.extend(to_rows(load(data), self.names))
        return iter(out)


def to_rows(table, names: list[str]) -> list:
    """A table's rows as ``Row`` objects (structs become Rows, maps dicts)."""
    from .sql_row import Row
    if table.num_columns == 0:
        return [Row._from_fields([], ()) for _ in range(table.num_rows)]
    columns = [_py_column(table.column(i)) for i in range(table.num_columns)]
    make = Row._from_fields
    return [make(names, values) for values in zip(*columns)]


def _py_column(column) -> list:
    values = column.to_pylist()
    return _convert(values, column.type) if _needs_convert(column.type) else values


def _needs_convert(t) -> bool:
    import pyarrow.types as pt
    if pt.is_struct(t) or pt.is_map(t):
        return True
    if pt.is_list(t) or pt.is_large_list(t):
        return _needs_convert(t.value_type)
    return False


def _convert(values: list, t) -> list:
    import pyarrow.types as pt
    from .sql_row import Row
    if pt.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        inner = [t.field(i).type for i in range(t.num_fields)]
        out = []
        for v in values:
            if v is None:
                out.append(None)
                continue
            fields = [v[n] for n in names]
            fields = [_convert([f], it)[0] if _needs_convert(it) else f for f, it in zip(fields, inner)]
            out.append(Row._from_fields(names, fields))
        return out
    if pt.is_map(t):
        return [None if v is None else {k: (_convert([x], t.item_type)[0]
                                            if _needs_convert(t.item_type) else x) for k, x in v}
                for v in values]
    if pt.is_list(t) or pt.is_large_list(t):
        return [None if v is None else _convert(v, t.value_type) for v in values]
    return values


class RangeBatch:
    """``spark.range`` partitions: each record ``[start, stop, step]`` becomes one batch."""

    reads_whole_partition = True

    def __init__(self, column: str):
        self.column = column

    def __call__(self, records: Iterable) -> Iterator:
        import numpy as np
        import pyarrow as pa
        out = []
        for start, stop, step in records:
            values = np.arange(start, stop, step, dtype=np.int64)
            out.append(dump(pa.table({self.column: values})))
        return iter(out)


class ReadFiles:
    """File splits ``[path, start, length]`` as Arrow: ``fmt`` text, csv, json or parquet.

    ``schema`` names the columns as the files do; ``columns`` are the engine's names for them.
    """

    reads_whole_partition = True

    def __init__(self, fmt: str, schema, options: dict, columns: list[str]):
        self.fmt = fmt
        self.schema = schema
        self.options = options
        self.columns = columns

    def __call__(self, records: Iterable) -> Iterator:
        from .sql_files import read_split
        out = []
        for splits in records:
            for path, start, length in splits:
                table = read_split(self.fmt, path, start, length, self.schema, self.options)
                if table.num_rows:
                    out.append(dump(table.rename_columns(self.columns)))
        return iter(out)


class WritePart:
    """Write a partition as one part file (per ``partitionBy`` value) under ``staging``;
    yield the relative paths written."""

    reads_whole_partition = True

    def __init__(self, fmt: str, staging: str, job: str, names: list[str], options: dict,
                 partition_by: list[str]):
        self.fmt = fmt
        self.staging = staging
        self.job = job
        self.names = names
        self.options = options
        self.partition_by = partition_by

    def __call__(self, index: int, records: Iterable) -> Iterator:
        from .sql_files import write_part
        pieces = [load(r) for r in records]
        if not pieces:
            return iter([])
        import pyarrow as pa
        table = pa.concat_tables(pieces).rename_columns(self.names)
        return iter(write_part(table, self.fmt, self.staging, f"part-{index:05d}-{self.job}",
                               self.options, self.partition_by))


def schema_of(sql: str, tables: list[TableSpec], udfs: list | None = None):
    """The Arrow schema ``sql`` produces over empty inputs (asked on the driver)."""
    register_udfs(udfs or [])
    inputs = {spec.name: spec.schema.empty_table() for spec in tables}
    return run_query(f"SELECT * FROM ({sql}) LIMIT 0", inputs, [], ("ipc",)).schema


def run_local(sql: str, inputs: dict):
    """Run ``sql`` over ``{name: table}`` in this process (the driver's small final steps)."""
    return run_query(sql, inputs, [], ("ipc",))
