"""The SQL type of a lowered row expression over the catalog's column types, checked as it goes.

`type_of` walks the expression with one small rule per kind of node (TYPE_RULES); a node of a
kind without a rule is not supported. A type mismatch is a SchemaError placed at the matching
node of the user's own expression (`original`), since the lowered copy has no positions.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types

from .. import sqltypes
from ..errors import SchemaError, SqlError, UnsupportedError
from ..ir.portable import SQL_TYPE_META
from .parse import node_position
from .trees import construct_name, find_like

# the type of a function sqlglot's inference cannot tell, and of an INTERVAL (only as an
# operand of date arithmetic: no column has it)
UNKNOWN, INTERVAL = "unknown", "interval"
# the key of a checked node's meta that holds its type (compiler/ir/portable.py reads it)
TYPE_META = SQL_TYPE_META
BOOLISH = ("bool", "null", UNKNOWN)
# our column types -> sqlglot's, for its type inference (decimals keep their own spelling)
GLOT_TYPES = {"int": "BIGINT", "float": "DOUBLE", "text": "VARCHAR", "date": "DATE",
              "bool": "BOOLEAN"}
COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def type_of(e: exp.Expression, types: dict[str, str], where: str, *, sql: str | None,
            original: exp.Expression | None = None) -> str:
    """The SQL type of lowered expression `e` over columns of `types`; `where` names the
    clause for errors. Raises SchemaError on a type mismatch, UnsupportedError on a node
    without a type rule."""
    ty = _Typing(types, where, original if original is not None else e, sql)
    t = ty.of(e)
    if t in (UNKNOWN, INTERVAL):
        what = "an INTERVAL alone" if t == INTERVAL else e.sql()
        raise ty.fail(UnsupportedError, f"cannot tell the type of {what} in {where}; "
                                        f"CAST it to a type", e)
    return t


class _Typing:
    """One type_of call: the input column types and where errors point."""

    def __init__(self, types: dict[str, str], where: str, original: exp.Expression,
                 sql: str | None) -> None:
        self.types, self.where, self.original, self.sql = types, where, original, sql

    def of(self, x: exp.Expression) -> str:
        for cls in type(x).__mro__:
            rule = TYPE_RULES.get(cls)
            if rule is not None:
                t = rule(self, x)
                x.meta[TYPE_META] = t  # for passes that lift a subexpression into a column
                return t
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
    """+ - * %: numbers (NULL fits any); a date plus or minus an int or an INTERVAL is a
    date (an interval plus a date too)."""
    a, b = ty.of(x.this), ty.of(x.expression)
    if isinstance(x, (exp.Add, exp.Sub)) and a == "date" and b in ("int", INTERVAL):
        return "date"
    if isinstance(x, exp.Add) and a == INTERVAL and b == "date":
        return "date"
    if UNKNOWN in (a, b):
        return UNKNOWN
    for side in (a, b):
        if not sqltypes.is_numeric(side) and side != "null":
            raise ty.mismatch(f"arithmetic on {side}: {x.sql()}", x)
    a, b = a if a != "null" else b, b if b != "null" else a
    if isinstance(x, exp.Mul) and a.startswith("decimal") and b.startswith("decimal"):
        # SQL's exact product: the scales add up (decimal(15,2) * decimal(15,2) has 4 places)
        scale = min(sqltypes.decimal_scale(a) + sqltypes.decimal_scale(b), 38)
        return f"decimal(38,{scale})"
    return sqltypes.combine_numeric(a, b)


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


def _text_match(ty: _Typing, x: exp.Expression) -> str:
    """LIKE, ILIKE, SIMILAR TO, regular expressions: a text against a text pattern."""
    for side in (x.this, x.expression):
        t = ty.of(side)
        if t not in ("text", "null", UNKNOWN):
            raise ty.mismatch(f"{construct_name(x)} of {t}: {side.sql()}", side)
    return "bool"


def _of_text(result: str) -> Callable[[_Typing, exp.Expression], str]:
    """A string function (UPPER, SUBSTRING, LENGTH, ...): typed arguments, a `result`."""
    def rule(ty: _Typing, x: exp.Expression) -> str:
        for arg in x.iter_expressions():
            ty.of(arg)
        return result
    return rule


def _of_date(result: str) -> Callable[[_Typing, exp.Expression], str]:
    """A date function (EXTRACT, YEAR, DATE_TRUNC, ...): a date (or text) argument, `result`."""
    def rule(ty: _Typing, x: exp.Expression) -> str:
        for arg in x.iter_expressions():
            if not isinstance(arg, (exp.Var, exp.Literal)):
                t = ty.of(arg)
                if t not in ("date", "text", "null", UNKNOWN, INTERVAL, "int"):
                    raise ty.mismatch(f"{construct_name(x)} of {t}: {arg.sql()}", arg)
        return result
    return rule


def _annotated(ty: _Typing, x: exp.Expression) -> str:
    """Any other function: sqlglot's type inference over the argument types; UNKNOWN when it
    cannot tell (a CAST around the call names the type)."""
    if isinstance(x, (exp.Window, exp.AggFunc, exp.Query, exp.Subquery)) or \
            not isinstance(x, exp.Func):
        raise ty.fail(UnsupportedError, f"{construct_name(x)} in {ty.where}", x)
    names: dict[str, str] = {}
    schema: dict[str, str] = {}

    def placeholder(c: exp.Expression) -> exp.Expression:
        if isinstance(c, exp.Column):
            name = names.setdefault(c.name, f"c{len(names)}")
            t = ty.types.get(c.name, "int")
            schema[name] = GLOT_TYPES.get(t, t.upper())
            return exp.column(name)
        return c
    probe = exp.select(x.copy().transform(placeholder)).from_("t")
    try:
        typed = annotate_types(probe, schema={"t": schema}).expressions[0].type
    except SqlglotError:
        typed = None
    t = sqltypes.cast_type(typed) if typed is not None else None
    if t is None and not isinstance(x.parent, exp.Cast):
        raise ty.fail(UnsupportedError, f"cannot tell the type of {x.sql()} in {ty.where}; "
                                        f"CAST it to a type", x)
    return t or UNKNOWN


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
    exp.Like: _text_match, exp.ILike: _text_match, exp.SimilarTo: _text_match,
    exp.RegexpLike: _text_match, exp.RegexpILike: _text_match,
    exp.Escape: lambda ty, x: ty.of(x.this),
    exp.Interval: lambda ty, x: INTERVAL,
    exp.DPipe: _of_text("text"), exp.Concat: _of_text("text"), exp.Upper: _of_text("text"),
    exp.Lower: _of_text("text"), exp.Substring: _of_text("text"), exp.Trim: _of_text("text"),
    exp.Initcap: _of_text("text"), exp.Left: _of_text("text"), exp.Right: _of_text("text"),
    exp.Length: _of_text("int"), exp.StrPosition: _of_text("int"),
    exp.Extract: _of_date("int"), exp.Year: _of_date("int"), exp.Month: _of_date("int"),
    exp.Day: _of_date("int"), exp.Quarter: _of_date("int"), exp.DayOfWeek: _of_date("int"),
    exp.DateTrunc: _of_date("date"), exp.DateAdd: _of_date("date"),
    exp.DateSub: _of_date("date"), exp.DateDiff: _of_date("int"),
    exp.Func: _annotated,
}


def comparable(a: str, b: str) -> bool:
    """Whether values of types a and b may be compared (NULL with anything, numbers mixed)."""
    if "null" in (a, b) or UNKNOWN in (a, b) or a == b:
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
