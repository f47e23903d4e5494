"""``spark.read`` and ``df.write``: text, CSV, JSON Lines and Parquet files, Spark's layout.

Reading plans splits on the driver (text files in byte ranges, as Spark
sizes them: ``min(128 MiB, max(4 MiB, total / parallelism))``; other formats
a file per split) and reads them into Arrow on the executors. Writing runs
one task per partition that writes ``part-NNNNN-<job>.<ext>`` into a
staging directory; the driver then moves the parts into place and writes
``_SUCCESS`` -- so a failed job leaves no partial output -- and honours the
save mode (error, overwrite, append, ignore) and ``partitionBy``.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from sluicegate.common import sql_tasks as st
from sluicegate.common.fileformats import is_splittable

from . import logical as L
from . import types as T
from .errors import AnalysisException
from .expressions import Attr
from .typing_rules import from_arrow, to_arrow

if TYPE_CHECKING:
    from .dataframe import DataFrame
    from .session import SparkSession

MAX_PARTITION_BYTES = 128 << 20
OPEN_COST_BYTES = 4 << 20


def _files(path: str | list) -> list[str]:
    from ..rdd.lineage import expand_paths
    paths = path if isinstance(path, (list, tuple)) else [path]
    found: list[str] = []
    for p in paths:
        p = str(p)
        try:
            if os.path.isdir(p.removeprefix("file:")):
                found.extend(_walk(p.removeprefix("file:")))
            else:
                found.extend(expand_paths(p))
        except FileNotFoundError:
            raise AnalysisException(f"[PATH_NOT_FOUND] Path does not exist: "
                                    f"file:{Path(p).absolute()}. SQLSTATE: 42K03") from None
    return found


def _walk(directory: str) -> list[str]:
    out = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        out.extend(os.path.join(root, f) for f in sorted(files) if not f.startswith(("_", ".")))
    return out


FORMATS = ("text", "csv", "json", "parquet")


def _given(**settings: Any) -> dict[str, Any]:
    """The keyword arguments a caller gave (PySpark's ``None`` means not given)."""
    return {k: v for k, v in settings.items() if v is not None}


class _FileFormatOptions:
    """What reading and writing share: the file format and its options, set by chaining."""

    def __init__(self) -> None:
        self._format = "parquet"
        self._options: dict[str, str] = {}

    def format(self, source: str) -> Self:
        """The file format: text, csv, json or parquet."""
        self._format = source.lower()
        return self

    def option(self, key: str, value: Any) -> Self:
        """One option of the format (a bool is written ``true``/``false``, as Spark does)."""
        self._options[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return self

    def options(self, **options: Any) -> Self:
        """Several options at once."""
        for k, v in options.items():
            self.option(k, v)
        return self

    def _apply(self, **settings: Any) -> None:
        """Calls the setter of each setting given, in order: ``_apply(format=f, mode=m)``."""
        for name, value in _given(**settings).items():
            getattr(self, name)(value)

    def _checked_format(self) -> str:
        if self._format not in FORMATS:
            raise AnalysisException(f"[DATA_SOURCE_NOT_FOUND] Failed to find the data source: "
                                    f"{self._format}. SQLSTATE: 42K02")
        return self._format


class DataFrameReader(_FileFormatOptions):
    """``spark.read``."""

    def __init__(self, session: "SparkSession"):
        super().__init__()
        self._session = session
        self._schema: T.StructType | None = None

    def schema(self, schema: T.StructType | str) -> "DataFrameReader":
        self._schema = T.parse_schema(schema) if isinstance(schema, str) else schema
        return self

    def load(self, path: Any = None, format: str | None = None, schema: Any = None,  # noqa: A002
             **options: Any) -> "DataFrame":
        self._apply(format=format, schema=schema)
        self.options(**options)
        if path is None:
            raise AnalysisException("[UNSUPPORTED_DATASOURCE] load() needs a path")
        return self._read(path)

    def text(self, paths: Any, wholetext: bool = False, lineSep: str | None = None,
             **kwargs: Any) -> "DataFrame":
        self._format = "text"
        if wholetext:
            self._options["wholetext"] = "true"
        return self._read(paths)

    def csv(self, path: Any, schema: Any = None, sep: str | None = None, header: Any = None,
            inferSchema: Any = None, **kwargs: Any) -> "DataFrame":
        self._format = "csv"
        self._apply(schema=schema)
        self.options(**_given(sep=sep, header=header, inferSchema=inferSchema))
        return self._read(path)

    def json(self, path: Any, schema: Any = None, **kwargs: Any) -> "DataFrame":
        self._format = "json"
        self._apply(schema=schema)
        return self._read(path)

    def parquet(self, *paths: Any, **options: Any) -> "DataFrame":
        self._format = "parquet"
        return self._read(list(paths))

    def table(self, tableName: str) -> "DataFrame":
        return self._session.table(tableName)

    # -- planning ------------------------------------------------------------------------------
    def _read(self, path: Any) -> "DataFrame":
        from .dataframe import DataFrame
        fmt = self._checked_format()
        files = _files(path)
        schema = self._schema or self._infer(fmt, files)
        attrs = [Attr(f.name, f.dataType, True) for f in schema.fields]
        sizes = [os.path.getsize(f) for f in files]
        splits = self._splits(fmt, files, sizes)
        node = L.FileRelation(attrs, fmt, splits, dict(self._options), float(sum(sizes)))
        node.file_schema = _arrow(schema)
        return DataFrame(node, self._session)

    def _splits(self, fmt: str, files: list[str], sizes: list[int]) -> list:
        parallelism = max(1, self._session.sparkContext.defaultParallelism)
        if fmt == "parquet":
            return _parquet_splits(files, parallelism)
        if fmt != "text" or self._options.get("wholetext") == "true":
            return [[[f, 0, -1]] for f in files]
        total = sum(sizes)
        split = max(1, min(MAX_PARTITION_BYTES, max(OPEN_COST_BYTES, total // parallelism)))
        out = []
        for f, size in zip(files, sizes):
            if not is_splittable(f) or size == 0:
                if size:
                    out.append([[f, 0, -1]])
                continue
            for start in range(0, size, split):
                out.append([[f, start, min(split, size - start)]])
        return out

    def _infer(self, fmt: str, files: list[str]) -> T.StructType:
        if fmt == "text":
            return T.StructType([T.StructField("value", T.StringType(), True)])
        if not files:
            raise AnalysisException(f"[UNABLE_TO_INFER_SCHEMA] Unable to infer schema for "
                                    f"{fmt.upper()}. It must be specified manually. SQLSTATE: 42KD9")
        if fmt == "parquet":
            import pyarrow.parquet as pq
            arrow = pq.read_schema(files[0])
            return T.StructType([T.StructField(f.name, from_arrow(f.type), True) for f in arrow])
        if fmt == "json":
            import pyarrow.json as pjson
            table = pjson.read_json(files[0])
            return T.StructType([T.StructField(f.name, from_arrow(f.type), True)
                                 for f in sorted(table.schema, key=lambda f: f.name)])
        import pyarrow.csv as pcsv
        header = self._options.get("header", "false") == "true"
        infer = self._options.get("inferschema", self._options.get("inferSchema", "false")) == "true"
        sep = self._options.get("sep", self._options.get("delimiter", ","))
        table = pcsv.read_csv(files[0], read_options=pcsv.ReadOptions(autogenerate_column_names=not header),
                              parse_options=pcsv.ParseOptions(delimiter=sep))
        names = table.column_names if header else [f"_c{i}" for i in range(table.num_columns)]
        types = [from_arrow(f.type) if infer else T.StringType() for f in table.schema]
        return T.StructType([T.StructField(n, t, True) for n, t in zip(names, types)])


def _parquet_splits(files: list[str], parallelism: int) -> list:
    """Parquet files in runs of row groups: ``[path, first_row_group, row_groups]``."""
    import pyarrow.parquet as pq
    out = []
    for f in files:
        groups = pq.ParquetFile(f).metadata.num_row_groups
        pieces = max(1, min(groups, parallelism))
        for i in range(pieces):
            first, last = i * groups // pieces, (i + 1) * groups // pieces
            if last > first:
                out.append([[f, first, last - first]])
        if groups == 0:
            out.append([[f, 0, -1]])
    return out


def _arrow(schema: T.StructType):
    import pyarrow as pa
    return pa.schema([pa.field(f.name, to_arrow(f.dataType)) for f in schema.fields])


class DataFrameWriter(_FileFormatOptions):
    """``df.write``."""

    def __init__(self, df: "DataFrame"):
        super().__init__()
        self._df = df
        self._mode = "errorifexists"
        self._partition_by: list[str] = []

    def mode(self, saveMode: str | None) -> "DataFrameWriter":
        mode = (saveMode or "errorifexists").lower()
        if mode == "error":
            mode = "errorifexists"
        if mode not in ("errorifexists", "overwrite", "append", "ignore"):
            raise AnalysisException(f"[INVALID_SAVE_MODE] The specified save mode \"{saveMode}\" is "
                                    f"invalid. Valid save modes include \"append\", \"overwrite\", "
                                    f"\"ignore\", \"error\", \"errorifexists\", and \"default\". "
                                    f"SQLSTATE: 42000")
        self._mode = mode
        return self

    def partitionBy(self, *cols: str) -> "DataFrameWriter":
        if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
            cols = tuple(cols[0])
        self._partition_by = list(cols)
        return self

    def save(self, path: str | None = None, format: str | None = None,  # noqa: A002
             mode: str | None = None, **options: Any) -> None:
        self._apply(format=format, mode=mode)
        self.options(**options)
        if path is None:
            raise AnalysisException("save() needs a path")
        self._write(str(path))

    def text(self, path: str, compression: str | None = None, lineSep: str | None = None) -> None:
        self._format = "text"
        self._write(path)

    def csv(self, path: str, mode: str | None = None, sep: str | None = None,
            header: Any = None, **kwargs: Any) -> None:
        self._format = "csv"
        self._apply(mode=mode)
        self.options(**_given(sep=sep, header=header))
        self._write(path)

    def json(self, path: str, mode: str | None = None, **kwargs: Any) -> None:
        self._format = "json"
        self._apply(mode=mode)
        self._write(path)

    def parquet(self, path: str, mode: str | None = None, partitionBy: Any = None,
                compression: str | None = None) -> None:
        self._format = "parquet"
        self._apply(mode=mode, partitionBy=partitionBy)
        self._write(path)

    def _write(self, path: str) -> None:
        fmt = self._checked_format()
        target = Path(path.removeprefix("file:")).absolute()
        if target.exists():
            if self._mode == "errorifexists":
                raise AnalysisException(f"[PATH_ALREADY_EXISTS] Path file:{target} already exists. "
                                        f"Set mode as \"overwrite\" to overwrite the existing path. "
                                        f"SQLSTATE: 42K04")
            if self._mode == "ignore":
                return
        df = self._df
        names = df.columns
        for col in self._partition_by:
            if col not in names:
                raise AnalysisException(f"[COLUMN_NOT_FOUND] The column `{col}` does not exist. "
                                        f"SQLSTATE: 42703")
        job = str(uuid.uuid4())
        staging = target.parent / f".{target.name}._temporary-{job}"
        staging.mkdir(parents=True)
        try:
            planner = df._planner()
            rdd = planner.materialize(planner.plan(df._plan)).mapPartitionsWithIndex(
                st.WritePart(fmt, str(staging), job, names, dict(self._options), self._partition_by))
            written = [name for part in df.sparkSession.sparkContext._run_job(rdd) for name in part]
            self._commit(target, staging, written)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _commit(self, target: Path, staging: Path, written: list[str]) -> None:
        if self._mode == "overwrite" and target.exists():
            old = target.parent / f".{target.name}._old-{uuid.uuid4()}"
            os.rename(target, old)
            shutil.rmtree(old, ignore_errors=True)
        if not target.exists():
            os.rename(staging, target)  # one rename: readers see all parts or none
        else:  # append: move each part in
            for name in written:
                destination = target / name
                destination.parent.mkdir(parents=True, exist_ok=True)
                os.rename(staging / name, destination)
        (target / "_SUCCESS").write_bytes(b"")
