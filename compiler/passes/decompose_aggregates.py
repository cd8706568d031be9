"""Rewrite AVG, VARIANCE, STDDEV and COUNT(DISTINCT) into SUM / COUNT / DISTINCT plus a projection.

After this pass an Aggregate only computes sum, count, count_star, min and max (each of which
splits into a partial and a final aggregate), or is a DISTINCT (keys, no aggregates).
COUNT(DISTINCT x) GROUP BY k becomes DISTINCT (k, x) then COUNT(*) GROUP BY k; when the same
aggregate also computes other functions, the two results are joined on k.
"""

from __future__ import annotations

from sqlglot import exp

from ..errors import UnsupportedError
from ..ir.dag import AggCall, Aggregate, Dag, Field, Join, Project, col, render_exprs

SIMPLE = ("sum", "count", "count_star", "min", "max")


def decompose_aggregates(dag: Dag) -> Dag:
    dag = dag.copy()
    for node in dag.topo():
        op = dag.op(node)
        if isinstance(op, Aggregate) and any(a.func not in SIMPLE for a in op.aggs):
            _decompose(dag, node, op)
    dag.check()
    return dag


def _decompose(dag: Dag, node: int, op: Aggregate) -> None:
    """Replace the Aggregate `node` by simple aggregates, joined, and a final projection."""
    (src,) = dag.inputs(node)
    distinct_aggs = [a for a in op.aggs if a.func == "count_distinct"]
    calls = _SimpleCalls()
    for a in op.aggs:
        if a.func != "count_distinct":
            calls.finish[a.name] = calls.formula(a)
    if calls.squares:
        src = _add_squares(dag, src, node, calls.squares)
    in_types = dag.types(src)
    parts: list[int] = []
    if calls.simple or not distinct_aggs:
        fields = [Field(k, in_types[k]) for k in op.keys] + [
            Field(a.name, _simple_type(a, in_types)) for a in calls.simple]
        parts.append(dag.add(Aggregate(op.keys, tuple(calls.simple)), fields, [src]))
    parts += _distinct_counts(dag, src, op.keys, distinct_aggs, calls.finish)
    combined = _join_parts(dag, parts, op.keys)
    _restore_outputs(dag, node, op, combined, calls.finish)


class _SimpleCalls:
    """The simple aggregates (sums, counts, sums of squares) the non-distinct aggregates
    need, each computed once, and the formula of each original output over them."""

    def __init__(self) -> None:
        self.simple: list[AggCall] = []
        self.squares: list[tuple[str, exp.Expression]] = []  # (column, arg * arg) to add
        self.finish: dict[str, exp.Expression] = {}  # original output -> formula
        self.seen: dict[tuple[str, str | None], str] = {}

    def call(self, name: str, func: str, arg: str | None) -> str:
        """The output column of func(arg), computed once however often it is needed
        (AVG(x) and STDDEV(x) share SUM(x) and COUNT(x): fewer columns to share into MPC)."""
        if (func, arg) not in self.seen:
            self.seen[(func, arg)] = name
            self.simple.append(AggCall(name, func, arg))
        return self.seen[(func, arg)]

    def formula(self, a: AggCall) -> exp.Expression:
        """The expression of aggregate `a` over simple aggregate columns."""
        if a.func in SIMPLE:
            return col(self.call(a.name, a.func, a.arg))
        s = self.call(f"{a.name}__sum", "sum", a.arg)
        c = self.call(f"{a.name}__count", "count", a.arg)
        if a.func == "avg":
            return exp.Div(this=_float(col(s)), expression=_nonzero(col(c)))
        sq_col = f"{a.arg}__sq"
        if sq_col not in {n for n, _ in self.squares}:
            self.squares.append((sq_col, exp.Mul(this=col(a.arg), expression=col(a.arg))))
        q = self.call(f"{a.name}__sumsq", "sum", sq_col)
        # var = (sumsq - sum^2 / n) / (n - 1 or n): one division by a secret count
        num = exp.Sub(this=_float(col(q)), expression=exp.Div(
            this=exp.Mul(this=_float(col(s)), expression=col(s)), expression=_nonzero(col(c))))
        den = exp.Sub(this=col(c), expression=exp.Literal.number(1)) if a.func.endswith("samp") \
            else col(c)
        var = exp.Div(this=exp.Paren(this=num), expression=_nonzero(den))
        return exp.Sqrt(this=var) if a.func.startswith("stddev") else var


