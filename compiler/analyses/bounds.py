"""Upper bounds on the magnitude of every column of every node, known from the plan alone.

Secure arithmetic works on fixed-point numbers of one type whose values must stay below a
public limit (the secure backend's type range). This analysis proves, from public knowledge
only, which results stay below it, so that only the others need a check at run time. Never
from data: everything here follows from the catalog's column types, the row bounds and the
operators.

For every column c of every node n it gives

- ``value(n, c)``: a strict upper bound on |v| for every row's value v (None: unbounded);
- ``total(n, c)``: a strict upper bound on the sum of |v| over all rows of n (what a SUM of
  the column can reach: the sum of all groups' sums is at most this as well);
- ``grain(n, c)``: the smallest nonzero |v| (int 1, decimal(p, s) 10^-s, else None), which
  bounds a quotient by the column.

and ``rows(n)``: an upper bound on the node's number of rows. Sources:

- catalog types: int |v| < 2^63, decimal(p, s) |v| < 10^(p-s), bool < 2, date < 2^31 days,
  float unbounded; a declared range (catalog `ranges`, which each owner's local job checks)
  narrows a column's bound to its largest magnitude;
- a table part holds fewer than ``PART_ROWS`` rows (2^31); a join's output is at most the
  other side's rows when one side is unique on its keys, else the product; an aggregate
  without keys has one row;
- every value that crosses into MPC was checked by its owner to lie in the secure type's
  range (``share_limit``), so a Share caps every column there.

Expressions: |a + b| < A + B, |a * b| < A B, |a / k| < A / |k|, |a / b| < A / grain(b),
CASE/COALESCE the largest branch, comparisons and booleans < 2; SUM < the input's total,
COUNT < rows + 1, MIN/MAX < the argument's bound; a share of a whole, |k * x / SUM(x)| with
no x negative and the SUM over the rows x comes from, <= |k| (analyses/wholes.py).

:func:`unproven_operations` is the one rule for which secure operations these bounds leave
unproven, hence get a secure overflow check (the MPC backend's program checks exactly those,
and explain lists each one's opened bit).
"""

from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple

from sqlglot import exp

from ..ir.dag import (RANGES, SECURE, Aggregate, Dag, Filter, Join, Limit, Project, Reveal, Scan,
                      Share, Union, Window)
from ..sqltypes import DECIMAL_RE
from .domains import DOMAIN_ATTR
from .labels import labels
from .signs import value_branches
from .wholes import parts
from .unique_keys import join_unique_side

__all__ = ["Bound", "Bounds", "PART_ROWS", "Unproven", "column_text", "expression_bound",
           "expression_fits", "fits", "operation_text", "type_bound", "unproven_operations"]

Bound = Fraction | None  # None: no bound known
#: calendar functions of a date (analyses/secure_expressions.SECURE_FUNCTIONS)
CALENDAR = (exp.Extract, exp.Year, exp.Quarter, exp.Month, exp.Day, exp.DayOfMonth,
            exp.DayOfWeek, exp.DayOfWeekIso, exp.DayOfYear, exp.DateTrunc, exp.TimestampTrunc,
            exp.AddMonths)
PART_ROWS = 1 << 31
"""A table part (one party's file) holds fewer rows than this: the bound behind every SUM."""


def type_bound(sql_type: str) -> tuple[Bound, Bound]:
    """(bound on |v|, smallest nonzero |v|) of a catalog column type."""
    t = sql_type.strip().lower()
    m = DECIMAL_RE.match(t.replace(" ", ""))
    if m:
        p, s = int(m.group(1)), int(m.group(2))
        return Fraction(10) ** (p - s), Fraction(1, 10 ** s)
    return {"int": (Fraction(1 << 63), Fraction(1)), "bool": (Fraction(2), Fraction(1)),
            "date": (Fraction(1 << 31), Fraction(1)),
            "text": (Fraction(1 << 56), Fraction(1))}.get(t, (None, None))


def fits(bound: Bound, limit: int) -> bool:
    """Does a strict bound prove |v| <= limit - 1, i.e. |v| < limit?"""
    return bound is not None and bound <= limit


