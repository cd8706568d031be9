"""What the calendar and text functions of a secure filter or projection cost and reveal.

explain (through ``describe.py``) adds these words to a secure Filter or Project whose
expressions call EXTRACT / YEAR() / ..., DATE_TRUNC, ADD_MONTHS (date +/- INTERVAL months) or
LIKE: the counts follow ``lib/dates.py`` and ``lib/text_match.py``, which compute them with
exact divisions by public constants and bit extractions in the small field (no big-field
comparison). None of them opens anything but values masked by uniformly random numbers
inside a bit extraction (statistically hiding); the ranges that size the extractions are
public (the catalog types). Light: no MPyC import.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlglot import exp

from ...compiler.analyses.secure_expressions import (DATE_PART_FUNCTIONS, TRUNCATIONS,
                                                     date_part, like_pattern, trunc_unit)

__all__ = ["function_costs", "function_reveals"]

# batches of exact divisions (one bit extraction + daBits each) per function, lib/dates.py
_CIVIL = 6       # days -> (year, month, day)
_MONTH_START = 3  # (year, month) -> days


def _batches(x: exp.Expression) -> int:
    """The batches of exact divisions one call needs (its date conversion included)."""
    if isinstance(x, exp.AddMonths):
        return _CIVIL + _MONTH_START + 1
    if isinstance(x, TRUNCATIONS):
        unit = trunc_unit(x)
        return {"day": 0, "week": 1, "month": _CIVIL}.get(unit, _CIVIL + _MONTH_START + 1)
    part = (date_part(x) or ("", None))[0]
    return {"dow": 1, "isodow": 1, "quarter": _CIVIL + 1, "doy": _CIVIL + _MONTH_START}.get(
        part, _CIVIL)


def _calls(exprs: Iterable[exp.Expression]) -> list[exp.Expression]:
    kinds = (exp.Extract, *DATE_PART_FUNCTIONS, *TRUNCATIONS, exp.AddMonths, exp.Like)
    return [x for e in exprs for x in e.walk() if isinstance(x, kinds)]


def _name(x: exp.Expression) -> str:
    return "DATE_TRUNC" if isinstance(x, TRUNCATIONS) else \
        ("NOT LIKE" if x.args.get("negate") else "LIKE") if isinstance(x, exp.Like) else \
        x.sql_name()


def function_costs(exprs: Iterable[exp.Expression]) -> str:
    """The cost words for the calendar and LIKE calls in `exprs` ("" when there are none)."""
    calls = _calls(exprs)
    rounds: dict[int, list[str]] = {}
    for x in calls:
        if not isinstance(x, exp.Like):
            names = rounds.setdefault(_batches(x), [])
            if _name(x) not in names:
                names.append(_name(x))
    texts = [f"{', '.join(names)}: {k} rounds of exact divisions by public constants"
             for k, names in sorted(rounds.items())]
    if texts:
        texts[-1] += (" (each a bit extraction in the small field, no secure comparison; "
                      "a date converted once per projection)")
    likes = [x for x in calls if isinstance(x, exp.Like)]
    if likes:
        widths = sorted({len((like_pattern(x) or ("", ""))[1].encode("utf-8")) for x in likes})
        texts.append(f"{' / '.join(dict.fromkeys(_name(x) for x in likes))}: one bit "
                     f"extraction of the 7-byte pieces holding the pattern's "
                     f"{', '.join(map(str, widths))} byte(s) (the whole text for a pattern "
                     f"without %), a product of bit equalities and one daBit per row (no "
                     f"secure comparison)")
    return "; ".join(texts)


def function_reveals(exprs: Iterable[exp.Expression]) -> list[str]:
    """A note per operator that its calendar / LIKE calls open nothing ([] without them)."""
    calls = _calls(exprs)
    if not calls:
        return []
    names = ", ".join(dict.fromkeys(_name(x) for x in calls))
    return [f"nothing from {names} inside MPC: their bit extractions open only values masked "
            f"by uniformly random numbers (statistically hiding), sized by public ranges from "
            f"the catalog types"]
