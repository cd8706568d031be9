"""Small questions and answers about sqlglot trees that the lowering modules share.

Internal column names: a qualified column `t.fare` is the internal column "t.fare" of the
operator that reads it (lower case); a scalar subquery's result is a column of the pseudo
table SUBQUERY_TABLE.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

# the pseudo table of the columns that replace scalar subqueries (see subqueries.py)
SUBQUERY_TABLE = "__subquery__"


def internal_name(c: exp.Column) -> str:
    """The internal column a (qualified) column reference names."""
    return f"{c.table}.{c.name}".lower() if c.table else c.name.lower()


def conjuncts(e: exp.Expression) -> list[exp.Expression]:
    """The terms of a condition joined by AND (parentheses around a conjunction dissolve)."""
    if isinstance(e, exp.Paren):
        inner = conjuncts(e.this)
        return inner if isinstance(e.this, exp.And) else [e]
    if isinstance(e, exp.And):
        return conjuncts(e.this) + conjuncts(e.expression)
    return [e]


def from_sources(select: exp.Select) -> list[exp.Expression]:
    """The FROM source and the joined sources of a SELECT, in order."""
    from_ = select.args.get("from_") or select.args.get("from")
    return ([from_.this] if from_ is not None else []) + \
        [j.this for j in select.args.get("joins") or []]


def has_aggregate(e: exp.Expression) -> bool:
    return bool(aggregates_in(e))


def aggregates_in(e: exp.Expression) -> list[exp.Expression]:
    """Aggregate calls in `e` (not those nested in another), not looking into subqueries; a
    window's function (`SUM(x) OVER (...)`) is not one, the aggregates it reads are."""
    found = []
    for x in e.walk(prune=lambda n: isinstance(n, exp.Subquery)):
        if _is_aggregate(x) and not any(_is_aggregate(p) for p in _ancestors(x, e)):
            found.append(x)
    return found


def _is_aggregate(x: exp.Expression) -> bool:
    return isinstance(x, exp.AggFunc) and not is_window_function(x)


def is_window_function(x: exp.Expression) -> bool:
    """True for the function of a window (`ROW_NUMBER()` in `ROW_NUMBER() OVER (...)`)."""
    return isinstance(x.parent, exp.Window) and x.parent.this is x


def _ancestors(x: exp.Expression, stop: exp.Expression) -> Iterator[exp.Expression]:
    p = x.parent
    while p is not None and p is not stop.parent:
        yield p
        p = p.parent


def find_like(original: exp.Expression | None, x: exp.Expression) -> exp.Expression | None:
    """The node of the user's expression that corresponds to a node of a lowered copy (the
    one whose position an error about `x` should show)."""
    if original is None:
        return None
    text = x.sql()
    for n in original.walk():
        if type(n) is type(x) and n.meta and n.sql() == text:
            return n
    for n in original.walk():
        if type(n) is type(x) and n.meta:
            return n
    for n in original.walk():
        if type(n) is type(x):
            return n
    return original


def construct_name(x: exp.Expression) -> str:
    """How an error names an unsupported construct ("function UPPER", "WINDOW", ...)."""
    if isinstance(x, exp.Anonymous):
        return f"function {x.name.upper()}"
    if isinstance(x, exp.Func):
        return f"function {x.sql_name()}"
    return type(x).__name__.upper()


def unique_names(names: list[str]) -> list[str]:
    """The names with repeats numbered: a, a, a -> a, a_1, a_2."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n in seen:
            seen[n] += 1
            n = f"{n}_{seen[n]}"
        else:
            seen[n] = 0
        out.append(n)
    return out


def render_projection(exprs) -> str:
    """The text of a projection the front end builds: `expr AS name, ...` (always aliased)."""
    return ", ".join(f"{e.sql()} AS {n}" for n, e in exprs)
