"""SQL's calendar functions on secret dates: EXTRACT, DATE_TRUNC, date +/- INTERVAL months.

A secret date is its number of days since 1970-01-01 (``encoding.py``). The proleptic
Gregorian calendar turns days into (year, month, day) with floor divisions by public
constants, as in Howard Hinnant's ``civil_from_days`` (chrono-Compatible Low-Level Date
Algorithms): the year starting on March 1 makes the leap day the last day of a year, so

    z = x + 719468                                  days since 0000-03-01
    era = floor(z / 146097)                         400-year cycles (146097 days each)
    doe = z - 146097 era                            day of the cycle, [0, 146096]
    yoe = floor((doe - doe/1460 + doe/36524 - doe/146096) / 365)      year of the cycle
    doy = doe - (365 yoe + yoe/4 - yoe/100)         day of the March-based year, [0, 365]
    mp = floor((5 doy + 2) / 153)                   month from March = 0, [0, 11]
    day = doy - floor((153 mp + 2) / 5) + 1
    jf = floor(doy / 306)                           1 in January and February
    month = mp + 3 - 12 jf,  year = yoe + 400 era + jf

Each floor division is exact (``intdiv.py``: one bit extraction in the small field and
daBits for the quotient, no big-field comparison); the divisions of one line run as one
batch, so a conversion costs 5 batches (6 with the day), whatever the number of rows, and a
few small-field products per bit and row. The reverse, the first day of a month given by its
number of months since 0000-03-01 (``month_start``), is 3 batches. Vectorised over all rows;
reveals nothing (the bounds that size the bit extractions are public, from the catalog types).

Adding n months keeps the day of the month where the target month has it and else takes the
target month's last day (2024-01-31 + 1 month = 2024-02-29, as DuckDB, PostgreSQL and Spark):
the start of the target month and of the month after give its length, and one more division
by 31 tells whether the day overflows it.
"""

from __future__ import annotations

import calendar
import datetime
from dataclasses import dataclass
from typing import Any

import numpy as np
from mpyc.runtime import mpc

from .encoding import is_null
from .intdiv import floor_divide_many

__all__ = ["Civil", "add_months", "civil", "civil_bounds", "day_of_week", "day_of_year",
           "month_start", "plain_add_months", "plain_date_part", "plain_trunc", "quarter",
           "trunc"]

EPOCH_SHIFT = 719468  # days from 0000-03-01 to 1970-01-01
ERA_DAYS = 146097     # days in 400 Gregorian years
ERA_MONTHS = 4800
_EPOCH = datetime.date(1970, 1, 1)


@dataclass(frozen=True)
class Civil:
    """The calendar parts of secret dates (integral secfxp arrays) and their public bounds:
    ``year``, ``month`` (1..12), ``day`` (1..31), ``march_year`` (the year of the March-based
    year, [year_lo, year_hi]) and ``march_month`` (0 = March .. 11 = February)."""

    days: Any
    year: Any
    month: Any
    day: Any
    march_year: Any
    march_month: Any
    year_lo: int
    year_hi: int


def civil_bounds(lo: int, hi: int) -> tuple[int, int]:
    """Public bounds on the March-based year of a date in [lo, hi] days since 1970."""
    return _march_year(lo), _march_year(hi)


def _march_year(days: int) -> int:
    z = days + EPOCH_SHIFT
    era, doe = divmod(z, ERA_DAYS)
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    return yoe + 400 * era


def civil(x: Any, lo: int, hi: int) -> Civil:
    """Year, month and day of the secret dates x (days since 1970-01-01, integers in the
    public range [lo, hi]), see the module docstring: 6 batches of exact divisions."""
    z = x + EPOCH_SHIFT
    (era,) = floor_divide_many([(z, ERA_DAYS, lo + EPOCH_SHIFT, hi + EPOCH_SHIFT)])
    doe = z - era * ERA_DAYS
    top = ERA_DAYS - 1
    a, b, c = floor_divide_many([(doe, 1460, 0, top), (doe, 36524, 0, top),
                                 (doe, 146096, 0, top)])
    (yoe,) = floor_divide_many([(doe - a + b - c, 365, 0, top)])
    q4, q100 = floor_divide_many([(yoe, 4, 0, 399), (yoe, 100, 0, 399)])
    doy = doe - (yoe * 365 + q4 - q100)
    mp, jf = floor_divide_many([(doy * 5 + 2, 153, 2, 1827), (doy, 306, 0, 365)])
    (before,) = floor_divide_many([(mp * 153 + 2, 5, 2, 1685)])
    march_year = yoe + era * 400
    ylo, yhi = civil_bounds(lo, hi)
    return Civil(x, _int(march_year + jf), _int(mp + 3 - jf * 12), _int(doy - before + 1),
                 _int(march_year), _int(mp), ylo, yhi + 1)


def month_start(t: Any, lo: int, hi: int) -> Any:
    """The first day (days since 1970) of the months t, counted from 0000-03-01 (March of
    year 0 is 0), integers in [lo, hi]: 3 batches of exact divisions."""
    (era,) = floor_divide_many([(t, ERA_MONTHS, lo, hi)])
    r = t - era * ERA_MONTHS
    (yoe,) = floor_divide_many([(r, 12, 0, ERA_MONTHS - 1)])
    mp = r - yoe * 12
    q4, q100, before = floor_divide_many([(yoe, 4, 0, 399), (yoe, 100, 0, 399),
                                          (mp * 153 + 2, 5, 2, 1685)])
    return _int(era * ERA_DAYS + yoe * 365 + q4 - q100 + before - EPOCH_SHIFT)