def _add(a: Bound, b: Bound) -> Bound:
    return None if a is None or b is None else a + b


def _mul(a: Bound, b: Bound) -> Bound:
    if a == 0 or b == 0:
        return Fraction(0)
    return None if a is None or b is None else a * b


def _min(a: Bound, b: Bound) -> Bound:
    return b if a is None else a if b is None else min(a, b)


def _max(*bs: Bound) -> Bound:
    return None if any(b is None for b in bs) else max(bs, default=Fraction(0))


def _grain_min(a: Bound, b: Bound) -> Bound:
    return None if a is None or b is None else min(a, b)


class Bounds:
    """``Bounds(dag, share_limit)``: the bounds of every node's columns (computed once, in
    topological order). ``share_limit`` is the secure type's range (|v| < share_limit) that
    owners check when they share; None: no such check."""

    def __init__(self, dag: Dag, share_limit: int | None = None) -> None:
        self.dag = dag
        self.share_limit = share_limit
        self._rows: dict[int, Bound] = {}
        self._cols: dict[int, dict[str, tuple[Bound, Bound, Bound]]] = {}
        self._parts = parts(dag)  # x and SUM(x): a share of the whole lies in [0, 1]
        for n in dag.topo():
            self._compute(n)

    def rows(self, node: int) -> Bound:
        return self._rows[node]

    def value(self, node: int, column: str) -> Bound:
        return self._cols[node].get(column, (None, None, None))[0]

    def total(self, node: int, column: str) -> Bound:
        return self._cols[node].get(column, (None, None, None))[1]

    def grain(self, node: int, column: str) -> Bound:
        return self._cols[node].get(column, (None, None, None))[2]

    def expression(self, node: int, e: exp.Expression) -> tuple[Bound, Bound, Bound]:
        """(value, total, grain) of expression ``e`` over node ``node``'s columns."""
        return expression_bound(e, self._cols[node], self._rows[node], self._parts.get(node))

    def counted_rows_only(self, node: int, e: exp.Expression, limit: int) -> bool:
        """Whether the quotient ``e`` fits below ``limit`` only as a share of a whole, which
        holds on the rows that count (valid, the part not NULL), not on every row: a filtered
        out row keeps a value the whole did not add up. The secure program then divides 0
        on the other rows (a quotient out of range must never reach the division)."""
        if not isinstance(e, exp.Div) or _share_bound(e, self._parts.get(node) or {}) is None:
            return False
        return not fits(expression_bound(e, self._cols[node], self._rows[node])[0], limit)

    # --- one node ------------------------------------------------------------------------
    def _compute(self, n: int) -> None:
        dag = self.dag
        op = dag.op(n)
        ins = dag.inputs(n)
        names = dag.names(n)
        cols: dict[str, tuple[Bound, Bound, Bound]] = {}
        if isinstance(op, Scan) or not ins:
            rows: Bound = Fraction(PART_ROWS)
            scan = isinstance(op, Scan)
            declared = dag.g.graph.get(RANGES, {}).get(op.table, {}) if scan else {}
            for c, (name, t) in zip(op.columns if scan else names, dag.types(n).items()):
                v, g = type_bound(t)
                if c in declared:  # each owner checks its values lie in the declared range
                    lo, hi = declared[c]
                    # strict: one grain (or 1 for a float) above the largest magnitude
                    v = _min(v, Fraction(max(abs(lo), abs(hi))) + (g or 1))
                cols[name] = (v, _mul(v, rows), g)
        elif isinstance(op, Union):
            rows = Fraction(0)
            parts = []
            for i in ins:
                rows = _add(rows, self._rows[i])
                parts.append(dict(zip(names, [self._cols[i].get(c, (None,) * 3)
                                              for c in dag.names(i)])))
            for c in names:
                got = [p[c] for p in parts]
                total: Bound = Fraction(0)
                grain: Bound = got[0][2] if got else None
                for v, t, g in got:
                    total = _add(total, t)
                    grain = _grain_min(grain, g)
                cols[c] = (_max(*(v for v, _, _ in got)), total, grain)
        elif isinstance(op, Project):
            rows = self._rows[ins[0]]
            for name, e in op.exprs:
                cols[name] = self.expression(ins[0], e)
        elif isinstance(op, Aggregate):
            rows, cols = self._aggregate(n, op, ins[0])
        elif isinstance(op, Join):
            rows, cols = self._join(n, op, ins)
        else:  # Filter, Sort, Limit, Distinct, SemiJoin, Share, Reveal, Output: same rows or fewer
            src = ins[0]
            rows = self._rows[src]
            if isinstance(op, Limit):
                rows = _min(rows, Fraction(op.n))
            cols = {c: self._cols[src].get(c, (None, None, None)) for c in names}
            if isinstance(op, Window):  # its rows pass; ranks, counts and sums are bounded
                cols.update(self._window(op, src, rows))
        if isinstance(op, Share) and self.share_limit is not None:
            cap = Fraction(self.share_limit)
            cols = {c: (_min(v, cap), _min(t, _mul(rows, cap)), g)
                    for c, (v, t, g) in cols.items()}
        self._rows[n] = rows
        self._cols[n] = cols

    def _window(self, op: Window, src: int, rows: Bound) -> dict[str, tuple]:
        """Bounds of a Window's columns: a rank or count is at most the rows, a SUM OVER at
        most the argument's total, a MIN / MAX its bound (others: none claimed)."""
        out = {}
        cnt = _add(rows, Fraction(1))
        for name, w in op.exprs:
            f = w.this
            if isinstance(f, (exp.RowNumber, exp.Rank, exp.DenseRank, exp.Ntile, exp.Count)):
                out[name] = (cnt, _mul(rows, cnt), Fraction(1))
            elif isinstance(f, exp.Sum) and isinstance(f.this, exp.Column):
                v, t, g = self._cols[src].get(f.this.name, (None, None, None))
                out[name] = (t, _mul(rows, t), g)
            elif isinstance(f, (exp.Min, exp.Max)) and isinstance(f.this, exp.Column):
                v, t, g = self._cols[src].get(f.this.name, (None, None, None))
                out[name] = (v, _mul(rows, v), g)
        return out

    def _aggregate(self, n: int, op: Aggregate, src: int):
        below = self._cols[src]
        rows_in = self._rows[src]
        rows = rows_in if op.keys else Fraction(1)
        cols = {k: below.get(k, (None, None, None)) for k in op.keys}
        for a in op.aggs:
            v, t, g = below.get(a.arg, (None, None, None)) if a.arg else (None, None, None)
            if a.func in ("count", "count_star"):
                cnt = _add(rows_in, Fraction(1))
                cols[a.name] = (cnt, cnt, Fraction(1))
            elif a.func == "sum":
                cols[a.name] = (t, t, g)
            elif a.func in ("min", "max", "avg"):
                cols[a.name] = (v, t, None if a.func == "avg" else g)
            else:  # variances and the like: no bound claimed
                cols[a.name] = (None, None, None)
        return rows, cols

    def _join(self, n: int, op: Join, ins: list[int]):
        left, right = ins
        side = join_unique_side(self.dag, n) if op.left_keys else None
        rl, rr = self._rows[left], self._rows[right]
        rows = rl if side == "right" else rr if side == "left" else _mul(rl, rr)
        cols = {}
        for i, keeps in ((left, side == "right"), (right, side == "left")):
            for c in self.dag.names(i):
                v, t, g = self._cols[i].get(c, (None, None, None))
                # a row of the non-unique side appears at most once; the other side's may repeat
                cols[c] = (v, t if keeps else _mul(rows, v), g)
        return rows, cols


