"""GROUP BY and aggregate functions: a projection computing keys and arguments, then an Aggregate.

    SELECT zone + 1 AS z, SUM(fare * 2) FROM t GROUP BY 1 HAVING COUNT(*) > 1

lowers to Project(__key0 = t.zone + 1, __arg1 = t.fare * 2) -> Aggregate(keys __key0; __agg2 =
sum(__arg1), __agg3 = count_star), and a `GroupedRewrite` turns the select list, HAVING and
ORDER BY into expressions over the aggregate's columns (`__key0`, `__agg2`, `__agg3 > 1`).
"""

from __future__ import annotations

from sqlglot import exp

from .. import sqltypes
from ..errors import SchemaError, SqlError, UnsupportedError
from ..ir.dag import AggCall, Aggregate, Field, Project, col
from .context import Ctes, LoweringContext
from .grouping_sets import grouping_sets, union_of_groupings
from .ordered_sets import ordered_set_calls, window_ordered_sets
from .subqueries import attach_subqueries
from .trees import SUBQUERY_TABLE, aggregates_in, has_aggregate, internal_name, render_projection

# Aggregate functions we lower, by sqlglot class.
AGGREGATES = {
    exp.Sum: "sum", exp.Count: "count", exp.Avg: "avg", exp.Min: "min", exp.Max: "max",
    exp.Stddev: "stddev_samp", exp.StddevSamp: "stddev_samp", exp.StddevPop: "stddev_pop",
    exp.Variance: "var_samp", exp.VariancePop: "var_pop",
}
# the aggregates whose argument must be a number
NUMERIC_AGGREGATES = ("sum", "avg", "stddev_samp", "stddev_pop", "var_samp", "var_pop")


def lower_aggregate(ctx: LoweringContext, node: int, select: exp.Select,
                    outputs: list[exp.Expression], sources: list[exp.Expression], ctes: Ctes
                    ) -> tuple[int, "GroupedRewrite"]:
    """The Aggregate of a SELECT with GROUP BY or aggregates over the rows of `node`, and the
    rewrite of `sources` (select list, HAVING, ORDER BY expressions) over its output."""
    group = select.args.get("group")
    sets = grouping_sets(ctx, group)  # GROUPING SETS / ROLLUP / CUBE, else None
    for e in sources:  # scalar subqueries inside aggregate arguments join below the GROUP BY
        for a in aggregates_in(e):
            node = attach_subqueries(ctx, node, a, ctes)
        for g in e.find_all(exp.Grouping):
            raise ctx.error(UnsupportedError, "GROUPING() (write the grouping sets' keys, "
                                              "which are NULL where rolled up)", g)
    calls = ordered_set_calls(ctx, sources)
    if calls:  # MEDIAN / PERCENTILE_*: a window per group, then MAX of it (ordered_sets.py)
        if sets is not None:
            raise ctx.error(UnsupportedError, "MEDIAN / PERCENTILE with GROUPING SETS, "
                                              "ROLLUP or CUBE", calls[0])
        partition = [ctx.row_expr(_group_item(ctx, node, g, outputs), node, "GROUP BY")
                     for g in (group.expressions if group is not None else [])]
        node = window_ordered_sets(ctx, node, calls, partition, outputs, sources)
    pre = PreProjection(ctx, node)
    if sets is not None:
        group_exprs = [g for s in sets for g in s]
    else:
        group_exprs = list(group.expressions) if group is not None else []
    key_cols, group_sql = _group_keys(ctx, pre, group_exprs, outputs)
    aggs, agg_names = _aggregate_calls(ctx, pre, sources)
    below = pre.add()
    types = ctx.dag.types(below)
    out_fields = [Field(k, types[k]) for k in key_cols] + \
        [Field(a.name, agg_type(a.func, types.get(a.arg))) for a in aggs]
    if sets is None:
        node = ctx.dag.add(Aggregate(tuple(key_cols), tuple(aggs)), out_fields, [below])
    else:
        set_keys = [_group_keys(ctx, pre, s, outputs)[0] for s in sets]
        node = union_of_groupings(ctx, below, set_keys, key_cols, aggs, out_fields)
    for e in sources:
        node = attach_subqueries(ctx, node, e, ctes)
    return node, GroupedRewrite(ctx, pre.node, agg_names, group_sql, key_cols)


