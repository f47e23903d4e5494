"""PySpark's ``DataFrame``: transformations build resolved logical plans; actions run them.

A transformation checks its names and types at once (an unknown column
raises ``AnalysisException`` where it is used, as in PySpark) and returns
a new DataFrame over a new plan node. An action plans the distributed
stages (``physical.Planner``) and runs them on the executors.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

from sluicegate.common import sql_tasks as st
from sluicegate.common.storagelevel import StorageLevel

from . import logical as L
from . import types as T
from .analyzer import Scope, output_name, resolve, split_name
from .column import Column, _col_or_name
from .errors import AnalysisException, PySparkTypeError, PySparkValueError
from .expressions import Alias, Attr, Call, Expr, Lit, SortOrder, Star, UnresolvedFunction
from .projection import build_select, resolve_sort
from .show import show_string

if TYPE_CHECKING:
    from .group import GroupedData
    from .session import SparkSession


def _flatten(cols: tuple) -> list:
    if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
        return list(cols[0])
    return list(cols)


class DataFrame:
    """A distributed collection of rows with named columns (PySpark's ``DataFrame``)."""

    def __init__(self, plan: L.Plan, session: "SparkSession"):
        self._plan = plan
        self.sparkSession = session
        self._storage_level: StorageLevel | None = None

    def _new(self, plan: L.Plan) -> "DataFrame":
        return DataFrame(plan, self.sparkSession)

    @property
    def _scope(self) -> Scope:
        return Scope(self._plan.output)

    def _resolve(self, e: Expr) -> Expr:
        resolved = resolve(e, self._scope)
        self._check_attrs(resolved)
        return resolved

    def _check_attrs(self, e: Expr) -> None:
        ids = {a.id for a in self._plan.output}
        for node in e.walk():
            if isinstance(node, Attr) and node.id not in ids:
                raise AnalysisException(
                    f"[MISSING_ATTRIBUTES.RESOLVED_ATTRIBUTE_APPEAR_IN_OPERATION] Resolved "
                    f"attribute(s) {node.name}#{node.id} missing from "
                    f"{', '.join(f'{a.name}#{a.id}' for a in self._plan.output)}. SQLSTATE: XX000")

    # -- schema ----------------------------------------------------------------------------
    @property
    def schema(self) -> T.StructType:
        return self._plan.schema()

    @property
    def columns(self) -> list[str]:
        return [a.name for a in self._plan.output]

    @property
    def dtypes(self) -> list[tuple[str, str]]:
        return [(a.name, a.dtype.simpleString()) for a in self._plan.output]

    def printSchema(self, level: int | None = None) -> None:
        print(self.schema.treeString(level))

    def __repr__(self) -> str:
        return "DataFrame[" + ", ".join(f"{a.name}: {a.dtype.simpleString()}"
                                        for a in self._plan.output) + "]"

    def explain(self, extended: bool | str | None = None, mode: str | None = None) -> None:
        print("== Logical Plan ==\n" + self._plan.tree_string())

    # -- columns -------------------------------------------------------------------------------
    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, str):
            return Column(self._bind(item))
        if isinstance(item, int):
            return Column(self._plan.output[item])
        if isinstance(item, Column):
            return self.filter(item)
        if isinstance(item, (list, tuple)):
            return self.select(*item)
        raise PySparkTypeError(f"[NOT_COLUMN_OR_INT_OR_LIST_OR_STR_OR_TUPLE] unexpected item "
                               f"type {type(item).__name__}")

    def __getattr__(self, name: str) -> Column:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in {a.name for a in self._plan.output}:
            raise AttributeError(f"'DataFrame' object has no attribute '{name}'")
        return Column(self._bind(name))

    def _bind(self, name: str) -> Expr:
        """A column of this DataFrame, bound to it (it stays this column after joins)."""
        if name == "*":
            return Star()
        found = self._scope.lookup(split_name(name))
        if found is None:
            from .analyzer import unresolved_column
            raise unresolved_column(name, [a.name for a in self._plan.output])
        return found

    def colRegex(self, colName: str) -> Column:
        import re
        pattern = re.compile(colName.strip("`"))
        return Column(Call("__regex", [a for a in self._plan.output if pattern.fullmatch(a.name)]))

    # -- projections -------------------------------------------------------------------------------
    def select(self, *cols: Any) -> "DataFrame":
        exprs = [_col_or_name(c) for c in _flatten(cols)]
        return self._new(build_select(self._plan, exprs, self._check_attrs))

    def selectExpr(self, *expr: str) -> "DataFrame":
        from .sql_frontend import parse_expression
        return self.select(*[Column(parse_expression(e)) for e in _flatten(expr)])

    def withColumn(self, colName: str, col: Column) -> "DataFrame":
        if not isinstance(col, Column):
            raise PySparkTypeError(f"[NOT_COLUMN] Argument `col` should be a Column, got "
                                   f"{type(col).__name__}.")
        return self.withColumns({colName: col})

    def withColumns(self, *colsMap: dict) -> "DataFrame":
        mapping = colsMap[0] if colsMap else {}
        exprs: list[Expr] = list(self._plan.output)
        for name, col in mapping.items():
            new = Alias(col._expr, name)
            for i, a in enumerate(exprs):
                if to_attr_name(a).lower() == name.lower():
                    exprs[i] = new
                    break
            else:
                exprs.append(new)
        return self._new(build_select(self._plan, exprs, self._check_attrs))

    def withColumnRenamed(self, existing: str, new: str) -> "DataFrame":
        return self.withColumnsRenamed({existing: new})

    def withColumnsRenamed(self, colsMap: dict) -> "DataFrame":
        lowered = {k.lower(): v for k, v in colsMap.items()}
        exprs: list[Expr] = []
        for a in self._plan.output:
            target = lowered.get(a.name.lower())
            exprs.append(Alias(a, target) if target is not None else a)
        return self._new(L.Project(exprs, self._plan))

    def toDF(self, *cols: str) -> "DataFrame":
        if len(cols) != len(self._plan.output):
            raise PySparkValueError(f"[LENGTH_SHOULD_BE_THE_SAME] toDF needs {len(self._plan.output)} "
                                    f"names, got {len(cols)}")
        return self._new(L.Project([Alias(a, n) for a, n in zip(self._plan.output, cols)], self._plan))

    def drop(self, *cols: Any) -> "DataFrame":
        drop_ids = set()
        for c in cols:
            if isinstance(c, str):
                drop_ids |= {a.id for a in self._plan.output if a.name.lower() == c.lower()}
            elif isinstance(c, Column):
                e = self._resolve(c._expr)
                if isinstance(e, Attr):
                    drop_ids.add(e.id)
            else:
                raise PySparkTypeError(f"[NOT_COLUMN_OR_STR] Argument `col` should be a Column or "
                                       f"str, got {type(c).__name__}.")
        return self._new(L.Project([a for a in self._plan.output if a.id not in drop_ids], self._plan))

    def alias(self, alias: str) -> "DataFrame":
        return self._new(L.SubqueryAlias(alias, self._plan))

    def filter(self, condition: Any) -> "DataFrame":
        if isinstance(condition, str):
            from .sql_frontend import parse_expression
            e = parse_expression(condition)
        elif isinstance(condition, Column):
            e = condition._expr
        else:
            raise PySparkTypeError(f"[NOT_COLUMN_OR_STR] Argument `condition` should be a Column "
                                   f"or str, got {type(condition).__name__}.")
        cond = self._resolve(e)
        if not isinstance(cond.dtype, T.BooleanType):
            raise AnalysisException(
                f"[DATATYPE_MISMATCH.FILTER_NOT_BOOLEAN] Cannot resolve \"{output_name(cond)}\": "
                f"filter expression is of type \"{cond.dtype.simpleString().upper()}\", not "
                f"boolean. SQLSTATE: 42K09")
        return self._new(L.Filter(cond, self._plan))

    where = filter

    # -- aggregation -------------------------------------------------------------------------------
    def groupBy(self, *cols: Any) -> "GroupedData":
        from .group import GroupedData
        return GroupedData(self, [_col_or_name(c) for c in _flatten(cols)])

    groupby = groupBy

    def agg(self, *exprs: Any) -> "DataFrame":
        return self.groupBy().agg(*exprs)

    def distinct(self) -> "DataFrame":
        out = self._plan.output
        return self._new(L.Aggregate(list(out), list(out), self._plan))

    def dropDuplicates(self, subset: list[str] | None = None) -> "DataFrame":
        if subset is None:
            return self._new(L.Deduplicate(list(self._plan.output), self._plan))
        if isinstance(subset, str):
            subset = [subset]
        keys = [self._bind(name) for name in subset]
        return self._new(L.Deduplicate(keys, self._plan))

    drop_duplicates = dropDuplicates

    # -- ordering and limits -----------------------------------------------------------------------------
    def orderBy(self, *cols: Any, **kwargs: Any) -> "DataFrame":
        return self._sort(cols, kwargs.get("ascending", True), True)

    sort = orderBy

    def sortWithinPartitions(self, *cols: Any, **kwargs: Any) -> "DataFrame":
        return self._sort(cols, kwargs.get("ascending", True), False)

    def _sort(self, cols: tuple, ascending: Any, is_global: bool) -> "DataFrame":
        items = _flatten(cols)
        if not items:
            raise PySparkValueError("[CANNOT_BE_EMPTY] At least one column must be specified.")
        flags = ascending if isinstance(ascending, (list, tuple)) else [ascending] * len(items)
        orders = []
        for item, asc in zip(items, flags):
            e = _col_or_name(item) if not isinstance(item, int) else self._plan.output[item - 1]
            if not isinstance(e, SortOrder):
                e = SortOrder(e, bool(asc))
            orders.append(e)
        return self._new(resolve_sort(self._plan, orders, is_global))

    def limit(self, num: int) -> "DataFrame":
        if num < 0:
            raise AnalysisException(f"[INVALID_LIMIT_LIKE_EXPRESSION.IS_NEGATIVE] The limit "
                                    f"expression must be equal to or greater than 0, but got {num}.")
        return self._new(L.Limit(int(num), self._plan))

    def offset(self, num: int) -> "DataFrame":
        return self._new(L.Limit(1 << 62, self._plan, int(num)))

    # -- combining -----------------------------------------------------------------------------------
    def join(self, other: "DataFrame", on: Any = None, how: str | None = None) -> "DataFrame":
        from .join_api import build_join
        return self._new(build_join(self, other, on, how))

    def crossJoin(self, other: "DataFrame") -> "DataFrame":
        from .join_api import build_join
        return self._new(build_join(self, other, None, "cross"))

    def union(self, other: "DataFrame") -> "DataFrame":
        from .join_api import build_union
        return self._new(build_union([self._plan, other._plan]))

    unionAll = union

    def unionByName(self, other: "DataFrame", allowMissingColumns: bool = False) -> "DataFrame":
        from .join_api import build_union
        mine = {a.name.lower(): a for a in self._plan.output}
        theirs = {a.name.lower(): a for a in other._plan.output}
        exprs: list[Expr] = []
        for a in self._plan.output:
            found = theirs.get(a.name.lower())
            if found is None:
                if not allowMissingColumns:
                    raise AnalysisException(
                        f"[NUM_COLUMNS_MISMATCH] Cannot resolve column name \"{a.name}\" among "
                        f"({', '.join(x.name for x in other._plan.output)}). SQLSTATE: 42826")
                exprs.append(Alias(Lit(None, a.dtype), a.name))
            else:
                exprs.append(found)
        left = self._plan
        extra = [a for a in other._plan.output if a.name.lower() not in mine]
        if extra:
            if not allowMissingColumns:
                raise AnalysisException(
                    "[NUM_COLUMNS_MISMATCH] UNION can only be performed on inputs with the same "
                    "number of columns. SQLSTATE: 42826")
            exprs += extra
            left = L.Project(list(self._plan.output) + [Alias(Lit(None, a.dtype), a.name)
                                                         for a in extra], self._plan)
        right = L.Project(exprs, other._plan)
        return self._new(build_union([left, right]))

    def intersect(self, other: "DataFrame") -> "DataFrame":
        return self._set_op(other, "semi")

    def subtract(self, other: "DataFrame") -> "DataFrame":
        return self._set_op(other, "anti")

    exceptAll = subtract

    def _set_op(self, other: "DataFrame", how: str) -> "DataFrame":
        mine, theirs = self._plan.output, other._plan.output
        if len(mine) != len(theirs):
            raise AnalysisException("[NUM_COLUMNS_MISMATCH] set operations need the same number "
                                    "of columns. SQLSTATE: 42826")
        cond = None
        for a, b in zip(mine, theirs):
            term = resolve(UnresolvedFunction("<=>", [a, b]), Scope(mine + theirs))
            cond = term if cond is None else resolve(UnresolvedFunction("and", [cond, term]),
                                                     Scope(mine + theirs))
        distinct = self.distinct()._plan
        return self._new(L.Join(distinct, other._plan, how, cond))

    def _with_broadcast_hint(self) -> "DataFrame":
        return self._new(L.Broadcast(self._plan))

    # -- partitioning ----------------------------------------------------------------------------------
    def repartition(self, numPartitions: Any = None, *cols: Any) -> "DataFrame":
        if isinstance(numPartitions, (str, Column)):
            cols = (numPartitions,) + cols
            numPartitions = None
        keys = [self._resolve(_col_or_name(c)) for c in cols]
        return self._new(L.Repartition(numPartitions, keys, True, self._plan))

    def coalesce(self, numPartitions: int) -> "DataFrame":
        return self._new(L.Repartition(int(numPartitions), [], False, self._plan))

    # -- caching ---------------------------------------------------------------------------------------
    def persist(self, storageLevel: StorageLevel = StorageLevel.MEMORY_AND_DISK) -> "DataFrame":
        self.sparkSession._cache.persist(self, storageLevel)
        self._storage_level = storageLevel
        return self

    def cache(self) -> "DataFrame":
        return self.persist(StorageLevel.MEMORY_AND_DISK)

    def unpersist(self, blocking: bool = False) -> "DataFrame":
        self.sparkSession._cache.unpersist(self._plan)
        self._storage_level = None
        return self

    @property
    def is_cached(self) -> bool:
        return self.sparkSession._cache.lookup(self._plan) is not None

    @property
    def storageLevel(self) -> StorageLevel:
        return self._storage_level or StorageLevel.NONE

    # -- views -------------------------------------------------------------------------------------------
    def createOrReplaceTempView(self, name: str) -> None:
        self.sparkSession.catalog._register(name, self._plan, replace=True)

    def createTempView(self, name: str) -> None:
        self.sparkSession.catalog._register(name, self._plan, replace=False)

    def createOrReplaceGlobalTempView(self, name: str) -> None:
        self.sparkSession.catalog._register(name, self._plan, replace=True, is_global=True)

    def createGlobalTempView(self, name: str) -> None:
        self.sparkSession.catalog._register(name, self._plan, replace=False, is_global=True)

    registerTempTable = createOrReplaceTempView

    # -- actions -----------------------------------------------------------------------------------------
    def _planner(self):
        from .physical import Planner
        return Planner(self.sparkSession)

    def _tables(self, limit: int | None = None) -> list:
        planner = self._planner()
        if limit is not None and _is_sorted(self._plan):
            # the first rows of a sorted DataFrame: a top-n, not a full range sort
            return planner.collect_tables(planner.plan(L.Limit(limit, self._plan)))
        return planner.collect_tables(planner.plan(self._plan), limit)

    def collect(self) -> list[T.Row]:
        names = self.columns
        return [row for table in self._tables() for row in st.to_rows(table, names)]

    def take(self, num: int) -> list[T.Row]:
        if num <= 0:
            return []
        names = self.columns
        rows: list = []
        for table in self._tables(num):
            rows.extend(st.to_rows(table, names))
            if len(rows) >= num:
                break
        return rows[:num]

    def head(self, n: int | None = None) -> Any:
        if n is None:
            rows = self.take(1)
            return rows[0] if rows else None
        return self.take(n)

    def first(self) -> T.Row | None:
        return self.head()

    def tail(self, num: int) -> list[T.Row]:
        return self.collect()[-num:] if num > 0 else []

    def isEmpty(self) -> bool:
        return not self.take(1)

    def count(self) -> int:
        planner = self._planner()
        frag = planner.plan(self._plan)
        sql = f"SELECT count(*) AS n FROM ({frag.query()}) AS __t"
        rdd = frag.rdd.mapPartitions(frag.task(("ipc",), sql))
        total = 0
        for part in self.sparkSession.sparkContext._run_job(rdd):
            for b in part:
                total += int(st.load(b).column(0)[0].as_py())
        return total

    def toPandas(self):
        import pyarrow as pa
        tables = self._tables()
        names = self.columns
        if tables:
            table = pa.concat_tables(tables, promote_options="permissive")
        else:
            from .physical import arrow_schema
            table = arrow_schema(self._plan.output).empty_table()
        return table.rename_columns(names).to_pandas()

    def toArrow(self):
        import pyarrow as pa
        tables = self._tables()
        from .physical import arrow_schema
        table = pa.concat_tables(tables, promote_options="permissive") if tables \
            else arrow_schema(self._plan.output).empty_table()
        return table.rename_columns(self.columns)

    def toLocalIterator(self, prefetchPartitions: bool = False) -> Iterator[T.Row]:
        return iter(self.collect())

    def foreach(self, f: Callable) -> None:
        self.rdd.foreach(f)

    def foreachPartition(self, f: Callable) -> None:
        self.rdd.foreachPartition(f)

    @property
    def rdd(self):
        """The rows as an RDD of ``Row`` (built on the executors from the Arrow partitions)."""
        planner = self._planner()
        frag = planner.plan(self._plan)
        return planner.materialize(frag).mapPartitions(st.ArrowToRows(self.columns))

    def show(self, n: int = 20, truncate: bool | int = True, vertical: bool = False) -> None:
        print(self._show_string(n, truncate, vertical))

    def _show_string(self, n: int = 20, truncate: bool | int = True, vertical: bool = False) -> str:
        if isinstance(truncate, bool):
            truncate = 20 if truncate else 0
        rows = self.take(n + 1) if n >= 0 else []
        return show_string(self.columns, [a.dtype for a in self._plan.output], rows, max(n, 0),
                           int(truncate), vertical)

    # -- misc --------------------------------------------------------------------------------------------
    def transform(self, func: Callable, *args: Any, **kwargs: Any) -> "DataFrame":
        return func(self, *args, **kwargs)

    @property
    def write(self):
        from .readwriter import DataFrameWriter
        return DataFrameWriter(self)

    @property
    def na(self):
        from .na import DataFrameNaFunctions
        return DataFrameNaFunctions(self)

    def fillna(self, value: Any, subset: Any = None) -> "DataFrame":
        return self.na.fill(value, subset)

    def dropna(self, how: str = "any", thresh: int | None = None, subset: Any = None) -> "DataFrame":
        return self.na.drop(how, thresh, subset)

    def __iter__(self):
        raise PySparkTypeError("[NOT_ITERABLE] DataFrame is not iterable.")


def _is_sorted(plan: L.Plan) -> bool:
    while isinstance(plan, L.Project):
        plan = plan.child
    return isinstance(plan, L.Sort) and plan.is_global


def to_attr_name(e: Expr) -> str:
    return e.name if isinstance(e, (Attr, Alias)) else output_name(e)

