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
key's indicator [x = v] is a public polynomial of x (Lagrange, degree d - 1: d - 2 secure
multiplications per value, exact on integral values; the share of the result is multiplied by
the field inverse of the Lagrange denominator). For SUM and COUNT without NULLs it never forms
the (n x D) one-hot matrix: with G the one-hot matrix of all keys but the last (times the valid
flags) and J the last key's indicators, the cells' sums are G^T @ (J x M) and contributor c's
counts per cell G_c^T @ J_c, secure matrix products that reshare only their outputs. Other
aggregates (MIN/MAX, NULL-able inputs) form H = G x J and use ``onehot.aggregate_domain``.

Suppression inside MPC: for each contributor c (its rows are public to the servers) and cell
j, cnt[c, j] = the number of c's valid rows in j; contributors[j] = the sum over c of
[cnt[c, j] != 0] (C x D exact zero tests, each a public polynomial of degree R in cnt, R the
most rows of one contributor: cnt[c, j] lies in 0 .. R, evaluated with about 2 sqrt(R)
multiplications, :func:`is_zero_bounded`); a cell with fewer than ``min_contributors``
contributors gets valid = 0 and is never opened. Opens nothing: which cells survive is
learnt only by the recipients (the revealed rows).

Cost: n * (d_1 + D / d + d * (s + 1)) multiplications for the sums and counts (d the last
key's values, s the sums), C * D * 2 sqrt(R) for the presence tests, D equality tests and D
comparisons, about 2 sqrt(R) + 10 rounds; all vectorised.
"""

from __future__ import annotations

import math
from fractions import Fraction
from collections.abc import Sequence
from typing import Any

import numpy as np
from mpyc.runtime import mpc

from .onehot import aggregate_domain
from .table import SecTable, const, null_flag, ones, zeros

__all__ = ["aggregate_contributed", "is_zero_bounded", "preshared_input"]

#: the largest number of rows per contributor for which the presence of a contributor in a
#: cell is tested with a product of linear factors instead of MPyC's zero test
SMALL_ZERO_TEST = 200
#: the most cells of the keys before the last whose one-hot matrix is the indicators of one
#: combined key (cells - 2 multiplications per row); beyond, the product of each key's
#: indicators (more multiplications, but local work grows with cells^2 per row)
COMBINED_KEYS = 16


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


def _lagrange_rows(d: int) -> tuple[np.ndarray, list[int]]:
    """Integer coefficients N[v, e] and denominators D[v] with [x = v] = sum_e N[v, e] x^e /
    D[v] for x in 0 .. d-1."""
    coefs = np.zeros((d, d), dtype=object)
    dens = []
    for v in range(d):
        poly = [1]  # prod over u != v of (x - u), lowest degree first
        den = 1
        for u in range(d):
            if u == v:
                continue
            poly = [(poly[i - 1] if i else 0) - u * (poly[i] if i < len(poly) else 0)
                    for i in range(len(poly) + 1)]
            den *= v - u
        coefs[v, :] = poly
        dens.append(den)
    return coefs, dens


def _powers(x: Any, d: int) -> list[Any]:
    """x^0 .. x^(d-1) of an integral secure array (exact: no truncation), in about log2(d)
    rounds: each round multiplies the highest power so far by all the lower ones at once."""
    stype = type(x)
    powers = [stype(np.ones(x.shape, dtype=np.int64)), x]
    while len(powers) < d:
        top = len(powers) - 1
        take = min(top, d - 1 - top)  # x^(top + 1) .. x^(top + take)
        lower = mpc.np_stack(powers[1:take + 1])
        higher = powers[top].reshape((1,) + x.shape) * lower
        powers += [higher[i] for i in range(take)]
    return powers


async def _indicators(x: Any, d: int) -> Any:
    """The (n, d) secret 0/1 matrix [x = v] of an integral column x with values in 0..d-1:
    Lagrange's polynomials (times the field inverses of their denominators) applied to the
    powers of x, one public matrix product on the shares (local)."""
    stype = type(x)
    n = x.shape[0]
    if d == 1:
        return stype(np.ones((n, 1), dtype=np.int64))
    powers = await mpc.gather(mpc.np_stack(_powers(x, d)[1:], axis=1))  # (n, d - 1)
    coefs, dens = _lagrange_rows(d)
    field = stype.sectype.field
    p = field.modulus
    # scaled[e, v] = N[v, e] / D[v] mod p: the share of [x = v] is (1, x, ..., x^(d-1)) @ it
    scaled = np.array([[int(coefs[v, e]) * pow(dens[v] % p, -1, p) % p for v in range(d)]
                       for e in range(d)], dtype=object)
    one = field.array(np.full((n, 1), 1 << stype.frac_length, dtype=object), check=False)
    ind = one.value @ scaled[:1, :] + powers.value @ scaled[1:, :]
    return stype(field.array(ind % p, check=False), integral=True)


async def is_zero_bounded(a: Any, bound: int) -> Any:
    """[a = 0] for integral secret values known to lie in 0 .. bound (public).

    P(x) = the product of (x - u) over u = 1 .. bound is 0 for x in 1 .. bound and
    (-1)^bound bound! at x = 0, so P(a) times the field inverse of that (applied to the
    shares) is the test, exactly. P is evaluated by Paterson-Stockmeyer: the powers a^2 ..
    a^k (k ~ sqrt(bound)), then Horner in a^k over chunks of public linear combinations of
    those powers: about 2 sqrt(bound) secure multiplications per element (13 for 49), all
    exact (integral values, arithmetic mod the field's prime). Beyond SMALL_ZERO_TEST, MPyC's
    probabilistic zero test is used instead."""
    stype = type(a)
    if bound > SMALL_ZERO_TEST:
        return mpc.np_equal(a, stype(np.zeros(a.shape, dtype=np.int64)))
    modulus = stype.sectype.field.modulus
    coefs = [1]  # P's integer coefficients, lowest degree first
    for u in range(1, bound + 1):
        coefs = [((coefs[i - 1] if i else 0) - u * (coefs[i] if i < len(coefs) else 0))
                 % modulus for i in range(len(coefs) + 1)]
    k = max(1, math.isqrt(bound + 1))
    powers = [stype(np.ones(a.shape, dtype=np.int64)), a]
    for _ in range(2, k + 1):
        powers.append(powers[-1] * a)  # integral: exact, no truncation

    def chunk(i: int) -> Any:  # sum over e < k of coefs[i k + e] a^e: public weights, free
        total = None
        for e, c in enumerate(coefs[i * k:(i + 1) * k]):
            if c:
                term = powers[e] * c
                total = term if total is None else total + term
        return total if total is not None else powers[0] * 0

    chunks = -(-len(coefs) // k)
    acc = chunk(chunks - 1)
    for i in range(chunks - 2, -1, -1):
        acc = acc * powers[k] + chunk(i)
    den = (-1) ** bound * math.factorial(bound)
    share = await mpc.gather(acc)
    return stype(share * pow(den % modulus, -1, modulus), integral=True)


async def onehot_matrix(t: SecTable, keys: Sequence[str], sizes: Sequence[int],
                        valid: bool = True) -> Any:
    """The (n, D) one-hot matrix of the key tuples (first key slowest), D = prod(sizes),
    the product of each key's indicators; times the rows' valid flags if ``valid`` (folded
    into the first key's indicators: n * d_1 multiplications instead of n * D)."""
    h = t.valid.reshape(t.n, 1) if valid else None
    for key, d in zip(keys, sizes, strict=True):
        ind = await _indicators(t.columns[key], d)
        if h is None:
            h = ind
            continue
        width = h.shape[1]
        h = (h.reshape(t.n, width, 1) * ind.reshape(t.n, 1, d)).reshape(t.n, width * d)
    return h


async def _keys_onehot(t: SecTable, keys: Sequence[str], sizes: Sequence[int]) -> Any:
    """The (n, prod(sizes)) one-hot matrix of the key tuples (first key slowest), without
    the valid flags. Up to COMBINED_KEYS cells: the indicators of the combined key
    sum_i x_i * stride_i (prod(sizes) - 2 multiplications per row, fewer than the
    product of the keys' own indicators); beyond, that product."""
    n, width = t.n, math.prod(sizes)
    stype = t.sectype
    if not keys:
        return stype(np.ones((n, 1), dtype=np.int64))
    if len(keys) == 1 or width <= COMBINED_KEYS:
        strides = [math.prod(sizes[i + 1:]) for i in range(len(keys))]
        combined = t.columns[keys[0]] * strides[0]  # public integer weights: local
        for key, stride in zip(keys[1:], strides[1:], strict=True):
            combined = combined + t.columns[key] * stride
        return await _indicators(combined, width)
    return await onehot_matrix(t, keys, sizes, valid=False)


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
        t, products = with_products(t, products), {}
    if t.n == 0:
        grouped, _ = await _materialized(t, owners, keys, sizes, aggs, types)
        grouped.valid = zeros(t.sectype, width, True)
        return grouped
    if simple:
        grouped, per_owner = await _factorized(t, owners, keys, sizes, aggs, products,
                                               filtered)
    else:
        grouped, per_owner = await _materialized(t, owners, keys, sizes, aggs, types)
    bound = int(np.bincount(owners).max())  # a contributor's count in a cell: 0 .. its rows
    present = 1 - await is_zero_bounded(per_owner, bound)
    await _tick("zero tests", present)
    contributors = mpc.np_sum(present, axis=0)
    few = _below(contributors, min_contributors, len(set(owners.tolist())))
    await _tick("compare", few)
    if grouped.valid is None:  # factorized: a cell of >= 1 contributor has rows
        grouped.valid = 1 - few
    else:
        grouped.valid = grouped.valid * (1 - few)
    return grouped


def _below(x: Any, k: int, most: int) -> Any:
    """[x < k] for integral secret values in 0 .. most (public): a comparison sized for that
    range (the field value is x * 2^f)."""
    if k <= 0:
        return x * 0
    bits = max(most, k).bit_length() + type(x).frac_length + 2
    return mpc.np_sgn(x - k, l=bits, LT=True)


def deferred_fits(t: SecTable, products: dict[str, Sequence]) -> bool:
    """Whether every deferred product's sum over all n rows provably fits the secure type
    (n * bound < 2^(l - f - 1)): then each cell's sum of the untruncated products (scale
    2^(2f)) is below 2^(l + f - 1) and one truncation per cell is exact and safe (MPyC's
    truncation needs |x| < 2^(l + f - 1))."""
    sec = t.sectype.sectype
    limit = 1 << (sec.bit_length - sec.frac_length - 1)
    return all(t.n * Fraction(bound) < limit for _, _, bound in products.values())


def with_products(t: SecTable, products: dict[str, Sequence]) -> SecTable:
    """``t`` with the deferred products computed row by row (truncated per row, as a
    projection would)."""
    if not products:
        return t
    cols = dict(t.columns)
    for name, (a, b, _) in products.items():
        cols[name] = t.columns[a] * t.columns[b]
    return SecTable(cols, t.valid, ranges=t.ranges)


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


async def _tick(label, *xs):
    import os, time
    if os.environ.get("PRESHARED_PROFILE"):
        for x in xs:
            await mpc.gather(x)
        await mpc.barrier()
        print(f"  [{mpc.pid}] {time.perf_counter():.2f} {label}", flush=True)


async def _factorized(t: SecTable, owners: np.ndarray, keys: Sequence[str],
                      sizes: Sequence[int], aggs: list, products: dict[str, Sequence],
                      filtered: bool) -> tuple[SecTable, Any]:
    """SUM and COUNT without NULLs, never forming H. Long because it lays out one matrix
    product: with G the (n, D / d) one-hot matrix of all keys but the last and J the last
    key's (n, d) indicators (times valid if filtered), a cell's sums are G^T @ (J x M), M the
    summed columns (counts: G^T @ J); a deferred product a * b enters as (J x a) * b without
    truncation (scale 2^(2f)) and is truncated once per cell. A contributor's counts are
    G_c^T @ J_c. Secure matrix products cost one resharing per output. The returned table's
    valid is None: the suppression sets it."""
    stype = t.sectype
    n, last = t.n, sizes[-1]
    head = math.prod(sizes[:-1])
    await _tick("start")
    g = await _keys_onehot(t, keys[:-1], sizes[:-1])  # (n, head)
    await _tick("G", g)
    j = await _indicators(t.columns[keys[-1]], last)  # (n, last)
    await _tick("J", j)
    if filtered:
        j = j * t.valid.reshape(n, 1)
    summed = list(dict.fromkeys([c for _, f, c in aggs if f == "sum" and c not in products]
                                + [a for a, _, _ in products.values()]))
    blocks = []
    if summed:
        m = mpc.np_stack([t.columns[c] for c in summed], axis=1)  # (n, s)
        blocks.append(j.reshape(n, last, 1) * m.reshape(n, 1, len(summed)))  # exact: J integral
    if products:
        ja = blocks[0][:, :, [summed.index(a) for a, _, _ in products.values()]]
        ja.integral = True  # so that (J a) * b skips the truncation: scale 2^(2f), exact
        b = mpc.np_stack([t.columns[b] for _, b, _ in products.values()], axis=1)
        blocks.append(ja * b.reshape(n, 1, len(products)))
    blocks.append(j.reshape(n, last, 1))
    k = mpc.np_concatenate(blocks, axis=2) if len(blocks) > 1 else blocks[0]
    await _tick("K", k)
    width = k.shape[2]
    per_cell = mpc.np_matmul(mpc.np_transpose(g), k.reshape(n, last * width))
    per_cell = per_cell.reshape(head * last, width)
    await _tick("matmul", per_cell)
    out: dict[str, Any] = {}
    cells = np.array(list(np.ndindex(*sizes)), dtype=object).reshape(-1, len(sizes))
    for i, key in enumerate(keys):
        out[key] = const(stype.sectype, cells[:, i], integral=True)
    count = per_cell[:, width - 1]
    count.integral = True
    deferred = {}
    for i, name in enumerate(products):
        # the field holds sum(A B) / 2^f (A, B the scaled values): times 2^f, then one
        # truncation of f bits; exact below 2^(l + f - 1), which deferred_fits proved
        raw = per_cell[:, len(summed) + i] * (1 << stype.frac_length)
        deferred[name] = mpc.np_trunc(raw, f=stype.frac_length)
        deferred[name].integral = False
    for o, f, c in aggs:
        if f == "count":
            out[o] = count
        elif c in deferred:
            out[o] = deferred[c]
        else:
            out[o] = per_cell[:, summed.index(c)]
            out[o].integral = bool(t.columns[c].integral)
    ranges = {c: t.ranges[c] for c in out if c in t.ranges}
    oc = _owner_counts(g, j, owners)
    await _tick("owner counts", oc)
    return SecTable(out, None, ranges=ranges), oc


def _owner_counts(g: Any, j: Any, owners: np.ndarray) -> Any:
    """(C, D) counts of each contributor's rows per cell: G_c^T @ J_c for every contributor
    c at once (a batched matrix product; contributors with fewer rows padded with zero
    rows)."""
    stype = type(g)
    parts = _owner_slices(owners)
    most = max(sl.stop - sl.start for sl in parts)
    n, head, last = g.shape[0], g.shape[1], j.shape[1]
    index = np.full((len(parts), most), n, dtype=np.int64)  # row n: the zero row
    for c, sl in enumerate(parts):
        index[c, :sl.stop - sl.start] = np.arange(sl.start, sl.stop)
    gz = mpc.np_concatenate([g, stype(np.zeros((1, head), dtype=np.int64))], axis=0)
    jz = mpc.np_concatenate([j, stype(np.zeros((1, last), dtype=np.int64))], axis=0)
    gc = mpc.np_transpose(gz[index.reshape(-1)].reshape(len(parts), most, head), (0, 2, 1))
    jc = jz[index.reshape(-1)].reshape(len(parts), most, last)
    return mpc.np_matmul(gc, jc).reshape(len(parts), head * last)