class PreProjection:
    """The columns computed below the Aggregate (its keys and arguments), one per distinct
    expression; a plain column reference keeps its name."""

    def __init__(self, ctx: LoweringContext, node: int) -> None:
        self.ctx, self.node = ctx, node
        self.exprs: list[tuple[str, exp.Expression]] = []
        self.names: dict[str, str] = {}  # sql of a lowered expression -> its column

    def column(self, e: exp.Expression, prefix: str, clause: str) -> str:
        """The column that will hold `e` (lowered against the input rows)."""
        lowered = self.ctx.row_expr(e, self.node, clause)
        key = lowered.sql()
        if key not in self.names:
            name = lowered.name if isinstance(lowered, exp.Column) else \
                self.ctx.fresh_name(prefix)
            self.names[key] = name
            self.exprs.append((name, lowered))
        return self.names[key]

    def add(self) -> int:
        """The input rows with the columns computed (at the end), or the input itself when
        there are none."""
        if not self.exprs:
            return self.node
        dag = self.ctx.dag
        in_types = dag.types(self.node)
        computed = {n for n, _ in self.exprs}
        kept = [f for f in dag.schema(self.node) if f.name not in computed]
        fields = kept + [Field(n, self.ctx.type_of(e, in_types, n)) for n, e in self.exprs]
        exprs = tuple((f.name, col(f.name)) for f in kept) + tuple(self.exprs)
        return dag.add(Project(exprs, render_projection(self.exprs)), fields, [self.node])


def _group_keys(ctx: LoweringContext, pre: PreProjection, group_exprs: list[exp.Expression],
                outputs: list[exp.Expression]) -> tuple[list[str], dict[str, str]]:
    """The key columns (in order, each once) and {sql of a lowered GROUP BY expression: its
    key column}."""
    key_cols, resolved = [], []
    for g in group_exprs:
        g = _group_item(ctx, pre.node, g, outputs)
        if has_aggregate(g):
            raise ctx.error(SchemaError, "aggregate function in GROUP BY", g)
        resolved.append(g)
        key_cols.append(pre.column(g, "key", "GROUP BY"))
    group_sql = {ctx.row_expr(g, pre.node, "GROUP BY").sql(): c
                 for g, c in zip(resolved, key_cols)}
    return list(dict.fromkeys(key_cols)), group_sql


def _group_item(ctx: LoweringContext, node: int, g: exp.Expression,
                outputs: list[exp.Expression]) -> exp.Expression:
    """What a GROUP BY item groups by: a select-list position, an output alias (an input
    column of the same name wins), or the expression itself."""
    if isinstance(g, exp.Literal) and not g.is_string:
        k = int(g.this)
        if not 1 <= k <= len(outputs):
            raise ctx.error(SchemaError, f"GROUP BY position {k} is not in the select list", g)
        return outputs[k - 1].unalias()
    if isinstance(g, exp.Column) and not g.table:
        try:
            ctx.row_expr(g, node, "GROUP BY", check=False)
        except SqlError:
            alias = next((o for o in outputs if isinstance(o, exp.Alias)
                          and o.alias.lower() == g.name.lower()), None)
            if alias is not None:
                return alias.unalias()
    return g


def _aggregate_calls(ctx: LoweringContext, pre: PreProjection, sources: list[exp.Expression]
                     ) -> tuple[list[AggCall], dict[str, str]]:
    """One AggCall per distinct aggregate call in `sources`, and {its sql: its column}."""
    in_types = ctx.dag.types(pre.node)
    aggs: list[AggCall] = []
    agg_names: dict[str, str] = {}
    for e in sources:
        for a in aggregates_in(e):
            sig = a.sql()
            if sig in agg_names:
                continue
            func, arg_col = _aggregate_call(ctx, pre, a, in_types)
            name = ctx.fresh_name("agg")
            agg_names[sig] = name
            aggs.append(AggCall(name, func, arg_col))
    return aggs, agg_names


