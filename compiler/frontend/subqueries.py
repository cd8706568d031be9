"""Subqueries: scalar subqueries become cross joins with their one row; `[NOT] IN (SELECT ...)`
and `[NOT] EXISTS (SELECT ...)` terms of WHERE become semi-joins (anti-joins).

An uncorrelated scalar subquery must be one aggregate row. An IN / EXISTS subquery may be
correlated through `inner.column = outer.column` terms of its own WHERE: each such term becomes
one more key pair of the semi-join; one more `inner.a <> outer.b` (or <, >, ...) term and a
WHERE comparison with a correlated scalar subquery are decorrelated into joins with grouped
rows (decorrelate.py).
"""

from __future__ import annotations

from sqlglot import exp

from ..errors import SchemaError, UnsupportedError
from ..ir.dag import Field, Join, Project, SemiJoin, col
from .context import Ctes, LoweringContext
from .decorrelate import (
    correlation_terms,
    extremes_select,
    has_correlated_scalar,
    join_correlated_scalars,
    join_grouped,
    outer_test,
    reject_outer,
    semi_join_by_extremes,
    top_subqueries,
)
from .trees import SUBQUERY_TABLE, from_sources, has_aggregate, internal_name, render_projection
from .typecheck import comparable

SEMI_POSITION = "here: only as a condition of WHERE on its own or joined to others by AND"
# (outer internal column, the subquery's output column it equals)
CorrelationPairs = list[tuple[str, str]]


def attach_subqueries(ctx: LoweringContext, node: int, e: exp.Expression, ctes: Ctes) -> int:
    """Cross-join each uncorrelated scalar subquery in `e`; it becomes a column `__sqN` (and
    `e` refers to it as SUBQUERY_TABLE.__sqN); the same subquery written twice in `e` is
    computed once (both are that column), unless it may give another value each time
    (RANDOM(), UUID()). A correlated one (select list, HAVING, ...) is left-joined grouped
    by its correlation (decorrelate.py)."""
    attached: dict[str, str] = {}  # a subquery's SQL -> the column it became here
    for sub in top_subqueries(e):  # a subquery's own FROM subqueries are its business
        if isinstance(sub.parent, exp.In):
            raise ctx.error(UnsupportedError, f"IN (subquery) {SEMI_POSITION}", sub.parent)
        if _correlated(ctx, node, sub):
            node = join_grouped(ctx, node, sub, ctes, outer=True)
            continue
        _check_scalar(sub, ctx)
        key = sub.this.sql()
        if key in attached:
            sub.replace(_subquery_column(attached[key]))
            continue
        sq = ctx.query(sub.this, ctes)
        if len(ctx.dag.schema(sq)) != 1:
            raise ctx.error(SchemaError, "scalar subquery must return one column", sub)
        name = ctx.fresh_name("sq")
        f = ctx.dag.schema(sq)[0]
        renamed = ctx.dag.add(Project(((name, col(f.name)),), name), [Field(name, f.sql_type)],
                              [sq])
        fields = ctx.dag.schema(node) + (Field(name, f.sql_type),)
        node = ctx.dag.add(Join((), ()), fields, [node, renamed])
        if not any(isinstance(x, VOLATILE) for x in sub.this.walk()):
            attached[key] = name
        sub.replace(_subquery_column(name))
    for e2 in e.find_all(exp.Exists):
        raise ctx.error(UnsupportedError, f"EXISTS (subquery) {SEMI_POSITION}", e2)
    return node


#: functions that may give another value at each call: a subquery holding one is not shared
VOLATILE = (exp.Rand, exp.Uuid, exp.CurrentTimestamp)


def _subquery_column(name: str) -> exp.Column:
    return exp.Column(this=exp.Identifier(this=name, quoted=True),
                      table=exp.Identifier(this=SUBQUERY_TABLE))


