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

from ..ir.dag import (RECIPIENT, Dag, Field, Project, Reveal, Sort, col, referenced_columns,
                      render_exprs, substitute)


def push_up_reveal(dag: Dag) -> Dag:
    dag = dag.copy()
    (reveal,) = dag.inputs(dag.root)
    if not isinstance(dag.op(reveal), Reveal):
        return dag
    _split_square_roots(dag, reveal)
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


def _split_square_roots(dag: Dag, reveal: int) -> None:
    """Project(a AS x, SQRT(v) AS y) below the reveal -> Project(a AS x, v AS y) then
    Project(x, SQRT(y) AS y): the second is invertible and moves after the reveal, so a
    STDDEV next to a non-invertible column (e.g. COALESCE) still needs no SQRT in MPC.
    Revealing v instead of SQRT(v) tells nothing more (v >= 0 is SQRT(v)^2)."""
    (below,) = dag.inputs(reveal)
    op = dag.op(below)
    if not isinstance(op, Project) or len(dag.consumers(below)) != 1:
        return
    # a projection that only passes on the square roots of the one below it: merge the two
    # (substitution), so the roots are at the top of the merged expressions
    (src,) = dag.inputs(below)
    inner_op = dag.op(src)
    if isinstance(inner_op, Project) and len(dag.consumers(src)) == 1 and \
            dag.attr(src, "placement") == dag.attr(below, "placement") and \
            any(_root_arg(e) is not None for _, e in inner_op.exprs):
        exprs = tuple((name, substitute(e, dict(inner_op.exprs))) for name, e in op.exprs)
        (grand,) = dag.inputs(src)
        dag.replace_input(below, src, grand)
        dag.remove(src)
        op = Project(exprs, text=render_exprs(exprs))
        dag.set(below, op=op)
    roots = {name: _root_arg(e) for name, e in op.exprs}
    if not any(roots.values()) or _invertible(dag, below):
        return  # nothing to split, or the whole projection moves after the reveal anyway
    inner = tuple((name, roots[name] or e) for name, e in op.exprs)
    outer = tuple((name, exp.Sqrt(this=col(name)) if roots[name] else col(name))
                  for name, _ in op.exprs)
    schema = dag.schema(below)
    inner_schema = tuple(Field(f.name, "float") if roots[f.name] else f for f in schema)
    dag.set(below, op=Project(inner, text=render_exprs(inner)), schema=inner_schema)
    top = dag.insert_between(below, reveal, Project(outer, text=render_exprs(outer)), schema)
    for key, value in dag.g.nodes[below].items():
        if key not in ("op", "schema"):
            dag.set(top, **{key: dict(value) if isinstance(value, dict) else value})


def _root_arg(e: exp.Expression) -> exp.Expression | None:
    while isinstance(e, exp.Paren):
        e = e.this
    return e.this if isinstance(e, exp.Sqrt) else None


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
