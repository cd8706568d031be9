"""Row expressions of a plan, translated into Python for the secure program.

Inside MPC an expression becomes calls on secure arrays (``ops.lt``, ``ops.where``, ...; texts
as lists of 7-byte pieces, SQL NULL as a companion 0/1 flag, see ``lib/encoding.py``); after
the reveal, and for columns public in the clear, it becomes plain numpy/pandas code the
recipients run. What cannot run inside MPC raises UnsupportedError naming the construct.
"""

from __future__ import annotations

import re

from collections.abc import Callable
from datetime import date

from sqlglot import exp

from ...compiler.analyses.bounds import operation_text
from ...compiler.analyses.nullability import divisor_may_be_zero
from ...compiler.analyses.secure_expressions import (DATE_PART_FUNCTIONS, TRUNCATIONS,
                                                     add_months_count, date_part, like_pattern,
                                                     trunc_unit)
from ...compiler.errors import UnsupportedError
from ...compiler.sqltypes import cast_type
from .lib import encoding
from .lib.encoding import NULL_FLAG

__all__ = ["Expr", "operation_text"]


class Expr:
    """Translate a row expression into Python: secure (ops.*) or plain (numpy, for the
    recipients' steps after the reveal and for columns public in the clear)."""

    def __init__(self, column: Callable[[str], str], types: dict[str, str], secure: bool,
                 table: str = "", nullable: frozenset[str] = frozenset(),
                 proven: Callable[[exp.Expression], bool] | None = None,
                 labels: dict[str, str] | None = None,
                 bound: Callable[[exp.Expression], object] | None = None,
                 counted_only: Callable[[exp.Expression], bool] | None = None) -> None:
        self.column = column
        # counted_only(e): the quotient e is proven only on the rows that count (valid, its
        # dividend not NULL: a share of a whole); the others divide 0 instead
        self.counted_only = counted_only
        # bound(e): a public bound B with |e| < B (compiler/analyses/bounds.py) or None; it
        # sizes the exact divisions of the calendar functions (lib/dates.py)
        self.bound = bound
        # proven(e): the compile-time bounds show that e fits the secure type; arithmetic
        # that is not proven is checked inside MPC (lib/overflow.py), listed in self.checked
        self.proven = proven
        self.checked: list[str] = []
        self.labels = labels  # the input's column labels: names checks as explain does
        self.types = types
        self.secure = secure
        self.table = table
        self.nullable = nullable
        # common subexpressions: secure calls that occur more than once in one projection
        # (e.g. a share squared: share * share) are computed once, into a named variable
        self.seen: dict[str, int] = {}
        self.repeated: dict[str, str] | None = None
        self.defs: list[str] = []
        self.inlined: dict[str, str] = {}  # a repeated call's variable -> its inline text
        self.zero_flags: dict[str, int] = {}  # a division's call -> uses of its zero flag
        self.divisions: dict[tuple[int, bool], tuple[exp.Div, str]] = {}  # this pass's

    def share_repeated(self, prefix: str) -> None:
        """After a counting pass: name every secure call seen more than once. Every secure
        translation makes that pass first (a division asked for its quotient and for its
        zero flag is then computed once)."""
        self.repeated = {text: f"{prefix}{i}"
                         for i, text in enumerate(t for t, k in self.seen.items() if k > 1)}
        self.divisions.clear()

    def call(self, text: str) -> str:
        """A secure call's code, or the name of its variable when it repeats (then its
        definition goes to self.defs, before the first use)."""
        if not self.secure:
            return text
        if self.repeated is None:
            self.seen[text] = self.seen.get(text, 0) + 1
            return text
        canonical = self._canonical(text)
        var = self.repeated.get(canonical)
        if var is None:
            return text
        line = f"{var} = {text}"
        if line not in self.defs:
            self.defs.append(line)
            self.inlined[var] = canonical
        return var

    def _canonical(self, text: str) -> str:
        """`text` as the counting pass saw it: with its repeated calls inline."""
        return re.sub(r"\b_c\d+_\d+\b", lambda m: self.inlined.get(m[0], m[0]), text)

    # --- SQL NULL (secure): a 0/1 flag expression, or None when e cannot be NULL ---------
    def null(self, e: exp.Expression) -> str | None:
        if isinstance(e, exp.Paren):
            return self.null(e.this)
        if isinstance(e, exp.Column):
            return self.column(e.name + NULL_FLAG) if e.name in self.nullable else None
        if isinstance(e, (exp.Literal, exp.Boolean, exp.Is)):
            return None
        if isinstance(e, exp.Null):  # the value 0 with its NULL flag set
            return "1"
        if isinstance(e, exp.Nullif):
            flags = [f for f in (self.null(e.this), self.null(e.expression)) if f is not None]
            flags.append(self.call(f"ops.eq({self.code(e.this)}, {self.code(e.expression)})"))
            return flags[0] if len(flags) == 1 else f"ops.null_or({', '.join(flags)})"
        if isinstance(e, exp.Coalesce):
            flags = [self.null(a) for a in [e.this, *e.expressions]]
            if any(f is None for f in flags):
                return None
            return " * ".join(f"({f})" for f in flags)
        if isinstance(e, (exp.Case, exp.If)):
            ifs, default = _case_parts(e)
            out = self.null(default) if default is not None else "1"
            for cond, value in reversed(ifs):
                v = self.null(value)
                if v is None and out is None:
                    continue
                out = f"ops.where({self.condition(cond)}, {v or 0}, {out or 0})"
            return out
        if isinstance(e, (exp.And, exp.Or)):
            return self._logic_null(e)
        flags = [self.null(c) for c in e.iter_expressions()]
        if isinstance(e, exp.Div) and divisor_may_be_zero(e.expression):
            flags.append(self._zero_divisor(e))  # x/0: NULL
        # one flag once (x * x is NULL where x is): an OR is a secure product
        flags = list(dict.fromkeys(f for f in flags if f is not None))
        if not flags:
            return None
        return flags[0] if len(flags) == 1 else f"ops.null_or({', '.join(flags)})"

    def _logic_null(self, e: exp.And | exp.Or) -> str | None:
        """SQL's three-valued AND / OR: NULL only when an operand is NULL and no operand
        decides the result (TRUE OR NULL is TRUE, FALSE AND NULL is FALSE)."""
        nulls = [self.null(x) for x in (e.this, e.expression)]
        flags = [n for n in nulls if n is not None]
        if not flags:  # (the operands' code only when needed: it counts their calls)
            return None
        parts = [(self.code(x), n) for x, n in zip((e.this, e.expression), nulls)]
        decided = []  # per operand: 1 where it alone decides (OR: TRUE, AND: FALSE)
        for value, null in parts:
            v = value if isinstance(e, exp.Or) else f"ops.not_({value})"
            decided.append(v if null is None else f"ops.and_({v}, ops.not_({null}))")
        some_null = flags[0] if len(flags) == 1 else f"ops.null_or({', '.join(flags)})"
        return (f"ops.and_(ops.and_(ops.not_({decided[0]}), ops.not_({decided[1]})), "
                f"{some_null})")

    def condition(self, e: exp.Expression) -> str:
        """A 0/1 condition where NULL counts as false (WHERE, CASE WHEN)."""
        value = self.code(e)
        null = self.null(e) if self.secure else None
        return value if null is None else f"ops.and_({value}, ops.not_({null}))"

    # --- texts (secure): a list of 7-byte pieces (see encoding.py) --------------------------
    def is_text(self, e: exp.Expression) -> bool:
        if isinstance(e, (exp.Paren, exp.Cast)):
            return self.is_text(e.this)
        if isinstance(e, exp.Column):
            return self.types.get(e.name) == "text"
        if isinstance(e, exp.Literal):
            return e.is_string
        if isinstance(e, (exp.Case, exp.If)):
            ifs, default = _case_parts(e)
            return any(self.is_text(v) for v in [v for _, v in ifs] + [default] if v is not None)
        if isinstance(e, exp.Coalesce):
            return self.is_text(e.this)
        return False

    def text(self, e: exp.Expression) -> str:
        if isinstance(e, (exp.Paren, exp.Cast)):
            return self.text(e.this)
        if isinstance(e, exp.Column):
            return f"ops.parts({self.table}, {e.name!r})"
        if isinstance(e, exp.Literal) and e.is_string:
            return repr(encoding.text_pieces(e.this))
        if isinstance(e, (exp.Case, exp.If)):
            ifs, default = _case_parts(e)
            out = self.text(default) if default is not None else "[0]"  # NULL: flag in null()
            for cond, value in reversed(ifs):
                out = f"ops.text_where({self.condition(cond)}, {self.text(value)}, {out})"
            return out
        if isinstance(e, exp.Coalesce):
            out = self.text(e.expressions[-1]) if e.expressions else self.text(e.this)
            for a in reversed([e.this, *e.expressions][:-1]):
                null = self.null(a)
                out = self.text(a) if null is None else \
                    f"ops.text_where({null}, {out}, {self.text(a)})"
            return out
        raise UnsupportedError(f"text expression {e.sql()} inside MPC")

    def code(self, e: exp.Expression) -> str:
        """Python for the value of `e` (its NULL flag, if any, comes from :meth:`null`)."""
        for classes, method in _CODE:
            if isinstance(e, classes):
                return method(self, e)
        raise UnsupportedError(f"{type(e).__name__.upper()} inside MPC")

    # --- one method per kind of expression (the table _CODE below says which) ----------------
    def _paren(self, e: exp.Paren) -> str:
        return self.code(e.this)

    def _column(self, e: exp.Column) -> str:
        return self.column(e.name)

    def _literal(self, e: exp.Literal) -> str:
        if e.is_string:
            return repr(encoding.encode_column([e.this], "text")[0]) if self.secure else \
                repr(e.this)
        return e.this

    def _boolean(self, e: exp.Boolean) -> str:
        return "1" if e.this else "0"

    def _null(self, e: exp.Null) -> str:
        # secure: a placeholder value that null() flags (an outer join's missing side);
        # plain: a public constant column of NULLs
        return "0" if self.secure else "None"

    def _cast(self, e: exp.Cast) -> str:
        s = self.secure
        target = cast_type(e.to)
        if target == "date" and isinstance(e.this, exp.Literal) and e.this.is_string:
            days = (date.fromisoformat(e.this.this) - date(1970, 1, 1)).days
            return str(days) if s else f"ops.plain_date({e.this.this!r})"
        if target == "int" and s and self.types.get(getattr(e.this, "name", ""), "") != "int" \
                and not isinstance(e.this, exp.Column):
            raise UnsupportedError("CAST to int of a computed value inside MPC")
        return self.code(e.this)

    def _arithmetic(self, e: exp.Binary) -> str:
        sym = next(sym for cls, sym in ((exp.Add, "+"), (exp.Sub, "-"), (exp.Mul, "*"))
                   if isinstance(e, cls))
        a, b = self.code(e.this), self.code(e.expression)
        if not self.secure or self.proven is None or self.proven(e):
            return f"({a} {sym} {b})"
        what = self.check(e)
        if isinstance(e, exp.Mul):  # never multiplied unchecked: see lib/overflow.py
            return self.call(f"ops.checked_mul(_checks, {what!r}, {self.table}.valid, {a}, {b})")
        return f"ops.check_fits(_checks, {what!r}, {self.table}.valid, ({a} {sym} {b}), 2)"

    def _div(self, e: exp.Div) -> str:
        if not self.secure:
            return f"ops.plain_div({self.code(e.this)}, {self.code(e.expression)})"
        if divisor_may_be_zero(e.expression):  # the quotient of (quotient, divisor == 0)
            return f"{self.call(self._division(e, zero=True))}[0]"
        return self.call(self._division(e, zero=False))

    def _division(self, e: exp.Div, zero: bool) -> str:
        """The secure call dividing e: its quotient, or with `zero` the pair (quotient,
        divisor == 0) that the division protocol gives at once. Made once per pass (asked for
        by the quotient and by its NULL flag, its operands' calls count once)."""
        key = (id(e), zero)
        if key not in self.divisions:
            self.divisions[key] = (e, self._make_division(e, zero))
        return self.divisions[key][1]

    def _make_division(self, e: exp.Div, zero: bool) -> str:
        a, b = self.code(e.this), self.code(e.expression)
        pair = "_zero" if zero else ""
        if self.proven is None or self.proven(e):
            if self.counted_only is not None and self.counted_only(e):
                null = self.null(e.this)
                keep = f"{self.table}.valid" if null is None else \
                    f"ops.and_({self.table}.valid, ops.not_({null}))"
                a = self.call(f"ops.where({keep}, {a}, 0)")
            return f"ops.div{pair}({a}, {b})"
        return (f"ops.checked_div{pair}(_checks, {self.check(e)!r}, {self.table}.valid, "
                f"{a}, {b})")

    def _zero_divisor(self, e: exp.Div) -> str:
        """The 0/1 flag [divisor == 0] of x / y: from the division's own call when the
        quotient is computed too (no test more), else an equality test of the divisor (a
        test is cheaper than a division computed for its flag alone)."""
        test = f"ops.eq({self.code(e.expression)}, 0)"
        if not self.secure:
            return self.call(test)
        division = self._division(e, zero=True)
        if self.repeated is None:  # counting: how often the division is asked for its flag
            self.zero_flags[division] = self.zero_flags.get(division, 0) + 1
            self.call(test)  # counted too, for the case the generating pass takes it
            return f"{self.call(division)}[1]"
        key = self._canonical(division)
        if self.seen.get(key, 0) > self.zero_flags.get(key, 0):  # its quotient is used
            return f"{self.call(division)}[1]"
        return self.call(test)

    def check(self, e: exp.Expression) -> str:
        """The name of an unproven operation's overflow check (listed in self.checked)."""
        what = operation_text(e, self.labels)
        if what not in self.checked:
            self.checked.append(what)
        return what

    def _neg(self, e: exp.Neg) -> str:
        return f"(-{self.code(e.this)})"

    def _compare(self, e: exp.Binary) -> str:
        fn, sym = next(v for cls, v in _COMPARISONS.items() if isinstance(e, cls))
        if self.secure and self.is_text(e.this) and self.is_text(e.expression):
            return self.call(f"ops.text_compare({fn!r}, {self.text(e.this)}, "
                             f"{self.text(e.expression)})")
        a, b = self.code(e.this), self.code(e.expression)
        return self.call(f"ops.{fn}({a}, {b})") if self.secure else f"({a} {sym} {b})"

    def _and(self, e: exp.And) -> str:
        a, b = self.code(e.this), self.code(e.expression)
        return f"ops.and_({a}, {b})" if self.secure else f"({a} & {b})"

    def _or(self, e: exp.Or) -> str:
        a, b = self.code(e.this), self.code(e.expression)
        return f"ops.or_({a}, {b})" if self.secure else f"({a} | {b})"

    def _not(self, e: exp.Not) -> str:
        return f"ops.not_({self.code(e.this)})" if self.secure else f"(~{self.code(e.this)})"

    def _is(self, e: exp.Is) -> str:
        if not self.secure:
            return f"ops.plain_isna({self.code(e.this)})"
        return self.null(e.this) or "0"  # NULL flags exist exactly where NULLs can be

    def _in(self, e: exp.In) -> str:
        x = e.this
        terms = [exp.EQ(this=x.copy(), expression=v.copy()) for v in e.expressions]
        return self.code(_fold(exp.Or, terms))

    def _between(self, e: exp.Between) -> str:
        ge = exp.GTE(this=e.this.copy(), expression=e.args["low"].copy())
        le = exp.LTE(this=e.this.copy(), expression=e.args["high"].copy())
        return self.code(exp.And(this=ge, expression=le))

    def _case(self, e: exp.Expression) -> str:
        ifs, default = _case_parts(e)
        if default is None:  # NULL: the value 0 with a NULL flag (see null())
            out = "0" if self.secure else "None"
        else:
            out = self.code(default)
        for cond, value in reversed(ifs):
            c = self.condition(cond) if self.secure else self.code(cond)
            v = self.code(value)
            out = f"ops.where({c}, {v}, {out})" if self.secure else f"np.where({c}, {v}, {out})"
        return out

    def _abs(self, e: exp.Abs) -> str:
        return f"ops.abs_({self.code(e.this)})" if self.secure else f"np.abs({self.code(e.this)})"

    def _nullif(self, e: exp.Nullif) -> str:  # the value; its NULL flag comes from null()
        if not self.secure:
            return f"ops.plain_nullif({self.code(e.this)}, {self.code(e.expression)})"
        return self.code(e.this)

    def _coalesce(self, e: exp.Coalesce) -> str:
        args = [e.this, *e.expressions]
        if not self.secure:
            return f"ops.plain_coalesce({', '.join(self.code(a) for a in args)})"
        out = self.code(args[-1])
        for a in reversed(args[:-1]):
            null = self.null(a)
            out = self.code(a) if null is None else f"ops.where({null}, {out}, {self.code(a)})"
        return out

    def _pow(self, e: exp.Pow) -> str:
        power = e.expression
        if isinstance(power, exp.Literal) and not power.is_string and power.this.isdigit() \
                and 1 <= int(power.this) <= 8:
            base = self.code(e.this)
            if not self.secure:
                return f"({base} ** {power.this})"
            if self.proven is None or self.proven(e):
                return f"ops.power({base}, {power.this})"
            return (f"ops.checked_power(_checks, {self.check(e)!r}, {self.table}.valid, "
                    f"{base}, {power.this})")
        if self.secure:
            raise UnsupportedError("POWER with an exponent other than a whole number 1..8 "
                                   "inside MPC")
        return f"np.power({self.code(e.this)}, {self.code(power)})"

    def _sqrt(self, e: exp.Sqrt) -> str:
        if self.secure:
            raise UnsupportedError("SQRT (or STDDEV) inside MPC: only allowed as the last "
                                   "step, computed by the recipients after the reveal")
        return f"np.sqrt(np.maximum({self.code(e.this)}, 0))"

    # --- calendar and text functions (lib/dates.py, lib/text_match.py) -------------------------
    def _date_range(self, e: exp.Expression) -> tuple[int, int]:
        """Public bounds [lo, hi] on the secret dates `e` (days since 1970)."""
        b = self.bound(e) if self.bound is not None else None
        if b is None:
            raise UnsupportedError(f"a calendar function of {e.sql()} inside MPC: its range "
                                   f"of dates is not known")
        top = int(b)  # integers with |x| < b
        return -top, top

    def _civil(self, e: exp.Expression) -> str:
        """A secure call giving the calendar parts of the dates `e` (computed once per
        projection, see :meth:`call`)."""
        lo, hi = self._date_range(e)
        return self.call(f"ops.civil({self.code(e)}, {lo}, {hi})")

    def _date_part(self, e: exp.Expression) -> str:
        part, arg = date_part(e)
        if not self.secure or arg.find(exp.Column) is None:  # in the clear (or a constant)
            return f"ops.plain_date_part({part!r}, {self.code(arg)})"
        if part in ("dow", "isodow"):
            lo, hi = self._date_range(arg)
            iso = ", iso=True" if part == "isodow" else ""
            return self.call(f"ops.day_of_week({self.code(arg)}, {lo}, {hi}{iso})")
        civil = self._civil(arg)
        if part in ("year", "month", "day"):
            return f"{civil}.{part}"
        return self.call(f"ops.{'quarter' if part == 'quarter' else 'day_of_year'}({civil})")

    def _trunc(self, e: exp.Expression) -> str:
        unit = trunc_unit(e)
        if unit is None:
            raise UnsupportedError(f"DATE_TRUNC {e.sql()} inside MPC")
        if not self.secure or e.this.find(exp.Column) is None:
            return f"ops.plain_trunc({unit!r}, {self.code(e.this)})"
        if unit == "day":
            return self.code(e.this)
        if unit == "week":  # Monday: the date minus its ISO day of the week, plus one
            lo, hi = self._date_range(e.this)
            x = self.code(e.this)
            return f"({x} - {self.call(f'ops.day_of_week({x}, {lo}, {hi}, iso=True)')} + 1)"
        return self.call(f"ops.trunc({self._civil(e.this)}, {unit!r})")

    def _add_months(self, e: exp.AddMonths) -> str:
        months = add_months_count(e)
        if months is None:
            raise UnsupportedError(f"{e.sql()} inside MPC: the months must be a whole number")
        if not self.secure or e.this.find(exp.Column) is None:
            return f"ops.plain_add_months({self.code(e.this)}, {months})"
        if months == 0:
            return self.code(e.this)
        return self.call(f"ops.add_months({self._civil(e.this)}, {months})")

    def _like(self, e: exp.Like) -> str:
        pattern = like_pattern(e)
        if pattern is None:
            raise UnsupportedError(f"{e.sql()} inside MPC: only LIKE 'abc' and 'abc%'")
        kind, text = pattern
        if not self.secure:
            out = f"ops.plain_like({self.code(e.this)}, {kind!r}, {text!r})"
            return f"(~{out})" if e.args.get("negate") else out
        out = self.call(f"ops.like({self.text(e.this)}, {kind!r}, {text!r})")
        return f"ops.not_({out})" if e.args.get("negate") else out

    def _round(self, e: exp.Round) -> str:
        if self.secure:
            raise UnsupportedError(f"{type(e).__name__.upper()} inside MPC")
        digits = self.code(e.args["decimals"]) if e.args.get("decimals") else 0
        return f"np.round({self.code(e.this)}, {digits})"


