"""Which column is a whole that another column is a part of: what bounds x / SUM(x) by 1.

A market share, a percentage of the total: ``x / total`` where ``total = SUM(x)`` over all
the rows that x comes from. When no x is negative (analyses/signs.py), every row's x is at
most the total, so the quotient lies in [0, 1] whatever the data: the division needs no
secure overflow check (analyses/bounds.py). The relation is proven from the plan alone:

- ``path(n, c)``: the (node, column) pairs that column c of node n passed through unchanged,
  from n back to where it got its value: a Project's plain column, Filter, Sort, Limit,
  Distinct, Join and SemiJoin sides, Share, Reveal, Window. A valid row of n carries the
  value of one valid row of each of those nodes;
- ``whole(n, c)``: c is the SUM, over every valid row of node m, of m's column x, with x never
  negative there, for each such (m, x): an Aggregate without keys whose input has exactly m's
  rows (m is reached through Projects, Sorts and Windows only, which keep every row);
- :func:`parts`: at node n, {whole column b: the columns a of n whose path meets b's
  wholes}: then 0 <= a <= b on every valid row where both have a value.

Only on those rows: a row a secure filter dropped keeps its value, which the total did not
add up. Bounds.counted_rows_only tells the secure program to divide 0 on the other rows.
"""

from __future__ import annotations

from sqlglot import exp

from ..ir.dag import (
    Aggregate,
    Dag,
    Distinct,
    Filter,
    Join,
    Limit,
    Project,
    Reveal,
    SemiJoin,
    Share,
    Sort,
    Window,
)
from .signs import nonnegative

__all__ = ["parts"]

Place = tuple[int, str]  # (node, column)
_PASS_VALUES = (Filter, Sort, Limit, Distinct, Join, SemiJoin, Share, Reveal, Window)
_KEEP_ROWS = (Project, Sort, Window)  # every input row, no other


def parts(dag: Dag) -> dict[int, dict[str, frozenset[str]]]:
    """{node: {b: the columns that are a part of b's whole}}, for the nodes that have one."""
    signs = nonnegative(dag)
    path: dict[int, dict[str, tuple[Place, ...]]] = {}
    whole: dict[int, dict[str, frozenset[Place]]] = {}
    same_rows: dict[int, frozenset[int]] = {}  # nodes whose valid rows are exactly n's
    out: dict[int, dict[str, frozenset[str]]] = {}
    for n in dag.topo():
        op = dag.op(n)
        ins = dag.inputs(n)
        names = dag.names(n)
        came: dict[str, tuple[Place, ...]] = {}
        wholes: dict[str, frozenset[Place]] = {}
        rows = {n}
        if isinstance(op, _PASS_VALUES) and ins:
            sources = ins[:1] if isinstance(op, SemiJoin) else ins
            for i in sources:
                came.update({c: path[i][c] for c in names if c in path[i]})
                wholes.update({c: whole[i][c] for c in names if c in whole[i]})
        elif isinstance(op, Project):
            (i,) = ins
            for name, e in op.exprs:
                if isinstance(e, exp.Column) and e.name in path[i]:
                    came[name] = path[i][e.name]
                    if e.name in whole[i]:
                        wholes[name] = whole[i][e.name]
        elif isinstance(op, Aggregate) and not op.keys:
            (i,) = ins
            for a in op.aggs:
                if a.func == "sum" and a.arg in path[i]:
                    summed = frozenset(p for p in path[i][a.arg]
                                       if p[0] in same_rows[i] and p[1] in signs[p[0]])
                    if summed:
                        wholes[a.name] = summed
        if isinstance(op, _KEEP_ROWS) and ins:
            rows |= same_rows[ins[0]]
        path[n] = {c: ((n, c),) + came.get(c, ()) for c in names}
        whole[n], same_rows[n] = wholes, frozenset(rows)
        found = {b: frozenset(a for a in names if a != b and set(path[n][a]) & w)
                 for b, w in wholes.items()}
        found = {b: a for b, a in found.items() if a}
        if found:
            out[n] = found
    return out
