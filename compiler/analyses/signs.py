"""Which columns of every node are never negative, known from the plan alone.

A quotient x / SUM(x) lies between 0 and 1 only when no x is negative (analyses/wholes.py);
this analysis proves that from public knowledge, never from data. On every valid row with a
value (NULL stays NULL), column c of node n is >= 0 when:

- a Scan: the catalog declares c's range with a low end >= 0 (each owner checks its values
  lie in it), or c is a bool;
- a Filter: its predicate is a conjunction with a term ``c > k``, ``c >= k``, ``c = k`` or
  ``c BETWEEN k AND ...`` for a literal k >= 0 (the rows it keeps), or c is so in its input;
- a Project: c's expression is: a column that is, a literal >= 0, a comparison, a +, * or /
  of such values, ABS, an even power, CASE / COALESCE / NULLIF whose every branch is;
- an Aggregate: a key that is, COUNT, or SUM / MIN / MAX / AVG of a column that is;
- a Union: c (by position) is in every input;
- every other operator passes its inputs' columns on with their signs (a Window's COUNT and
  ranks, and its SUM / MIN / MAX of such a column, are too).
"""

from __future__ import annotations

from fractions import Fraction

from sqlglot import exp

from ..ir.dag import RANGES, Aggregate, Dag, Filter, Project, Scan, Union, Window

__all__ = ["nonnegative", "nonnegative_expression", "value_branches"]

_SAME_SIGN = (exp.Add, exp.Mul, exp.Div)
_COUNTS = (exp.RowNumber, exp.Rank, exp.DenseRank, exp.Ntile, exp.Count)


def nonnegative(dag: Dag) -> dict[int, frozenset[str]]:
    """{node: the names of its columns that are never negative}, for every node."""
    out: dict[int, frozenset[str]] = {}
    for n in dag.topo():
        op = dag.op(n)
        ins = dag.inputs(n)
        names = dag.names(n)
        if isinstance(op, Scan) or not ins:
            found = _scanned(dag, n, op)
        elif isinstance(op, Union):
            found = {c for pos, c in enumerate(names)
                     if all(dag.names(i)[pos] in out[i] for i in ins)}
        elif isinstance(op, Project):
            found = {name for name, e in op.exprs if nonnegative_expression(e, out[ins[0]])}
        elif isinstance(op, Aggregate):
            below = out[ins[0]]
            found = {k for k in op.keys if k in below}
            found |= {a.name for a in op.aggs
                      if a.func in ("count", "count_star")
                      or (a.func in ("sum", "min", "max", "avg") and a.arg in below)}
        else:  # Filter, Join, SemiJoin, Sort, Limit, Distinct, Share, Reveal, Window, Output
            below = set().union(*(out[i] for i in ins))
            found = {c for c in names if c in below}
            if isinstance(op, Filter):
                found |= {c for c in _kept_nonnegative(op.predicate) if c in names}
            elif isinstance(op, Window):
                found |= {name for name, w in op.exprs if _window_nonnegative(w, below)}
        out[n] = frozenset(found)
    return out


def nonnegative_expression(e: exp.Expression, columns: frozenset[str] | set[str]) -> bool:
    """Is ``e`` >= 0 on every row whose ``columns`` are (a NULL result aside)?"""
    while isinstance(e, (exp.Paren, exp.Cast)):
        e = e.this
    if isinstance(e, exp.Column):
        return e.name in columns
    if isinstance(e, exp.Literal):
        return not e.is_string and _number(e) is not None and _number(e) >= 0
    if isinstance(e, (exp.Boolean, exp.Predicate, exp.Connector, exp.Not, exp.Is, exp.Abs)):
        return True
    if isinstance(e, _SAME_SIGN):
        return nonnegative_expression(e.this, columns) and \
            nonnegative_expression(e.expression, columns)
    if isinstance(e, exp.Pow):
        k = _number(e.expression) if isinstance(e.expression, exp.Literal) else None
        even = k is not None and k.denominator == 1 and k % 2 == 0
        return even or nonnegative_expression(e.this, columns)
    if isinstance(e, (exp.Case, exp.If, exp.Coalesce, exp.Nullif)):
        return all(nonnegative_expression(b, columns) for b in value_branches(e))
    return False


def _scanned(dag: Dag, n: int, op) -> set[str]:
    if not isinstance(op, Scan):
        return set()
    declared = dag.g.graph.get(RANGES, {}).get(op.table, {})
    found = set()
    for c, (name, t) in zip(op.columns, dag.types(n).items()):
        if t.strip().lower() == "bool" or (c in declared and declared[c][0] >= 0):
            found.add(name)
    return found


def _kept_nonnegative(predicate: exp.Expression) -> set[str]:
    """The columns a filter's predicate keeps >= 0: its conjuncts c > k, c >= k, c = k (or
    k < c, k <= c, k = c) and c BETWEEN k AND ..., for a literal k >= 0."""
    found = set()
    for term in predicate.flatten() if isinstance(predicate, exp.And) else [predicate]:
        while isinstance(term, exp.Paren):
            term = term.this
        if isinstance(term, exp.Between):
            column, low = term.this, term.args.get("low")
            if isinstance(column, exp.Column) and _at_least_zero(low):
                found.add(column.name)
            continue
        flipped = {exp.GT: exp.LT, exp.GTE: exp.LTE, exp.EQ: exp.EQ}
        for kind, mirror in flipped.items():
            if isinstance(term, kind):
                column, bound = term.this, term.expression
            elif isinstance(term, mirror):
                column, bound = term.expression, term.this
            else:
                continue
            if isinstance(column, exp.Column) and _at_least_zero(bound):
                found.add(column.name)
    return found


def _window_nonnegative(w: exp.Expression, columns: set[str]) -> bool:
    f = w.this
    if isinstance(f, _COUNTS):
        return True
    return isinstance(f, (exp.Sum, exp.Min, exp.Max)) and isinstance(f.this, exp.Column) \
        and f.this.name in columns


def _at_least_zero(e: exp.Expression | None) -> bool:
    while isinstance(e, (exp.Paren, exp.Cast)):
        e = e.this
    value = _number(e) if isinstance(e, exp.Literal) else None
    return value is not None and value >= 0


def _number(e: exp.Literal) -> Fraction | None:
    if e.is_string:
        return None
    try:
        return Fraction(e.this)
    except (ValueError, ZeroDivisionError):
        return None


def value_branches(e: exp.Expression) -> list[exp.Expression]:
    """The values a CASE / IF / COALESCE / NULLIF can take (a NULL aside)."""
    if isinstance(e, exp.Nullif):
        return [e.this]
    if isinstance(e, exp.Coalesce):
        return [e.this, *e.expressions]
    if isinstance(e, exp.If):
        return [b for b in (e.args.get("true"), e.args.get("false")) if b is not None]
    out = [i.args["true"] for i in e.args.get("ifs") or []]
    return out + ([e.args["default"]] if e.args.get("default") is not None else [])
