"""Logical plans as distributed stages: RDDs of Arrow IPC partitions and engine queries.

A ``Fragment`` is an RDD plus a query still to run over each of its
partitions. Narrow operators (project, filter, explode) only extend the
query, so a chain of them becomes one DuckDB query per partition in one
task. An exchange ends the fragment: the query runs on each partition and
cuts its result into pieces by reduce partition, the existing shuffle moves
the pieces as ``(reduce_id, ipc_bytes)`` pairs (``partitionBy`` with the
identity), and the reduce side starts a new fragment over them:

* aggregate: partial aggregation per partition, hash by the grouping keys,
  final aggregation per reduce partition;
* join: both sides hashed by the equi-join keys into one shuffle, joined per
  reduce partition; a side smaller than ``spark.sql.autoBroadcastJoinThreshold``
  (or marked with ``broadcast()``) is collected and broadcast instead;
* orderBy: range partitioning from a sample of the sort keys, then a sort per
  partition (``orderBy().limit(n)`` is a top-n instead);
* window: hash by the partition keys, then the window query per partition.

Everything is an ordinary RDD, so lineage, retries, executor loss and
caching work for DataFrames exactly as for RDDs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sluicegate.common import sql_tasks as st
from sluicegate.common.taskfuncs import identity

from . import builtins as B
from . import logical as L
from .analyzer import agg_calls, col_sql, to_sql
from .errors import AnalysisException
from .expressions import Attr, Call, Expr, SortOrder, expr_key, strip_alias
from .typing_rules import quote, to_arrow

if TYPE_CHECKING:
    from .session import SparkSession

IN, LEFT, RIGHT = "__in", "__l", "__r"
SAMPLE_ROWS_PER_PARTITION = 100


def arrow_schema(attrs: list[Attr]):
    import pyarrow as pa
    return pa.schema([pa.field(a.col, to_arrow(a.dtype)) for a in attrs])


class Fragment:
    """``rdd``'s partitions, with ``sql`` still to run over them (None: they are the output).

    ``tables`` name the engine tables the records fill (records that are
    ``(key, bytes)`` pairs go to table ``key // split_n``); the query yields
    the columns of ``attrs`` in order.
    """

    def __init__(self, rdd, tables: list[st.TableSpec], sql: str | None, attrs: list[Attr],
                 split_n: int = 1, broadcasts: list | None = None, plain: bool = False):
        self.rdd = rdd
        self.tables = tables
        self.sql = sql
        self.attrs = attrs
        self.split_n = split_n
        self.broadcasts = broadcasts or []
        self.plain = plain  # records are IPC bytes already holding exactly ``attrs``

    def query(self) -> str:
        if self.sql is not None:
            return self.sql
        return f"SELECT * FROM {self.tables[0].name}"

    def extend(self, sql: str, attrs: list[Attr]) -> "Fragment":
        return Fragment(self.rdd, self.tables, sql, attrs, self.split_n, self.broadcasts)

    def task(self, output: tuple, sql: str | None = None) -> st.RunSql:
        from .udf import udfs_in
        query = sql if sql is not None else self.sql
        return st.RunSql(query, self.tables, output, self.split_n, self.broadcasts, udfs_in(query))


def select_list(exprs: list[Expr], subst: dict | None = None) -> str:
    out = []
    for e in exprs:
        attr_id = e.id if hasattr(e, "id") else None
        out.append(f"{to_sql(e, subst)} AS {quote(f'c{attr_id}')}")
    return ", ".join(out) if out else "NULL AS __empty"


class Planner:
    def __init__(self, session: "SparkSession"):
        self.session = session
        self.sc = session.sparkContext

    # -- settings ------------------------------------------------------------------------
    def shuffle_partitions(self) -> int:
        value = self.session.conf.get("spark.sql.shuffle.partitions", None)
        if value is None:
            # Spark starts from 200 and lets adaptive execution coalesce small
            # partitions; we start from the cluster's parallelism.
            return max(1, self.sc.defaultParallelism)
        return max(1, int(value))

    def broadcast_threshold(self) -> float:
        value = self.session.conf.get("spark.sql.autoBroadcastJoinThreshold", "10485760")
        text = str(value).strip().lower()
        units = {"b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30,
                 "gb": 1 << 30}
        for unit in sorted(units, key=len, reverse=True):
            if text.endswith(unit) and text[: -len(unit)].strip().lstrip("-").isdigit():
                return float(int(text[: -len(unit)]) * units[unit])
        return float(int(text))

    # -- entry points ---------------------------------------------------------------------
    def plan(self, node: L.Plan) -> Fragment:
        cached = self.session._cache.lookup(node)
        if cached is not None:
            return Fragment(cached, [st.TableSpec(IN, arrow_schema(node.output))], None, node.output,
                            plain=True)
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise AnalysisException(f"cannot run plan node {type(node).__name__}")
        return method(node)

    def materialize(self, frag: Fragment):
        """An RDD of IPC partitions holding exactly ``frag.attrs``."""
        if frag.plain:
            return frag.rdd
        return frag.rdd.mapPartitions(frag.task(("ipc",), frag.query()))

    def source(self, rdd, attrs: list[Attr]) -> Fragment:
        return Fragment(rdd, [st.TableSpec(IN, arrow_schema(attrs))], None, attrs, plain=True)

    def exchange(self, frag: Fragment, sql: str, output: tuple, n: int) -> Fragment:
        """Run ``sql`` over ``frag`` and shuffle its result into ``n`` partitions."""
        from .udf import udfs_in
        schema = st.schema_of(sql, frag.tables + [st.TableSpec(name, schema)
                                                  for name, _, schema in frag.broadcasts],
                              udfs_in(sql))
        mapped = frag.rdd.mapPartitions(frag.task(output, sql))
        shuffled = mapped.partitionBy(n, identity)
        return Fragment(shuffled, [st.TableSpec(IN, schema)], None, None, split_n=n)

    def exchange_by_keys(self, frag: Fragment, sql: str, keys: list[str]) -> Fragment:
        """Run ``sql`` over ``frag`` and hash its result by the SQL expressions ``keys`` into
        the shuffle partitions; without keys, gather it into one partition."""
        if not keys:
            return self.exchange(frag, sql, ("single", 0), 1)
        n = self.shuffle_partitions()
        return self.exchange(frag, sql, ("hash", keys, n, 0), n)

    # -- leaves ---------------------------------------------------------------------------
    def _LocalRelation(self, node: L.LocalRelation) -> Fragment:
        rdd = getattr(node, "_rdd", None)
        if rdd is None:
            rdd = node._rdd = self.sc.parallelize(node.partitions, max(1, len(node.partitions)))
        schema = getattr(node, "_schema", None)
        if schema is not None:  # SELECT without FROM: one row of a hidden column
            return Fragment(rdd, [st.TableSpec(IN, schema)], None, node.output)
        return self.source(rdd, node.output)

    def _RDDRelation(self, node: L.RDDRelation) -> Fragment:
        if node.kind == "rows":
            atomic = getattr(node, "atomic", False)
            rdd = node.rdd.mapPartitions(st.RowsToArrow(arrow_schema(node.attrs), atomic))
            return self.source(rdd, node.attrs)
        frag = self.source(node.rdd, node.attrs)
        frag.plain = False  # columns are renamed on load
        return frag

    def _RangeRelation(self, node: L.RangeRelation) -> Fragment:
        total = max(0, -(-(node.end - node.start) // node.step)) if node.step else 0
        n = max(1, node.num_partitions)
        bounds = []
        for i in range(n):
            lo = node.start + (i * total // n) * node.step
            hi = node.start + ((i + 1) * total // n) * node.step
            bounds.append([lo, hi, node.step])
        rdd = self.sc.parallelize(bounds, n).mapPartitions(st.RangeBatch(node.attr.col))
        return self.source(rdd, node.output)

    def _FileRelation(self, node: L.FileRelation) -> Fragment:
        n = max(1, len(node.splits))
        rdd = self.sc.parallelize(node.splits or [[]], n).mapPartitions(
            st.ReadFiles(node.fmt, node.file_schema, node.options, [a.col for a in node.attrs]))
        return self.source(rdd, node.output)

    # -- narrow -----------------------------------------------------------------------------
    def _Project(self, node: L.Project) -> Fragment:
        child = self.plan(node.child)
        sql = f"SELECT {select_list(node.exprs)} FROM ({child.query()}) AS __t"
        return child.extend(sql, node.output)

    def _Filter(self, node: L.Filter) -> Fragment:
        child = self.plan(node.child)
        sql = f"SELECT * FROM ({child.query()}) AS __t WHERE {to_sql(node.condition)}"
        return child.extend(sql, node.output)

    def _SubqueryAlias(self, node: L.SubqueryAlias) -> Fragment:
        return self.plan(node.child)

    def _Broadcast(self, node: L.Broadcast) -> Fragment:
        return self.plan(node.child)

    def _Generate(self, node: L.Generate) -> Fragment:
        child = self.plan(node.child)
        gen = node.generator
        value = to_sql(gen.args[0])
        is_map = gen.args[0].dtype is not None and type(gen.args[0].dtype).__name__ == "MapType"
        if node.outer:
            empty = "[NULL]" if not is_map else "MAP {NULL: NULL}"
            size = f"len({value})" if not is_map else f"cardinality({value})"
            value = f"(CASE WHEN {value} IS NULL OR {size} = 0 THEN {empty} ELSE {value} END)"
        cols = [quote(a.col) for a in node.gen_attrs]
        if is_map:
            parts = [f"unnest(map_keys({value}))", f"unnest(map_values({value}))"]
        else:
            parts = [f"unnest({value})"]
        if gen.name.startswith("posexplode"):
            size = f"len({value})"
            parts.insert(0, f"unnest(generate_series(0, {size} - 1))::INTEGER")
        selected = ", ".join(f"{p} AS {c}" for p, c in zip(parts, cols))
        keep = ", ".join(quote(a.col) for a in node.child.output)
        sql = f"SELECT {keep + ', ' if keep else ''}{selected} FROM ({child.query()}) AS __t"
        return child.extend(sql, node.output)

    # -- aggregation ---------------------------------------------------------------------------
    def _Aggregate(self, node: L.Aggregate) -> Fragment:
        child = self.plan(node.child)
        groups = node.groups
        calls: list[Call] = []
        seen: dict = {}
        for e in node.aggs:
            for call in agg_calls(e):
                key = expr_key(call)
                if key not in seen:
                    seen[key] = len(calls)
                    calls.append(call)
        # map side: grouping keys and partial states
        g_cols = [f"__g{i}" for i in range(len(groups))]
        select = [f"{to_sql(g)} AS {c}" for g, c in zip(groups, g_cols)]
        state_cols: list[list[str]] = []
        for i, call in enumerate(calls):
            fn = B.REGISTRY[call.name]
            states = fn.partial(call, [to_sql(a) for a in call.args])
            names = [f"__s{i}_{j}" for j in range(len(states))]
            state_cols.append(names)
            select += [f"{s} AS {n}" for s, n in zip(states, names)]
        group_by = f" GROUP BY {', '.join(str(i + 1) for i in range(len(groups)))}" if groups else ""
        partial = f"SELECT {', '.join(select) or 'count(*) AS __n'} FROM ({child.query()}) AS __t{group_by}"
        shuffled = self.exchange_by_keys(child, partial, g_cols)
        # reduce side: final merge, then the output expressions over keys and results
        subst = {expr_key(g): c for g, c in zip(groups, g_cols)}
        finals = []
        for i, call in enumerate(calls):
            fn = B.REGISTRY[call.name]
            finals.append(f"{fn.final(call, state_cols[i])} AS __a{i}")
            subst[expr_key(call)] = f"__a{i}"
        keys = ", ".join(g_cols)
        final = (f"SELECT {keys + ', ' if keys else ''}{', '.join(finals) or 'NULL AS __none'} "
                 f"FROM {IN}" + (f" GROUP BY {keys}" if keys else ""))
        if not groups and not calls:
            final = f"SELECT NULL AS __none FROM {IN} LIMIT 1"
        out = f"SELECT {select_list(node.aggs, subst)} FROM ({final}) AS __f"
        return shuffled.extend(out, node.output)

    def _Deduplicate(self, node: L.Deduplicate) -> Fragment:
        child = self.plan(node.child)
        keys = {a.id for a in node.keys}
        cols = [a.col for a in node.child.output]
        pick = ", ".join(f"{quote(c)}" if int(c[1:]) in keys else f"first({quote(c)}) AS {quote(c)}"
                         for c in cols)
        key_cols = [quote(a.col) for a in node.keys]
        group_by = f" GROUP BY {', '.join(key_cols)}" if key_cols else ""
        partial = f"SELECT {pick} FROM ({child.query()}) AS __t{group_by}"
        shuffled = self.exchange_by_keys(child, partial, key_cols)
        return shuffled.extend(f"SELECT {pick} FROM {IN}{group_by}", node.output)

    # -- windows ---------------------------------------------------------------------------------
    def _Window(self, node: L.Window) -> Fragment:
        child = self.plan(node.child)
        first = strip_alias(node.wexprs[0])
        keys = [to_sql(p) for p in first.spec.partition_by]
        shuffled = self.exchange_by_keys(child, child.query(), keys)
        keep = ", ".join(quote(a.col) for a in node.child.output)
        sql = f"SELECT {keep + ', ' if keep else ''}{select_list(node.wexprs)} FROM {IN}"
        return shuffled.extend(sql, node.output)

    # -- sorting and limits --------------------------------------------------------------------------
    def _Sort(self, node: L.Sort) -> Fragment:
        child = self.plan(node.child)
        order = ", ".join(to_sql(o) for o in node.orders)
        if not node.is_global:
            sql = f"SELECT * FROM ({child.query()}) AS __t ORDER BY {order}"
            return self.source(self.materialize(child.extend(sql, node.output)), node.output)
        n = self.shuffle_partitions()
        sort_keys = [(to_sql(o.child), f"{'ASC' if o.ascending else 'DESC'} NULLS "
                      f"{'FIRST' if o.nulls_first else 'LAST'}") for o in node.orders]
        bounds = self._range_bounds(child, sort_keys, n)
        if bounds is None:
            shuffled = self.exchange(child, child.query(), ("single", 0), 1)
        else:
            data, count = bounds
            shuffled = self.exchange(child, child.query(), ("range", sort_keys, data, count + 1, 0),
                                     count + 1)
        sorted_part = shuffled.extend(f"SELECT * FROM {IN} ORDER BY {order}", node.output)
        return self.source(self.materialize(sorted_part), node.output)

    def _range_bounds(self, child: Fragment, sort_keys: list, n: int):
        """Upper bounds of ``n`` ranges from a sample of the sort keys: (IPC bytes, count)."""
        import pyarrow as pa
        if n <= 1 or child.rdd.getNumPartitions() <= 1:
            return None
        keys = ", ".join(f"{expr} AS __k{i}" for i, (expr, _) in enumerate(sort_keys))
        sample = (f"SELECT {keys} FROM ({child.query()}) AS __t "
                  f"USING SAMPLE reservoir({SAMPLE_ROWS_PER_PARTITION} ROWS) REPEATABLE (7)")
        rdd = child.rdd.mapPartitions(child.task(("ipc",), sample))
        pieces = [st.load(b) for part in self.sc._run_job(rdd) for b in part]
        if not pieces:
            return None
        samples = pa.concat_tables(pieces)
        order = ", ".join(f"__k{i} {how}" for i, (_, how) in enumerate(sort_keys))
        ordered = st.run_local(f"SELECT * FROM __s ORDER BY {order}", {"__s": samples})
        total = ordered.num_rows
        picks = sorted({min(total - 1, (i * total) // n) for i in range(1, n)})
        if not picks:
            return None
        bounds = ordered.take(picks)
        return st.dump(bounds), bounds.num_rows

    def _Limit(self, node: L.Limit) -> Fragment:
        inner = node.child
        through: list[L.Plan] = []
        while isinstance(inner, L.Project):
            through.append(inner)
            inner = inner.child
        take = node.n + node.offset
        if isinstance(inner, L.Sort) and inner.is_global:
            sort_child = self.plan(inner.child)
            order = ", ".join(to_sql(o) for o in inner.orders)
            top = f"SELECT * FROM ({sort_child.query()}) AS __t ORDER BY {order} LIMIT {take}"
            shuffled = self.exchange(sort_child, top, ("single", 0), 1)
            sql = f"SELECT * FROM {IN} ORDER BY {order} LIMIT {node.n} OFFSET {node.offset}"
            frag = self.source(self.materialize(shuffled.extend(sql, inner.output)), inner.output)
            for project in reversed(through):
                frag = frag.extend(f"SELECT {select_list(project.exprs)} FROM ({frag.query()}) AS __t",
                                   project.output)
            return frag
        child = self.plan(node.child)
        head = f"SELECT * FROM ({child.query()}) AS __t LIMIT {take}"
        shuffled = self.exchange(child, head, ("single", 0), 1)
        sql = f"SELECT * FROM {IN} LIMIT {node.n} OFFSET {node.offset}"
        return self.source(self.materialize(shuffled.extend(sql, node.output)), node.output)

    # -- partitioning ----------------------------------------------------------------------------------
    def _Repartition(self, node: L.Repartition) -> Fragment:
        child = self.plan(node.child)
        if not node.shuffle:
            rdd = self.materialize(child).coalesce(node.n)
            return self.source(rdd, node.output)
        n = node.n or self.shuffle_partitions()
        if node.keys:
            output = ("hash", [to_sql(k) for k in node.keys], n, 0)
        else:
            output = ("roundrobin", n, 0)
        shuffled = self.exchange(child, child.query(), output, n)
        shuffled.attrs = node.output
        shuffled.tables = [st.TableSpec(IN, arrow_schema(node.output))]
        return shuffled

    # -- union ------------------------------------------------------------------------------------------
    def _Union(self, node: L.Union) -> Fragment:
        rdds = []
        for child in node.children:
            frag = self.plan(child)
            exprs = []
            for source, target in zip(child.output, node.output):
                expr = source if source.dtype == target.dtype else B.cast_to(source, target.dtype)
                exprs.append(f"{to_sql(expr)} AS {quote(target.col)}")
            sql = f"SELECT {', '.join(exprs)} FROM ({frag.query()}) AS __t"
            rdds.append(self.materialize(frag.extend(sql, node.output)))
        return self.source(self.sc.union(rdds), node.output)

    # -- joins -------------------------------------------------------------------------------------------
    def _Join(self, node: L.Join) -> Fragment:
        from .joins import plan_join
        return plan_join(self, node)

    # -- results ----------------------------------------------------------------------------------------
    def collect_tables(self, frag: Fragment, limit: int | None = None) -> list:
        """The result's Arrow tables, partition by partition (columns ``c<id>``)."""
        if limit is None:
            rdd = self.materialize(frag)
            return [st.load(b) for part in self.sc._run_job(rdd) for b in part]
        sql = f"SELECT * FROM ({frag.query()}) AS __t LIMIT {int(limit)}"
        rdd = frag.rdd.mapPartitions(frag.task(("ipc",), sql))
        total = rdd.getNumPartitions()
        tables, rows, scanned, step = [], 0, 0, 1
        while scanned < total and rows < limit:
            parts = list(range(scanned, min(total, scanned + step)))
            for part in self.sc._run_job(rdd, parts):
                for b in part:
                    table = st.load(b)
                    tables.append(table)
                    rows += table.num_rows
            scanned += len(parts)
            step *= 4
        return tables


def col_of(a: Attr) -> str:
    return col_sql(a)


def sort_sql(orders: list[SortOrder]) -> str:
    return ", ".join(to_sql(o) for o in orders)