def expression_bound(e: exp.Expression, cols: dict[str, tuple[Bound, Bound, Bound]],
                     rows: Bound, parts: dict[str, frozenset[str]] | None = None
                     ) -> tuple[Bound, Bound, Bound]:
    """(bound on |e|, bound on the sum of |e| over the rows, smallest nonzero |e|) for a row
    expression over columns with the given (value, total, grain) bounds; ``parts``: {b: the
    columns that are a part of b's whole} (analyses/wholes.py), which bound k * a / b by k."""
    while isinstance(e, (exp.Paren, exp.Cast)):
        e = e.this
    if isinstance(e, exp.Column):
        return cols.get(e.name, (None, None, None))
    if isinstance(e, exp.Literal):
        if e.is_string:
            v = Fraction(1 << 56)
            return v, _mul(rows, v), Fraction(1)
        x = abs(Fraction(e.this))
        grain = Fraction(1, 10 ** len(e.this.split(".")[1])) if "." in e.this else Fraction(1)
        return x + _tiny(), _mul(rows, x + _tiny()), grain
    if isinstance(e, (exp.Boolean, exp.Predicate, exp.Connector, exp.Not, exp.Is)):
        return Fraction(2), _mul(rows, Fraction(2)), Fraction(1)
    if isinstance(e, exp.Neg):
        return expression_bound(e.this, cols, rows, parts)
    if isinstance(e, (exp.Add, exp.Sub)):
        a = expression_bound(e.this, cols, rows, parts)
        b = expression_bound(e.expression, cols, rows, parts)
        return _add(a[0], b[0]), _add(a[1], b[1]), _grain_min(a[2], b[2])
    if isinstance(e, exp.Mul):
        a = expression_bound(e.this, cols, rows, parts)
        b = expression_bound(e.expression, cols, rows, parts)
        total = _min(_mul(a[0], b[1]), _mul(b[0], a[1]))
        return _mul(a[0], b[0]), total, None if a[2] is None or b[2] is None else a[2] * b[2]
    if isinstance(e, exp.Div):
        share = _share_bound(e, parts or {})
        if share is not None:
            return share, _mul(rows, share), None
        a = expression_bound(e.this, cols, rows, parts)
        b = expression_bound(e.expression, cols, rows, parts)
        if b[2] is None or b[2] == 0:
            return None, None, None
        return _mul(a[0], 1 / b[2]), _mul(a[1], 1 / b[2]), None
    if isinstance(e, exp.Abs):
        return expression_bound(e.this, cols, rows, parts)
    if isinstance(e, exp.Pow):
        k = e.expression
        if isinstance(k, exp.Literal) and not k.is_string and k.this.isdigit():
            a = expression_bound(e.this, cols, rows, parts)
            v = None if a[0] is None else max(a[0], Fraction(1)) ** int(k.this)
            return v, _mul(rows, v), None
        return None, None, None
    if isinstance(e, CALENDAR):  # secure_expressions' calendar functions of a date
        return _calendar_bound(e, expression_bound(e.this if not isinstance(e, exp.Extract)
                                                   else e.expression, cols, rows, parts)[0], rows)
    if isinstance(e, (exp.Case, exp.If, exp.Coalesce, exp.Nullif)):
        branches = value_branches(e)
        got = [expression_bound(b, cols, rows, parts) for b in branches]
        grain = got[0][2] if got else None
        total: Bound = Fraction(0)
        for _, t, g in got:
            grain = _grain_min(grain, g)
            total = _add(total, t)
        return _max(*(v for v, _, _ in got)), total, grain
    return None, None, None


