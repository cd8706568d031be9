"""Outer joins across parties, as an inner join plus the unmatched rows (secure operators).

An outer join whose inputs come from more than one party runs in MPC, where the secure
operators are inner joins and anti-joins. So

    L LEFT JOIN R ON k  =  (L JOIN R ON k)  UNION ALL  (L's rows without a match in R,
                                                          R's columns NULL)

(RIGHT: the mirror image; FULL: both unmatched sets). The inner join keeps its algorithm and
leakage (PK-FK: nothing beyond public lengths; many-to-many: its size); the anti-join reveals
nothing beyond public lengths; the union's length is the sum of the two (public), padded
like the inputs: which rows matched stays secret. Each input is shared into MPC once per use.
An outer join at one party, or of co-located tables (use_colocation), stays a local join.
"""

from __future__ import annotations

import networkx as nx
from sqlglot import exp

from ..ir.dag import Dag, Field, Join, Project, Scan, SemiJoin, Union, col, render_exprs


def secure_outer_joins(dag: Dag, *, all_secure: bool = False) -> Dag:
    """Decompose every outer join that will run in MPC (with all_secure: every one)."""
    dag = dag.copy()
    for node in dag.topo():
        op = dag.op(node)
        if isinstance(op, Join) and op.kind != "inner" and op.left_keys and \
                (all_secure or len(_parties(dag, node)) > 1):
            _decompose(dag, node, op)
    dag.check()
    return dag


def _parties(dag: Dag, node: int) -> set[str]:
    """The parties whose parts `node` reads."""
    return {dag.op(n).party for n in nx.ancestors(dag.g, node)
            if isinstance(dag.op(n), Scan)}


def _decompose(dag: Dag, node: int, op: Join) -> None:
    left, right = dag.inputs(node)
    fields = list(dag.schema(node))
    inner = dag.add(Join(op.left_keys, op.right_keys), fields, [left, right])
    pieces = [inner]
    if op.kind in ("left", "full"):
        pieces.append(_unmatched(dag, left, right, op.left_keys, op.right_keys, fields))
    if op.kind in ("right", "full"):
        pieces.append(_unmatched(dag, right, left, op.right_keys, op.left_keys, fields))
    union = dag.add(Union(), fields, pieces)
    dag.replace_node(node, union)


def _unmatched(dag: Dag, keep: int, other: int, keep_keys: tuple[str, ...],
               other_keys: tuple[str, ...], fields: list[Field]) -> int:
    """`keep`'s rows without a match in `other`, with the other side's columns NULL, in the
    join's column order."""
    anti = dag.add(SemiJoin(keep_keys, other_keys, anti=True), dag.schema(keep), [keep, other])
    mine = set(dag.names(keep))
    # a bare NULL: the projection's field keeps the column's type
    exprs = tuple((f.name, col(f.name) if f.name in mine else exp.Null()) for f in fields)
    return dag.add(Project(exprs, render_exprs(exprs)), fields, [anti])