def _aggregate_call(ctx: LoweringContext, pre: PreProjection, a: exp.Expression,
                    in_types: dict[str, str]) -> tuple[str, str | None]:
    """(function, argument column) of one aggregate call; the argument is a pre-projected
    column (None for COUNT(*))."""
    func = AGGREGATES.get(type(a))
    if func is None:
        raise ctx.error(UnsupportedError, f"aggregate function {a.key.upper()}", a)
    arg = a.this
    if isinstance(arg, exp.Distinct):
        if func != "count" or len(arg.expressions) != 1:
            raise ctx.error(UnsupportedError, "DISTINCT inside an aggregate other than"
                                              " COUNT(DISTINCT x)", a)
        arg = arg.expressions[0]
        func = "count_distinct"
    if isinstance(arg, exp.Star):
        return "count_star", None
    if has_aggregate(arg):
        raise ctx.error(SchemaError, "nested aggregate functions", a)
    arg_col = pre.column(arg, "arg", a.key.upper())
    t = ctx.type_of(ctx.row_expr(arg, pre.node, "aggregate"), in_types, a.key)
    if func in NUMERIC_AGGREGATES and not sqltypes.is_numeric(t):
        raise ctx.error(SchemaError, f"{a.key.upper()} of {t} (needs a number)", a)
    return func, arg_col


def agg_type(func: str, arg_type: str | None) -> str:
    """The type of an aggregate's result."""
    if func in ("count", "count_star", "count_distinct"):
        return "int"
    if func in ("avg", "var_samp", "var_pop", "stddev_samp", "stddev_pop"):
        return "float"
    if func == "sum" and arg_type and arg_type.startswith("decimal"):
        return f"decimal(38,{sqltypes.decimal_scale(arg_type)})"
    return arg_type or "int"


class GroupedRewrite:
    """An expression of the select list, HAVING or ORDER BY over the Aggregate's output:
    aggregate calls become their columns, GROUP BY expressions their key columns; any other
    column of the input is an error (it must appear in GROUP BY)."""

    def __init__(self, ctx: LoweringContext, base: int, agg_names: dict[str, str],
                 group_sql: dict[str, str], key_cols: list[str]) -> None:
        self.ctx, self.base = ctx, base  # base: the rows being grouped
        self.agg_names, self.group_sql = agg_names, group_sql
        self.key_columns = set(key_cols) | set(group_sql.values())

    def __call__(self, e: exp.Expression, clause: str) -> exp.Expression:
        out = e.copy().transform(lambda x: self._swap(x, clause))
        self.ctx.check_expression(out, clause)
        return out

    def _swap(self, x: exp.Expression, clause: str) -> exp.Expression:
        if isinstance(x, exp.AggFunc):
            return col(self.agg_names[x.sql()])
        if not isinstance(x, exp.Column) and x.find(exp.Column) is not None:
            try:
                lowered = self.ctx.row_expr(x, self.base, clause, check=False)
            except SqlError:
                return x
            if lowered.sql() in self.group_sql:
                return col(self.group_sql[lowered.sql()])
        if isinstance(x, exp.Column):
            return self._column(x)
        return x

    def _column(self, x: exp.Column) -> exp.Expression:
        if x.table == SUBQUERY_TABLE:
            return col(x.name)
        name = internal_name(x)
        if name in self.key_columns:
            return col(name)
        lowered = col(name).sql()
        if lowered in self.group_sql:
            return col(self.group_sql[lowered])
        raise self.ctx.error(SchemaError, f"column {x.sql()} must appear in GROUP BY or "
                                          f"be used in an aggregate function", x)
