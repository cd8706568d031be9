"""The SQL type of a lowered row expression over the catalog's column types, checked as it goes.

`type_of` walks the expression with one small rule per kind of node (TYPE_RULES); a node of a
kind without a rule is not supported. A type mismatch is a SchemaError placed at the matching
node of the user's own expression (`original`), since the lowered copy has no positions.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlglot import exp

from .. import sqltypes
from ..errors import SchemaError, SqlError, UnsupportedError
from .parse import node_position
from .trees import construct_name, find_like

BOOLISH = ("bool", "null")
COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def type_of(e: exp.Expression, types: dict[str, str], where: str, *, sql: str | None,
            original: exp.Expression | None = None) -> str:
    """The SQL type of lowered expression `e` over columns of `types`; `where` names the
    clause for errors. Raises SchemaError on a type mismatch, UnsupportedError on a node
    without a type rule."""
    return _Typing(types, where, original if original is not None else e, sql).of(e)


class _Typing:
    """One type_of call: the input column types and where errors point."""

    def __init__(self, types: dict[str, str], where: str, original: exp.Expression,
                 sql: str | None) -> None:
        self.types, self.where, self.original, self.sql = types, where, original, sql

    def of(self, x: exp.Expression) -> str:
        for cls in type(x).__mro__:
            rule = TYPE_RULES.get(cls)
            if rule is not None:
                return rule(self, x)
        raise self.fail(UnsupportedError, f"{construct_name(x)} in {self.where}", x)

    def fail(self, cls: type[SqlError], message: str, x: exp.Expression) -> SqlError:
        """An error placed at the user's node that `x` (a node of the lowered copy) came from."""
        return cls(message, **node_position(find_like(self.original, x) or self.original,
                                            self.sql))

    def mismatch(self, message: str, x: exp.Expression) -> SqlError:
        return self.fail(SchemaError, message, x)

    def require_numeric(self, t: str, message: str, x: exp.Expression) -> None:
        if not sqltypes.is_numeric(t):
            raise self.mismatch(message, x)


def _column(ty: _Typing, x: exp.Column) -> str:
    return ty.types.get(x.name, "int")


def _paren(ty: _Typing, x: exp.Paren) -> str:
    return ty.of(x.this)


def _arithmetic(ty: _Typing, x: exp.Binary) -> str:
    """+ - * %: numbers (NULL fits any); a date plus or minus an int is a date."""
    a, b = ty.of(x.this), ty.of(x.expression)
    if a == "date" and b == "int" and isinstance(x, (exp.Add, exp.Sub)):
        return "date"
    for side in (a, b):
        if not sqltypes.is_numeric(side) and side != "null":
            raise ty.mismatch(f"arithmetic on {side}: {x.sql()}", x)
    return sqltypes.combine_numeric(a if a != "null" else b, b if b != "null" else a)


def _division(ty: _Typing, x: exp.Div) -> str:
    for side in (ty.of(x.this), ty.of(x.expression)):
        if not sqltypes.is_numeric(side) and side != "null":
            raise ty.mismatch(f"division of {side}: {x.sql()}", x)
    return "float"


def _negation(ty: _Typing, x: exp.Neg) -> str:
    a = ty.of(x.this)
    ty.require_numeric(a, f"negation of {a}", x)
    return a


def _same_number(ty: _Typing, x: exp.Func) -> str:
    """ABS, ROUND: a number of the argument's type."""
    a = ty.of(x.this)
    ty.require_numeric(a, f"{x.key.upper()} of {a}", x)
    return a


def _float_of_number(ty: _Typing, x: exp.Func) -> str:
    """POWER, SQRT: a float of a number."""
    a = ty.of(x.this)
    ty.require_numeric(a, f"{x.key.upper()} of {a}", x)
    return "float"


def _comparison(ty: _Typing, x: exp.Binary) -> str:
    a, b = ty.of(x.this), ty.of(x.expression)
    if not comparable(a, b):
        raise ty.mismatch(f"cannot compare {a} with {b}: {x.sql()}", x)
    return "bool"


def _and_or(ty: _Typing, x: exp.Connector) -> str:
    for side in (x.this, x.expression):
        if ty.of(side) not in BOOLISH:
            raise ty.mismatch(f"{x.key.upper()} of a non-boolean: {side.sql()}", side)
    return "bool"


def _not(ty: _Typing, x: exp.Not) -> str:
    if ty.of(x.this) not in BOOLISH:
        raise ty.mismatch(f"NOT of a non-boolean: {x.this.sql()}", x)
    return "bool"


def _is(ty: _Typing, x: exp.Is) -> str:
    ty.of(x.this)
    return "bool"


def _in_list(ty: _Typing, x: exp.In) -> str:
    a = ty.of(x.this)
    for item in x.expressions:
        if not comparable(a, ty.of(item)):
            raise ty.mismatch(f"IN list mixes {a} and {ty.of(item)}", item)
    return "bool"


