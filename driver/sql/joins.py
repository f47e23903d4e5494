"""Planning a join: broadcast the small side, else shuffle both sides by the join keys.

The equi-join keys come from the condition's ``left = right`` conjuncts;
the rest of the condition stays in the engine's ON clause. Both sides of a
shuffle hash join go through one shuffle: the left side's pieces are keyed
``reduce_id``, the right side's ``n + reduce_id``, and the reduce task
splits them back into its two tables.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sluicegate.common import sql_tasks as st
from sluicegate.common.taskfuncs import identity

from . import logical as L
from .analyzer import to_sql
from .expressions import Attr, Call, Expr
from .typing_rules import quote

if TYPE_CHECKING:
    from .physical import Fragment, Planner

_JOIN_SQL = {"inner": "JOIN", "cross": "JOIN", "left": "LEFT JOIN", "right": "RIGHT JOIN",
             "full": "FULL OUTER JOIN", "semi": "SEMI JOIN", "anti": "ANTI JOIN"}


def conjuncts(e: Expr | None) -> list[Expr]:
    if e is None:
        return []
    if isinstance(e, Call) and e.name == "and":
        return conjuncts(e.args[0]) + conjuncts(e.args[1])
    return [e]


def _ids(e: Expr) -> set[int]:
    return {n.id for n in e.walk() if isinstance(n, Attr)}


def equi_keys(condition: Expr | None, left_ids: set, right_ids: set) -> tuple[list, list]:
    """The ``left = right`` key pairs of a join condition."""
    lkeys, rkeys = [], []
    for c in conjuncts(condition):
        if isinstance(c, Call) and c.name in ("=", "<=>"):
            a, b = c.args
            ia, ib = _ids(a), _ids(b)
            if ia and ib and ia <= left_ids and ib <= right_ids:
                lkeys.append(a)
                rkeys.append(b)
            elif ia and ib and ia <= right_ids and ib <= left_ids:
                lkeys.append(b)
                rkeys.append(a)
    return lkeys, rkeys


def join_sql(node: L.Join, left: str, right: str) -> str:
    cols = ", ".join(quote(a.col) for a in node.output) or "NULL AS __empty"
    kind = _JOIN_SQL[node.how]
    if node.condition is None:
        on = " ON TRUE" if node.how not in ("inner", "cross") else ""
        kind = "CROSS JOIN" if node.how in ("inner", "cross") else kind
    else:
        on = f" ON {to_sql(node.condition)}"
    return f"SELECT {cols} FROM {left} AS __lt {kind} {right} AS __rt{on}"


def plan_join(planner: "Planner", node: L.Join) -> "Fragment":
    from .physical import Fragment, arrow_schema
    threshold = planner.broadcast_threshold()
    left_small = isinstance(node.left, L.Broadcast) or node.left.size_estimate() <= threshold
    right_small = isinstance(node.right, L.Broadcast) or node.right.size_estimate() <= threshold
    if node.how in ("inner", "cross", "left", "semi", "anti") and right_small \
            and not (isinstance(node.left, L.Broadcast) and not isinstance(node.right, L.Broadcast)):
        return _broadcast(planner, node, big=node.left, small=node.right, small_is_right=True)
    if node.how in ("inner", "cross", "right") and left_small:
        return _broadcast(planner, node, big=node.right, small=node.left, small_is_right=False)
    left, right = planner.plan(node.left), planner.plan(node.right)
    lkeys, rkeys = equi_keys(node.condition, {a.id for a in node.left.output},
                             {a.id for a in node.right.output})
    if lkeys:
        n = planner.shuffle_partitions()
        lout = ("hash", [to_sql(k) for k in lkeys], n, 0)
        rout = ("hash", [to_sql(k) for k in rkeys], n, 1)
    else:  # no equi-join key: both sides meet in one partition
        n = 1
        lout, rout = ("single", 0), ("single", 1)
    lmap = left.rdd.mapPartitions(left.task(lout, left.query()))
    rmap = right.rdd.mapPartitions(right.task(rout, right.query()))
    shuffled = planner.sc.union([lmap, rmap]).partitionBy(n, identity)
    tables = [st.TableSpec("__l", arrow_schema(node.left.output)),
              st.TableSpec("__r", arrow_schema(node.right.output))]
    return Fragment(shuffled, tables, join_sql(node, "__l", "__r"), node.output, split_n=n)


def _broadcast(planner: "Planner", node: L.Join, big: L.Plan, small: L.Plan,
               small_is_right: bool) -> "Fragment":
    from .physical import arrow_schema
    small_frag = planner.plan(small)
    rdd = planner.materialize(small_frag)
    pieces = [b for part in planner.sc._run_job(rdd) for b in part]
    variable = planner.sc.broadcast(pieces)
    name = f"__b{variable.id}"
    big_frag = planner.plan(big)
    frag = big_frag.extend(None, node.output)
    frag.broadcasts = list(big_frag.broadcasts) + [(name, variable, arrow_schema(small.output))]
    big_sql = f"({big_frag.query()})"
    if small_is_right:
        frag.sql = join_sql(node, big_sql, name)
    else:
        frag.sql = join_sql(node, name, big_sql)
    return frag
