"""Inner equi-joins on secret keys: the nested loop, the PK-FK sort join, and the dispatch to
the many-to-many join.

Which algorithm runs depends on public knowledge only -- the input lengths n and m, and
whether the compiler knows a side to be unique on its join keys (a declared primary key) --
so the choice reveals nothing:

* n * m <= ``NESTED_LOOP_MAX`` (or ``method="network"``): the n x m nested loop; output
  length n * m; reveals nothing.
* a unique side: the PK-FK join, linear per key bit (:func:`pkfk_fill`); output length the
  other side's; reveals nothing.
* neither: the sort-based many-to-many join of ``mmjoin.py``; its output length is the join
  size M, revealed to the compute parties (or a public bound, then only "M <= bound").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpyc import asyncoro
from mpyc.runtime import mpc

from . import mmjoin, radix
from . import smallfield as sf
from .bits import small_bits, small_to_big_bits
from .joinkeys import join_keys, two_sided_bits
from .keyspec import KeySpec, spec_for
from .limits import NESTED_LOOP_MAX
from .sort import SORT_METHOD
from .table import SecTable, stack, zeros

__all__ = ["NESTED_LOOP_MAX", "join", "join_many", "pkfk_fill"]


def join(
    left: SecTable,
    right: SecTable,
    left_keys: list[str],
    right_keys: list[str],
    unique: str | None = None,
    key_bits: dict[str, Any] | None = None,
    method: str | None = None,
) -> SecTable:
    """Inner equi-join on one or several secret keys. Output columns: all of left's then all
    of right's columns (the caller guarantees distinct names).

    ``unique`` = "left" or "right" declares that side's keys unique among its valid rows
    (a primary key joined with a foreign key; public schema knowledge). Then the join is
    sort-based (PK-FK join, linear per key bit): the rows of both sides are concatenated
    and stably radix-sorted by (keys, side) so each key's PK row precedes its FK rows;
    every FK row gets the columns of the nearest PK row before it and is "matched" when
    that row is valid with equal key bits; the rows are moved back to the input order
    (unshuffle) and the FK side's rows are kept. Output length: the FK side's length
    (public); output row j is FK row j (its valid flag cleared when it has no valid
    partner), so the join size stays secret. Cost: one radix sort of n + m rows over the key
    bits + 2, a compaction pass, a few shuffles of the PK columns, no comparisons and no
    big-field prefix scans (the copy is a prefix sum of differences; see :func:`pkfk_fill`).
    Reveals nothing. If the declared side is not unique, the copied columns are sums over
    the duplicates (wrong, not leaky).

    For 0 < n * m <= ``NESTED_LOOP_MAX`` (or ``method="network"``): nested-loop join over all
    pairs: output row i*m + j pairs left row i with right row j (public index selection,
    free); valid = prod_k (left.key_k == right.key_k) * left.valid * right.valid: n*m*len(keys)
    equality tests in one batched np_equal. Output length n*m (public). Reveals nothing.

    No unique side and n * m > ``NESTED_LOOP_MAX``: the sort-based many-to-many join of
    ``mmjoin.py`` (Krastnikov et al., VLDB 2020; linear per key bit, no n x m work). Its output
    length is the join size M, revealed to the compute parties (or a public bound
    ``max_rows``, then only "M <= max_rows" is revealed), so it must be awaited: use
    ``await join_many(...)`` (same arguments); this synchronous ``join`` refuses that case
    with a ValueError naming it.
    """
    if len(left_keys) != len(right_keys) or not left_keys:
        raise ValueError("join needs the same positive number of left and right keys")
    dup = set(left.columns) & set(right.columns)
    if dup:
        raise ValueError(f"join: column names on both sides: {sorted(dup)}")
    if unique not in (None, "left", "right"):
        raise ValueError("join: unique must be None, 'left' or 'right'")
    left, right, left_keys, right_keys = join_keys(left, right, left_keys, right_keys)
    n, m = left.n, right.n
    stype = left.sectype
    if unique is not None and (n * m > NESTED_LOOP_MAX or n * m == 0) \
            and (method or SORT_METHOD) == "radix":
        return _pkfk_join(left, right, left_keys, right_keys, unique, key_bits)
    if n * m == 0:
        cols = {c: zeros(stype, 0) for c in list(left.columns) + list(right.columns)}
        return SecTable(cols, zeros(stype, 0))
    if unique is None and n * m > NESTED_LOOP_MAX and (method or SORT_METHOD) == "radix":
        raise ValueError(f"join: {n} x {m} rows without a unique side: the many-to-many join "
                         f"reveals its size, use `await join_many(...)` (mmjoin.py)")
    return _nested_loop(left, right, left_keys, right_keys)


async def join_many(
    left: SecTable,
    right: SecTable,
    left_keys: list[str],
    right_keys: list[str],
    unique: str | None = None,
    key_bits: dict[str, Any] | None = None,
    method: str | None = None,
    max_rows: int | None = None,
) -> SecTable:
    """Inner equi-join on one or several secret keys, any multiplicities on both sides.

    Arguments as :func:`join`, plus ``max_rows``: a public bound B on the number of joined
    rows; the output then has exactly B rows (rows beyond the join size invalid) and only
    "M <= B" is revealed (``mmjoin.JoinTooLarge`` when M > B). Without it the output has
    exactly M rows and M is revealed to the compute parties.

    Dispatch: a ``unique`` side -> the PK-FK join; n * m <= ``NESTED_LOOP_MAX`` or
    ``method="network"`` -> the n x m nested loop (both in :func:`join`; nothing revealed,
    output length n (FK side) or n * m, regardless of ``max_rows``); otherwise the sort-based
    many-to-many join of ``mmjoin.py`` (reveals M, or only M <= B).
    """
    if max_rows is not None and (int(max_rows) != max_rows or max_rows < 0):
        raise ValueError(f"join: max_rows must be a non-negative integer, not {max_rows!r}")
    if max_rows is not None and max_rows > mmjoin.MAX_ROWS:
        raise ValueError(f"join: max_rows {max_rows} is above the supported {mmjoin.MAX_ROWS}")
    n, m = left.n, right.n
    if unique is not None or n * m <= NESTED_LOOP_MAX or (method or "radix") == "network":
        return join(left, right, left_keys, right_keys, unique=unique, key_bits=key_bits,
                    method=method)
    return await mmjoin.many_to_many(left, right, left_keys, right_keys, key_bits, max_rows)


def _nested_loop(left: SecTable, right: SecTable, left_keys: list[str],
                 right_keys: list[str]) -> SecTable:
    """All n * m pairs, valid where both rows are valid and every key is equal."""
    n, m = left.n, right.n
    stype = left.sectype
    li = np.repeat(np.arange(n), m)
    ri = np.tile(np.arange(m), n)
    cols = {c: a[li] for c, a in left.columns.items()}
    cols |= {c: a[ri] for c, a in right.columns.items()}
    for c, a in left.columns.items():
        cols[c].integral = bool(getattr(a, "integral", False))
    for c, a in right.columns.items():
        cols[c].integral = bool(getattr(a, "integral", False))
    a = stack([cols[k] for k in left_keys], stype, n * m)
    b = stack([cols[k] for k in right_keys], stype, n * m)
    e = mpc.np_equal(a, b)
    valid = left.valid[li] * right.valid[ri]
    for i in range(len(left_keys)):
        valid = valid * e[i]
    return SecTable(cols, valid, ranges=left.ranges | right.ranges)


def _pkfk_join(left: SecTable, right: SecTable, left_keys: list[str], right_keys: list[str],
               unique: str, key_bits: dict[str, Any] | None) -> SecTable:
    u, fk = (left, right) if unique == "left" else (right, left)
    ukeys, fkeys = (left_keys, right_keys) if unique == "left" else (right_keys, left_keys)
    stype = left.sectype
    f = stype.frac_length
    specs = []
    for uk, fkk in zip(ukeys, fkeys, strict=True):
        ua, fa = u.columns[uk], fk.columns[fkk]
        integral = bool(getattr(ua, "integral", False)) and bool(getattr(fa, "integral", False))
        hint = (key_bits or {}).get(uk, (key_bits or {}).get(fkk))
        if hint is not None:
            specs.append(spec_for(hint, integral, f))
        elif uk in u.ranges and fkk in fk.ranges and integral:
            r1, r2 = u.ranges[uk], fk.ranges[fkk]
            specs.append(KeySpec(min(r1.lo, r2.lo), max(r1.hi, r2.hi)))
        else:
            specs.append(spec_for(None, integral, f))
    ucols = list(u.columns)
    nf = fk.n
    if nf == 0:
        cols = {c: zeros(stype, 0) for c in list(left.columns) + list(right.columns)}
        return SecTable(cols, zeros(stype, 0))
    if u.n == 0:
        mat = zeros(stype, (len(ucols) + 1) * nf).reshape(len(ucols) + 1, nf)
    else:
        upay = stack([u.columns[c] for c in ucols], stype, u.n)
        keys = [mpc.np_concatenate([u.columns[a], fk.columns[b]])
                for a, b in zip(ukeys, fkeys, strict=True)]
        mat = pkfk_fill(keys, specs, upay, u.valid, two_sided_bits(u, fk, ukeys, fkeys, specs))
    got = {c: mat[i] for i, c in enumerate(ucols)}
    for c in ucols:
        got[c].integral = bool(getattr(u.columns[c], "integral", False))
    matched = mat[len(ucols)]
    matched.integral = True
    valid = fk.valid * matched
    own = dict(fk.columns)
    if unique == "left":
        cols = {c: got[c] for c in left.columns} | own
    else:
        cols = own | {c: got[c] for c in right.columns}
    ranges = {c: r for c, r in (u.ranges | fk.ranges).items() if c in cols}
    # output row j is FK row j: the FK side's columns keep their arrays, rows and key bits
    return SecTable(cols, valid, ranges=ranges, bits=fk.keep_bits(own))


@asyncoro.mpc_coro
async def pkfk_fill(keys, specs, upay, uvalid, cached=None):
    """PK-FK join core (see :func:`join`). keys: secfxp arrays of length nu + nf
    (PK side rows first), most significant first; upay: secfxp (c, nu), the PK side's
    columns; uvalid: its valid flags (nu,); cached: owner key bits per key (see
    ``radix.key_bits_small``), or None. Returns secfxp (c + 1, nf): for every FK row
    (in input order) the columns of its valid PK partner, then a 0/1 "matched" flag (the
    columns are unspecified when unmatched).

    Protocol (no comparisons, no segmented scans in the big field):
      1. uv := bit of uvalid in the small field (1-bit extraction); side := 0 for PK rows,
         1 for FK rows (public, so its shares are the bits themselves).
      2. Stable radix sort of all rows by (keys, side, uv): per key, PK rows come first
         and a valid PK row is the last of them. Move the PK columns (0 for FK rows) and
         the small-field (key bits, uv, side) to the sorted order.
      3. Compact the PK rows to the front (one radix pass on side), keeping their order;
         replace every PK row's values by the difference to the previous PK row (local),
         FK rows by 0; move back (unapply, i.e. unshuffle). A prefix sum (local) now gives
         every row the values of the most recent PK row before it.
      4. matched := side * uv(recent PK) * [key bits(recent PK) == own key bits] (small
         field: XOR, product tree), converted to a secfxp 0/1 by daBits.
      5. Unapply the sort (unshuffle) and keep the FK rows.
    Rounds: those of the radix sort over (key bits + 2) plus about 15 + log2 L. Reveals
    nothing (only uniformly random permutations are opened)."""
    stype = type(upay)
    c, nu = upay.shape
    N = keys[0].shape[0]
    nf = N - nu
    await mpc.returnType((stype, False, (c + 1, nf)))
    f = stype.frac_length
    field = stype.sectype.field
    p = field.modulus
    kv = [await mpc.gather(k) for k in keys]
    up = await mpc.gather(upay)
    uvv = await mpc.gather(uvalid)
    bits = await radix.key_bits_small(kv, specs, [False] * len(kv), f, cached)
    uv = (await small_bits(uvv, 1, scaled=f))[0]
    side = np.concatenate([np.zeros(nu, dtype=np.int64), np.ones(nf, dtype=np.int64)])
    vbit = np.concatenate([uv, np.zeros(nf, dtype=np.int64)])
    allbits = np.concatenate([vbit.reshape(1, N), side.reshape(1, N)] + list(reversed(bits)),
                             axis=0)
    rho = await radix.sort_perm(allbits)
    kb = np.concatenate(bits, axis=0)
    Lk = kb.shape[0]
    pay = np.zeros((c, N), dtype=object)
    pay[:, :nu] = up.value
    small = np.concatenate([kb, vbit.reshape(1, N), side.reshape(1, N)], axis=0)
    (sp, ss), how = await radix.apply_perm(rho, [field.array(pay, check=False), small])
    side_s = ss[Lk + 1]
    rho2 = await radix.gen_bit_perm(side_s)  # PK rows (side 0) first, stable
    (cp, cs), how2 = await radix.apply_perm(rho2, [sp, ss[: Lk + 1]])
    dp = np.zeros((c, N), dtype=object)
    dp[:, :nu] = cp.value[:, :nu]
    dp[:, 1:nu] = (cp.value[:, 1:nu] - cp.value[:, : nu - 1]) % p
    ds = np.zeros((Lk + 1, N), dtype=np.int64)
    ds[:, :nu] = cs[:, :nu]
    ds[:, 1:nu] = (cs[:, 1:nu] - cs[:, : nu - 1]) % sf.P
    bp, bs = await radix.unapply([field.array(dp, check=False), ds], how2)
    recent_p = np.cumsum(bp.value, axis=1) % p
    recent_s = np.cumsum(bs, axis=1) % sf.P
    eq = await radix.equal_rows(recent_s[:Lk], ss[:Lk])
    m1 = await sf.mul(eq, recent_s[Lk])
    matched = await sf.mul(m1, side_s)
    mbig = await small_to_big_bits(matched, field)
    out = np.concatenate([recent_p, (mbig.value * (1 << f) % p).reshape(1, N)], axis=0)
    (back,) = await radix.unapply([field.array(out, check=False)], how)
    return field.array(np.ascontiguousarray(back.value[:, nu:]), check=False)
