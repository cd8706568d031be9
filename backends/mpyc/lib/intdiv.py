"""Exact floor division of secret integers by public constants (and what rests on it).

SQL's date functions (``dates.py``) need ``floor(x / c)`` for secret integers x and public
constants c (days per 400 years, per year, ...). Inside MPC this is no cheap operation: the
fixed-point product x * (1/c) rounds, and a comparison to repair the rounding costs about l
secure multiplications. Here a quotient costs one bit extraction in the small field instead
(``bits.small_bits``: a masked opening and an adder circuit on int64 shares, no big-field
comparison) and moving the quotient's few bits back (``bits.small_to_big_bits``, daBits):

    u = x - lo_c          a multiple lo_c of c at or below x's public lower bound: u >= 0
    y = u * M             M = ceil(2^s / c), s = bitlength(X * c) for u < X:
                          floor(y / 2^s) = floor(u / c) exactly for every u < X
                          (Granlund-Montgomery: u (M c - 2^s) < X c <= 2^s)
    bits of y             one small_bits call for all quotients of a batch
    q = sum of bits s.. of y, times 2^(i - s), plus lo_c / c

Public inputs only decide the sizes (the bounds lo, hi and the divisors); nothing is opened
but the masked value inside ``small_bits`` (statistically hiding, 2^-k). The caller must
give bounds that hold: x outside [lo, hi] gives a wrong quotient (and a value far outside
weakens the mask), which is why the SQL layer derives them from the catalog types.

Cost per batch of quotients over n rows: one big-field opening of (number of quotients) x n
values, ~log2(L) + 4 rounds of small-field products over L bits (L = the widest bitlength
of y, about bitlength(X) + bitlength(c) + 1), and daBits for the quotients' bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from mpyc import asyncoro
from mpyc.runtime import mpc

from . import smallfield as sf
from .bits import small_bits, small_to_big_bits

__all__ = ["divisor_plan", "floor_divide", "floor_divide_many"]


def divisor_plan(c: int, lo: int, hi: int) -> tuple[int, int, int, int, int]:
    """(c, base, M, s, L) for floor(x / c), x in [lo, hi]: base = a multiple of c <= lo, the
    magic multiplier M and shift s such that floor((x - base) M / 2^s) = floor((x - base) / c)
    for every x in range, and L the bitlength of (hi - base) M."""
    if c < 1 or lo > hi:
        raise ValueError(f"floor division by {c} over [{lo}, {hi}]")
    base = (lo // c) * c
    span = hi - base + 1  # u = x - base lies in [0, span)
    s = (span * c).bit_length()
    m = -(-(1 << s) // c)
    return c, base, m, s, max(1, ((span - 1) * m).bit_length())


def floor_divide(x: Any, c: int, lo: int, hi: int) -> Any:
    """floor(x / c) for a secfxp array x of integers in [lo, hi] and a public integer c >= 1
    (an integral secfxp array of the same length; see the module docstring)."""
    return floor_divide_many([(x, c, lo, hi)])[0]


def floor_divide_many(jobs: Sequence[tuple[Any, int, int, int]]) -> list[Any]:
    """floor(x / c) for each (x, c, lo, hi) of ``jobs`` (secfxp arrays of one type and length
    n, integers in [lo, hi]), in one batch: one bit extraction and one daBit conversion for
    all of them. A divisor that is a power of two up to the range is as costly as any other
    (its magic multiplier is 1)."""
    if not jobs:
        return []
    stype = type(jobs[0][0])
    n = jobs[0][0].shape[0]
    plans = [divisor_plan(c, lo, hi) for _, c, lo, hi in jobs]
    out = _divide(mpc.np_stack([x for x, _, _, _ in jobs]), plans, stype, n)
    results = []
    for i in range(len(jobs)):
        q = out[i]
        q.integral = True
        results.append(q)
    return results


@asyncoro.mpc_coro
async def _divide(xs, plans: list[tuple[int, int, int, int, int]], stype: type, n: int):
    """The quotients (secfxp (len(plans), n)) of the rows of xs (secfxp (len(plans), n))."""
    k = len(plans)
    await mpc.returnType((stype, True, (k, n)))
    field = stype.sectype.field
    f = stype.frac_length
    one = 1 << f
    if n == 0:
        return field.array(np.zeros((k, 0), dtype=object), check=False)
    xv = (await mpc.gather(xs)).value  # x 2^f per entry
    widest = max(L for *_, L in plans)
    ys = []
    for i, (_, base, m, _, _) in enumerate(plans):
        ys.append(((xv[i] - base * one) * m) % field.modulus)  # (x - base) M 2^f
    bits = await small_bits(field.array(np.concatenate(ys), check=False), widest, scaled=f)
    rows = []  # the quotient bits of every plan, one block per plan and bit position
    for i, (*_, s, L) in enumerate(plans):
        rows += [bits[j, i * n:(i + 1) * n] for j in range(s, max(L, s))]
    big = await small_to_big_bits(np.ascontiguousarray(np.stack(rows)) % sf.P, field) \
        if rows else None
    out = np.zeros((k, n), dtype=object)
    r = 0
    for i, (c, base, _, s, L) in enumerate(plans):
        q = np.zeros(n, dtype=object)
        for j in range(s, max(L, s)):
            q = q + big.value[r] * (1 << (j - s))
            r += 1
        out[i] = (q + base // c) * one % field.modulus
    return field.array(out, check=False)