def _check_scalar(sub: exp.Subquery, ctx: LoweringContext) -> None:
    """An uncorrelated scalar subquery is one aggregate row."""
    inner = sub.this
    if not isinstance(inner, exp.Select) or inner.args.get("group") is not None or not \
            any(has_aggregate(x) for x in inner.expressions):
        raise ctx.error(UnsupportedError, "scalar subquery that is not a single aggregate "
                                          "(one row: an aggregate without GROUP BY)", sub)


def _correlated(ctx: LoweringContext, node: int, sub: exp.Subquery) -> bool:
    """Whether the scalar subquery reads a column of `node`'s rows (the outer query)."""
    inner = sub.this
    if not isinstance(inner, exp.Select):
        return False
    own = {src.alias_or_name.lower() for src in from_sources(inner)}
    outer_names = set(ctx.dag.names(node))
    return any(c.table and c.table.lower() not in own and internal_name(c) in outer_names
               for c in inner.find_all(exp.Column))


def semi_term(e: exp.Expression) -> tuple[bool, exp.Expression] | None:
    """(negated, the IN / EXISTS node) when `e` is `[NOT] x IN (SELECT ...)` or
    `[NOT] EXISTS (SELECT ...)`; (False, e) when `e` holds a correlated scalar subquery (it
    joins too); else None."""
    anti = False
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, exp.Not):
        anti, e = True, e.this
        while isinstance(e, exp.Paren):
            e = e.this
    if isinstance(e, exp.In) and e.args.get("query") is not None:
        return anti, e
    if isinstance(e, exp.Exists):
        return anti, e
    if not anti and has_correlated_scalar(e):
        return False, e
    return None


def semi_join(ctx: LoweringContext, node: int, term: exp.Expression, ctes: Ctes) -> int:
    """Lower one WHERE term `[NOT] x IN (SELECT ...)` or `[NOT] EXISTS (SELECT ...)`, or a
    comparison with a correlated scalar subquery."""
    anti, pred = semi_term(term)
    if not isinstance(pred, (exp.In, exp.Exists)):
        node = join_correlated_scalars(ctx, node, pred, ctes)
        node = attach_subqueries(ctx, node, pred, ctes)
        cond = ctx.row_expr(pred, node, "WHERE")
        ctx.require_bool(cond, pred, node, "WHERE")
        return ctx.add_filter(node, cond)
    if isinstance(pred, exp.In):
        query = pred.args["query"]
        inner = query.this if isinstance(query, exp.Subquery) else query
        lhs = list(pred.this.expressions) if isinstance(pred.this, exp.Tuple) else [pred.this]
    else:
        inner = pred.this.this if isinstance(pred.this, exp.Subquery) else pred.this
        lhs = []
    inner, pairs, other = split_correlation(ctx, inner, node, keep_select=bool(lhs))
    if other is not None and anti and lhs:
        raise ctx.error(UnsupportedError, "NOT IN with a correlation other than "
                                          "inner.column = outer.column", other.term)
    right = ctx.query(inner, ctes)
    rnames = ctx.dag.names(right)[:-2] if other is not None else ctx.dag.names(right)
    if lhs and len(rnames) - len(pairs) != len(lhs):
        raise ctx.error(SchemaError, f"IN compares {len(lhs)} value(s) with a subquery of "
                                     f"{len(rnames) - len(pairs)} column(s)", pred)
    node, lkeys = _compared_columns(ctx, node, lhs)
    lkeys += [outer for outer, _ in pairs]
    rkeys = rnames[:len(lhs)] + rnames[len(rnames) - len(pairs):]
    if other is not None:
        return semi_join_by_extremes(ctx, node, right, lkeys, rkeys, other, anti, pred)
    ltypes, rtypes = ctx.dag.types(node), ctx.dag.types(right)
    for a, b in zip(lkeys, rkeys):
        if not comparable(ltypes[a], rtypes[b]):
            raise ctx.error(SchemaError, f"{'IN' if lhs else 'EXISTS'} compares "
                                         f"{ltypes[a]} with {rtypes[b]}", pred)
    op = SemiJoin(tuple(lkeys), tuple(rkeys), anti, len(lhs) if anti and lhs else 0)
    return ctx.dag.add(op, ctx.dag.schema(node), [node, right])


