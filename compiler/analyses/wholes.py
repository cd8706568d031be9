"""Which column is a whole that another column is a part of: what bounds x / SUM(x) by 1.

A market share, a percentage of the total: ``x / total`` where ``total = SUM(x)`` over all
the rows that x comes from. When no x is negative (analyses/signs.py), every row's x is at
most the total, so the quotient lies in [0, 1] whatever the data: the division needs no
secure overflow check (analyses/bounds.py). The relation is proven from the plan alone:

- ``origin(n, c)``: the (node, column) where column c of node n got its value, followed back
  through what passes a value on unchanged (a Project's plain column, Filter, Sort, Limit,
  Distinct, Join and SemiJoin sides, Share, Reveal, Window); a row of n carries the value
  of one valid row of that node;
- ``whole(n, c)``: c is the SUM, over every valid row of node m, of m's column x, with x never
  negative: an Aggregate without keys whose input has exactly m's rows (through Projects,
  Sorts and Windows only, which keep every row);
- :func:`parts`: at node n, {whole column b: the columns a of n with origin(n, a) = whole(n,
  b)}: then 0 <= a <= b on every valid row where both have a value.
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

Origin = tuple[int, str]  # (node, column)
_PASS_VALUES = (Filter, Sort, Limit, Distinct, Join, SemiJoin, Share, Reveal, Window)
_KEEP_ROWS = (Project, Sort, Window)  # every input row, no other


def parts(dag: Dag) -> dict[int, dict[str, frozenset[str]]]:
    """{node: {b: the columns that are a part of b's whole}}, for the nodes that have one."""
    signs = nonnegative(dag)
    origin: dict[int, dict[str, Origin]] = {}
    whole: dict[int, dict[str, Origin]] = {}
    same_rows: dict[int, frozenset[int]] = {}  # nodes whose valid rows are exactly n's
    out: dict[int, dict[str, frozenset[str]]] = {}
    for n in dag.topo():
        op = dag.op(n)
        ins = dag.inputs(n)
        names = dag.names(n)
        mine = {c: (n, c) for c in names}
        wholes: dict[str, Origin] = {}
        rows = {n}
        if isinstance(op, _PASS_VALUES) and ins:
            sources = ins[:1] if isinstance(op, SemiJoin) else ins
            for i in sources:
                mine.update({c: origin[i][c] for c in names if c in origin[i]})
                wholes.update({c: whole[i][c] for c in names if c in whole[i]})
        elif isinstance(op, Project):
            (i,) = ins
            for name, e in op.exprs:
                if isinstance(e, exp.Column):
                    mine[name] = origin[i].get(e.name, mine[name])
                    if e.name in whole[i]:
                        wholes[name] = whole[i][e.name]
        elif isinstance(op, Aggregate) and not op.keys:
            (i,) = ins
            for a in op.aggs:
                source = origin[i].get(a.arg) if a.func == "sum" and a.arg else None
                if source and source[0] in same_rows[i] and source[1] in signs[source[0]]:
                    wholes[a.name] = source
        if isinstance(op, _KEEP_ROWS) and ins:
            rows |= same_rows[ins[0]]
        origin[n], whole[n], same_rows[n] = mine, wholes, frozenset(rows)
        found = {b: frozenset(a for a in names if mine[a] == w and a != b)
                 for b, w in wholes.items()}
        found = {b: a for b, a in found.items() if a}
        if found:
            out[n] = found
    return out
