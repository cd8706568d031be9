"""Correlated subqueries as joins with grouped rows, and the correlation terms they rest on.

A subquery is correlated when it names a column of the query around it. Two shapes that a
plain semi-join on equal keys (subqueries.py) cannot express are decorrelated here:

* **A WHERE comparison with a correlated scalar subquery** (TPC-H Q2, Q17, Q20):
  `l.qty < (SELECT 0.2 * AVG(l2.qty) FROM lineitem l2 WHERE l2.partkey = p.partkey)` becomes
  the subquery grouped by its correlation columns (one row per key), inner-joined on them,
  and the comparison a filter over the join. An outer row without a group would compare with
  NULL and fail either way, so the inner join is exact where the subquery's value is only
  compared. Elsewhere (select list, OR, CASE, IS NULL, ...) and with COUNT (0 over no rows,
  not NULL) the join is a LEFT JOIN and a row without a group takes the subquery's value
  over no rows (a CASE on the join key being NULL); inside MPC, where no LEFT JOIN exists
  yet, that is refused at the subquery's position.
* **[NOT] EXISTS / IN with one non-equality correlation** `inner.a OP outer.b` besides
  the equalities (TPC-H Q21: `l2.suppkey <> l1.suppkey`): over the inner rows of one key
  (a NOT NULL) there is one with `a OP b` exactly when MIN(a) / MAX(a) say so (`<>`: MIN or
  MAX differs from b; `<`: MIN < b; `>`: MAX > b). EXISTS is a join with the grouped rows
  (one per key) and that condition; NOT EXISTS keeps the outer rows without a group (an
  anti-join) plus those whose group fails the condition or whose b is NULL (a union of the
  two disjoint parts).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from ..errors import SchemaError, UnsupportedError
from ..ir.dag import JOIN_POSITIONS, Join, Project, SemiJoin, Union, col
from .context import Ctes, LoweringContext
from .parse import node_position
from .trees import (
    SUBQUERY_TABLE,
    aggregates_in,
    conjuncts,
    from_sources,
    has_aggregate,
    internal_name,
)
from .typecheck import comparable

COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
# the nodes between a compared scalar subquery and its comparison: each is NULL on a NULL input
NULL_REJECTING = COMPARISONS + (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Neg, exp.Paren)
# `inner OP outer` written the other way round: `outer OP inner` == `inner FLIPPED[OP] outer`
FLIPPED = {exp.NEQ: exp.NEQ, exp.LT: exp.GT, exp.LTE: exp.GTE, exp.GT: exp.LT, exp.GTE: exp.LTE}
# (outer internal column, inner column expression) of each `inner.col = outer.col`
EqualityPairs = list[tuple[str, exp.Column]]


class NonEquality:
    """The one correlation term `inner OP outer` that is not an equality."""

    def __init__(self, op: type, inner: exp.Column, outer: str, term: exp.Expression) -> None:
        self.op, self.inner, self.outer, self.term = op, inner, outer, term

    def holds(self, mn: exp.Expression, mx: exp.Expression, b: exp.Expression) -> exp.Expression:
        """The condition on a group's MIN (mn) and MAX (mx) of `inner` that some row of the
        group has `inner OP b`."""
        if self.op is exp.NEQ:
            return exp.or_(exp.NEQ(this=mn, expression=b), exp.NEQ(this=mx.copy(),
                                                                   expression=b.copy()))
        if self.op in (exp.LT, exp.LTE):
            return self.op(this=mn, expression=b)
        return self.op(this=mx, expression=b)


def top_subqueries(e: exp.Expression) -> list[exp.Subquery]:
    """The subqueries of `e` that are not inside another subquery of `e`."""
    return [s for s in e.walk(prune=lambda n: isinstance(n, exp.Subquery))
            if isinstance(s, exp.Subquery)]


def outer_columns(query: exp.Expression) -> list[exp.Column]:
    """Columns of `query` naming a table that no FROM inside it defines: its correlation."""
    scope = {t.alias_or_name.lower() for t in query.find_all(exp.Table)}
    scope |= {s.alias.lower() for s in query.find_all(exp.Subquery) if s.alias}
    return [c for c in query.find_all(exp.Column)
            if c.table and c.table != SUBQUERY_TABLE and c.table.lower() not in scope]


def has_correlated_scalar(term: exp.Expression) -> bool:
    """True when the WHERE term `term` (not an IN / EXISTS) holds a correlated scalar
    subquery."""
    return any(outer_columns(s.this) for s in top_subqueries(term))


def correlation_terms(ctx: LoweringContext, inner: exp.Select,
                      is_outer: Callable[[exp.Column], bool]
                      ) -> tuple[EqualityPairs, list[exp.Expression], NonEquality | None]:
    """The subquery WHERE's `inner.col = outer.col` terms as (outer column, inner column)
    pairs, its other terms (which may not name outer columns) and its one `inner.a OP outer.b`
    term if it has one."""
    where = inner.args.get("where")
    pairs: EqualityPairs = []
    keep: list[exp.Expression] = []
    other: NonEquality | None = None
    for term in conjuncts(where.this) if where is not None else []:
        refs = [c for c in term.find_all(exp.Column) if is_outer(c)]
        if not refs:
            keep.append(term)
            continue
        sides = (term.this, term.expression) if isinstance(term, COMPARISONS) else ()
        if len(sides) == 2 and all(isinstance(x, exp.Column) for x in sides) and \
                is_outer(sides[0]) != is_outer(sides[1]):
            o, i = sides if is_outer(sides[0]) else sides[::-1]
            if isinstance(term, exp.EQ):
                pairs.append((internal_name(o), i))
                continue
            if other is None:
                op = type(term) if i is sides[0] else FLIPPED[type(term)]
                other = NonEquality(op, i, internal_name(o), term)
                continue
            raise ctx.error(UnsupportedError, "a second correlation condition other than "
                                              "inner.column = outer.column (one <>, <, <=, "
                                              ">, >= besides the equalities)", term)
        raise ctx.error(UnsupportedError, "correlated subquery condition other than "
                                          "inner.column = outer.column (or one <>, <, <=, "
                                          ">, >= between two columns)", term)
    return pairs, keep, other


def outer_test(ctx: LoweringContext, inner: exp.Select, node: int
               ) -> Callable[[exp.Column], bool]:
    """Whether a column of `inner` names a column of `node`'s rows (the outer query)."""
    own = {src.alias_or_name.lower() for src in from_sources(inner)}
    outer_names = set(ctx.dag.names(node))

    def is_outer(c: exp.Column) -> bool:
        return bool(c.table) and c.table.lower() not in own and internal_name(c) in outer_names
    return is_outer


