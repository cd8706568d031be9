"""Secure semi-join and anti-join (SQL ``IN (subquery)``, ``EXISTS``, ``NOT IN``, ``NOT EXISTS``).

Protocol :func:`semi_join` (semi-honest, honest majority; any number of parties)::

    out = semi_join(left, right, ["t.zone"], ["zone"])            # WHERE zone IN (SELECT ...)
    out = semi_join(left, right, ["t.zone"], ["zone"], anti=True)  # WHERE NOT EXISTS (...)

The output is the left table itself -- same columns, same length, same row positions -- with
``valid = left.valid AND (a valid right row has equal keys)`` (``anti``: ``AND NOT``). The right
side need not be unique on its keys. Nothing is opened but uniformly random permutations.

Algorithm (sort-based, linear per key bit, no n x m comparisons), on N = n + m rows:

    1. Concatenate the right rows and then the left rows; every row gets its key bits (small
       field GF(2^31-1), ``radix.key_bits_small``: input by the owners where a key column
       comes straight from an input, extracted otherwise), a side bit (0 right, 1 left: public) and
       ``v`` = the right row's valid bit (0 for left rows; a 1-bit extraction).
    2. Stable radix sort (``radix.sort_perm``) by (keys, side, v): in each key group the right
       rows come first, the valid ones last among them, so the last right row of a group is
       valid exactly when the group has a valid right row.
    3. "Most recent right row" by compaction (as ``join.pkfk_fill``): sort the rows by the
       side bit (one more radix pass) so the right rows form a prefix; replace each by its
       difference to the right row before it, left rows by 0; move back (unshuffle); a prefix
       sum (local) gives every row the key bits and v of the last right row at or before it.
    4. matched := v(recent) * [key bits(recent) == own key bits] (XOR and a product tree).
       This is the segmented OR: the flag of the group's last right row reaches every left
       row of the group, and a group without right rows sees a row of a smaller key (unequal).
    5. Unshuffle to the input order, keep the left rows' flags, convert them to secfxp 0/1
       (daBits, ``bits.small_to_big_bits``) and multiply into left.valid (1 round).

Rounds: those of a radix sort over (key bits + 2), about 8 per bit with 3 parties, plus about
20 + log2(key bits) for steps 3-5. Work and communication O(N) per key bit. Source: the radix
sort and its compose/apply steps of G. Asharov et al., "Efficient secure three-party sorting
with applications to data analysis and heavy hitters", ACM CCS 2022 (see ``radix.py``); the
copy-by-compaction of ``join.pkfk_fill``.

For tiny inputs (n * m <= ``NESTED_LOOP_MAX``) a nested loop is faster: n*m*(key pieces)
equality tests in one batched ``np_equal``, then an OR over each left row's m pairs as a
product tree of 1 - hit (log2 m rounds of multiplications). Without keys (an uncorrelated
``EXISTS``) only the OR of the right side's valid flags is needed (log2 m rounds).

Measured (3 MPyC processes on one shared 2-core machine, one int key, time of the call plus
opening one sum): 4 x 4 rows, 64-bit keys: nested loop 0.03 s, sort 0.20 s; 16 x 16, 64-bit:
0.21 s vs 0.22 s (the break-even behind ``NESTED_LOOP_MAX``); 100 x 100, 16-bit keys: nested
7.75 s, sort 0.08 s; 1000 x 1000: sort 0.22 s (20-bit keys), 0.65 s (64-bit);
10000 x 10000, 20-bit: sort 1.6 s.

Reveals: nothing beyond the public lengths n and m (the sorts open only uniformly random
permutations; the output length is n). Which left rows match, and how many, stays secret.

NULLs: data NULLs never enter MPC (they are rejected at input). Computed NULLs travel as
companion flags ``c~null`` (see ``encoding.py``, "Companion columns"): a key that is NULL on
either side never matches (SQL ``=``). With ``not_in`` (``x NOT IN (SELECT y ...)``) SQL's
rule applies on one key: a NULL among the valid right keys empties the result, and a NULL
left key passes only when the right side has no valid row; NOT IN over several keys with NULL
flags is refused (NotImplementedError) rather than answered wrongly. Long texts (companion
pieces ``c~1``, ...) compare piece by piece, the shorter side padded with zero pieces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from mpyc import asyncoro
from mpyc.runtime import mpc

from . import radix
from . import smallfield as sf
from .bits import small_bits, small_to_big_bits
from .encoding import NULL_FLAG
from .keyspec import TYPE_RANGES, KeySpec, clear_bits, spec_for
from .limits import SEMIJOIN_NESTED_LOOP_MAX as NESTED_LOOP_MAX
from .table import SecTable, const, pieces

__all__ = ["NESTED_LOOP_MAX", "semi_join"]


def semi_join(
    left: SecTable,
    right: SecTable,
    left_keys: Sequence[str],
    right_keys: Sequence[str],
    anti: bool = False,
    not_in: int = 0,
    key_bits: dict[str, Any] | None = None,
    method: str | None = None,
) -> SecTable:
    """Left's rows that have (``anti``: have not) a valid right row with equal keys.

    Output: left's columns and length n (public); ``valid = left.valid * matched``
    (``anti``: ``* (1 - matched)``). No keys: matched = "right has a valid row". ``not_in``
    (the number of leading key pairs that come from NOT IN) only matters when NULL flags are
    present (see the module docstring). ``key_bits``: public key ranges as in
    ``join.join`` (default: the tables' ranges, else 64-bit ints). ``method``:
    "radix" (default) or "network" (the nested loop at any size: the n x m baseline).
    Algorithm, cost and what it reveals (nothing beyond n and m): see the module docstring.
    """
    if len(left_keys) != len(right_keys):
        raise ValueError("semi_join needs as many left keys as right keys")
    for t, keys, side in ((left, left_keys, "left"), (right, right_keys, "right")):
        for k in keys:
            if k not in t.columns:
                raise KeyError(f"semi_join: {side} key {k!r} is not a column")
    n, m = left.n, right.n
    stype = left.sectype
    # the output is left itself (same arrays, same rows): its owners' key bits stay valid
    keep = {"columns": dict(left.columns), "ranges": dict(left.ranges), "bits": dict(left.bits)}
    if n == 0:
        return SecTable(valid=left.valid, **keep)
    lnull = _any_null(left, left_keys)
    rnull = _any_null(right, right_keys)
    if not_in and (lnull is not None or rnull is not None) and len(left_keys) > 1:
        raise NotImplementedError("NOT IN over several keys that may be NULL inside MPC")
    rv = right.valid if rnull is None else right.valid * (1 - rnull)
    if m == 0:
        matched = const(stype.sectype, np.zeros(n, dtype=object), integral=True)
    elif not left_keys:
        matched = _or_rows(rv.reshape(1, m))[np.zeros(n, dtype=int)]
    elif n * m <= NESTED_LOOP_MAX or (method or "radix") == "network":
        matched = _nested_loop(left, right, left_keys, right_keys, rv)
    else:
        lcols, rcols, specs, zeros = _key_pieces(left, right, left_keys, right_keys, key_bits)
        keys = [mpc.np_concatenate([r, a]) for a, r in zip(lcols, rcols, strict=True)]
        matched = _radix_matches(keys, specs, rv, n,
                                 _owner_bits(left, right, lcols, rcols, specs, zeros))
        matched.integral = True
    if lnull is not None:  # NULL = anything is not true: a NULL key matches nothing
        matched = matched * (1 - lnull)
    flags = 1 - matched if anti else matched
    if not_in and anti and (lnull is not None or rnull is not None):
        # x NOT IN (...) is NULL (the row goes) when a valid right key is NULL, and when x
        # is NULL unless the right side has no valid row
        if rnull is not None:
            any_rnull = _or_rows((right.valid * rnull).reshape(1, m))[0]
            flags = flags * (1 - any_rnull)
        if lnull is not None and m:
            any_right = _or_rows(right.valid.reshape(1, m))[0]
            flags = flags * (1 - lnull * any_right)
    return SecTable(valid=left.valid * flags, **keep)


# --------------------------------------------------------------------------------------------
# Keys: text pieces and NULL flags (the companion columns of table.py)
# --------------------------------------------------------------------------------------------


def _any_null(t: SecTable, keys: Sequence[str]) -> Any | None:
    """Secret 0/1: one of the row's keys is NULL; None when no key can be NULL."""
    flags = [t.columns[k + NULL_FLAG] for k in keys if k + NULL_FLAG in t.columns]
    if not flags:
        return None
    out = flags[0]
    for f in flags[1:]:
        out = out + f - out * f
    return out


def _key_pieces(left: SecTable, right: SecTable, left_keys: Sequence[str],
                right_keys: Sequence[str], key_bits: dict[str, Any] | None
                ) -> tuple[list[Any], list[Any], list[KeySpec], set[int]]:
    """Aligned key columns of both sides (text pieces padded with zeros) and their public
    ranges: a hint in ``key_bits``, else the union of both sides' ranges, else the default;
    and the ids of the zero pieces made here (public constants)."""
    f = left.sectype.frac_length
    lcols, rcols, specs = [], [], []
    zeros: set[int] = set()
    for a, b in zip(left_keys, right_keys, strict=True):
        pa, pb = pieces(left, a), pieces(right, b)
        for i in range(max(len(pa), len(pb))):
            ca = left.columns[pa[i]] if i < len(pa) else None
            cb = right.columns[pb[i]] if i < len(pb) else None
            if ca is None:
                ca = const(left.sectype.sectype, np.zeros(left.n, dtype=object), True)
                zeros.add(id(ca))  # a public zero piece: its key bits are public too
            if cb is None:
                cb = const(right.sectype.sectype, np.zeros(right.n, dtype=object), True)
                zeros.add(id(cb))
            integral = bool(getattr(ca, "integral", False)) and \
                bool(getattr(cb, "integral", False))
            hint = (key_bits or {}).get(a, (key_bits or {}).get(b))
            if hint is not None:
                spec = spec_for(hint, integral, f)
            elif i > 0 and integral:
                spec = TYPE_RANGES["text"]
            elif integral and a in left.ranges and b in right.ranges:
                r1, r2 = left.ranges[a], right.ranges[b]
                spec = KeySpec(min(r1.lo, r2.lo), max(r1.hi, r2.hi))
            else:
                spec = spec_for(None, integral, f)
            lcols.append(ca)
            rcols.append(cb)
            specs.append(spec)
    return lcols, rcols, specs, zeros


def _owner_bits(left: SecTable, right: SecTable, lcols: Sequence[Any], rcols: Sequence[Any],
                specs: Sequence[KeySpec], zeros: set[int]) -> list | None:
    """Key bits input by the owners (``SecTable.bits``) for the aligned key columns, as
    blocks (right rows first) for ``radix.key_bits_small``; None when there are none. A
    column is found by identity (``is``), so only the very arrays the bits were made for use
    them; a zero piece (a public constant) gets its public bits."""
    def side(t: SecTable, col: Any, spec: KeySpec) -> np.ndarray | None:
        for name, a in t.columns.items():
            if a is col:
                return t.key_bits(name, spec)
        if id(col) in zeros:
            return clear_bits(np.zeros(t.n, dtype=object), spec)
        return None

    out = [[(side(right, r, sp), right.n), (side(left, a, sp), left.n)]
           for a, r, sp in zip(lcols, rcols, specs, strict=True)]
    return out if any(b is not None for blocks in out for b, _ in blocks) else None


# --------------------------------------------------------------------------------------------
# Small inputs: nested loop; no keys: OR of the valid flags
# --------------------------------------------------------------------------------------------


def _or_rows(x: Any) -> Any:
    """OR along each row of the secret 0/1 matrix x (r, m) -> (r,): 1 - prod(1 - x) as a
    product tree, ceil(log2 m) rounds of vectorised multiplications, no comparison."""
    y = 1 - x
    while y.shape[1] > 1:
        h = y.shape[1] // 2
        z = y[:, :h] * y[:, h:2 * h]
        y = mpc.np_concatenate([z, y[:, 2 * h:]], axis=1) if y.shape[1] % 2 else z
    return 1 - y[:, 0]


def _nested_loop(left: SecTable, right: SecTable, left_keys: Sequence[str],
                 right_keys: Sequence[str], rv: Any) -> Any:
    """matched (n,): every (left, right) pair's key equality (one batched np_equal over
    n*m*pieces), times the right row's valid flag, OR-ed over the right rows."""
    n, m = left.n, right.n
    lcols, rcols, _, _ = _key_pieces(left, right, left_keys, right_keys, None)
    li = np.repeat(np.arange(n), m)
    ri = np.tile(np.arange(m), n)
    a = mpc.np_stack([c[li] for c in lcols])
    b = mpc.np_stack([c[ri] for c in rcols])
    e = mpc.np_equal(a, b)
    hit = rv[ri]
    for i in range(len(lcols)):
        hit = hit * e[i]
    return _or_rows(hit.reshape(n, m))


# --------------------------------------------------------------------------------------------
# The sort-based core
# --------------------------------------------------------------------------------------------


@asyncoro.mpc_coro
async def _radix_matches(keys: list, specs: list, rvalid: Any, n: int, cached: list | None):
    """Steps 1-5 of the module docstring. keys: secfxp arrays of length m + n (right rows
    first), most significant first; rvalid: right's valid flags (m,); cached: the owners' key
    bits (``radix.key_bits_small``), or None. Returns secfxp 0/1
    (n,): left row i has a valid right row with equal keys. (mpc_coro would take a return
    annotation as the placeholder type: the type is given by ``mpc.returnType`` instead.)"""
    stype = type(rvalid)
    N = keys[0].shape[0]
    m = N - n
    await mpc.returnType((stype, False, (n,)))
    f = stype.frac_length
    field = stype.sectype.field
    kv = [await mpc.gather(k) for k in keys]
    rvv = await mpc.gather(rvalid)
    bits = await radix.key_bits_small(kv, specs, [False] * len(kv), f, cached)
    v = np.concatenate([(await small_bits(rvv, 1, scaled=f))[0],
                        np.zeros(n, dtype=np.int64)])
    side = np.concatenate([np.zeros(m, dtype=np.int64), np.ones(n, dtype=np.int64)])
    # 2. sort by (keys, side, v); bit rows least significant first
    rho = await radix.sort_perm(np.concatenate(
        [v.reshape(1, N), side.reshape(1, N)] + list(reversed(bits)), axis=0))
    kb = np.concatenate(bits, axis=0)
    L = kb.shape[0]
    (ss,), how = await radix.apply_perm(rho, [np.concatenate(
        [kb, v.reshape(1, N), side.reshape(1, N)], axis=0)])
    # 3. the right rows to the front (stable), differences, back, prefix sums
    rho2 = await radix.gen_bit_perm(ss[L + 1])
    (cs,), how2 = await radix.apply_perm(rho2, [ss[:L + 1]])
    ds = np.zeros((L + 1, N), dtype=np.int64)
    ds[:, :m] = cs[:, :m]
    ds[:, 1:m] = (cs[:, 1:m] - cs[:, :m - 1]) % sf.P
    (bs,) = await radix.unapply([ds], how2)
    recent = np.cumsum(bs, axis=1) % sf.P
    # 4. the recent right row is valid and has the row's keys
    same = await radix.equal_rows(recent[:L], ss[:L])
    matched = await sf.mul(same, recent[L])
    # 5. back to the input order; the left rows' flags as secfxp 0/1
    (back,) = await radix.unapply([matched.reshape(1, N)], how)
    mbig = await small_to_big_bits(np.ascontiguousarray(back[0, m:]), field)
    return field.array(mbig.value * (1 << f) % field.modulus, check=False)
