"""Subqueries: scalar subqueries become cross joins with their one row; `[NOT] IN (SELECT ...)`
and `[NOT] EXISTS (SELECT ...)` terms of WHERE become semi-joins (anti-joins).

A scalar subquery must be uncorrelated and one aggregate row. An IN / EXISTS subquery may be
correlated through `inner.column = outer.column` terms of its own WHERE: each such term becomes
one more key pair of the semi-join.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from ..errors import SchemaError, UnsupportedError
from ..ir.dag import Field, Join, Project, SemiJoin, col
from .context import Ctes, LoweringContext
from .trees import (SUBQUERY_TABLE, conjuncts, from_sources, has_aggregate, internal_name,
                    render_projection)
from .typecheck import comparable

SEMI_POSITION = "here: only as a condition of WHERE on its own or joined to others by AND"
# (outer internal column, the subquery's output column it equals)
CorrelationPairs = list[tuple[str, str]]


def attach_subqueries(ctx: LoweringContext, node: int, e: exp.Expression, ctes: Ctes) -> int:
    """Cross-join each uncorrelated scalar subquery in `e`; it becomes a column `__sqN` (and
    `e` refers to it as SUBQUERY_TABLE.__sqN)."""
    for sub in list(e.find_all(exp.Subquery)):
        _check_scalar(ctx, node, sub)
        sq = ctx.query(sub.this, ctes)
        if len(ctx.dag.schema(sq)) != 1:
            raise ctx.error(SchemaError, "scalar subquery must return one column", sub)
        name = ctx.fresh_name("sq")
        f = ctx.dag.schema(sq)[0]
        renamed = ctx.dag.add(Project(((name, col(f.name)),), name), [Field(name, f.sql_type)],
                              [sq])
        fields = ctx.dag.schema(node) + (Field(name, f.sql_type),)
        node = ctx.dag.add(Join((), ()), fields, [node, renamed])
        sub.replace(exp.Column(this=exp.Identifier(this=name, quoted=True),
                               table=exp.Identifier(this=SUBQUERY_TABLE)))
    for e2 in e.find_all(exp.Exists):
        raise ctx.error(UnsupportedError, f"EXISTS (subquery) {SEMI_POSITION}", e2)
    return node


def _check_scalar(ctx: LoweringContext, node: int, sub: exp.Subquery) -> None:
    """A scalar subquery is one uncorrelated aggregate row (not an IN list)."""
    if isinstance(sub.parent, exp.In):
        raise ctx.error(UnsupportedError, f"IN (subquery) {SEMI_POSITION}", sub.parent)
    inner = sub.this
    if not isinstance(inner, exp.Select) or inner.args.get("group") is not None or not \
            any(has_aggregate(x) for x in inner.expressions):
        raise ctx.error(UnsupportedError, "scalar subquery that is not a single aggregate "
                                          "(one row: an aggregate without GROUP BY)", sub)
    own = {src.alias_or_name.lower() for src in from_sources(inner)}
    outer_names = set(ctx.dag.names(node))
    for c in inner.find_all(exp.Column):
        if c.table and c.table.lower() not in own and internal_name(c) in outer_names:
            raise ctx.error(UnsupportedError, f"correlated subquery (it reads the outer "
                                              f"column {c.sql()}): only uncorrelated "
                                              f"scalar subqueries, or [NOT] IN / EXISTS "
                                              f"in WHERE", sub)


def semi_term(e: exp.Expression) -> tuple[bool, exp.Expression] | None:
    """(negated, the IN / EXISTS node) when `e` is `[NOT] x IN (SELECT ...)` or
    `[NOT] EXISTS (SELECT ...)`, else None."""
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
    return None


def semi_join(ctx: LoweringContext, node: int, term: exp.Expression, ctes: Ctes) -> int:
    """Lower one WHERE term `[NOT] x IN (SELECT ...)` or `[NOT] EXISTS (SELECT ...)`."""
    anti, pred = semi_term(term)
    if isinstance(pred, exp.In):
        query = pred.args["query"]
        inner = query.this if isinstance(query, exp.Subquery) else query
        lhs = list(pred.this.expressions) if isinstance(pred.this, exp.Tuple) else [pred.this]
    else:
        inner = pred.this.this if isinstance(pred.this, exp.Subquery) else pred.this
        lhs = []
    inner, pairs = split_correlation(ctx, inner, node, keep_select=bool(lhs))
    right = ctx.query(inner, ctes)
    rnames = ctx.dag.names(right)
    if lhs and len(rnames) - len(pairs) != len(lhs):
        raise ctx.error(SchemaError, f"IN compares {len(lhs)} value(s) with a subquery of "
                                     f"{len(rnames) - len(pairs)} column(s)", pred)
    node, lkeys = _compared_columns(ctx, node, lhs)
    lkeys += [outer for outer, _ in pairs]
    rkeys = rnames[:len(lhs)] + rnames[len(rnames) - len(pairs):]
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
                      keep_select: bool) -> tuple[exp.Expression, CorrelationPairs]:
    """`inner` without its correlation terms, selecting (its own columns if keep_select,
    then) the inner columns of the correlation; and the pairs (outer column, inner
    output column) those terms equate. Only `inner.col = outer.col` terms of the
    subquery's WHERE may name the outer query's columns."""
    outer_names = set(ctx.dag.names(node))
    if not isinstance(inner, exp.Select):
        for c in inner.find_all(exp.Column):
            if c.table and internal_name(c) in outer_names and not _in_scope(c, inner):
                raise ctx.error(UnsupportedError, "correlated subquery that is not a "
                                                  "simple SELECT", c)
        return inner, []
    own = {src.alias_or_name.lower() for src in from_sources(inner)}

    def is_outer(c: exp.Column) -> bool:
        return bool(c.table) and c.table.lower() not in own and internal_name(c) in outer_names

    pairs, keep = _correlation_terms(ctx, inner, is_outer)
    if not pairs:
        _reject_outer(ctx, inner, is_outer)
        return inner, []
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
    corr = [exp.alias_(i.copy(), f"__corr{k}") for k, (_, i) in enumerate(pairs)]
    new.set("expressions", (list(new.expressions) if keep_select else []) + corr)
    _reject_outer(ctx, new, is_outer)
    return new, [(o, f"__corr{k}") for k, (o, _) in enumerate(pairs)]


def _correlation_terms(ctx: LoweringContext, inner: exp.Select,
                       is_outer: Callable[[exp.Column], bool]
                       ) -> tuple[list[tuple[str, exp.Column]], list[exp.Expression]]:
    """The subquery WHERE's `inner.col = outer.col` terms as (outer column, inner column)
    pairs, and its other terms (which may not name outer columns)."""
    where = inner.args.get("where")
    pairs: list[tuple[str, exp.Column]] = []
    keep: list[exp.Expression] = []
    for term in conjuncts(where.this) if where is not None else []:
        refs = [c for c in term.find_all(exp.Column) if is_outer(c)]
        if not refs:
            keep.append(term)
            continue
        sides = (term.this, term.expression) if isinstance(term, exp.EQ) else ()
        if len(sides) == 2 and all(isinstance(x, exp.Column) for x in sides) and \
                is_outer(sides[0]) != is_outer(sides[1]):
            o, i = sides if is_outer(sides[0]) else sides[::-1]
            pairs.append((internal_name(o), i))
            continue
        raise ctx.error(UnsupportedError, "correlated subquery condition other than "
                                          "inner.column = outer.column", term)
    return pairs, keep


def _reject_outer(ctx: LoweringContext, inner: exp.Expression,
                  is_outer: Callable[[exp.Column], bool]) -> None:
    for c in inner.find_all(exp.Column):
        if is_outer(c):
            raise ctx.error(UnsupportedError, f"outer column {c.sql()} in a subquery "
                                              f"outside its WHERE's equality conditions", c)


def _in_scope(c: exp.Column, query: exp.Expression) -> bool:
    """True when a table of `query` (at any depth) has the alias that `c` names."""
    return any(t.alias_or_name.lower() == c.table.lower() for t in query.find_all(exp.Table))
