"""INTERSECT and EXCEPT (set semantics) as semi-joins and anti-joins over DISTINCT rows.

`A INTERSECT B` is the distinct rows of A that have an equal row in B (a semi-join on all
columns); `A EXCEPT B` those that have none (an anti-join). Rows compare column by column
with IS NOT DISTINCT FROM (two NULLs are equal, as SQL's set operations want). INTERSECT ALL
and EXCEPT ALL (bag semantics) are refused. Inside MPC this is a private set intersection:
the recipients learn the result rows and nothing of the others; the compute parties only
the public input lengths (see the secure semi-join in backends/mpyc/lib/semijoin.py).
"""

from __future__ import annotations

from sqlglot import exp

from .. import sqltypes
from ..errors import SchemaError, UnsupportedError
from ..ir.dag import Distinct, Field, SemiJoin, Sort
from .context import Ctes, LoweringContext
from .paging import limit_operator
from .typecheck import comparable


def set_operation(ctx: LoweringContext, q: exp.Intersect | exp.Except, ctes: Ctes) -> int:
    """Lower `A INTERSECT B` / `A EXCEPT B` (with its ORDER BY and LIMIT / OFFSET)."""
    kind = "INTERSECT" if isinstance(q, exp.Intersect) else "EXCEPT"
    if not q.args.get("distinct"):
        raise ctx.error(UnsupportedError, f"{kind} ALL (only {kind}, which returns each "
                                          f"distinct row once)", q)
    left = ctx.query(q.this, ctes)
    right = ctx.query(q.expression, ctes)
    fields = _matched_fields(ctx, q, kind, left, right)
    node = ctx.dag.add(Distinct(), fields, [left])
    node = ctx.dag.add(SemiJoin(tuple(ctx.dag.names(left)), tuple(ctx.dag.names(right)),
                                anti=kind == "EXCEPT", null_safe=True), fields, [node, right])
    order = q.args.get("order")
    if order is not None:
        node = ctx.dag.add(Sort(_sort_keys(ctx, order, [f.name for f in fields])), fields,
                           [node])
    limit = limit_operator(ctx, q)
    if limit is not None:
        node = ctx.dag.add(limit, fields, [node])
    return node


def _matched_fields(ctx: LoweringContext, q: exp.Expression, kind: str, left: int,
                    right: int) -> list[Field]:
    """The left side's columns (its rows are the result); the right side's must match them
    by position in number and comparable types."""
    ls, rs = ctx.dag.schema(left), ctx.dag.schema(right)
    if len(ls) != len(rs):
        raise ctx.error(SchemaError, f"{kind} of {len(ls)} and {len(rs)} columns", q)
    for a, b in zip(ls, rs):
        if not comparable(a.sql_type, b.sql_type):
            raise ctx.error(SchemaError, f"{kind} column {a.name!r}: {a.sql_type} vs "
                                         f"{b.sql_type}", q)
        if a.sql_type != b.sql_type and not (sqltypes.is_numeric(a.sql_type)
                                             and sqltypes.is_numeric(b.sql_type)):
            raise ctx.error(SchemaError, f"{kind} column {a.name!r}: {a.sql_type} vs "
                                         f"{b.sql_type}", q)
    return list(ls)


def _sort_keys(ctx: LoweringContext, order: exp.Order, names: list[str]
               ) -> tuple[tuple[str, bool], ...]:
    """(column, descending) per ORDER BY item: an output column's position or name."""
    keys = []
    for o in order.expressions:
        target = o.this
        if isinstance(target, exp.Literal) and not target.is_string and \
                1 <= int(target.this) <= len(names):
            keys.append((names[int(target.this) - 1], bool(o.args.get("desc"))))
        elif isinstance(target, exp.Column) and target.name.lower() in names:
            keys.append((target.name.lower(), bool(o.args.get("desc"))))
        else:
            raise ctx.error(UnsupportedError, "ORDER BY of a set operation must name an "
                                              "output column", o)
    return tuple(keys)