def _compared_columns(ctx: LoweringContext, node: int, lhs: list[exp.Expression]
                      ) -> tuple[int, list[str]]:
    """The columns holding the values IN compares: columns of `node`, or computed into extra
    columns `__inkN` by a projection above it (then that projection is the new node)."""
    lkeys, extra = [], []
    for item in lhs:
        e = ctx.row_expr(item, node, "WHERE")
        if isinstance(e, exp.Column):
            lkeys.append(e.name)
        else:
            name = ctx.fresh_name("ink")
            extra.append((name, e))
            lkeys.append(name)
    if extra:
        keep = [(f.name, col(f.name)) for f in ctx.dag.schema(node)]
        types = ctx.dag.types(node)
        fields = list(ctx.dag.schema(node)) + [Field(n, ctx.type_of(e, types, "WHERE"))
                                               for n, e in extra]
        node = ctx.dag.add(Project(tuple(keep + extra), render_projection(extra)), fields, [node])
    return node, lkeys


def split_correlation(ctx: LoweringContext, inner: exp.Expression, node: int,
                      keep_select: bool) -> tuple[exp.Expression, CorrelationPairs, object]:
    """`inner` without its correlation terms, selecting (its own columns if keep_select,
    then) the inner columns of the correlation; the pairs (outer column, inner output column)
    those terms equate; and the one non-equality correlation term (decorrelate.NonEquality)
    or None. With one, the subquery is grouped by the columns it selects and selects MIN and
    MAX of the non-equality's inner column last. Only correlation terms of the subquery's
    WHERE may name the outer query's columns."""
    outer_names = set(ctx.dag.names(node))
    if not isinstance(inner, exp.Select):
        for c in inner.find_all(exp.Column):
            if c.table and internal_name(c) in outer_names and not _in_scope(c, inner):
                raise ctx.error(UnsupportedError, "correlated subquery that is not a "
                                                  "simple SELECT", c)
        return inner, [], None
    is_outer = outer_test(ctx, inner, node)
    pairs, keep, other = correlation_terms(ctx, inner, is_outer)
    if not pairs and other is None:
        reject_outer(ctx, inner, is_outer)
        return inner, [], None
    for key, what in (("group", "GROUP BY"), ("having", "HAVING"), ("limit", "LIMIT"),
                      ("offset", "OFFSET")):
        if inner.args.get(key) is not None:
            raise ctx.error(UnsupportedError, f"{what} in a correlated subquery",
                            inner.args[key])
    if any(has_aggregate(x) for x in inner.expressions):
        raise ctx.error(UnsupportedError, "aggregate in a correlated subquery", inner)
    new = inner.copy()
    new.set("where", exp.Where(this=exp.and_(*keep)) if keep else None)
    new.set("order", None)  # row order does not matter to IN / EXISTS
    own = list(new.expressions) if keep_select else []
    corr = [exp.alias_(i.copy(), f"__corr{k}") for k, (_, i) in enumerate(pairs)]
    new.set("expressions", own + corr)
    if other is not None:
        new.set("distinct", None)
        new, _, _ = extremes_select(ctx, new, other,
                                    [e.unalias() for e in own] + [i for _, i in pairs])
    reject_outer(ctx, new, is_outer)
    return new, [(o, f"__corr{k}") for k, (o, _) in enumerate(pairs)], other


def _in_scope(c: exp.Column, query: exp.Expression) -> bool:
    """True when a table of `query` (at any depth) has the alias that `c` names."""
    return any(t.alias_or_name.lower() == c.table.lower() for t in query.find_all(exp.Table))