def _add_squares(dag: Dag, src: int, node: int, squares: list[tuple[str, exp.Expression]]
                 ) -> int:
    """A projection between `src` and `node` adding the squared argument columns."""
    in_types = dag.types(src)
    keep = [(f.name, col(f.name)) for f in dag.schema(src)]
    exprs = tuple(keep + squares)
    fields = list(dag.schema(src)) + [Field(n, _square_type(in_types[n[:-4]]))
                                      for n, _ in squares]
    return dag.insert_between(src, node, Project(exprs, render_exprs(squares)), fields)


def _distinct_counts(dag: Dag, src: int, keys: tuple[str, ...], distinct_aggs: list[AggCall],
                     finish: dict[str, exp.Expression]) -> list[int]:
    """Each COUNT(DISTINCT x): DISTINCT (keys, x), then COUNT(x) per keys (a NULL x is
    a distinct row but no value to count); one node per x."""
    in_types = dag.types(src)
    by_arg: dict[str, list[AggCall]] = {}
    for a in distinct_aggs:
        by_arg.setdefault(a.arg, []).append(a)
    parts = []
    for arg, calls in by_arg.items():
        dkeys = tuple(dict.fromkeys(keys + (arg,)))
        d = dag.add(Aggregate(dkeys, ()), [Field(k, in_types[k]) for k in dkeys], [src])
        name = calls[0].name
        c = dag.add(Aggregate(keys, (AggCall(name, "count", arg),)),
                    [Field(k, in_types[k]) for k in keys] + [Field(name, "int")], [d])
        parts.append(c)
        for extra in calls[1:]:
            finish[extra.name] = col(name)
        finish.setdefault(name, col(name))
    return parts


def _join_parts(dag: Dag, parts: list[int], keys: tuple[str, ...]) -> int:
    """The parts joined on the group keys (a cross join of single rows without keys)."""
    combined = parts[0]
    for i, p in enumerate(parts[1:], 1):
        renames = tuple((f"{k}__{i}", col(k)) for k in keys) + tuple(
            (f.name, col(f.name)) for f in dag.schema(p) if f.name not in keys)
        if keys:
            fields = [Field(n, dag.types(p)[e.name]) for n, e in renames]
            p = dag.add(Project(renames, render_exprs(renames)), fields, [p])
        if len(keys) and not set(keys) & set(dag.names(combined)):
            raise UnsupportedError("COUNT(DISTINCT) with these aggregates")
        fields = dag.schema(combined) + dag.schema(p)
        combined = dag.add(Join(keys, tuple(f"{k}__{i}" for k in keys)), fields, [combined, p])
    return combined


def _restore_outputs(dag: Dag, node: int, op: Aggregate, combined: int,
                     finish: dict[str, exp.Expression]) -> None:
    """The projection that restores the aggregate's original output columns takes its place."""
    types = dag.types(combined)
    exprs = tuple((k, col(k)) for k in op.keys) + tuple((a.name, finish[a.name]) for a in op.aggs)
    out_fields = dag.schema(node)
    assert all(n in types or n in finish for n, _ in exprs)
    roots = {n: e.this if isinstance(e, exp.Sqrt) else e for n, e in exprs}
    if roots != dict(exprs):  # square roots in a projection of their own (see push_up_reveal)
        inner = tuple(roots.items())
        combined = dag.add(Project(inner, render_exprs(inner)), out_fields, [combined])
        exprs = tuple((n, exp.Sqrt(this=col(n)) if isinstance(e, exp.Sqrt) else col(n))
                      for n, e in exprs)
    proj = dag.add(Project(exprs, render_exprs(exprs)), out_fields, [combined])
    dag.replace_node(node, proj)


def _nonzero(e: exp.Expression) -> exp.Expression:
    """NULLIF(e, 0): AVG over no rows and VAR_SAMP / STDDEV_SAMP of one row are NULL in SQL,
    not 0 / 0 (which an engine may give as NaN)."""
    return exp.Nullif(this=e, expression=exp.Literal.number(0))


def _float(e: exp.Expression) -> exp.Expression:
    return exp.Cast(this=e, to=exp.DataType.build("DOUBLE"))


def _square_type(t: str) -> str:
    return "float" if t == "float" else ("int" if t == "int" else "decimal(38,4)")


def _simple_type(a: AggCall, types: dict[str, str]) -> str:
    if a.func in ("count", "count_star"):
        return "int"
    t = types[a.arg]
    if a.func == "sum" and t.startswith("decimal"):
        return f"decimal(38,{t[t.index(',') + 1:-1]})"
    return t