def add_months(c: Civil, months: int) -> Any:
    """The dates c.days plus a public number of months (negative: minus), the day clamped to
    the target month's last day (module docstring): 3 + 1 batches after the conversion, and
    one secure multiplication."""
    t = c.march_year * 12 + c.march_month + months
    lo, hi = 12 * c.year_lo + months, 12 * c.year_hi + 11 + months
    starts = month_start(mpc.np_concatenate([t, t + 1]), lo, hi + 1)
    n = c.days.shape[0]
    first, after = starts[:n], starts[n:]
    over = c.day - (after - first)  # > 0: the day is past the target month's end
    (past,) = floor_divide_many([(over + 30, 31, 0, 33)])  # over in [-30, 3]: 1 iff over > 0
    return _int(first + c.day - 1 - over * past)


def trunc(c: Civil, unit: str) -> Any:
    """DATE_TRUNC(unit, date) for unit month, quarter or year: the first day of its month,
    quarter or year."""
    if unit == "month":
        return _int(c.days - c.day + 1)
    if unit == "year":  # January of `year` is month 12 year - 2 counted from 0000-03-01
        return month_start(c.year * 12 - 2, 12 * c.year_lo - 2, 12 * c.year_hi + 10)
    if unit == "quarter":
        q = quarter(c)
        return month_start(c.year * 12 + q * 3 - 5, 12 * c.year_lo - 2, 12 * c.year_hi + 10)
    raise ValueError(f"DATE_TRUNC to {unit!r}")


def quarter(c: Civil) -> Any:
    """The quarter (1..4) of each date: floor((month - 1) / 3) + 1, one division."""
    (q,) = floor_divide_many([(c.month - 1, 3, 0, 11)])
    return _int(q + 1)


def day_of_year(c: Civil) -> Any:
    """The day of the year (1..366) of each date."""
    return _int(c.days - trunc(c, "year") + 1)


def day_of_week(x: Any, lo: int, hi: int, iso: bool = False) -> Any:
    """The day of the week of the secret dates x in [lo, hi]: 0 = Sunday .. 6 = Saturday
    (DuckDB's DAYOFWEEK / EXTRACT(DOW)), or with ``iso`` 1 = Monday .. 7 = Sunday (ISODOW).
    1970-01-01 was a Thursday. One division by 7."""
    shift = 3 if iso else 4  # Thursday: 4 (DOW) or, counted from Monday = 0, 3
    (weeks,) = floor_divide_many([(x + shift, 7, lo + shift, hi + shift)])
    dow = x + shift - weeks * 7
    return _int(dow + 1 if iso else dow)


def _int(x: Any) -> Any:
    """x marked integral (sums and public multiples of integral arrays are integers)."""
    x.integral = True
    return x


# --------------------------------------------------------------------------------------------
# In the clear: columns public to every compute party (dates as days since 1970, or as
# datetime.date in a result frame)
# --------------------------------------------------------------------------------------------


def _as_days(values: Any) -> tuple[list, bool]:
    """(days since 1970 or None per value, whether the values were dates)."""
    out, dated = [], False
    for v in np.asarray(values, dtype=object).reshape(-1):
        if is_null(v):
            out.append(None)
        elif isinstance(v, datetime.date):
            dated = True
            day = v.date() if isinstance(v, datetime.datetime) else v
            out.append((day - _EPOCH).days)
        else:
            out.append(int(v))
    return out, dated


def _from_days(days: list, dated: bool) -> np.ndarray:
    return np.array([None if d is None else (_EPOCH + datetime.timedelta(days=d) if dated else d)
                     for d in days], dtype=object)


def plain_date_part(part: str, values: Any) -> Any:
    """EXTRACT(part FROM d) in the clear (a scalar for a scalar date)."""
    days, _ = _as_days(values)
    out = []
    for d in days:
        if d is None:
            out.append(None)
            continue
        day = _EPOCH + datetime.timedelta(days=d)
        out.append({"year": day.year, "month": day.month, "day": day.day,
                    "quarter": (day.month - 1) // 3 + 1, "dow": day.isoweekday() % 7,
                    "isodow": day.isoweekday(), "doy": day.timetuple().tm_yday}[part])
    return out[0] if np.ndim(values) == 0 else np.array(out, dtype=object)


def plain_trunc(unit: str, values: Any) -> Any:
    """DATE_TRUNC(unit, d) in the clear."""
    days, dated = _as_days(values)
    out = []
    for d in days:
        if d is None:
            out.append(None)
            continue
        day = _EPOCH + datetime.timedelta(days=d)
        first = {"day": day, "week": day - datetime.timedelta(days=day.weekday()),
                 "month": day.replace(day=1),
                 "quarter": day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1),
                 "year": day.replace(month=1, day=1)}[unit]
        out.append((first - _EPOCH).days)
    result = _from_days(out, dated)
    return result[0] if np.ndim(values) == 0 else result


def plain_add_months(values: Any, months: int) -> Any:
    """d + INTERVAL months MONTH in the clear (the day clamped to the month's end)."""
    days, dated = _as_days(values)
    out = []
    for d in days:
        if d is None:
            out.append(None)
            continue
        day = _EPOCH + datetime.timedelta(days=d)
        year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
        last = calendar.monthrange(year, month + 1)[1]
        out.append((datetime.date(year, month + 1, min(day.day, last)) - _EPOCH).days)
    result = _from_days(out, dated)
    return result[0] if np.ndim(values) == 0 else result
