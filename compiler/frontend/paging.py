"""LIMIT and OFFSET of a query: the Limit operator that keeps its rows.

`LIMIT n OFFSET k` keeps rows k+1 .. k+n of the (sorted) rows; both must be whole numbers
written in the query (public: they decide output lengths). OFFSET without LIMIT is refused.
"""

from __future__ import annotations

from sqlglot import exp

from ..errors import UnsupportedError
from ..ir.dag import Limit
from .context import LoweringContext


def limit_operator(ctx: LoweringContext, q: exp.Query) -> Limit | None:
    """The Limit for `q`'s LIMIT / OFFSET clauses, or None when it has neither."""
    limit, offset = q.args.get("limit"), q.args.get("offset")
    if limit is None and offset is None:
        return None
    if limit is None:
        raise ctx.error(UnsupportedError, "OFFSET without LIMIT (add LIMIT n)", offset)
    skip = whole_number(ctx, offset, "OFFSET") if offset is not None else 0
    return Limit(whole_number(ctx, limit, "LIMIT"), skip)


def whole_number(ctx: LoweringContext, clause: exp.Expression, what: str) -> int:
    """The literal whole number of a LIMIT or OFFSET clause."""
    value = clause.expression if isinstance(clause, (exp.Limit, exp.Offset)) else clause
    if not (isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit()):
        raise ctx.error(UnsupportedError, f"{what} must be a whole number", clause)
    return int(value.this)
