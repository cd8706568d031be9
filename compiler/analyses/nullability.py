"""Which columns of a plan node can hold SQL NULL, known from the plan alone (never from data).

Secret columns carry NULL as a companion 0/1 flag (see backends/mpyc/secure_ops.py, "NULLs");
since the flag's presence is visible to every compute party, it must follow from public
knowledge: this analysis. NULLs come from

- SUM / MIN / MAX (and AVG, VAR, STDDEV) over no rows: an aggregate without GROUP BY, or a
  party's partial aggregate whose part has no matching rows;
- division by a value that may be zero (SQL engines give NULL; sqlmpc does the same);
- NULL literals, CASE without ELSE;

and flow through expressions (any nullable operand makes the result nullable, except
COALESCE, IS [NOT] NULL and COUNT). NULLs in the data files themselves are not tracked: the
local engines treat them by SQL semantics, and a NULL reaching MPC in a column this analysis
calls non-nullable is rejected with a clear error at the owner (backends/mpyc/support.py).
"""

from __future__ import annotations

from sqlglot import exp

from ..ir.dag import Aggregate, Dag, Join, Project, Scan, SemiJoin, Union, Window

NULL_ON_EMPTY = ("sum", "min", "max", "avg", "var_samp", "var_pop", "stddev_samp", "stddev_pop")


class Nullability:
    """`Nullability(dag)(node)` -> the node's column names that can be NULL (memoised)."""

    def __init__(self, dag: Dag) -> None:
        self.dag = dag
        self._memo: dict[int, frozenset[str]] = {}

    def __call__(self, node: int) -> frozenset[str]:
        if node not in self._memo:
            for n in self.dag.topo():  # iterative: deep plans never hit the recursion limit
                if n not in self._memo:
                    self._memo[n] = self._compute(n)
        return self._memo[node]

    def _compute(self, node: int) -> frozenset[str]:
        dag = self.dag
        op = dag.op(node)
        ins = dag.inputs(node)
        if isinstance(op, Scan) or not ins:
            return frozenset()
        if isinstance(op, Aggregate):
            below = self._memo[ins[0]]
            # a final aggregate combines the parties' partial rows (one per party even when
            # the part is empty): it is NULL only where all partials are
            over_empty = not op.keys and op.stage != "final"
            # a group key keeps its NULLs: NULL is a group of its own (SQL's GROUP BY)
            return frozenset(k for k in op.keys if k in below) | frozenset(
                a.name for a in op.aggs if a.func in NULL_ON_EMPTY
                and (over_empty or a.arg in below))
        if isinstance(op, Project):
            below = self._memo[ins[0]]
            return frozenset(name for name, e in op.exprs if expression_nullable(e, below))
        if isinstance(op, Union):
            names = dag.names(node)
            out = set()
            for i in ins:
                out |= {names[j] for j, c in enumerate(dag.names(i)) if c in self._memo[i]}
            return frozenset(out)
        if isinstance(op, Join):  # an outer join's other side is NULL where nothing matched
            left, right = (set(self._memo[i]) for i in ins)
            if op.kind in ("left", "full"):
                right |= set(dag.names(ins[1]))
            if op.kind in ("right", "full"):
                left |= set(dag.names(ins[0]))
            return frozenset(left | right)
        if isinstance(op, SemiJoin):  # the left rows, as they are
            return self._memo[ins[0]]
        if isinstance(op, Window):  # LAG / LEAD past the partition, SUM over NULLs: NULL
            never = (exp.RowNumber, exp.Rank, exp.DenseRank, exp.Ntile, exp.PercentRank,
                     exp.CumeDist, exp.Count)
            return self._memo[ins[0]] | frozenset(n for n, e in op.exprs
                                                  if not isinstance(e.this, never))
        # Filter, Sort, Limit, Distinct, Share, Reveal, Output and row-preserving operators
        # added later: a column keeps its input's nullability (matched by name)
        names = set(dag.names(node))
        return frozenset(c for i in ins for c in self._memo[i] if c in names)


def expression_nullable(e: exp.Expression, nullable: frozenset[str] | set[str]) -> bool:
    """Can `e` be NULL when the columns in `nullable` can be?"""
    if isinstance(e, exp.Paren):
        return expression_nullable(e.this, nullable)
    if isinstance(e, exp.Column):
        return e.name in nullable
    if isinstance(e, exp.Null):
        return True
    if isinstance(e, (exp.Literal, exp.Boolean)):
        return False
    if isinstance(e, exp.Is):
        return False
    if isinstance(e, exp.Nullif):
        return True
    if isinstance(e, exp.Coalesce):
        args = [e.this, *e.expressions]
        return all(expression_nullable(a, nullable) for a in args)
    if isinstance(e, exp.Case):  # a NULL condition counts as false: only values matter
        default = e.args.get("default")
        values = [i.args.get("true") for i in e.args.get("ifs") or []]
        return default is None or any(expression_nullable(v, nullable)
                                      for v in [*values, default] if v is not None)
    if isinstance(e, exp.If):
        false = e.args.get("false")
        return false is None or any(expression_nullable(v, nullable)
                                    for v in (e.args.get("true"), false) if v is not None)
    if isinstance(e, exp.Div) and divisor_may_be_zero(e.expression):
        return True
    return any(expression_nullable(c, nullable) for c in e.iter_expressions())


def divisor_may_be_zero(e: exp.Expression) -> bool:
    """False only for a nonzero numeric literal (possibly in parentheses or a CAST) and for
    NULLIF(x, 0) (NULL, never 0)."""
    while isinstance(e, (exp.Paren, exp.Cast)):
        e = e.this
    if isinstance(e, exp.Nullif) and isinstance(e.expression, exp.Literal) \
            and not e.expression.is_string and float(e.expression.this) == 0:
        return False
    if isinstance(e, exp.Literal) and not e.is_string:
        try:
            return float(e.this) == 0
        except ValueError:
            return True
    return True
