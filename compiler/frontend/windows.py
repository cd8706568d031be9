"""Window functions (`f(...) OVER (PARTITION BY ... ORDER BY ... [frame])`) as a Window operator.

Windows are computed after WHERE, GROUP BY and HAVING and before DISTINCT, ORDER BY and
LIMIT: over the rows the select list reads. Each window of the select list and ORDER BY
becomes one column `__winN` of a Window node above those rows (its function's arguments,
partition and order keys lowered like any expression there: over the input rows, or over the
groups' keys and aggregates), and the window is replaced by a reference to that column.

A Window runs in the local job of the party whose rows it reads, where the engine computes it
(the SQL is transpiled to the engine's dialect). Over rows of several parties it runs inside
MPC when the secure backend has it (ROW_NUMBER, RANK, DENSE_RANK, LAG, LEAD, SUM, COUNT, AVG,
MIN, MAX over column keys and frames from UNBOUNDED PRECEDING: analyses/secure_windows.py;
AVG(x) OVER w is computed as SUM(x) OVER w / COUNT(x) OVER w); otherwise the plan is
refused, naming the function and its position (passes/refuse_secure_windows.py).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from .. import sqltypes
from ..errors import SchemaError, UnsupportedError
from ..ir.dag import Field, Window
from .aggregates import GroupedRewrite
from .context import LoweringContext
from .parse import node_position
from .trees import SUBQUERY_TABLE, render_projection

# window functions sqlmpc compiles -> the type of their result (None: their argument's type)
RANKING = {exp.RowNumber: "int", exp.Rank: "int", exp.DenseRank: "int", exp.Ntile: "int",
           exp.PercentRank: "float", exp.CumeDist: "float"}
AGGREGATING = {exp.Sum: "sum", exp.Avg: "float", exp.Count: "int", exp.Min: None,
               exp.Max: None}
OFFSETS = {exp.Lag: None, exp.Lead: None, exp.FirstValue: None, exp.LastValue: None}
# lowers an expression over the rows the select list reads
Rewrite = Callable[[exp.Expression, str], exp.Expression]


def lower_windows(ctx: LoweringContext, node: int, outputs: list[exp.Expression],
                  order_items: list[exp.Ordered], rewrite: Rewrite) -> tuple[int, Rewrite]:
    """A Window node above `node` computing the windows of `outputs` and `order_items`
    (replaced in place by references to its columns), and the rewrite over its rows; `node`
    and `rewrite` unchanged when there is no window."""
    _averages_as_sums(outputs, order_items)
    windows = [w for e in outputs + [o.this for o in order_items] for w in _windows_in(e)]
    if not windows:
        return node, rewrite
    exprs, fields, seen = [], list(ctx.dag.schema(node)), {}
    for w in windows:
        lowered = _lower_window(ctx, w, rewrite)
        key = lowered.sql()
        if key not in seen:
            name = ctx.fresh_name("win")
            seen[key] = name
            exprs.append((name, lowered))
            fields.append(_field(ctx, name, lowered, w, node))
        ref = exp.Column(this=exp.Identifier(this=seen[key], quoted=True),
                         table=exp.Identifier(this=SUBQUERY_TABLE))
        if any(w is o for o in outputs):  # a bare window keeps its function's name
            i = next(i for i, o in enumerate(outputs) if o is w)
            outputs[i] = exp.alias_(ref, w.this.key.lower())
        else:
            w.replace(ref)
    pos = node_position(windows[0], ctx.sql)
    op = Window(tuple(exprs), render_projection(exprs), (pos.get("line"), pos.get("col")))
    out = ctx.dag.add(op, fields, [node])
    if isinstance(rewrite, GroupedRewrite):  # it maps SUBQUERY_TABLE columns to their names
        return out, rewrite

    def rewrite_rows(e: exp.Expression, clause: str, _n: int = out) -> exp.Expression:
        return ctx.row_expr(e, _n, clause)
    return out, rewrite_rows


def _averages_as_sums(outputs: list[exp.Expression], order_items: list[exp.Ordered]) -> None:
    """AVG(x) OVER w becomes CAST(SUM(x) OVER w AS DOUBLE) / NULLIF(COUNT(x) OVER w, 0), in
    place: the same value (NULL without a non-NULL x), and SUM / COUNT OVER run in MPC too."""
    for i, e in enumerate(outputs + [o.this for o in order_items]):
        for w in [w for w in _windows_in(e) if isinstance(w.this, exp.Avg)]:
            total, count = w.copy(), w.copy()
            total.set("this", exp.Sum(this=w.this.this.copy()))
            count.set("this", exp.Count(this=w.this.this.copy()))
            avg = exp.Div(this=exp.Cast(this=total, to=exp.DataType.build("double")),
                          expression=exp.Nullif(this=count, expression=exp.Literal.number(0)))
            if w is e and i < len(outputs):  # a bare select-list item keeps its name
                outputs[i] = exp.alias_(avg, "avg")
            elif w is e:
                order_items[i - len(outputs)].set("this", avg)
            else:
                w.replace(avg)


def reject_misplaced_windows(ctx: LoweringContext, s: exp.Select) -> None:
    """Windows belong in the select list and ORDER BY only (WHERE, GROUP BY and HAVING come
    before them); QUALIFY is refused with the other clauses."""
    for key, what in (("where", "WHERE"), ("group", "GROUP BY"), ("having", "HAVING")):
        clause = s.args.get(key)
        for w in _windows_in(clause) if clause is not None else []:
            raise ctx.error(UnsupportedError, f"window function in {what} (filter on it in an "
                                              f"outer query)", w)


def _windows_in(e: exp.Expression) -> list[exp.Window]:
    """The windows of `e`, not looking into subqueries."""
    return [w for w in e.walk(prune=lambda n: isinstance(n, exp.Subquery))
            if isinstance(w, exp.Window)]


def _lower_window(ctx: LoweringContext, w: exp.Window, rewrite: Rewrite) -> exp.Window:
    """A copy of `w` with its function's arguments, partition and order keys lowered."""
    func = w.this
    if not isinstance(func, tuple(RANKING) + tuple(AGGREGATING) + tuple(OFFSETS)):
        what = func.sql_name() if isinstance(func, exp.Func) else func.key.upper()
        raise ctx.error(UnsupportedError, f"window function {what} "
                                          f"(supported: ROW_NUMBER, RANK, DENSE_RANK, NTILE, "
                                          f"PERCENT_RANK, CUME_DIST, SUM, AVG, COUNT, MIN, MAX, "
                                          f"LAG, LEAD, FIRST_VALUE, LAST_VALUE)", w)
    if any(isinstance(a, exp.Distinct) for a in func.iter_expressions()):
        raise ctx.error(UnsupportedError, "DISTINCT inside a window function", w)
    for x in w.find_all(exp.Window):
        if x is not w:
            raise ctx.error(UnsupportedError, "window function inside a window function", x)
    out = w.copy()
    f = out.this
    for key, value in list(f.args.items()):
        if isinstance(value, exp.Expression) and not isinstance(value, exp.Star):
            f.set(key, rewrite(value, "window function"))
    out.set("partition_by", [rewrite(p, "PARTITION BY") for p in w.args.get("partition_by")
                             or []])
    order = out.args.get("order")
    for o in order.expressions if order is not None else []:
        o.set("this", rewrite(o.this, "ORDER BY of a window"))
        # NULLs last, as sqlmpc's ORDER BY and the secure sort order them (and DuckDB by
        # default); sqlglot's own dialect would have made them first
        o.set("nulls_first", False)
    return out


def _field(ctx: LoweringContext, name: str, lowered: exp.Window, original: exp.Window,
           node: int) -> Field:
    """The output column of one window."""
    func = lowered.this
    cls = type(func)
    if cls in RANKING:
        return Field(name, RANKING[cls])
    if isinstance(func, exp.Count):
        return Field(name, "int")
    types = ctx.dag.types(node)
    arg = func.this
    t = ctx.type_of(arg, types, "window function", original=original) if arg is not None \
        else "int"
    if cls is exp.Sum:
        if not sqltypes.is_numeric(t):
            raise ctx.error(SchemaError, f"SUM of {t} (needs a number)", original)
        return Field(name, f"decimal(38,{sqltypes.decimal_scale(t)})"
                     if t.startswith("decimal") else t)
    return Field(name, t)

