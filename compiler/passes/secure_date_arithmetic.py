"""Date plus or minus a whole number of days, inside MPC, as integer arithmetic.

Inside MPC a date is its number of days since 1970-01-01, so `d + INTERVAL '7' DAY` is
`d + 7` (and a WEEK is 7 days). The local engines keep the SQL spelling (they know INTERVAL);
this pass rewrites only the filters and projections placed in MPC, after every pass that
moves them. Months and years have no fixed number of days: they stay as they are, and
analyses/secure_expressions refuses them there with its one-line reason.
"""

from __future__ import annotations

from sqlglot import exp

from ..ir.dag import SECURE, Dag, Filter, Project, render_exprs

DAYS = {"DAY": 1, "DAYS": 1, "WEEK": 7, "WEEKS": 7}


def secure_date_arithmetic(dag: Dag) -> Dag:
    dag = dag.copy()
    for node in dag.topo():
        if dag.attr(node, "placement") != SECURE:
            continue
        op = dag.op(node)
        if isinstance(op, Filter) and op.predicate.find(exp.Interval):
            pred = _days(op.predicate)
            dag.set(node, op=Filter(pred, pred.sql()))
        elif isinstance(op, Project) and any(e.find(exp.Interval) for _, e in op.exprs):
            exprs = tuple((n, _days(e)) for n, e in op.exprs)
            dag.set(node, op=Project(exprs, render_exprs(exprs)))
    return dag


def _days(e: exp.Expression) -> exp.Expression:
    """`e` with each `x +/- INTERVAL 'n' DAY|WEEK` as `x +/- n*days`."""
    def swap(x: exp.Expression) -> exp.Expression:
        if isinstance(x, (exp.Add, exp.Sub)) and isinstance(x.expression, exp.Interval):
            days = _interval_days(x.expression)
            if days is not None:
                out = type(x)(this=x.this, expression=exp.Literal.number(days))
                out.meta.update(x.meta)
                return out
        return x
    return e.copy().transform(swap)


def _interval_days(interval: exp.Interval) -> int | None:
    """The whole number of days of `INTERVAL 'n' DAY` (or WEEK), else None."""
    unit = interval.args.get("unit")
    amount = interval.this
    if unit is None or not isinstance(amount, exp.Literal):
        return None
    per = DAYS.get(unit.name.upper())
    text = amount.this.strip()
    if per is None or not text.lstrip("-").isdigit():
        return None
    return int(text) * per
