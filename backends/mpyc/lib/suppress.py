"""Which cells of a contributor-mode GROUP BY have rows from at least k contributors.

Input: cnt[c, j], the number of contributor c's (valid) rows in cell j, as secfxp shares of
integers in 0 .. R (R: the most rows of one contributor, public). Output: secfxp 0/1 shares
of [#{c : cnt[c, j] != 0} >= k] per cell. Nothing is opened but statistically masked values.

The C x D presence tests dominate (C contributors, D cells: 75,000 at 1,000 x 75), so they
run in the small field GF(2^31 - 1) on int64 shares (``smallfield.py``, about 50x faster
per multiplication than MPyC's 160-bit object arrays):

1. :func:`to_small` -- parties 0..t each input a random mask rho_j of (bits + k) bits in both
   fields (one round); c = cnt + sum rho_j is opened in the big field (no wrap-around: c is
   far below its prime), and cnt = c - sum rho_j mod P in the small field (local).
   Statistically hiding (distance 2^-k, k = MPyC's sec_param), like ``masks.py``.
2. :func:`is_zero_bounded` -- [a = 0] for a in 0 .. R: the product of (a - u) over u = 1 .. R
   is zero except at a = 0, where it is (-1)^R R! (nonzero mod P since R < P); evaluated by
   Paterson-Stockmeyer (the powers a^2 .. a^s, s ~ sqrt(R), then Horner in a^s over public
   linear combinations of them): about 2 sqrt(R) small-field multiplications, exact.
3. The number of contributors per cell, sum over c of 1 - [cnt = 0] (local), goes back to
   the big field by :func:`at_least`: parties 0..t input lambda_i s_i mod P (their share
   times its Lagrange coefficient at 0) into the big field (one round); their sum S lies in
   [0, (t + 1) P) and is the count plus w P for some w in 0 .. t, so
   [count >= k] = sum over w of ([S >= w P + k] - [S >= (w + 1) P]), one vectorised MPyC
   comparison of 2t + 1 values per cell, sized for about 34 bits. :func:`from_small` brings
   small-field values themselves back the same way: S - P sum over w >= 1 of [S >= w P]
   (the factorized GROUP BY takes the cells' row counts from the contributors' counts).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from mpyc.runtime import mpc

from . import smallfield as sf
from .masks import draw, input_masks, open_ints, summed

__all__ = ["at_least", "cells_with_contributors", "from_small", "is_zero_bounded",
           "to_small", "to_small_ints"]


async def cells_with_contributors(per_owner: np.ndarray, most_rows: int, k: int,
                                  stype: type) -> Any:
    """secfxp 0/1 per cell (``stype``, shape (D,)): whether at least k of the C contributors
    have a row in it; ``per_owner``: (C, D) small-field shares of counts in 0 .. most_rows
    (:func:`to_small` moves big-field counts there)."""
    absent = await is_zero_bounded(per_owner, most_rows)
    contributors = (per_owner.shape[0] - absent.sum(axis=0)) % sf.P  # C * P < 2^63
    return await at_least(contributors, k, stype)


async def to_small(x: Any, bits: int) -> np.ndarray:
    """Small-field shares (int64, x's shape) of integral secfxp values x in [0, 2^bits)."""
    stype = type(x)
    field = stype.sectype.field
    raw = await mpc.gather(x)
    return await to_small_ints(raw * field(1 << stype.frac_length).reciprocal(), bits)


async def to_small_ints(x: Any, bits: int) -> np.ndarray:
    """Small-field shares (int64, x's shape) of v mod P for the integers v in [0, 2^bits)
    whose big-field shares are the field array x. See the module docstring."""
    field = x.field
    k = mpc.options.sec_param
    if bits + k + 4 > field.modulus.bit_length():
        raise ValueError(f"{bits}-bit values cannot move to the small field")
    shape, n = x.shape, int(np.prod(x.shape))
    senders = list(range(mpc.threshold + 1))
    mine = draw(n, bits + k) if mpc.pid in senders else None
    big = input_masks(field, mine, n)
    small = await sf.reshare_from(np.array([r % sf.P for r in mine], dtype=np.int64)
                                  if mine is not None else None, senders, (n,))
    rho = await summed(big)
    c = await open_ints(x.reshape(-1) + rho)
    c_small = np.array([int(v) % sf.P for v in c], dtype=np.int64)
    return ((c_small - small) % sf.P).reshape(shape)


async def from_small(values: np.ndarray, stype: type) -> Any:
    """Integral secfxp shares (``stype``) of small-field shared integers in 0 .. P - 1
    (values: (D,)): S = v + w P from :func:`_lifted`, minus P times sum_w [S >= w P]."""
    field = stype.sectype.field
    total = await _lifted(values, field)
    t = mpc.threshold
    wraps = [w * sf.P for w in range(1, t + 1)]
    if not wraps:
        return stype(total * field(1 << stype.frac_length), integral=True)
    below = _below_each(total, wraps, stype)  # [S < w P] per w
    wrapped = len(wraps) - mpc.np_sum(below, axis=0)
    lifted = stype(total * field(1 << stype.frac_length), integral=True)
    return lifted - wrapped * sf.P


async def _lifted(values: np.ndarray, field) -> Any:
    """Big-field shares (field array) of S = sum over parties i <= t of lambda_i s_i mod P,
    s_i party i's small-field share, lambda_i its Lagrange coefficient at 0: S is the
    value plus w P for some w in 0 .. t. One round (parties 0..t input their terms)."""
    t = mpc.threshold
    mine = None
    if mpc.pid <= t:
        lam = sf.lagrange(tuple(range(1, t + 2)))[mpc.pid]
        mine = [int(v) * lam % sf.P for v in values]
    return await summed(input_masks(field, mine, values.shape[0]))


def _below_each(total: Any, bounds: list[int], stype: type) -> Any:
    """secfxp 0/1 (len(bounds), n): [S < c] for each public c, S = total's integers in
    [0, (t + 1) P); one comparison sized for that range."""
    field = total.field
    n = total.shape[0]
    shifted = np.concatenate([(total - field(c)).value for c in bounds])
    bits = sf.P.bit_length() + (mpc.threshold + 2).bit_length() + 1  # |S - c| < (t + 2) P
    below = mpc.np_sgn(stype(field.array(shifted, check=False)), l=bits, LT=True)
    return below.reshape(len(bounds), n)


async def _powers(a: np.ndarray, top: int) -> list[np.ndarray]:
    """Small-field shares of a^0 .. a^top, in about log2(top) rounds."""
    powers = [np.ones_like(a), a]
    while len(powers) <= top:
        have = len(powers) - 1
        take = min(have, top - have)
        higher = await sf.mul(np.stack([powers[have]] * take), np.stack(powers[1:take + 1]))
        powers += list(higher)
    return powers


async def is_zero_bounded(a: np.ndarray, bound: int) -> np.ndarray:
    """Small-field shares of [a = 0] for small-field shared integers a in 0 .. bound
    (public, below P); exact. See the module docstring."""
    p = sf.P
    if bound < 1:
        return np.ones_like(a)
    if bound >= p:
        raise ValueError(f"a zero test of values up to {bound} in GF({p})")
    coefs = [1]  # the integer coefficients of prod (x - u), lowest degree first, mod P
    for u in range(1, bound + 1):
        coefs = [((coefs[i - 1] if i else 0) - u * (coefs[i] if i < len(coefs) else 0)) % p
                 for i in range(len(coefs) + 1)]
    s = max(1, math.isqrt(bound + 1))
    powers = await _powers(a, s)

    def chunk(i: int) -> np.ndarray:  # sum over e < s of coefs[i s + e] a^e: local
        total = np.zeros_like(a)
        for e, c in enumerate(coefs[i * s:(i + 1) * s]):
            total = (total + powers[e] * c) % p  # < 2^62 before the reduction
        return total

    chunks = -(-len(coefs) // s)
    acc = chunk(chunks - 1)
    for i in range(chunks - 2, -1, -1):
        acc = (await sf.mul(acc, powers[s]) + chunk(i)) % p
    den = (-1) ** bound * math.factorial(bound) % p
    return acc * pow(den, -1, p) % p


async def at_least(count: np.ndarray, k: int, stype: type) -> Any:
    """secfxp 0/1 shares (stype, count's shape (D,)) of [count >= k] for small-field shared
    integers count in 0 .. P - 1. See the module docstring."""
    total = await _lifted(count, stype.sectype.field)
    t = mpc.threshold
    lower = [w * sf.P + k for w in range(t + 1)]  # S >= w P + k: +1
    upper = [(w + 1) * sf.P for w in range(t)]    # S >= (w + 1) P: -1
    below = _below_each(total, lower + upper, stype)
    # [S >= c] = 1 - below: the sum over lower minus the sum over upper
    result = len(lower) - mpc.np_sum(below[:len(lower)], axis=0)
    if upper:
        result = result - (len(upper) - mpc.np_sum(below[len(lower):], axis=0))
    return result
