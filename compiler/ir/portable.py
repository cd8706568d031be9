"""The row-expression constructs every side of a plan can evaluate, and constant folding.

A party's local engine evaluates any SQL function; inside MPC (and in the recipients' steps
after the reveal) only PORTABLE_EXPRESSIONS have an implementation. The front end accepts the
others where they may run locally; passes/push_down_expressions moves them to the party that
holds their columns; analyses/secure_expressions refuses what is left in MPC.

`fold_constants` turns constant date arithmetic (DATE '1998-12-01' - INTERVAL '90' DAY)
into a date literal, which is portable.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.simplify import simplify

#: the meta key under which the front end's type checking leaves each node's SQL type
SQL_TYPE_META = "sql_type"

#: row-wise expression nodes every side evaluates: local engines, MPC and the recipients
PORTABLE_EXPRESSIONS = (
    exp.Column, exp.Literal, exp.Boolean, exp.Paren, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Neg,
    exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.And, exp.Or, exp.Not, exp.Case, exp.If,
    exp.In, exp.Between, exp.Is, exp.Null, exp.Cast, exp.DataType, exp.Abs, exp.Pow, exp.Sqrt,
    exp.Identifier, exp.Star, exp.Distinct, exp.Tuple, exp.Coalesce, exp.Nullif, exp.Round,
    exp.Mod, exp.DataTypeParam,
)


def is_portable(e: exp.Expression) -> bool:
    """Whether every node of `e` is a PORTABLE_EXPRESSIONS construct."""
    return all(isinstance(x, PORTABLE_EXPRESSIONS) for x in e.walk())


def fold_constants(e: exp.Expression) -> exp.Expression:
    """`e` with its constant date +/- INTERVAL terms computed (a CAST of a date literal)."""
    def fold(x: exp.Expression) -> exp.Expression:
        if isinstance(x, (exp.Add, exp.Sub)) and x.find(exp.Interval) is not None and \
                x.find(exp.Column) is None:
            folded = simplify(x.copy())
            if isinstance(folded, exp.Cast) and isinstance(folded.this, exp.Literal):
                folded.meta.update(x.meta)
                return folded
        return x
    return e.transform(fold)


def local_date_arithmetic(e: exp.Expression) -> exp.Expression:
    """`e` for a local engine: a date plus or minus an INTERVAL cast back to DATE (engines
    such as DuckDB make it a timestamp; SQL's type, which the plan promises, is a date)."""
    def cast(x: exp.Expression) -> exp.Expression:
        if isinstance(x, (exp.Add, exp.Sub)) and x.meta.get(SQL_TYPE_META) == "date" and \
                isinstance(x.this, exp.Interval) + isinstance(x.expression, exp.Interval) == 1 \
                and not isinstance(x.parent, exp.Cast):
            return exp.Cast(this=x.copy(), to=exp.DataType.build("DATE"))
        return x
    return e.copy().transform(cast)