def _share_bound(e: exp.Div, parts: dict[str, frozenset[str]]) -> Bound:
    """|k| + 1 when ``e`` is k * a / b (k a literal, or 1) with a a part of b's whole, so that
    0 <= a <= b: then |e| <= |k|, and one more covers the secure division's rounding."""
    whole = _unwrap(e.expression)
    if isinstance(whole, exp.Nullif):  # x / NULLIF(SUM(x), 0): SUM(x) when not NULL
        whole = _unwrap(whole.this)
    if not isinstance(whole, exp.Column) or whole.name not in parts:
        return None
    scale, part = Fraction(1), _unwrap(e.this)
    while isinstance(part, (exp.Mul, exp.Neg)):
        if isinstance(part, exp.Neg):
            part = _unwrap(part.this)
            continue
        k, rest = (part.this, part.expression) if isinstance(_unwrap(part.this), exp.Literal) \
            else (part.expression, part.this)
        k = _unwrap(k)
        if not isinstance(k, exp.Literal) or k.is_string:
            return None
        scale *= abs(Fraction(k.this))
        part = _unwrap(rest)
    if isinstance(part, exp.Column) and part.name in parts[whole.name]:
        return scale + 1
    return None


def _unwrap(e: exp.Expression) -> exp.Expression:
    while isinstance(e, (exp.Paren, exp.Cast)):
        e = e.this
    return e


