"""MEDIAN, PERCENTILE_CONT and PERCENTILE_DISC (ordered-set aggregates) through a window.

`SELECT k, MEDIAN(x) FROM t GROUP BY k` is computed as `MAX(m)` per k over the rows of
`MEDIAN(x) OVER (PARTITION BY k) AS m`: every row of a group carries its group's median, so
the MAX of a group is the median (NULL when all of x is NULL, and over no rows). The Window
runs in the local job of the party whose rows it reads (the SQL is transpiled: DuckDB's
QUANTILE_CONT / QUANTILE_DISC; the Spark engine refuses it: Spark's form is approximate);
over rows of several parties it runs in MPC as one secure sort by (group keys, value) and an
oblivious selection per group (backends/mpyc/lib/window.py); group keys other than columns
are refused there (passes/refuse_secure_windows.py). The MAX splits like any other
aggregate.
"""

from __future__ import annotations

from sqlglot import exp

from .. import sqltypes
from ..errors import SchemaError, UnsupportedError
from ..ir.dag import Field, Project, Window, col, render_exprs
from .context import LoweringContext
from .parse import node_position
from .trees import SUBQUERY_TABLE, aggregates_in, render_projection

PERCENTILES = (exp.PercentileCont, exp.PercentileDisc)


def ordered_set_calls(ctx: LoweringContext, sources: list[exp.Expression]
                      ) -> list[exp.Expression]:
    """The MEDIAN(x) and PERCENTILE_...(p) WITHIN GROUP (ORDER BY x) calls of `sources`."""
    found = []
    for e in sources:
        for a in aggregates_in(e):
            if isinstance(a, exp.Median):
                found.append(a)
            elif isinstance(a, PERCENTILES) and isinstance(a.parent, exp.WithinGroup):
                found.append(a.parent)
            elif isinstance(a, PERCENTILES):
                raise ctx.error(UnsupportedError, f"{a.sql_name()} without WITHIN GROUP "
                                                  f"(ORDER BY ...)", a)
    return found


def window_ordered_sets(ctx: LoweringContext, node: int, calls: list[exp.Expression],
                        partition: list[exp.Expression], outputs: list[exp.Expression],
                        sources: list[exp.Expression]) -> int:
    """A Window above `node` computing each call over the rows of its group (`partition`:
    the lowered GROUP BY expressions); each call is replaced, in place and in the lists
    `outputs` and `sources`, by MAX of its window column."""
    types = ctx.dag.types(node)
    args = []  # (function, its lowered argument, its type) per call
    for call in calls:
        func, arg = _function_and_argument(ctx, call)
        lowered_arg = ctx.row_expr(arg, node, func.sql_name())
        t = ctx.type_of(lowered_arg, types, func.sql_name(), original=arg)
        if not sqltypes.is_numeric(t) and not isinstance(func, exp.PercentileDisc):
            raise ctx.error(SchemaError, f"{func.sql_name()} of {t} (needs a number)", call)
        args.append((func, lowered_arg, t))
    node, partition = _argument_columns(ctx, node, args, partition)
    exprs, fields = [], list(ctx.dag.schema(node))
    for call, (func, lowered_arg, t) in zip(calls, args):
        inner = call.copy()
        if isinstance(inner, exp.Median):
            inner.set("this", lowered_arg)
        else:
            inner.expression.expressions[0].set("this", lowered_arg)
        name = ctx.fresh_name("pct")
        window = exp.Window(this=inner, partition_by=[p.copy() for p in partition])
        exprs.append((name, window))
        fields.append(Field(name, t if isinstance(func, exp.PercentileDisc) else "float"))
        ref = exp.Max(this=exp.Column(this=exp.Identifier(this=name, quoted=True),
                                      table=exp.Identifier(this=SUBQUERY_TABLE)))
        _replace(call, ref, outputs, sources)
    pos = node_position(calls[0], ctx.sql)
    op = Window(tuple(exprs), render_projection(exprs), (pos.get("line"), pos.get("col")))
    return ctx.dag.add(op, fields, [node])


def _argument_columns(ctx: LoweringContext, node: int, args: list,
                      partition: list[exp.Expression]) -> tuple[int, list[exp.Expression]]:
    """A projection above `node` computing each argument and group key that is not a plain
    column (a secure window sorts by columns: MEDIAN(CAST(x AS DOUBLE)) ... GROUP BY
    YEAR(d) sorts by two new columns); the arguments in `args` replaced by their columns,
    and the group keys as columns. `node` and `partition` as they are when all are columns."""
    computed = [(i, ctx.fresh_name("pctarg")) for i, (_, a, _) in enumerate(args)
                if not isinstance(a, exp.Column)]
    keys = [(k, ctx.fresh_name("pctkey")) for k in partition if not isinstance(k, exp.Column)]
    if not computed and not keys:
        return node, partition
    types = ctx.dag.types(node)
    passed = [(n, col(n)) for n in ctx.dag.names(node)]
    extra = [(name, args[i][1]) for i, name in computed] + [(name, k) for k, name in keys]
    fields = list(ctx.dag.schema(node)) + [Field(name, args[i][2]) for i, name in computed] + \
        [Field(name, ctx.type_of(k, types, "GROUP BY")) for k, name in keys]
    for i, name in computed:
        func, _, t = args[i]
        args[i] = (func, col(name), t)
    renamed = {id(k): col(name) for k, name in keys}
    exprs = tuple(passed + extra)
    node = ctx.dag.add(Project(exprs, render_exprs(exprs)), fields, [node])
    return node, [renamed.get(id(k), k) for k in partition]


def _function_and_argument(ctx: LoweringContext, call: exp.Expression
                           ) -> tuple[exp.Expression, exp.Expression]:
    """(the function node, the value it orders) of one call; a percentile's fraction must
    be a number literal between 0 and 1."""
    if isinstance(call, exp.Median):
        return call, call.this
    func, order = call.this, call.expression
    items = order.expressions if isinstance(order, exp.Order) else []
    if len(items) != 1:
        raise ctx.error(UnsupportedError, f"{func.sql_name()} ordered by other than one "
                                          f"value", call)
    p = func.this
    if not (isinstance(p, exp.Literal) and not p.is_string and 0 <= float(p.this) <= 1):
        raise ctx.error(UnsupportedError, f"{func.sql_name()} fraction other than a number "
                                          f"between 0 and 1", call)
    return func, items[0].this


def _replace(call: exp.Expression, ref: exp.Expression, outputs: list[exp.Expression],
             sources: list[exp.Expression]) -> None:
    """`ref` takes `call`'s place in its tree; a call that is a whole select-list item keeps
    its output name."""
    for items in (outputs, sources):
        for i, e in enumerate(items):
            if e is call:
                func = call if isinstance(call, exp.Func) else call.this
                items[i] = exp.alias_(ref.copy(), func.sql_name().lower()) \
                    if items is outputs else ref.copy()
    if call.parent is not None:
        call.replace(ref)
