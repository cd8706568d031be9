"""Move reversible work after the reveal, out of MPC, when recipients learn nothing more.

Only two kinds of operator qualify: an ORDER BY without a LIMIT (a permutation of rows the
recipients receive anyway; the reveal itself hides which input row a result row came from),
and a projection in which every output column is an invertible function of exactly one input
column and every input column is used (renames, casts to a wider type, +/- or *// by a non-zero
constant, negation, square root of a non-negative value such as a variance). Anything that
combines or drops columns stays in MPC: revealing its inputs would tell the recipients more.
"""

from __future__ import annotations

from sqlglot import exp

from ..dag import Dag, Project, Reveal, Sort, referenced_columns
from .mark_boundary import RECIPIENT


def push_up_reveal(dag: Dag) -> Dag:
    dag = dag.copy()
    (reveal,) = dag.inputs(dag.root)
    if not isinstance(dag.op(reveal), Reveal):
        return dag
    while True:
        (below,) = dag.inputs(reveal)
        op = dag.op(below)
        if len(dag.consumers(below)) != 1:
            break
        if not (isinstance(op, Sort) or (isinstance(op, Project) and _invertible(dag, below))):
            break
        (src,) = dag.inputs(below)
        # swap: src -> reveal -> below -> (what reveal fed)
        (after,) = dag.consumers(reveal)
        dag.replace_input(reveal, below, src)
        dag.replace_input(after, reveal, below)
        dag.replace_input(below, src, reveal)
        dag.set(reveal, schema=dag.schema(src), trust=dict(dag.attr(src, "trust")))
        dag.set(below, placement=RECIPIENT)
    dag.check()
    return dag


def _invertible(dag: Dag, node: int) -> bool:
    op = dag.op(node)
    (src,) = dag.inputs(node)
    used: list[str] = []
    for _, e in op.exprs:
        cols = referenced_columns(e)
        if len(cols) != 1 or not _unary_invertible(e):
            return False
        used += list(cols)
    return sorted(used) == sorted(dag.names(src))


def _unary_invertible(e: exp.Expression) -> bool:
    if isinstance(e, exp.Column):
        return True
    if isinstance(e, (exp.Paren, exp.Neg, exp.Sqrt)):
        return _unary_invertible(e.this)
    if isinstance(e, exp.Cast):
        return exp.DataType.build(e.to).this in (exp.DataType.Type.DOUBLE,
                                                 exp.DataType.Type.DECIMAL) \
            and _unary_invertible(e.this)
    if isinstance(e, (exp.Add, exp.Sub, exp.Mul, exp.Div)):
        a, b = e.this, e.expression
        const = b if isinstance(b, exp.Literal) else a if isinstance(a, exp.Literal) else None
        other = a if const is b else b
        if const is None or const.is_string:
            return False
        if isinstance(e, (exp.Mul, exp.Div)) and float(const.this) == 0:
            return False
        if isinstance(e, exp.Div) and const is a:
            return False
        return _unary_invertible(other)
    return False
