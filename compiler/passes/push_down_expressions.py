"""Compute one side's local-only expressions before a join, at that side.

`CASE WHEN p.p_type LIKE 'PROMO%' THEN l.price ELSE 0 END` above a join of lineitem and part
needs LIKE, which has no secure implementation; but `p.p_type LIKE 'PROMO%'` reads part's
columns only, so part's holder can compute it in the clear as a new column before the join,
and only that boolean enters MPC. This pass does that for every projection above a join (or
semi-join), through the filters between them: each largest subexpression that reads one
side's columns only and holds a construct outside analyses/secure_expressions'
PORTABLE_EXPRESSIONS becomes a column `__e<node>_<i>` computed by a projection on that side.
push_down_projections then moves that projection below the union of the side's parts.
"""

from __future__ import annotations

import itertools

from sqlglot import exp

from ..ir.dag import (
    Dag,
    Field,
    Filter,
    Join,
    Project,
    SemiJoin,
    col,
    referenced_columns,
    render_exprs,
)
from ..ir.portable import SQL_TYPE_META, is_portable


def push_down_expressions(dag: Dag) -> Dag:
    dag = dag.copy()
    for node in dag.topo():
        if isinstance(dag.op(node), Project):
            _push(dag, node)
    dag.check()
    return dag


def _push(dag: Dag, node: int) -> None:
    """Move the local-only subexpressions of the projection at `node` below the join under it."""
    chain, below = [], dag.inputs(node)[0]
    while isinstance(dag.op(below), Filter) and len(dag.consumers(below)) == 1:
        chain.append(below)
        below = dag.inputs(below)[0]
    op = dag.op(below)
    if not isinstance(op, (Join, SemiJoin)) or len(dag.consumers(below)) != 1:
        return
    sides = dag.inputs(below)[:1 if isinstance(op, SemiJoin) else 2]
    # not into a side an outer join fills with NULLs: f(NULL) need not be NULL
    names = [set(dag.names(s)) if isinstance(op, SemiJoin) or op.kind == "inner" or
             (i == 0 and op.kind == "left") or (i == 1 and op.kind == "right") else set()
             for i, s in enumerate(sides)]
    added: list[list[tuple[str, exp.Expression]]] = [[] for _ in sides]
    fresh = itertools.count()

    def lift(x: exp.Expression) -> exp.Expression:
        used = referenced_columns(x)
        if not used or isinstance(x, exp.Column) or is_portable(x) or \
                x.meta.get(SQL_TYPE_META) in (None, "unknown", "interval"):
            return x
        for i, side_names in enumerate(names):
            if used <= side_names:
                name = f"__e{node}_{next(fresh)}"
                added[i].append((name, x.copy()))
                return col(name)
        return x

    exprs = tuple((n, e.copy().transform(lift)) for n, e in dag.op(node).exprs)
    if not any(added):
        return
    for side, extra in zip(sides, added):
        if extra:
            # the side may be a join itself: its new projection moves on down the same way
            _push(dag, _add_columns(dag, below, side, extra))
    fields = [f for s in dag.inputs(below)[:len(sides)] for f in dag.schema(s)]
    for n in [below, *reversed(chain)]:
        dag.set(n, schema=tuple(fields))
    dag.set(node, op=Project(exprs, render_exprs(exprs)))


def _add_columns(dag: Dag, join: int, side: int, extra: list[tuple[str, exp.Expression]]
                 ) -> int:
    """A projection between `side` and `join` passing every column on and computing `extra`."""
    exprs = tuple([(n, col(n)) for n in dag.names(side)] + extra)
    fields = list(dag.schema(side)) + [Field(n, e.meta[SQL_TYPE_META]) for n, e in extra]
    return dag.insert_between(side, join, Project(exprs, render_exprs(exprs)), fields)