_COMPARISONS = {exp.LT: ("lt", "<"), exp.LTE: ("le", "<="), exp.GT: ("gt", ">"),
                exp.GTE: ("ge", ">="), exp.EQ: ("eq", "=="), exp.NEQ: ("ne", "!=")}

#: expression classes -> the Expr method that writes their code, checked in this order
_CODE = (
    (exp.Paren, Expr._paren), (exp.Column, Expr._column), (exp.Literal, Expr._literal),
    (exp.Boolean, Expr._boolean), (exp.Null, Expr._null), (exp.Cast, Expr._cast),
    ((exp.Add, exp.Sub, exp.Mul), Expr._arithmetic), (exp.Div, Expr._div),
    (exp.Neg, Expr._neg), (tuple(_COMPARISONS), Expr._compare), (exp.And, Expr._and),
    (exp.Or, Expr._or), (exp.Not, Expr._not), (exp.Is, Expr._is), (exp.In, Expr._in),
    (exp.Between, Expr._between), ((exp.Case, exp.If), Expr._case), (exp.Abs, Expr._abs),
    (exp.Nullif, Expr._nullif), (exp.Coalesce, Expr._coalesce), (exp.Pow, Expr._pow),
    (exp.Sqrt, Expr._sqrt), (exp.Round, Expr._round),
    ((exp.Extract, *DATE_PART_FUNCTIONS), Expr._date_part), (TRUNCATIONS, Expr._trunc),
    (exp.AddMonths, Expr._add_months), (exp.Like, Expr._like),
)


def _case_parts(e: exp.Expression) -> tuple[list, exp.Expression | None]:
    """[(condition, value)], default of a CASE (simple or searched) or IF."""
    if isinstance(e, exp.If):
        return [(e.this, e.args["true"])], e.args.get("false")
    base = e.this
    ifs = [((exp.EQ(this=base.copy(), expression=i.this.copy()) if base is not None else i.this),
            i.args["true"]) for i in e.args.get("ifs") or []]
    return ifs, e.args.get("default")


def _fold(cls, terms):
    out = terms[0]
    for t in terms[1:]:
        out = cls(this=out, expression=t)
    return out