def _calendar_bound(e: exp.Expression, days: Bound, rows: Bound
                    ) -> tuple[Bound, Bound, Bound]:
    """A part of a date below `days` in magnitude: its year below days / 365 + 2000, the
    other parts below 367; a truncated date within a year of it, a date plus n months within
    31 (|n| + 1) days."""
    if days is None:
        return None, None, None
    if isinstance(e, exp.AddMonths):
        n = e.expression
        months = abs(int(n.this)) if isinstance(n, exp.Literal) and not n.is_string and \
            str(n.this).lstrip("-").isdigit() else None
        v = None if months is None else days + 31 * (months + 1)
    elif isinstance(e, (exp.DateTrunc, exp.TimestampTrunc)):
        v = days + 366
    else:
        part = e.this.name.upper() if isinstance(e, exp.Extract) else ""
        v = days / 365 + 2000 if isinstance(e, exp.Year) or part in ("YEAR", "YEARS") \
            else Fraction(367)
    return v, _mul(rows, v), Fraction(1)


def _tiny() -> Fraction:
    """Bounds are strict: a literal k has |k| < k + tiny."""
    return Fraction(1, 1 << 40)


# --------------------------------------------------------------------------------------------
# Which secure operations the bounds leave unproven (each gets a secure overflow check)
# --------------------------------------------------------------------------------------------

class Unproven(NamedTuple):
    """One secure operation the bounds cannot prove to fit: ``what`` as the analyst reads it
    (the text of the check's message), ``kind`` "sum" (an aggregate's SUM, output column
    ``column``) or "arithmetic" (a +, -, *, / or POWER of a row expression; ``column``
    None)."""

    what: str
    kind: str
    column: str | None = None


