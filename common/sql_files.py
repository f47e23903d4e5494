"""Reading DataFrame file splits into Arrow on the executors (``spark.read``).

Text splits follow Hadoop's line rule (a split owns the lines whose first
byte lies in it), so the lines of a file are read once whatever the split
size; the lines are cut by Arrow, not a Python loop. CSV, JSON Lines and
Parquet files are read whole by pyarrow.
"""
from __future__ import annotations


def read_split(fmt: str, path: str, start: int, length: int, schema, options: dict):
    if fmt == "text":
        return read_text(path, start, length, schema, options)
    if fmt == "csv":
        return read_csv(path, schema, options)
    if fmt == "json":
        return read_json(path, schema)
    if fmt == "parquet":
        import pyarrow.parquet as pq
        if length > 0:  # a run of row groups
            table = pq.ParquetFile(path).read_row_groups(range(start, start + length))
        else:
            table = pq.read_table(path)
        return _conform(table, schema)
    raise ValueError(f"unknown file format {fmt!r}")


def _line_range(path: str, start: int, length: int) -> bytes:
    """The bytes of the lines that begin in ``[start, start + length)``."""
    with open(path, "rb") as f:
        if start > 0:
            f.seek(start - 1)
            if f.read(1) != b"\n":
                f.readline()  # the line in progress belongs to the previous split
        begin = f.tell()
        if length < 0:
            return f.read()
        end = start + length
        data = f.read(max(0, end - begin))
        if end > begin and not data.endswith(b"\n"):
            data += f.readline()  # the line that crosses the end is ours
        return data


def read_text(path: str, start: int, length: int, schema, options: dict):
    import pyarrow as pa
    import pyarrow.compute as pc
    data = _line_range(path, start, length)
    if options.get("wholetext"):
        return pa.table({schema.names[0]: pa.array([data.decode("utf-8", "replace")])})
    if not data:
        return schema.empty_table()
    if data.endswith(b"\n"):
        data = data[:-1]
    text = pa.array([data.decode("utf-8", "replace")], type=pa.large_string())
    if b"\r" in data:
        lines = pc.split_pattern_regex(text, r"\r?\n|\r")
    else:
        lines = pc.split_pattern(text, "\n")
    values = lines.flatten().cast(pa.string())
    return pa.table({schema.names[0]: values})


def read_csv(path: str, schema, options: dict):
    import pyarrow as pa
    import pyarrow.csv as pcsv
    header = str(options.get("header", "false")).lower() == "true"
    sep = options.get("sep", options.get("delimiter", ","))
    names = schema.names
    read = pcsv.ReadOptions(column_names=None if header else names, autogenerate_column_names=False)
    parse = pcsv.ParseOptions(delimiter=sep)
    convert = pcsv.ConvertOptions(column_types={f.name: f.type for f in schema} if not header else None,
                                  strings_can_be_null=True)
    table = pcsv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    if header:
        table = table.rename_columns(names) if table.num_columns == len(names) else table
    del pa
    return _conform(table, schema)


def read_json(path: str, schema):
    import pyarrow.json as pjson
    table = pjson.read_json(path, parse_options=pjson.ParseOptions(explicit_schema=schema,
                                                                   unexpected_field_behavior="ignore"))
    return _conform(table, schema)


def _conform(table, schema):
    """``table`` with ``schema``'s columns, in order and types (missing ones null)."""
    import pyarrow as pa
    columns = []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            columns.append(column.cast(field.type) if column.type != field.type else column)
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


# -- writing ----------------------------------------------------------------------------------------

_EXTENSIONS = {"text": ".txt", "csv": ".csv", "json": ".json", "parquet": ".parquet"}


def write_part(table, fmt: str, staging: str, base: str, options: dict,
               partition_by: list[str]) -> list[str]:
    """Write ``table`` under ``staging`` (one file per partition value); the relative paths."""
    import os
    if not partition_by:
        name = base + _EXTENSIONS[fmt]
        _write_file(table, fmt, os.path.join(staging, name), options)
        return [name]
    import pyarrow.compute as pc
    keys = table.select(partition_by)
    groups = keys.group_by(partition_by).aggregate([]).to_pylist()
    written = []
    for group in groups:
        mask = None
        for column, value in group.items():
            term = pc.is_null(table.column(column)) if value is None \
                else pc.equal(table.column(column), value)
            mask = term if mask is None else pc.and_(mask, term)
        part = table.filter(mask).drop_columns(partition_by)
        sub = "/".join(f"{c}={'__HIVE_DEFAULT_PARTITION__' if v is None else v}"
                       for c, v in group.items())
        os.makedirs(os.path.join(staging, sub), exist_ok=True)
        name = f"{sub}/{base}{_EXTENSIONS[fmt]}"
        _write_file(part, fmt, os.path.join(staging, name), options)
        written.append(name)
    return written


def _write_file(table, fmt: str, path: str, options: dict) -> None:
    if fmt == "text":
        if table.num_columns != 1:
            raise ValueError(f"[_LEGACY_ERROR_TEMP_1154] Text data source supports only a single "
                             f"column, and you have {table.num_columns} columns.")
        lines = table.column(0).to_pylist()
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(("" if line is None else line) + "\n" for line in lines)
    elif fmt == "csv":
        import pyarrow.csv as pcsv
        header = str(options.get("header", "false")).lower() == "true"
        sep = options.get("sep", options.get("delimiter", ","))
        pcsv.write_csv(table, path, write_options=pcsv.WriteOptions(include_header=header,
                                                                    delimiter=sep))
    elif fmt == "json":
        import json
        import datetime
        import decimal

        def default(value):
            if isinstance(value, (datetime.date, datetime.datetime)):
                return value.isoformat()
            if isinstance(value, decimal.Decimal):
                return float(value)
            if isinstance(value, bytes):
                import base64
                return base64.b64encode(value).decode()
            return str(value)
        with open(path, "w", encoding="utf-8") as f:
            for row in table.to_pylist():
                clean = {k: v for k, v in row.items() if v is not None}  # Spark drops nulls
                f.write(json.dumps(clean, default=default, ensure_ascii=False,
                                   separators=(",", ":")) + "\n")
    elif fmt == "parquet":
        import pyarrow.parquet as pq
        pq.write_table(table, path)
    else:
        raise ValueError(f"unknown file format {fmt!r}")
