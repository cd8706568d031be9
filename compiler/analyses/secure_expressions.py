"""Which constructs can run inside MPC, and the one-line refusal where one cannot.

A party's local engine runs any SQL function on its own rows (LIKE, SUBSTRING, EXTRACT, ...).
Once rows of several parties are combined, expressions run on secret shares, where only the
PORTABLE_EXPRESSIONS (compiler/ir/portable.py) and the SECURE_FUNCTIONS below have an
implementation: the secure backend's expression translator covers exactly these (the
recipients' steps after the reveal only the portable ones). The secure functions are

- the calendar parts of a date: EXTRACT(YEAR | QUARTER | MONTH | DAY | DOW | ISODOW | DOY
  FROM d), YEAR(d), MONTH(d), DAY(d), ...; DATE_TRUNC('day' | 'week' | 'month' | 'quarter' |
  'year', d); date +/- INTERVAL n MONTH | QUARTER | YEAR (passes/secure_date_arithmetic writes
  it as ADD_MONTHS(d, months)) and ADD_MONTHS(d, n): exact divisions by public constants
  (backends/mpyc/lib/dates.py);
- x [NOT] LIKE 'abc' and x [NOT] LIKE 'abc%' on a text: equality of the pieces' bits with the
  pattern's (backends/mpyc/lib/text_match.py).

`check_secure_expressions` finds a construct without a secure implementation in a filter or
projection placed in MPC or at the recipients and says which construct, over whose rows, and
how it would run locally instead, at the construct's line and column. It also refuses an
outer join placed in MPC (no secure version yet).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlglot import exp

from ..errors import UnsupportedError
from ..ir.dag import JOIN_POSITIONS, RECIPIENT, SECURE, Dag, Filter, Join, Project
from ..ir.portable import PORTABLE_EXPRESSIONS, SQL_TYPE_META

#: EXTRACT's parts with a secure form -> the part computed (backends/mpyc/lib/dates.py)
EXTRACT_PARTS = {"YEAR": "year", "YEARS": "year", "QUARTER": "quarter", "MONTH": "month",
                 "MONTHS": "month", "DAY": "day", "DAYS": "day", "DOW": "dow",
                 "DAYOFWEEK": "dow", "ISODOW": "isodow", "DOY": "doy", "DAYOFYEAR": "doy"}
#: functions of one date with a secure form -> the part they compute
DATE_PART_FUNCTIONS = {exp.Year: "year", exp.Quarter: "quarter", exp.Month: "month",
                       exp.Day: "day", exp.DayOfMonth: "day", exp.DayOfWeek: "dow",
                       exp.DayOfWeekIso: "isodow", exp.DayOfYear: "doy"}
TRUNC_UNITS = ("day", "week", "month", "quarter", "year")
#: INTERVAL units that are whole numbers of months
MONTH_UNITS = {"MONTH": 1, "MONTHS": 1, "QUARTER": 3, "QUARTERS": 3, "YEAR": 12, "YEARS": 12}
TRUNCATIONS = (exp.DateTrunc, exp.TimestampTrunc)
SECURE_FUNCTIONS = (exp.Extract, *DATE_PART_FUNCTIONS, *TRUNCATIONS, exp.AddMonths, exp.Like)


def check_secure_expressions(dag: Dag, position: Callable[[exp.Expression], dict]) -> None:
    """Raise UnsupportedError at the first construct without a secure implementation in a
    filter or projection that runs in MPC (or after the reveal); `position(node)` gives the
    error's sql/line/col keyword arguments."""
    for node in dag.topo():
        placement = dag.attr(node, "placement")
        if placement not in (SECURE, RECIPIENT):
            continue
        op = dag.op(node)
        if isinstance(op, Join) and op.kind != "inner" and placement == SECURE:
            owners = ", ".join(sorted(dag.attr(node, "owners") or ()))
            raise UnsupportedError(
                f"{op.kind.upper()} JOIN of rows from {owners} inside MPC: not available yet; "
                f"it runs locally when both sides are held by one party or the catalog declares "
                f"them co-located on the join key", **dag.g.graph.get(JOIN_POSITIONS, {}).get(
                    node, {}))
        exprs = [op.predicate] if isinstance(op, Filter) else \
            [e for _, e in op.exprs] if isinstance(op, Project) else []
        types = dag.types(dag.inputs(node)[0]) if dag.inputs(node) else {}
        for e in exprs:
            for x in e.walk():
                if isinstance(x, PORTABLE_EXPRESSIONS) or _inside_secure_function(x):
                    continue
                if placement == SECURE and isinstance(x, SECURE_FUNCTIONS):
                    why = secure_function_problem(x, types)
                    if why is None:
                        continue
                    raise _refusal(dag, node, x, position, why)
                raise _refusal(dag, node, _construct(x), position)


def _inside_secure_function(x: exp.Expression) -> bool:
    """The unit of EXTRACT / DATE_TRUNC (a Var): part of its function, checked there."""
    return isinstance(x, exp.Var) and isinstance(x.parent, (exp.Extract, *TRUNCATIONS))


