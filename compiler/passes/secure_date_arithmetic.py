"""Date plus or minus an INTERVAL of days or months, inside MPC, as the secure forms.

Inside MPC a date is its number of days since 1970-01-01, so `d + INTERVAL '7' DAY` is
`d + 7` (and a WEEK is 7 days). Months and years have no fixed number of days:
`d + INTERVAL 'n' MONTH` (QUARTER: 3 n months, YEAR: 12 n) becomes `ADD_MONTHS(d, n)`, which
the secure backend computes through the calendar (backends/mpyc/lib/dates.py: the day clamped
to the target month's last day, as DuckDB does). The local engines keep the SQL spelling
(they know INTERVAL); this pass rewrites only the filters and projections placed in MPC,
after every pass that moves them. Anything else with an INTERVAL stays as it is, and
analyses/secure_expressions refuses it there with its one-line reason.
"""

from __future__ import annotations

from sqlglot import exp

from ..analyses.secure_expressions import MONTH_UNITS
from ..ir.dag import SECURE, Dag, Filter, Project, render_exprs

DAYS = {"DAY": 1, "DAYS": 1, "WEEK": 7, "WEEKS": 7}


def secure_date_arithmetic(dag: Dag) -> Dag:
    dag = dag.copy()
    for node in dag.topo():
        if dag.attr(node, "placement") != SECURE:
            continue
        op = dag.op(node)
        if isinstance(op, Filter) and op.predicate.find(exp.Interval):
            pred = _rewrite(op.predicate)
            dag.set(node, op=Filter(pred, pred.sql()))
        elif isinstance(op, Project) and any(e.find(exp.Interval) for _, e in op.exprs):
            exprs = tuple((n, _rewrite(e)) for n, e in op.exprs)
            dag.set(node, op=Project(exprs, render_exprs(exprs)))
    return dag


def _rewrite(e: exp.Expression) -> exp.Expression:
    """`e` with each `x +/- INTERVAL 'n' DAY|WEEK` as `x +/- n*days` and each
    `x +/- INTERVAL 'n' MONTH|QUARTER|YEAR` as `ADD_MONTHS(x, +/-months)` (an INTERVAL
    first, `INTERVAL 'n' DAY + x`, too)."""
    def swap(x: exp.Expression) -> exp.Expression:
        if not isinstance(x, (exp.Add, exp.Sub)):
            return x
        date, interval = x.this, x.expression
        if isinstance(x, exp.Add) and isinstance(date, exp.Interval) and \
                not isinstance(interval, exp.Interval):
            date, interval = interval, date
        if not isinstance(interval, exp.Interval):
            return x
        amount = _interval_amount(interval)
        if amount is None:
            return x
        count, unit = amount
        sign = -1 if isinstance(x, exp.Sub) else 1
        if unit in DAYS:
            out = type(x)(this=date, expression=exp.Literal.number(count * DAYS[unit]))
        else:
            months = exp.Literal.number(sign * count * MONTH_UNITS[unit])
            out = exp.AddMonths(this=date, expression=months)
        out.meta.update(x.meta)
        return out
    return e.copy().transform(swap)


def _interval_amount(interval: exp.Interval) -> tuple[int, str] | None:
    """(n, unit) of `INTERVAL 'n' unit` for a whole n and a unit of days or months."""
    unit = interval.args.get("unit")
    amount = interval.this
    if unit is None or not isinstance(amount, exp.Literal):
        return None
    name = unit.name.upper()
    text = str(amount.this).strip()
    if (name not in DAYS and name not in MONTH_UNITS) or not text.lstrip("-").isdigit():
        return None
    return int(text), name