def operation_text(e: exp.Expression, labels: dict[str, str] | None = None) -> str:
    """An operation as the analyst reads it (for overflow messages; never a value): the
    compiler's own columns (``__agg1__sum``, a scalar subquery's ``__sq2``) written as what
    they compute, from ``labels`` (a node's column labels), and its casts to DOUBLE left out."""
    labels = labels or {}

    def label(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and node.name.startswith("__") and node.name in labels:
            return exp.column(exp.Identifier(this=labels[node.name], quoted=False))
        return node

    def uncast(node: exp.Expression) -> exp.Expression:
        while isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.DOUBLE:
            node = node.this
        return node

    return e.transform(label).transform(uncast).sql().replace('"', "")


def expression_fits(bounds: Bounds, node: int, e: exp.Expression, limit: int) -> bool:
    """Do the bounds prove |e| < limit for expression ``e`` over node ``node``'s columns?"""
    return fits(bounds.expression(node, e)[0], limit)


def unproven_operations(dag: Dag, limit: int) -> dict[int, list[Unproven]]:
    """{secure node: the operations it computes that the bounds cannot prove to stay below
    ``limit`` (the secure type's range, also what owners check when they share)}, in program
    order, without repeats: every SUM of a secure aggregate (other than the grouped-by-public-
    keys and declared-domain ones, whose sums the backend bounds otherwise, and those only the
    reveal reads: :func:`_revealed_only`) and every +, -, *, / and POWER in a secure filter's
    predicate or projection."""
    bounds = Bounds(dag, share_limit=limit)
    lab = labels(dag)
    out: dict[int, list[Unproven]] = {}
    for n in dag.topo():
        if dag.attr(n, "placement") != SECURE:
            continue
        op = dag.op(n)
        ins = dag.inputs(n)
        found: list[Unproven] = []
        if isinstance(op, Aggregate) and not dag.attr(n, "public_keys") \
                and not dag.attr(n, DOMAIN_ATTR):
            revealed_only = _revealed_only(dag, n, bounds.rows(ins[0]))
            types = {f.name: f.sql_type for f in dag.schema(n)}
            for a in op.aggs:
                if a.func != "sum" or fits(bounds.total(ins[0], a.arg), limit):
                    continue
                if revealed_only and not _whole(types.get(a.name, "")):
                    continue
                what = f"SUM({column_text(dag, ins[0], a.arg)})"
                if "__" in what:  # a combine of the parties' partial sums: say what they sum
                    label = lab[n].get(a.name, what)
                    what = f"SUM({label[4:]}" if label.lower().startswith("sum(") \
                        else f"SUM({label})"
                found.append(Unproven(what, "sum", a.name))
        elif isinstance(op, Window):  # a secure SUM OVER: every row's sum checked
            for name, w in op.exprs:
                if isinstance(w.this, exp.Sum) and not fits(bounds.value(n, name), limit):
                    found.append(Unproven(f"{operation_text(w, lab[ins[0]])}", "sum", name))
        elif isinstance(op, (Filter, Project)):
            exprs = [op.predicate] if isinstance(op, Filter) else [e for _, e in op.exprs]
            for e in exprs:
                for sub in _post_order(e):
                    if isinstance(sub, (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Pow)) \
                            and not expression_fits(bounds, ins[0], sub, limit):
                        found.append(Unproven(operation_text(sub, lab[ins[0]]), "arithmetic"))
        seen: set[str] = set()
        found = [u for u in found if not (u.what in seen or seen.add(u.what))]
        if found:
            out[n] = found
    return out


#: a SUM of at most this many in-range terms is exact in the secure field (secfxp(96, 32): a
#: 160-bit prime, above 2 x 2^(63 + 32 + 48)): revealed as it is, it needs no range check
EXACT_SUM_TERMS = 1 << 48


def _revealed_only(dag: Dag, node: int, rows: Bound) -> bool:
    """Does only a Reveal read this aggregate's output, over at most EXACT_SUM_TERMS rows? Then
    its sums are opened as the field holds them, exactly (each term is in the type's range,
    the sum of them far inside the field), and a float or decimal sum beyond the type's range
    is simply the right number: no operation ever computes on it, so nothing needs its bound.
    (Whole-number sums stay checked: the result's int column holds 64 bits.)"""
    return (rows is not None and rows <= EXACT_SUM_TERMS and bool(dag.consumers(node))
            and all(isinstance(dag.op(c), Reveal) for c in dag.consumers(node)))


def _whole(sql_type: str) -> bool:
    """A whole-number result type: its decoding stops at 64 bits, so its sums stay checked."""
    return sql_type.strip().lower() in ("int", "bool", "date")


def _post_order(e: exp.Expression) -> list[exp.Expression]:
    """Sub-expressions, operands before their operation (the order a program computes them)."""
    out = []
    for child in e.iter_expressions():
        out += _post_order(child)
    return out + [e]


def column_text(dag: Dag, node: int, column: str) -> str:
    """What a column computes, as the analyst wrote it (for messages)."""
    op = dag.op(node)
    if isinstance(op, Project):
        e = dict(op.exprs).get(column)
        while isinstance(e, exp.Paren):
            e = e.this
        if e is not None and not isinstance(e, exp.Column):
            return operation_text(e)
        if isinstance(e, exp.Column):
            column = e.name
    ins = dag.inputs(node)
    if isinstance(op, Aggregate) and column not in op.keys:
        a = next((a for a in op.aggs if a.name == column), None)
        if a is not None and a.arg is not None:  # a SUM of partial SUMs is the SUM
            inner = column_text(dag, ins[0], a.arg)
            return inner if a.func == "sum" else f"{a.func.upper()}({inner})"
    if len(ins) == 1 and column in dag.names(ins[0]):
        return column_text(dag, ins[0], column)
    return column
