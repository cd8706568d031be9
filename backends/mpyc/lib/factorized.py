"""SUM and COUNT per cell of categorical keys without a one-hot matrix of the rows
(contributor mode's GROUP BY, ``preshared.aggregate_contributed``).

Keys are integers 0 .. d - 1 (the indexes of declared values). Split the key tuple into the
keys before the last, combined into u = sum_i x_i * stride_i in 0 .. h - 1, and the last key
x in 0 .. d - 1. Lagrange: [u = g] = sum_e LU[g, e] u^e and [x = l] = sum_e LX[l, e] x^e
(public coefficients, exact in the prime field). So for any column y

    sum over rows in cell (g, l) of y  =  sum_{e, e'} LU[g, e] LX[l, e'] M[e, e'],
    M = U^T @ (X x y),   U = (u^e) (n, h),   X = (x^e') (n, d),

one secure matrix product (one resharing per output) and a public transform of the small
(h, d) result: the rows' one-hot matrices are never formed, and no row meets a Lagrange
polynomial. Everything runs on raw shares in secfxp's prime field (MPyC's secure field type
over that very field): key values as integers, numbers as their scaled integers A = a 2^f,
so no product needs a truncation or a rescaling, and a column's cell sums come out as the
scaled integers of the sums.

Rows' multiplications: h - 2 for U, d - 2 for X (powers, about log2 rounds each), d - 1 per
summed column (x^e' y; x^0 y is y) -- d per column and d - 1 more if rows can be filtered
(the valid flags folded into X) -- and d per deferred product a * b ((x^e' a) b: the sum of
untruncated products at scale 2^(2f), truncated once per cell by the caller). When h exceeds
``POWERS_MAX`` the keys before the last enter as their one-hot matrix G instead of U (the
product of each key's indicators) and LU is the identity.

Per contributor c the same moments M_c = U_c^T @ X_c (rows of c only, a batched matrix product
with contributors padded by zero rows) count c's rows per cell after the transform; they
move to the small field (``suppress.to_small_ints``: their integer bound is public, from
the powers' largest values and the most rows of one contributor) and are transformed there.
When that bound leaves too few bits for the mask, the last key enters the moments as its
one-hot matrix instead of its powers.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from mpyc.runtime import mpc

from . import smallfield as sf
from .suppress import to_small_ints
from .table import SecTable, const

__all__ = ["POWERS_MAX", "cell_keys", "factorized_sums", "field_type", "indicators", "integers",
           "lagrange", "onehot_matrix", "powers", "scaled"]

#: the most cells of the keys before the last that enter as powers of their combined key
#: (cells - 2 multiplications per row); beyond, as the product of each key's indicators
POWERS_MAX = 16


def lagrange(d: int, modulus: int) -> np.ndarray:
    """L (d, d) with [x = v] = sum_e L[v, e] x^e (mod modulus) for x in 0 .. d - 1."""
    out = np.zeros((d, d), dtype=object)
    for v in range(d):
        poly, den = [1], 1  # prod over u != v of (x - u), lowest degree first
        for u in range(d):
            if u != v:
                poly = [(poly[i - 1] if i else 0) - u * (poly[i] if i < len(poly) else 0)
                        for i in range(len(poly) + 1)]
                den *= v - u
        inv = pow(den % modulus, -1, modulus)
        out[v, :] = [c * inv % modulus for c in poly]
    return out


@functools.cache
def field_type(modulus: int, signed: bool) -> type:
    """MPyC's secure type over secfxp's own prime field (MPyC caches the field: shares mix
    freely). It keeps the field's signedness: MPyC's SecFld sets it on the shared class."""
    sec = mpc.SecFld(modulus=modulus, signed=signed)
    if sec.field.modulus != modulus:
        raise TypeError("secure field type does not share the secfxp field")
    return sec


def powers(x: Any, d: int) -> list[Any]:
    """x^0 .. x^(d-1) of a secure array (exact integers in a secure field type), in about
    log2(d) rounds: each round multiplies the highest power so far by the lower ones."""
    stype = type(x)
    out = [stype(np.ones(x.shape, dtype=np.int64))]
    if d > 1:
        out.append(x)
    while len(out) < d:
        top = len(out) - 1
        take = min(top, d - 1 - top)  # x^(top + 1) .. x^(top + take)
        higher = out[top].reshape((1,) + x.shape) * mpc.np_stack(out[1:take + 1])
        out += [higher[i] for i in range(take)]
    return out


async def integers(x: Any) -> Any:
    """The secure field array of the integers an integral secfxp array holds."""
    stype = type(x)
    field = stype.sectype.field
    shares = await mpc.gather(x)
    return field_type(field.modulus, bool(field.is_signed)).array(
        shares * field(1 << stype.frac_length).reciprocal())


async def scaled(x: Any) -> Any:
    """The secure field array of a secfxp array's scaled integers (its shares as they are)."""
    field = type(x).sectype.field
    return field_type(field.modulus, bool(field.is_signed)).array(await mpc.gather(x))