def _between(ty: _Typing, x: exp.Between) -> str:
    a = ty.of(x.this)
    for side in (x.args["low"], x.args["high"]):
        if not comparable(a, ty.of(side)):
            raise ty.mismatch(f"BETWEEN compares {a} with {ty.of(side)}", x)
    return "bool"


def _conditional(ty: _Typing, x: exp.Case | exp.If) -> str:
    """CASE / IF: boolean conditions (a simple CASE x WHEN v compares instead), and branches
    of one type."""
    simple_case = isinstance(x, exp.Case) and x.this is not None
    if not simple_case:
        for c in _conditions(x):
            if ty.of(c) not in BOOLISH:
                raise ty.mismatch(f"CASE WHEN condition is {ty.of(c)}, not a boolean", c)
    return unify([ty.of(b) for b in _branches(x)], lambda m: ty.mismatch(m, x))


def _conditions(x: exp.Case | exp.If) -> list[exp.Expression]:
    return [i.this for i in x.args.get("ifs") or []] if isinstance(x, exp.Case) else [x.this]


def _branches(x: exp.Case | exp.If) -> list[exp.Expression]:
    """The values a CASE / IF may take, in order (THEN ..., ELSE)."""
    branches = ([i.args["true"] for i in x.args.get("ifs") or []]
                if isinstance(x, exp.Case) else [x.args["true"]])
    if x.args.get("default") is not None:
        branches.append(x.args["default"])
    if isinstance(x, exp.If) and x.args.get("false") is not None:
        branches.append(x.args["false"])
    return branches


def _coalesce(ty: _Typing, x: exp.Coalesce) -> str:
    return unify([ty.of(x.this)] + [ty.of(y) for y in x.expressions],
                 lambda m: ty.mismatch(m, x))


def _nullif(ty: _Typing, x: exp.Nullif) -> str:
    a, b = ty.of(x.this), ty.of(x.expression)
    if not comparable(a, b):
        raise ty.mismatch(f"NULLIF compares {a} with {b}", x)
    return a


def _cast(ty: _Typing, x: exp.Cast) -> str:
    target = sqltypes.cast_type(x.to)
    if target is None:
        raise ty.fail(UnsupportedError, f"CAST to {x.to.sql()}", x)
    ty.of(x.this)
    return target


#: node class -> its type rule; a node's most specific class with a rule decides
TYPE_RULES: dict[type, Callable[[_Typing, exp.Expression], str]] = {
    exp.Column: _column,
    exp.Paren: _paren,
    exp.Literal: lambda ty, x: sqltypes.literal_type(x),
    exp.Boolean: lambda ty, x: "bool",
    exp.Null: lambda ty, x: "null",
    exp.Add: _arithmetic, exp.Sub: _arithmetic, exp.Mul: _arithmetic, exp.Mod: _arithmetic,
    exp.Div: _division,
    exp.Neg: _negation,
    exp.Abs: _same_number, exp.Round: _same_number,
    exp.Pow: _float_of_number, exp.Sqrt: _float_of_number,
    **{cls: _comparison for cls in COMPARISONS},
    exp.And: _and_or, exp.Or: _and_or,
    exp.Not: _not,
    exp.Is: _is,
    exp.In: _in_list,
    exp.Between: _between,
    exp.Case: _conditional, exp.If: _conditional,
    exp.Coalesce: _coalesce,
    exp.Nullif: _nullif,
    exp.Cast: _cast,
}


def comparable(a: str, b: str) -> bool:
    """Whether values of types a and b may be compared (NULL with anything, numbers mixed)."""
    if "null" in (a, b) or a == b:
        return True
    return sqltypes.is_numeric(a) and sqltypes.is_numeric(b)


def unify(types: list[str], fail: Callable[[str], Exception]) -> str:
    """The one type of values of `types` (numbers widen; all NULL: int), else fail(message)."""
    real = [x for x in types if x != "null"]
    if not real:
        return "int"
    out = real[0]
    for x in real[1:]:
        if x == out:
            continue
        if sqltypes.is_numeric(x) and sqltypes.is_numeric(out):
            out = sqltypes.combine_numeric(x, out)
        else:
            raise fail(f"CASE branches mix {out} and {x}")
    return out


def coerce_date_literals(e: exp.Expression, types: dict[str, str]) -> exp.Expression:
    """'2020-01-31' compared with a date column becomes CAST('2020-01-31' AS DATE)."""
    def is_date(x: exp.Expression) -> bool:
        return (isinstance(x, exp.Column) and types.get(x.name) == "date") or \
            (isinstance(x, exp.Cast) and sqltypes.cast_type(x.to) == "date")

    def swap(x: exp.Expression) -> exp.Expression:
        if isinstance(x, exp.Literal) and x.is_string and ISO_DATE.fullmatch(x.this):
            p = x.parent
            sides = []
            if isinstance(p, COMPARISONS):
                sides = [p.this, p.expression]
            elif isinstance(p, (exp.Between, exp.In)):
                sides = [p.this]
            if any(is_date(s) for s in sides if s is not x):
                return exp.Cast(this=x.copy(), to=exp.DataType.build("DATE"))
        return x
    return e.transform(swap)
