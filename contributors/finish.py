"""Finish the analytic's last projection in the clear when its inputs tell the recipients
nothing more than its outputs (contributor mode).

After the suppressed GROUP BY, the analytic usually computes per cell columns such as
AVG = SUM / COUNT and VAR_POP = (SUM(x*x) - SUM^2 / COUNT) / COUNT (STDDEV_POP is its square
root, already taken after the reveal). Inside MPC these are secure divisions, each tens of
rounds, and overflow checks. When that projection's inputs (the cells' sums and counts) are
a function of its outputs, revealing the inputs instead and computing the projection at the
recipients reveals exactly as much, and MPC does none of it.

When an input column counts as determined by the outputs (applied to a fixpoint):

- it is copied unchanged to an output column;
- it is COUNT(*) or COUNT(x) of a column x that is never NULL (a contributors' column as
  submitted: contributor mode has no NULLs), and another such count is determined: all of
  them equal the cell's number of rows;
- it is Q in an output (Q - X) / NULLIF(N, 0) (casts and parentheses aside), with X made of
  determined columns and N such a row count: Q = output * N + X, since every revealed cell
  has at least one row (it has at least min_contributors >= 1 contributors).

Only a projection right below the reveal and right above the aggregate moves (no HAVING or
LIMIT between: those decide which cells are opened, so they stay in MPC). Suppressed cells
are never opened, so nothing is ever computed in the clear from them.
"""

from __future__ import annotations

from sqlglot import exp

from ..compiler.ir.dag import (
    RECIPIENT,
    SECURE,
    Aggregate,
    Dag,
    Field,
    Project,
    Reveal,
    referenced_columns,
)

__all__ = ["finish_in_clear"]


def finish_in_clear(dag: Dag, agg: int, never_null: set[str]) -> bool:
    """Move the projection between the aggregate `agg` and the reveal after the reveal when
    the recipients learn nothing more (see the module docstring); whether it moved.
    ``never_null``: the aggregate's input columns that are never NULL."""
    reveals = [n for n in dag.topo() if isinstance(dag.op(n), Reveal)
               and dag.attr(n, "placement") == SECURE]
    if len(reveals) != 1:
        return False
    (reveal,) = reveals
    (top,) = dag.inputs(reveal)
    op = dag.op(top)
    if not isinstance(op, Project) or dag.inputs(top) != [agg] or \
            len(dag.consumers(top)) != 1 or len(dag.consumers(agg)) != 1:
        return False
    used = set().union(*(referenced_columns(e) for _, e in op.exprs))
    if not used <= determined(op, dag.op(agg), never_null):
        return False
    (after,) = dag.consumers(reveal)
    dag.replace_input(reveal, top, agg)
    dag.replace_input(after, reveal, top)
    dag.replace_input(top, agg, reveal)
    # a part the projection reads only as CAST(part AS DOUBLE) is revealed as a float, as
    # it would have been converted first (the recipients' arithmetic mixes no Decimals in)
    floats = _read_as_double(op)
    schema = tuple(Field(f.name, "float") if f.name in floats else f for f in dag.schema(agg))
    dag.set(reveal, schema=schema, trust=dict(dag.attr(agg, "trust") or {}))
    dag.set(top, placement=RECIPIENT)
    dag.check()
    return True


def determined(project: Project, agg: Aggregate, never_null: set[str]) -> set[str]:
    """The aggregate's output columns that the projection's outputs determine."""
    calls = {a.name: a for a in agg.aggs}

    def row_count(name: str) -> bool:
        a = calls.get(name)
        return a is not None and (a.func == "count_star" or
                                  (a.func == "count" and a.arg in never_null))

    known = {_bare(e).name for _, e in project.exprs if isinstance(_bare(e), exp.Column)}
    grew = True
    while grew:
        before = len(known)
        if any(row_count(c) for c in known):
            known |= {c for c in calls if row_count(c)}
        for _, e in project.exprs:
            q = _solved(e, known, row_count)
            if q is not None:
                known.add(q)
        grew = len(known) > before
    return known


def _solved(e: exp.Expression, known: set[str], row_count) -> str | None:
    """Q when e is (Q - X) / NULLIF(N, 0) with Q unknown, X known and N a known row count."""
    e = _bare(e)
    if not isinstance(e, exp.Div):
        return None
    divisor = _bare(e.expression)
    if not (isinstance(divisor, exp.Nullif) and isinstance(_bare(divisor.this), exp.Column)
            and _is_zero(divisor.expression)):
        return None
    n = _bare(divisor.this).name
    if n not in known or not row_count(n):
        return None
    num = _bare(e.this)
    if not isinstance(num, exp.Sub):
        return None
    q, rest = _bare(num.this), num.expression
    if not isinstance(q, exp.Column) or q.name in known:
        return None
    return q.name if referenced_columns(rest) <= known else None


def _read_as_double(project: Project) -> set[str]:
    """The columns every occurrence of which in the projection is CAST(column AS DOUBLE)."""
    cast, other = set(), set()
    for _, e in project.exprs:
        for c in e.find_all(exp.Column):
            parent = c.parent
            while isinstance(parent, exp.Paren):
                parent = parent.parent
            is_cast = isinstance(parent, exp.Cast) and parent.to.this == exp.DataType.Type.DOUBLE
            (cast if is_cast else other).add(c.name)
    return cast - other


def _bare(e: exp.Expression) -> exp.Expression:
    """e without the parentheses and the casts to a number type around it."""
    numbers = (exp.DataType.Type.DOUBLE, exp.DataType.Type.DECIMAL)
    while isinstance(e, exp.Paren) or (isinstance(e, exp.Cast) and e.to.this in numbers):
        e = e.this
    return e


def _is_zero(e: exp.Expression) -> bool:
    e = _bare(e)
    return isinstance(e, exp.Literal) and not e.is_string and float(e.this) == 0
