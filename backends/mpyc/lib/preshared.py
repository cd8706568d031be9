"""Inputs that arrive already secret-shared (contributor mode), and their suppressed GROUP BY.

In contributor mode (docs/contributors.md) many contributors Shamir-share their rows in the
field of ``secfxp`` themselves (threshold t, server i holds f(i + 1): MPyC's own sharing) and
seal one share vector per compute server. Each server thus already holds its share of every
value; :func:`preshared_input` turns them into a :class:`SecTable` without any resharing.

``mine`` (this server's, from its opened boxes): ``{"contributors": [[index, rows, tag],
...], "shares": object matrix (sum of rows x len(columns)) of field elements}``, rows grouped
by contributor in the listed order; ``tag`` (optional) is a digest of what identifies the
submission inside the box (its code), so servers served different submissions under one index
notice it. Protocol: every server sends its list to the others (``mpc.transfer``); the
contributors every server accepted with the same row count and tag are kept, in index order
(a box one server could not open or check is dropped by all, so the shares stay aligned).
Reveals, to the compute servers only: which contributors each server accepted, their row
counts and tags (the servers know the first two anyway from the provider).

:func:`aggregate_contributed` is the GROUP BY of the analytic over such a table: the group
keys are categorical columns (values 0 .. d-1, the indexes of their declared values), so each
key's indicator [x = v] is a public (Lagrange) polynomial of x. For SUM and COUNT without
NULLs (``factorized.py``) the rows' one-hot matrix is never formed: the cells' sums are a
public transform of one secure matrix product of the powers of the keys, on raw field
shares. A SUM(a * b) the compiler left to it (``products``: contributor mode's squares for a
spread) is summed untruncated, at scale 2^(2f), and truncated once per cell instead of once
per row; that is exact and safe when n * max|a b| < 2^(l - f - 1) (n the public row count,
the bound from the declared ranges: :func:`deferred_fits`), else the rows' products are
truncated one by one. Other aggregates (MIN/MAX, NULL-able inputs) form the one-hot matrix
H and use ``onehot.aggregate_domain``.

Suppression inside MPC (``suppress.py``): for each contributor c (its rows are public to the
servers) and cell j, cnt[c, j] = the number of c's valid rows in j; contributors[j] = the
sum over c of [cnt[c, j] != 0] (C x D exact zero tests in the small field GF(2^31 - 1)); a
cell with fewer than ``min_contributors`` contributors gets valid = 0 and is never opened.
Opens nothing: which cells survive is learnt only by the recipients (the revealed rows).

Cost (factorized, D = h d cells, h those of the keys before the last): per row h - 2 + d - 2
multiplications for the powers, d per summed column and per deferred product (d - 1 more if
rows can be filtered); the moments' matrix products (one resharing per output: h d per
column, and h d per contributor for the counts); C D 2 sqrt(R) small-field multiplications
(R the most rows of one contributor); a few comparisons of D values. About log2(h) + 2
sqrt(R) + 20 rounds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
from mpyc.runtime import mpc

from . import smallfield as sf
from .factorized import cell_keys, factorized_sums, onehot_matrix, scaled
from .onehot import aggregate_domain
from .suppress import cells_with_contributors, from_small, to_small
from .table import SecTable, null_flag, ones, zeros

__all__ = ["aggregate_contributed", "deferred_fits", "preshared_input", "truncate",
           "with_products"]


async def preshared_input(secfxp: type, mine: dict | None, columns: list[str],
                          integral: Sequence[bool]) -> tuple[SecTable, np.ndarray]:
    """The table of every agreed contributor's rows, and the public owner index of each row
    (0 .. C-1, in agreed order). See the module docstring."""
    stype = secfxp.array
    field = secfxp.field
    k = len(columns)
    listed = [(int(e[0]), int(e[1]), str(e[2]) if len(e) > 2 else "")
              for e in (mine or {}).get("contributors", [])]
    everyone = await mpc.transfer(listed)
    agreed = sorted(set.intersection(*({tuple(x) for x in lst} for lst in everyone)))
    if len({c for c, _, _ in agreed}) != len(agreed):
        raise ValueError("a contributor is listed twice with different row counts")
    shares = np.asarray((mine or {}).get("shares", np.zeros((0, k), dtype=object)),
                        dtype=object).reshape(-1, k)
    start, offsets = 0, {}
    for c, r, _ in listed:
        offsets[c] = (start, r)
        start += r
    if start != shares.shape[0]:
        raise ValueError(f"{shares.shape[0]} share rows for {start} listed rows")
    keep = [i for c, _, _ in agreed for i in range(offsets[c][0], offsets[c][0] + offsets[c][1])]
    picked = shares[keep, :] if keep else np.zeros((0, k), dtype=object)
    n = len(keep)
    owners = np.repeat(np.arange(len(agreed), dtype=np.int64), [r for _, r, _ in agreed])
    cols: dict[str, Any] = {}
    for j, name in enumerate(columns):
        if n == 0:
            cols[name] = zeros(stype, 0, bool(integral[j]))
            continue
        values = np.array([int(x) % field.modulus for x in picked[:, j]], dtype=object)
        cols[name] = stype(field.array(values, check=False), integral=bool(integral[j]))
    return SecTable(cols, ones(stype, n)), owners


async def aggregate_contributed(t: SecTable, owners: np.ndarray, keys: Sequence[str],
                                sizes: Sequence[int], aggs: list[tuple[str, str, str | None]],
                                min_contributors: int, types: Sequence[str] | None = None,
                                products: dict[str, Sequence] | None = None,
                                filtered: bool = True) -> SecTable:
    """GROUP BY categorical keys with cells of fewer than ``min_contributors`` contributors
    suppressed (valid = 0); D = prod(sizes) rows, one per key tuple in order (first key
    slowest), keys as their value indexes. ``products``: {column: (a, b, bound)} for summed
    columns a * b that the caller left to this function (``t`` lacks them; bound: public,
    |a b| <= bound on every row, from the declared ranges); ``filtered``: whether the rows'
    valid flags may be 0 (else they are public ones and not multiplied in). See the module
    docstring."""
    if len(owners) != t.n:
        raise ValueError(f"{len(owners)} row owners for a table of {t.n} rows")
    products = dict(products or {})
    width = math.prod(sizes)
    simple = keys and all(f in ("sum", "count") for _, f, _ in aggs) and \
        all(null_flag(t, c) is None for _, _, c in aggs if c is not None and c not in products)
    if not simple or t.n == 0 or not deferred_fits(t, products):
        t, products = await with_products(t, products), {}
    if t.n == 0:
        grouped, _ = await _materialized(t, owners, keys, sizes, aggs, types)
        grouped.valid = zeros(t.sectype, width, True)
        return grouped
    few = min_contributors > 1  # else a cell with rows is a cell with a contributor
    most = int(np.bincount(owners).max())  # a contributor's count in a cell: 0 .. most
    if simple:
        grouped, per_owner = await _factorized(t, owners, keys, sizes, aggs, products,
                                               filtered, few)
    else:
        grouped, big = await _materialized(t, owners, keys, sizes, aggs, types)
        per_owner = await to_small(big, most.bit_length()) if few else None
    if few:
        enough = await cells_with_contributors(per_owner, most, min_contributors, t.sectype)
        # factorized: valid is None, and a cell of >= 1 contributor has rows
        grouped.valid = enough if grouped.valid is None else grouped.valid * enough
    return grouped


def deferred_fits(t: SecTable, products: dict[str, Sequence]) -> bool:
    """Whether every deferred product's sum over all n rows provably fits the secure type
    (n * bound < 2^(l - f - 1)): then each cell's sum of the untruncated products (scale
    2^(2f)) is below 2^(l + f - 1) and one truncation per cell is exact and safe (MPyC's
    truncation needs |x| < 2^(l + f - 1))."""
    sec = t.sectype.sectype
    limit = 1 << (sec.bit_length - sec.frac_length - 1)
    return all(t.n * Fraction(bound) < limit for _, _, bound in products.values())


async def with_products(t: SecTable, products: dict[str, Sequence]) -> SecTable:
    """``t`` with the deferred products computed row by row, each truncated once
    (:func:`truncate`; the compiler proved every row's product fits the secure type)."""
    if not products:
        return t
    cols = dict(t.columns)
    sec = t.sectype
    for name, (a, b, _) in products.items():
        if t.n == 0:
            cols[name] = zeros(sec, 0, False)
            continue
        raw = (await scaled(t.columns[a])) * (await scaled(t.columns[b]))  # scale 2^(2f)
        cols[name] = truncate(sec(await mpc.gather(raw)))
    return SecTable(cols, t.valid, ranges=t.ranges)


def truncate(x: Any) -> Any:
    """x / 2^f for a secfxp array holding integers |x| < 2^(l + f - 1) at scale 2^(2f): MPyC's
    truncation with its bit length given explicitly, so that the mask has k bits more than
    that (for arrays MPyC's default is l bits, which leaves wider values wrong when negative
    and short of k bits of statistical hiding)."""
    sec = type(x).sectype
    out = mpc.np_trunc(x, f=sec.frac_length, l=sec.bit_length + sec.frac_length)
    out.integral = False
    return out


def _owner_slices(owners: np.ndarray) -> list[slice]:
    """The public row range of each contributor (rows are grouped by contributor)."""
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    ends = np.r_[starts[1:], len(owners)]
    return [slice(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


async def _materialized(t: SecTable, owners: np.ndarray, keys: Sequence[str],
                        sizes: Sequence[int], aggs: list, types: Sequence[str] | None
                        ) -> tuple[SecTable, Any]:
    """Any aggregate (MIN/MAX, NULL flags): the (n, D) one-hot matrix H, then
    ``onehot.aggregate_domain``; the per-contributor counts (C, D) from H's prefix sums."""
    stype = t.sectype
    h = await onehot_matrix(t, keys, sizes)  # already times valid
    width = h.shape[1]
    names = [f"__contrib_oh_{j}" for j in range(width)]
    cols = dict(t.columns)
    for j, name in enumerate(names):
        cols[name] = h[:, j]
        cols[name].integral = True
    tuples = [tuple(ix) for ix in np.ndindex(*sizes)] if keys else [()]
    # aggregate_domain multiplies by valid again: harmless for 0/1 flags
    grouped = aggregate_domain(SecTable(cols, t.valid), names, tuples, list(keys), aggs,
                               types=list(types) if types is not None else None)
    if t.n == 0:
        return grouped, None
    parts = _owner_slices(owners)
    # prefix sums with a zero row in front: a contributor's rows sum to csum[end] - csum[start]
    csum = mpc.np_concatenate([stype(np.zeros((1, width), dtype=np.int64)),
                               mpc.np_cumsum(h, axis=0)], axis=0)
    ends = np.array([sl.stop for sl in parts])
    starts = np.array([sl.start for sl in parts])
    return grouped, csum[ends, :] - csum[starts, :]


async def _factorized(t: SecTable, owners: np.ndarray, keys: Sequence[str],
                      sizes: Sequence[int], aggs: list, products: dict[str, Sequence],
                      filtered: bool, by_owner: bool) -> tuple[SecTable, np.ndarray | None]:
    """SUM and COUNT without NULLs (``factorized.factorized_sums``: no one-hot matrix of
    the rows); a deferred product's sum (scale 2^(2f)) truncated once per cell. With
    ``by_owner`` also each contributor's counts per cell (small field), the cells' counts
    their sums, and valid None (the suppression sets it); else valid = [count != 0]."""
    stype = t.sectype
    field = stype.sectype.field
    scale = field(1 << stype.frac_length)
    summed = list(dict.fromkeys([c for _, f, c in aggs if f == "sum" and c not in products]
                                + [a for a, _, _ in products.values()]))
    rows = _owner_rows(owners) if by_owner else None
    sums, per_owner = await factorized_sums(t, keys, sizes, summed,
                                            [(a, b) for a, b, _ in products.values()],
                                            filtered, not by_owner, rows)
    if by_owner:
        count = await from_small(per_owner.sum(axis=0) % sf.P, stype)  # C * P < 2^63
    else:
        count = stype(sums[None] * scale, integral=True)
    out = cell_keys(stype, keys, sizes)
    for o, f, c in aggs:
        if f == "count":
            out[o] = count
        elif c in products:  # sum(A B) at scale 2^(2f): one truncation, see deferred_fits
            a, b, _ = products[c]
            out[o] = truncate(stype(sums[(a, b)]))
        else:
            out[o] = stype(sums[c], integral=bool(t.columns[c].integral))
    valid = None if by_owner else 1 - mpc.np_equal(count, stype(np.zeros(count.shape[0],
                                                                          dtype=np.int64)))
    ranges = {c: t.ranges[c] for c in out if c in t.ranges}
    return SecTable(out, valid, ranges=ranges), per_owner


def _owner_rows(owners: np.ndarray) -> np.ndarray:
    """(C, R) the row indexes of each contributor (rows grouped by contributor), padded
    with n (a zero row) up to R, the most rows of one contributor."""
    parts = _owner_slices(owners)
    most = max(sl.stop - sl.start for sl in parts)
    index = np.full((len(parts), most), len(owners), dtype=np.int64)
    for c, sl in enumerate(parts):
        index[c, :sl.stop - sl.start] = np.arange(sl.start, sl.stop)
    return index