async def indicators(x: Any, d: int) -> Any:
    """The (n, d) secret 0/1 matrix [x = v] of an integral column x with values in 0..d-1:
    Lagrange's polynomials applied to the powers of x, one public matrix product on the
    shares (local)."""
    stype = type(x)
    field = stype.sectype.field
    n = x.shape[0]
    if d == 1:
        return stype(np.ones((n, 1), dtype=np.int64))
    pows = await mpc.gather(mpc.np_stack(powers(await integers(x), d), axis=1))  # (n, d)
    ind = pows.value @ lagrange(d, field.modulus).T % field.modulus  # [x = v], as integers
    return stype(field.array(ind, check=False) * field(1 << stype.frac_length), integral=True)


async def onehot_matrix(t: SecTable, keys: Sequence[str], sizes: Sequence[int],
                        valid: bool = True) -> Any:
    """The (n, D) one-hot matrix of the key tuples (first key slowest), D = prod(sizes),
    the product of each key's indicators; times the rows' valid flags if ``valid`` (folded
    into the first key's indicators: n * d_1 multiplications instead of n * D)."""
    h = t.valid.reshape(t.n, 1) if valid else None
    for key, d in zip(keys, sizes, strict=True):
        ind = await indicators(t.columns[key], d)
        if h is None:
            h = ind
            continue
        width = h.shape[1]
        h = (h.reshape(t.n, width, 1) * ind.reshape(t.n, 1, d)).reshape(t.n, width * d)
    return h


async def factorized_sums(t: SecTable, keys: Sequence[str], sizes: Sequence[int],
                          summed: Sequence[str], products: Sequence[tuple[str, str]],
                          filtered: bool, with_count: bool, owner_rows: np.ndarray | None
                          ) -> tuple[dict[Any, Any], np.ndarray | None]:
    """Per cell (D = prod(sizes), first key slowest): the scaled integer sums of the columns
    ``summed`` (field arrays), of the products a * b at scale 2^(2f) (keyed by (a, b)), and
    the count (key None, an integer) if ``with_count``; and, if ``owner_rows`` (C, R) --
    each contributor's row indexes, n for padding -- the (C, D) small-field counts of each
    contributor's valid rows per cell. See the module docstring."""
    stype = t.sectype
    field = stype.sectype.field
    p, n = field.modulus, t.n
    head, last = math.prod(sizes[:-1]), sizes[-1]
    u_side, u_powers = await _head_side(t, keys[:-1], sizes[:-1])
    x_side = mpc.np_stack(powers(await integers(t.columns[keys[-1]]), last), axis=1)
    if filtered:  # the valid flags folded into X: X[:, 0] = valid
        x_side = x_side * (await integers(t.valid)).reshape(n, 1)
    blocks, names = [], []
    for c in summed:  # x^e y: one multiplication per power (x^0 y is y unless filtered)
        y = (await scaled(t.columns[c])).reshape(n, 1)
        blocks.append(x_side * y if filtered else
                      mpc.np_concatenate([y, x_side[:, 1:] * y], axis=1))
        names.append(c)
    for a, b in products:
        blocks.append(blocks[list(summed).index(a)] * (await scaled(t.columns[b])).reshape(n, 1))
        names.append((a, b))
    if with_count:
        blocks.append(x_side)
        names.append(None)
    k = mpc.np_stack(blocks, axis=2).reshape(n, last * len(blocks))
    moments = await mpc.gather(mpc.np_matmul(mpc.np_transpose(u_side), k))
    lu = lagrange(head, p) if u_powers else np.identity(head, dtype=object)
    cells = _transform(moments.value.reshape(head, last, len(blocks)), lu, lagrange(last, p), p)
    sums = {name: field.array(cells[:, :, i].reshape(-1), check=False)
            for i, name in enumerate(names)}
    if owner_rows is None:
        return sums, None
    return sums, await _owner_counts(u_side, u_powers, x_side, owner_rows)