def secure_function_problem(x: exp.Expression, types: dict[str, str]) -> str | None:
    """Why the SECURE_FUNCTIONS call `x` (over columns of the given types) has no secure
    form, or None when it has one."""
    if isinstance(x, exp.Like):
        if x.args.get("escape") is not None or isinstance(x.parent, exp.Escape):
            return "inside MPC LIKE takes no ESCAPE clause"
        if not _is_text(x.this, types):
            return "inside MPC LIKE applies to a text"
        if like_pattern(x) is None:
            return "inside MPC only LIKE 'abc' and LIKE 'abc%' (a prefix) are available"
        return None
    if isinstance(x, exp.AddMonths):
        if add_months_count(x) is None:
            return "inside MPC the number of months is a whole number literal"
        return None if _is_date(x.this, types) else "inside MPC it applies to a date"
    if isinstance(x, TRUNCATIONS):
        if trunc_unit(x) is None:
            return "inside MPC DATE_TRUNC to 'day', 'week', 'month', 'quarter' or 'year'"
        return None if _is_date(x.this, types) else "inside MPC it applies to a date"
    found = date_part(x)
    if found is None:
        return "inside MPC EXTRACT of YEAR, QUARTER, MONTH, DAY, DOW, ISODOW or DOY"
    return None if _is_date(found[1], types) else "inside MPC it applies to a date"


def date_part(x: exp.Expression) -> tuple[str, exp.Expression] | None:
    """(part, the date) of EXTRACT(part FROM date), YEAR(date), ...; None for another part."""
    if isinstance(x, exp.Extract):
        part = EXTRACT_PARTS.get(x.this.name.upper()) if isinstance(x.this, exp.Var) else None
        return (part, x.expression) if part else None
    part = next((p for cls, p in DATE_PART_FUNCTIONS.items() if type(x) is cls), None)
    return (part, x.this) if part else None


def trunc_unit(x: exp.Expression) -> str | None:
    """The unit of DATE_TRUNC (lower case) when MPC has it, else None."""
    unit = x.args.get("unit")
    name = unit.name.lower() if isinstance(unit, (exp.Var, exp.Literal)) else ""
    return name if name in TRUNC_UNITS else None


def add_months_count(x: exp.AddMonths) -> int | None:
    """The whole number of months of ADD_MONTHS(d, n) with a literal n, else None."""
    n, sign = x.expression, 1
    while isinstance(n, (exp.Neg, exp.Paren)):
        sign = -sign if isinstance(n, exp.Neg) else sign
        n = n.this
    if isinstance(n, exp.Literal) and str(n.this).strip().lstrip("-").isdigit():
        return sign * int(str(n.this).strip())
    return None


def like_pattern(x: exp.Like) -> tuple[str, str] | None:
    """("equal", text) for LIKE 'text' (no wildcard), ("prefix", text) for LIKE 'text%'
    (any number of trailing %), None for other patterns."""
    pattern = x.expression
    if not isinstance(pattern, exp.Literal) or not pattern.is_string:
        return None
    text = pattern.this
    head = text.rstrip("%")
    if "%" in head or "_" in head:
        return None
    return ("prefix" if head != text else "equal"), head


def _is_date(e: exp.Expression, types: dict[str, str]) -> bool:
    """A date value inside MPC: a date column or expression, a date literal (a CAST of a
    text column to DATE is no date there: its value is the text's encoding)."""
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, exp.Column):
        return types.get(e.name) == "date"
    if isinstance(e, exp.Cast):
        inner = e.this
        return e.to.this == exp.DataType.Type.DATE and (
            (isinstance(inner, exp.Literal) and inner.is_string) or _is_date(inner, types))
    return e.meta.get(SQL_TYPE_META) == "date"


def _is_text(e: exp.Expression, types: dict[str, str]) -> bool:
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, exp.Column):
        return types.get(e.name) == "text"
    return e.meta.get(SQL_TYPE_META) == "text"


def _construct(x: exp.Expression) -> exp.Expression:
    """The node an error names: the operator or function around an inner part (the
    INTERVAL of `d + INTERVAL '1' DAY` is named by its `+`)."""
    while isinstance(x, (exp.Var, exp.Interval, exp.Literal)) and x.parent is not None:
        x = x.parent
    return x


def _refusal(dag: Dag, node: int, x: exp.Expression,
             position: Callable[[exp.Expression], dict], why: str | None = None
             ) -> UnsupportedError:
    name = x.name.upper() if isinstance(x, exp.Anonymous) else \
        x.sql_name() if isinstance(x, exp.Func) else type(x).__name__.upper()
    if isinstance(x, (exp.Like, exp.ILike)):
        name = ("NOT " if x.args.get("negate") else "") + name
        if isinstance(x.expression, exp.Literal):
            name += f" {x.expression.sql()}"
    columns = sorted({c.name for c in x.find_all(exp.Column)})
    owners = sorted(dag.attr(node, "owners") or ())
    on = f" on {', '.join(columns)}" if columns else ""
    where = "after the reveal" if dag.attr(node, "placement") == RECIPIENT else "inside MPC"
    held = f", whose rows come from {', '.join(owners)}" if len(owners) > 1 else ""
    reason = f" ({why})" if why else ""
    message = (f"{name}{on}{held}: not available {where}{reason}; it would run locally if it "
               f"read only one party's rows before they are combined (e.g. a condition on one "
               f"table, or a column computed in a subquery over one table)")
    return UnsupportedError(message, **_where(x, name, position(x)))


def _where(x: exp.Expression, name: str, pos: dict) -> dict:
    """The error's position: the construct's own (from its tokens), else, for a function
    whose tokens carry none (EXTRACT), where its name occurs in the SQL if only once."""
    sql = pos.get("sql")
    if "line" in pos or not sql or not isinstance(x, exp.Func):
        return pos
    found = [m.start() for m in re.finditer(rf"\b{re.escape(name.split()[0])}\b", sql, re.I)]
    if len(found) != 1:
        return pos
    before = sql[:found[0]]
    return {"sql": sql, "line": before.count("\n") + 1,
            "col": found[0] - (before.rfind("\n") + 1) + 1}