def reject_outer(ctx: LoweringContext, inner: exp.Expression,
                 is_outer: Callable[[exp.Column], bool]) -> None:
    """An outer column left in `inner` (outside the correlation terms) is refused."""
    for c in inner.find_all(exp.Column):
        if is_outer(c):
            raise ctx.error(UnsupportedError, f"outer column {c.sql()} in a subquery "
                                              f"outside its WHERE's correlation conditions", c)


# --- correlated scalar subqueries --------------------------------------------------------------
def join_correlated_scalars(ctx: LoweringContext, node: int, term: exp.Expression,
                            ctes: Ctes) -> int:
    """Join the grouped rows of each correlated scalar subquery of the WHERE term `term` to
    `node`; the subquery becomes the column `SUBQUERY_TABLE.__sqvN` of the join."""
    for sub in top_subqueries(term):
        if outer_columns(sub.this):
            node = join_grouped(ctx, node, sub, ctes, outer=not _null_rejecting(sub, term))
    return node


def _null_rejecting(sub: exp.Subquery, term: exp.Expression) -> bool:
    """The subquery's value is only compared (arithmetic on the way): a missing group and a
    NULL value both fail the term, which is what makes the inner join exact."""
    p = sub.parent
    while p is not None and p is not term.parent:
        if not isinstance(p, NULL_REJECTING):
            return False
        p = p.parent
    return p is term.parent and isinstance(_unparen(term), COMPARISONS)


def _unparen(e: exp.Expression) -> exp.Expression:
    while isinstance(e, exp.Paren):
        e = e.this
    return e


def join_grouped(ctx: LoweringContext, node: int, sub: exp.Subquery, ctes: Ctes,
                 outer: bool) -> int:
    """`node` joined with the subquery grouped by its correlation columns (see the module
    docstring); `sub` is replaced by a reference to the value column. With `outer` (or a
    COUNT in the subquery) a LEFT JOIN keeps the rows without a group, whose value is the
    subquery's over no rows (COUNT 0, other aggregates NULL)."""
    inner = sub.this
    if not isinstance(inner, exp.Select) or len(inner.expressions) != 1 or \
            not has_aggregate(inner.expressions[0]) or \
            any(inner.args.get(k) for k in ("group", "having", "limit", "offset", "distinct")):
        raise ctx.error(UnsupportedError, "correlated scalar subquery that is not one "
                                          "aggregate without GROUP BY (SELECT agg(...) FROM "
                                          "... WHERE inner.col = outer.col)", sub)
    empty = _over_no_rows(inner.expressions[0].unalias())
    outer = outer or not isinstance(empty, exp.Null)
    is_outer = outer_test(ctx, inner, node)
    pairs, keep, other = correlation_terms(ctx, inner, is_outer)
    if other is not None or not pairs:
        raise ctx.error(UnsupportedError, "correlated scalar subquery whose correlation is "
                                          "not only inner.column = outer.column",
                        other.term if other is not None else sub)
    value = ctx.fresh_name("sqv")
    keys = [ctx.fresh_name("sqk") for _ in pairs]
    grouped = inner.copy()
    grouped.set("where", exp.Where(this=exp.and_(*keep)) if keep else None)
    grouped.set("order", None)
    grouped.set("expressions", [exp.alias_(inner.expressions[0].unalias().copy(), value)] +
                [exp.alias_(i.copy(), k) for k, (_, i) in zip(keys, pairs)])
    grouped.set("group", exp.Group(expressions=[i.copy() for _, i in pairs]))
    reject_outer(ctx, grouped, is_outer)
    right = ctx.query(grouped, ctes)
    lkeys = [o for o, _ in pairs]
    _check_key_types(ctx, node, right, lkeys, keys, sub)
    node = ctx.dag.add(Join(tuple(lkeys), tuple(keys), "left" if outer else "inner"),
                       ctx.dag.schema(node) + ctx.dag.schema(right), [node, right])
    if outer:  # a refusal of the LEFT JOIN (inside MPC) points at the subquery
        ctx.dag.g.graph.setdefault(JOIN_POSITIONS, {})[node] = node_position(sub, ctx.sql)
    ref = exp.Column(this=exp.Identifier(this=value, quoted=True),
                     table=exp.Identifier(this=SUBQUERY_TABLE))
    if not isinstance(empty, exp.Null):  # a row without a group: the value over no rows
        matched = exp.Column(this=exp.Identifier(this=keys[0], quoted=True),
                             table=exp.Identifier(this=SUBQUERY_TABLE))
        ref = exp.Case(ifs=[exp.If(this=exp.Is(this=matched, expression=exp.Null()),
                                   true=empty)], default=ref)
    sub.replace(exp.Paren(this=ref) if isinstance(ref, exp.Case) else ref)
    return node