async def _head_side(t: SecTable, keys: Sequence[str], sizes: Sequence[int]
                     ) -> tuple[Any, bool]:
    """The (n, h) matrix of the keys before the last, and whether it is the powers of their
    combined key (else their one-hot matrix, beyond POWERS_MAX cells)."""
    field = t.sectype.sectype.field
    h = math.prod(sizes)
    if h > POWERS_MAX:
        return await integers(await onehot_matrix(t, keys, sizes, valid=False)), False
    combined = None
    for key, stride in zip(keys, [math.prod(sizes[i + 1:]) for i in range(len(keys))],
                           strict=True):
        term = (await integers(t.columns[key])) * stride  # a public weight: local
        combined = term if combined is None else combined + term
    if combined is None:  # no keys before the last: one column of ones
        sec = field_type(field.modulus, bool(field.is_signed))
        return sec.array(np.ones((t.n, 1), dtype=np.int64)), True
    return mpc.np_stack(powers(combined, h), axis=1), True


def _transform(m: np.ndarray, lu: np.ndarray, lx: np.ndarray, p: int) -> np.ndarray:
    """sum_{e, e'} LU[g, e] LX[l, e'] m[..., e, e', :] mod p: m (..., h, d, w) of ints."""
    out = np.tensordot(lu, m, axes=([1], [-3])) % p   # (g, ..., d, w)
    out = np.tensordot(lx, out, axes=([1], [-2])) % p  # (l, g, ..., w)
    return np.moveaxis(np.moveaxis(out, 0, -2), 0, -3)  # (..., g, l, w)


async def _owner_counts(u_side: Any, u_powers: bool, x_side: Any, owner_rows: np.ndarray
                        ) -> np.ndarray:
    """(C, h * d) small-field counts of each contributor's valid rows per cell: the moments
    U_c^T @ X_c, moved to the small field (their public integer bound: the most rows of
    one contributor times the largest entries of U and X), transformed there."""
    c, most = owner_rows.shape
    h, last = u_side.shape[1], x_side.shape[1]
    sec = type(u_side)
    u_most = (h - 1) ** (h - 1) if u_powers and h > 1 else 1
    lx = lagrange(last, sf.P)
    bound = most * u_most * max(1, (last - 1) ** (last - 1))
    modulus = sec.sectype.field.modulus
    if bound.bit_length() + mpc.options.sec_param + 4 > modulus.bit_length():
        # the last key's powers are too large to move: its one-hot matrix instead (local)
        x_side = mpc.np_matmul(x_side, lagrange(last, modulus).T)
        lx, bound = np.identity(last, dtype=object), most * u_most
    uz = mpc.np_concatenate([u_side, sec(np.zeros((1, h), dtype=np.int64))], axis=0)
    xz = mpc.np_concatenate([x_side, sec(np.zeros((1, last), dtype=np.int64))], axis=0)
    index = owner_rows.reshape(-1)
    moments = mpc.np_matmul(mpc.np_transpose(uz[index].reshape(c, most, h), (0, 2, 1)),
                            xz[index].reshape(c, most, last))  # (c, h, last)
    small = await to_small_ints(await mpc.gather(moments), bound.bit_length())
    lu = lagrange(h, sf.P) if u_powers else np.identity(h, dtype=object)
    cells = _transform(small.astype(object).reshape(c, h, last, 1), lu, lx, sf.P)
    return cells.reshape(c, h * last).astype(np.int64)


def cell_keys(stype: type, keys: Sequence[str], sizes: Sequence[int]) -> dict[str, Any]:
    """The key columns of the D cells (public constants, first key slowest)."""
    cells = np.array(list(np.ndindex(*sizes)), dtype=object).reshape(-1, len(sizes))
    return {key: const(stype.sectype, cells[:, i], integral=True) for i, key in enumerate(keys)}