def _over_no_rows(e: exp.Expression) -> exp.Expression:
    """The value of a select-list expression over no rows: COUNT is 0, other aggregates are
    NULL (exp.Null when the whole value is NULL: no COUNT in it)."""
    if not any(isinstance(a, exp.Count) for a in aggregates_in(e)):
        return exp.Null()
    return e.copy().transform(lambda x: (exp.Literal.number(0) if isinstance(x, exp.Count)
                                         else exp.Null()) if isinstance(x, exp.AggFunc) else x)


def _check_key_types(ctx: LoweringContext, left: int, right: int, lkeys: list[str],
                     rkeys: list[str], where: exp.Expression) -> None:
    ltypes, rtypes = ctx.dag.types(left), ctx.dag.types(right)
    for a, b in zip(lkeys, rkeys):
        if not comparable(ltypes[a], rtypes[b]):
            raise ctx.error(SchemaError, f"correlation compares {ltypes[a]} with {rtypes[b]}",
                            where)


# --- EXISTS / IN with one non-equality correlation -------------------------------------------
def extremes_select(ctx: LoweringContext, new: exp.Select, other: NonEquality,
                    group: list[exp.Expression]) -> tuple[exp.Select, str, str]:
    """`new` (the subquery selecting its keys) grouped by them, with MIN and MAX of the
    non-equality's inner column over its non-NULL values; and those two columns' names."""
    mn, mx = ctx.fresh_name("min"), ctx.fresh_name("max")
    a = other.inner
    not_null = exp.Not(this=exp.Is(this=a.copy(), expression=exp.Null()))
    where = new.args.get("where")
    new.set("where", exp.Where(this=exp.and_(where.this, not_null) if where else not_null))
    new.set("expressions", list(new.expressions) +
            [exp.alias_(exp.Min(this=a.copy()), mn), exp.alias_(exp.Max(this=a.copy()), mx)])
    new.set("group", exp.Group(expressions=[g.copy() for g in group]) if group else None)
    return new, mn, mx


def semi_join_by_extremes(ctx: LoweringContext, node: int, right: int, lkeys: list[str],
                          rkeys: list[str], other: NonEquality, anti: bool,
                          where: exp.Expression) -> int:
    """EXISTS (anti: NOT EXISTS) over the grouped rows `right` (keys, then MIN, MAX): see the
    module docstring. The output has `node`'s columns."""
    _check_key_types(ctx, node, right, lkeys, rkeys, where)
    mn, mx = ctx.dag.names(right)[-2:]
    outer_type, inner_type = ctx.dag.types(node)[other.outer], ctx.dag.types(right)[mn]
    if not comparable(outer_type, inner_type):
        raise ctx.error(SchemaError, f"correlation compares {inner_type} with {outer_type}",
                        other.term)
    fields = ctx.dag.schema(node)
    joined = ctx.dag.add(Join(tuple(lkeys), tuple(rkeys)), fields + ctx.dag.schema(right),
                         [node, right])
    cond = other.holds(col(mn), col(mx), col(other.outer))
    if anti:  # no row with a OP b: b is NULL, no rows at all (without keys the one group
        # of an empty subquery has a NULL MIN) or the condition is false
        cond = exp.or_(exp.Is(this=col(other.outer), expression=exp.Null()),
                       exp.Is(this=col(mn), expression=exp.Null()),
                       exp.Not(this=exp.Paren(this=cond)))
    kept = ctx.add_filter(joined, cond)
    keep = tuple((f.name, col(f.name)) for f in fields)
    matched = ctx.dag.add(Project(keep, ", ".join(f.name for f in fields)), fields, [kept])
    if not anti:
        return matched
    without = ctx.dag.add(SemiJoin(tuple(lkeys), tuple(rkeys), True), fields, [node, right])
    return ctx.dag.add(Union(), fields, [without, matched])
