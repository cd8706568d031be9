"""Secure many-to-many equi-join without n x m comparisons (sort, count, expand, align).

Protocol :func:`many_to_many` (semi-honest, honest majority; any number of parties), reached
through ``join.join_many`` (``ops.join_many`` in a generated program)::

    j = await ops.join_many(left, right, ["d.patient_id"], ["patient_id"])           # M revealed
    j = await ops.join_many(left, right, ["a"], ["b"], max_rows=5000)                # M hidden

Output: a ``table.SecTable`` with all of left's columns, then all of right's (with
their companions), one row per pair (left row, right row) of valid rows with equal keys, and
secret ``valid`` flags. Its length is M, the number of joined rows, which is REVEALED to the
compute parties -- the one leak of this operator -- or, with a public bound ``max_rows`` = B
given by the caller, exactly B (rows M..B-1 invalid): then only "M <= B" is revealed, and when
M > B the join fails with :class:`JoinTooLarge` (all parties learn just that M > B; nothing
else is opened, no output is produced).

Algorithm (after G. Krastnikov, F. Kerschbaum, D. Stebila, "Efficient oblivious database
joins", PVLDB 13(11), 2020: per-key counts, oblivious expansion of both sides, alignment of
the right side; built here from the linear radix-sort primitives of ``radix.py`` instead of
sorting and routing networks). N = n + m rows, keys in the small field GF(2^31-1) as bits
(``radix.key_bits_small``; input by the owners where they could, see ``radix.py``); counts
and positions as integers in the small field (cheap: they stay below 2^31 - 1 once
M <= ``MAX_ROWS`` is known) and, where bits of them or M itself are needed, also in secfxp's
big field (exact for any M <= n m):

    1. Group. Stable radix sort of the N rows (left rows, then right rows) by (keys, side)
       with the right rows first inside a key group (``radix.sort_perm``, one pass per key
       bit + 1). Move the payload (a row's own columns: left rows' and right rows' columns
       share payload rows), key bits, valid bit v and side to that order.
       l := v (1 - side), r := v side (valid left / right rows); group starts st from equal
       adjacent key bits (``radix.adjacent_same``); both to the big field (daBits).
    2. Count. Prefix sums PL, PR of l, r (local). Every row gets the exclusive prefix at its
       group's start (SL, SR) and the inclusive prefix at its group's end (EL, ER) by one
       "fill" (below) over 2N rows: the forward fill from the group starts and, on the
       reversed order, from the group ends. a := EL - SL valid left rows and b := ER - SR
       valid right rows of the row's key; jj := PR - SR - 1 (a right row's index in its
       group). (Big field: only SR and EL, as b = PR - SR for a left row and a = EL - PL
       for a right row, the right rows of a key coming first.)
       Counts cl := l b (copies of a left row), cr := r a (copies of a right row) (1 round);
       DL, DR := their exclusive prefix sums (local); M := sum(cl) = sum_k a(k) b(k).
       Block start of a right row's key: start := DL (the left rows of its key come after it).
    3. Reveal M (or: open only [M <= B] from the top bit of B - M + 2^L, ``bits.small_bits``).
       Output length B := M (or the bound). L := bit length of B.
    4. Expand. One more radix sort over N + 2 + 2B rows: the N sorted rows and 2 sentinels
       as sources, keyed (which = side, dest, 0) with dest = DL for left rows, DR for right
       rows (L bits, ``bits.small_bits``), the sentinels (which 0 and 1) at dest M; and 2B
       slots keyed (which, t, 1) for t = 0..B-1 -- public bits. Then every slot takes the
       payload of the most recent source before it ("fill" with a public number of sources,
       as ``join.pkfk_fill``: compact the sources to the front, differences, move back,
       prefix sums). Sources of one side are sorted by dest in their own order (the exclusive
       prefix sums do not decrease), ties keep that order and a source with count c covers
       slots dest .. dest + c - 1, so left slot t gets the left row with DL <= t < DL + cl
       (each valid left row of key k repeated b(k) times, block start + ii b(k) + jj order)
       and slot t >= M the sentinel (valid 0). Right slots likewise get each right row a(k)
       times, contiguously (block start + jj a(k) + q). The columns move in the big field,
       (valid, start, b, jj, dr) in the small field, through the same permutations.
    5. Align. Right slot t, with its source's (start, b, jj, dr): q = t - dr is the copy
       index, i.e. the left row index ii, so its output position is start + q b + jj
       (1 small-field round; the sentinel carries start = M, b = 1, jj = 0, dr = M: position
       t). These B positions are a permutation of 0..B-1; move the right slots there
       (``radix.apply_perm``: shuffle, open the shuffled positions -- a uniformly random
       permutation). Output row start_k + ii b(k) + jj pairs left row ii and right row jj
       of key k.

    Fill ("most recent flagged row", flags secret): zero the unflagged values (1 round);
    compact the flagged rows to the front, stably (one radix pass on the flag); replace
    each value by its difference to the previous one times the compacted flag (1 round),
    so the unflagged tail is 0; move back (unshuffle); prefix sums (local).

Cost: radix sorts over N rows x (key bits + 1) and N + 2 + 2B rows x (log2 B + 2) bits, one
fill over 2N rows, one bit extraction of N + 2 positions, six shuffles of the columns (big
field; the rest rides along in the small field), about 5 big-field multiplication rounds --
linear in N + M per bit, no n x m work and no comparison except the one for the bound.
Rounds: about 8 per sort bit with 3 parties plus ~60. Reveals: M (or only whether M <= B),
nothing else -- every other opening is of a uniformly random permutation (shuffled
positions) or of a uniformly masked value (bit extraction, daBits).

Measured (3 MPyC processes on one shared 2-core machine; 30-bit keys, both sides' keys drawn
from N values, so M is about N; ``benchmarks/secure_ops.py --ops join-mm``, call plus
unordered reveal; quiet machine, in brackets with a load of 7-8 from other jobs):
100 + 100 rows 0.26 s (the n x m nested loop: 8.4 s), 200 + 200 0.30 s (nested: 55 s),
1,000 + 1,000 0.83 s (3.9 s), 10,000 + 10,000 7.4 s (16-27 s), 100,000 + 100,000 123 s;
the nested loop at 1,000 + 1,000 (10^6 equality tests, ~25 GB) was not run. The time splits
roughly into a third for the first sort (key bit extraction and one pass per key bit), a
quarter for the counting (daBits and the fill) and the rest for the expansion (its sort and
the moves of the columns).
End to end, ``SELECT d.code, m.drug, COUNT(*) ... JOIN ... ON patient_id GROUP BY ...`` on the
medical test data at 2,000 rows per party and table (M = 24,576, then a secret group-by over
them): 88 s, equal to DuckDB.

Invalid rows (filtered out, dummies, NULL keys: ``joinkeys.join_keys``) get count 0 and
are never copied. Output order: by key, then left row, then right row -- a secret
arrangement (nothing about it is opened; ``reveal`` shuffles unordered results).

For tiny inputs (n * m <= ``limits.NESTED_LOOP_MAX``) and when one side is unique the
cheaper operators of ``join.join`` are used (nested loop, PK-FK join: they reveal
nothing).
"""

from __future__ import annotations

from asyncio import Future
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mpyc import asyncoro
from mpyc.runtime import mpc

from ....compiler.errors import SqlmpcError
from . import radix
from . import smallfield as sf
from .bits import big_mul, small_bits, small_to_big_bits
from .encoding import is_piece
from .joinkeys import join_keys, two_sided_bits
from .keyspec import TYPE_RANGES, KeySpec, spec_for
from .table import SecTable, zeros

__all__ = ["MAX_ROWS", "JoinTooLarge", "many_to_many"]

MAX_ROWS = 1 << 29
"""Largest output length: positions and permutations live in GF(2^31 - 1) (``smallfield``),
and an M beyond this is far beyond what MPC can move on one machine anyway."""


class JoinTooLarge(SqlmpcError, ValueError):
    """The join has more rows than the caller's public bound (only that is revealed), or
    than ``MAX_ROWS``."""


async def many_to_many(
    left: SecTable,
    right: SecTable,
    left_keys: list[str],
    right_keys: list[str],
    key_bits: dict[str, Any] | None = None,
    max_rows: int | None = None,
) -> SecTable:
    """The sort-based many-to-many join of the module docstring: all of left's columns, then
    all of right's, one row per pair of valid rows with equal keys. ``max_rows``: a public
    bound B (then B rows, and only "M <= B" is revealed; :class:`JoinTooLarge` when M > B);
    without it M rows, and M is revealed to the compute parties. Callers normally use
    ``join.join_many``, which runs the cheaper joins where they apply."""
    _check_args(left, right, left_keys, right_keys)
    n, m = left.n, right.n
    lcols_in, rcols_in = list(left.columns), list(right.columns)
    ints = {c: bool(getattr(a, "integral", False))
            for c, a in (left.columns | right.columns).items()}
    ranges = left.ranges | right.ranges
    left, right, left_keys, right_keys = join_keys(left, right, left_keys, right_keys)
    stype = left.sectype
    f = stype.frac_length
    specs = _key_specs(left, right, left_keys, right_keys, key_bits, f)
    keys = [mpc.np_concatenate([left.columns[a], right.columns[b]])
            for a, b in zip(left_keys, right_keys, strict=True)]
    valid = mpc.np_concatenate([left.valid, right.valid])
    # a row's own columns: left rows fill payload rows 0..cL-1, right rows 0..cR-1
    cL, cR = len(lcols_in), len(rcols_in)
    cP = max(cL, cR, 1)
    lpad = [left.columns[c] for c in lcols_in] + [zeros(stype, n)] * (cP - cL)
    rpad = [right.columns[c] for c in rcols_in] + [zeros(stype, m)] * (cP - cR)
    payload = mpc.np_concatenate([mpc.np_stack(lpad), mpc.np_stack(rpad)], axis=1)
    cached = two_sided_bits(left, right, left_keys, right_keys, specs)  # owners' bits
    status, size, lout, rout, vout = await _mm_core(keys, specs, valid, payload, n, cL, cR,
                                                    max_rows, cached)
    if status == "overflow":
        raise JoinTooLarge(f"join: more joined rows than the bound max_rows={max_rows} "
                           f"(only that is revealed)")
    if status == "huge":
        raise JoinTooLarge(f"join: {size} joined rows (revealed) exceed the supported "
                           f"{MAX_ROWS}")
    sec = stype.sectype
    cols = {c: sec.array(lout[i], integral=ints[c]) for i, c in enumerate(lcols_in)}
    cols |= {c: sec.array(rout[i], integral=ints[c]) for i, c in enumerate(rcols_in)}
    return SecTable(cols, sec.array(vout, integral=True),
                    ranges={c: r for c, r in ranges.items() if c in cols})


def _check_args(left: SecTable, right: SecTable, left_keys: Sequence[str],
                right_keys: Sequence[str]) -> None:
    """The checks of ``join.join`` (one clear line each)."""
    if len(left_keys) != len(right_keys) or not left_keys:
        raise ValueError("join needs the same positive number of left and right keys")
    dup = set(left.columns) & set(right.columns)
    if dup:
        raise ValueError(f"join: column names on both sides: {sorted(dup)}")
    for t, keys, side in ((left, left_keys, "left"), (right, right_keys, "right")):
        for k in keys:
            if k not in t.columns:
                raise KeyError(f"join: {side} key {k!r} is not a column")


def _key_specs(left: SecTable, right: SecTable, left_keys: Sequence[str],
               right_keys: Sequence[str], key_bits: dict[str, Any] | None, f: int
               ) -> list[KeySpec]:
    """Public range of each (expanded) key pair: a ``key_bits`` hint, else the union of both
    sides' ranges (text pieces and zero pieces carry theirs, see ``_join_keys``), else the
    default (64-bit ints)."""
    specs = []
    for a, b in zip(left_keys, right_keys, strict=True):
        ca, cb = left.columns[a], right.columns[b]
        integral = bool(getattr(ca, "integral", False)) and bool(getattr(cb, "integral", False))
        piece = is_piece(a)  # a further 7-byte piece of a text (``c~1``, ``c~2``, ...)
        hint = (key_bits or {}).get(a, (key_bits or {}).get(b))
        if hint is not None:
            specs.append(spec_for(hint, integral, f))
        elif piece and integral:
            specs.append(TYPE_RANGES["text"])
        elif integral and a in left.ranges and b in right.ranges:
            r1, r2 = left.ranges[a], right.ranges[b]
            specs.append(KeySpec(min(r1.lo, r2.lo), max(r1.hi, r2.hi)))
        else:
            specs.append(spec_for(None, integral, f))
    return specs


# --------------------------------------------------------------------------------------------
# Big-field plumbing (raw shares: MPyC field arrays of integers, unscaled)
# --------------------------------------------------------------------------------------------


def _cumsum(x: np.ndarray, p: int) -> np.ndarray:
    """Inclusive prefix sums along the last axis of an object array, mod p (local)."""
    return np.cumsum(x, axis=-1, dtype=object) % p


async def _fill(fs: np.ndarray, fb: np.ndarray, xb: np.ndarray, xs: np.ndarray, field
                ) -> tuple[np.ndarray, np.ndarray]:
    """Every column gets the values of the most recent column at or before it whose secret
    flag is 1 (0 before the first flagged column), in both fields at once. fs: the flags in
    the small field (n,); fb: the same flags as big-field 0/1 (object (n,)); xb: big-field
    values (object (cb, n)); xs: small-field values (int64 (cs, n)). See the module docstring
    ("Fill"). Reveals nothing (one radix pass: a uniformly random permutation is opened)."""
    p = field.modulus
    cb, n = xb.shape
    fbb = np.ascontiguousarray(np.broadcast_to(fb, (cb, n)))
    xz = (await big_mul(field.array(xb, check=False), field.array(fbb, check=False))).value
    xzs = await sf.mul(xs, np.broadcast_to(fs, xs.shape))
    rho = await radix.gen_bit_perm((1 - fs) % sf.P)  # flagged first, stably
    (cx, cs), how = await radix.apply_perm(
        rho, [field.array(np.concatenate([xz, fb.reshape(1, n)]), check=False),
              np.concatenate([xzs, fs.reshape(1, n)])])
    prev = np.zeros((cb, n), dtype=object)
    prev[:, 1:] = cx.value[:cb, :-1]
    cfb = np.ascontiguousarray(np.broadcast_to(cx.value[cb], (cb, n)))
    prod = (await big_mul(field.array(prev, check=False),
                             field.array(cfb, check=False))).value
    d = (cx.value[:cb] - prod) % p
    cs_ = xs.shape[0]
    prevs = np.zeros((cs_, n), dtype=np.int64)
    prevs[:, 1:] = cs[:cs_, :-1]
    ds = (cs[:cs_] - await sf.mul(prevs, np.broadcast_to(cs[cs_], (cs_, n)))) % sf.P
    back, backs = await radix.unapply([field.array(d, check=False), ds], how)
    return _cumsum(back.value, p), np.cumsum(backs, axis=1) % sf.P


def _public_bits(values: np.ndarray, L: int) -> np.ndarray:
    """Bits (L, len(values)) of public non-negative ints, LSB first: their own shares."""
    v = np.asarray(values, dtype=np.int64)
    return ((v[None, :] >> np.arange(L, dtype=np.int64)[:, None]) & 1).astype(np.int64)


# --------------------------------------------------------------------------------------------
# The protocol
# --------------------------------------------------------------------------------------------


@asyncoro.mpc_coro
async def _mm_core(keys: list, specs: list, valid: Any, payload: Any, n: int, cL: int, cR: int,
                   bound: int | None, cached: list | None = None):
    """Steps 1-5 of the module docstring. keys: secfxp arrays (N,) (left rows first, most
    significant key first); valid (N,); payload (cP, N): a row's own columns; cached: the
    owners' key bits (``radix.key_bits_small``), or None. Returns (as a
    Future) (status, M or None, left columns (cL, B), right columns (cR, B), valid (B,)) as
    big-field share arrays scaled like secfxp; status "ok", "overflow" (M > bound) or "huge"
    (revealed M > MAX_ROWS)."""
    await mpc.returnType(Future)
    stype = type(valid)
    f = stype.frac_length
    field = stype.sectype.field
    kv = [await mpc.gather(k) for k in keys]
    vv = await mpc.gather(valid)
    pay = await mpc.gather(payload)
    g = await _group(kv, specs, vv, pay, n, f, field, cached)
    c = await _count(g, field)
    status, M, B = await _open_size(c.Mf, bound, n, g.N - n, field)
    if status != "ok":
        return status, M, None, None, None
    if B == 0:
        return ("ok", M, field.array(np.zeros((cL, 0), dtype=object), check=False),
                field.array(np.zeros((cR, 0), dtype=object), check=False),
                field.array(np.zeros(0, dtype=object), check=False))
    lslots, rslots, lvalid, raux = await _expand(g, c, B, field)
    rcols = await _align(rslots[:cR], raux, B, field)
    if bound is None:  # all B = M rows are valid: public
        valid_out = np.full(B, 1 << f, dtype=object)
    else:
        valid_out = (await small_to_big_bits(lvalid, field)).value * (1 << f) % field.modulus
    return ("ok", M, field.array(np.ascontiguousarray(lslots[:cL]), check=False), rcols,
            field.array(valid_out, check=False))


@dataclass
class _Grouped:
    """Step 1's result: the rows in (keys, side) order."""

    N: int
    sp: Any              # the payload, sorted (big field)
    side_s: np.ndarray   # side bits (0 left, 1 right), sorted (small field)
    l_s: np.ndarray      # valid left rows, r_s valid right rows, st_s group starts (small)
    r_s: np.ndarray
    st_s: np.ndarray
    big: np.ndarray      # (l, r, group start, side) as big-field 0/1 (4, N)


async def _group(kv: list, specs: list, vv: Any, pay: Any, n: int, f: int, field,
                 cached: list | None) -> _Grouped:
    """1. Sort by (keys, side), right rows first in a key group; group starts."""
    N = pay.shape[1]
    m = N - n
    bits = await radix.key_bits_small(kv, specs, [False] * len(kv), f, cached)
    v = (await small_bits(vv, 1, scaled=f))[0]
    side = np.concatenate([np.zeros(n, dtype=np.int64), np.ones(m, dtype=np.int64)])
    rho = await radix.sort_perm(np.concatenate(
        [(1 - side).reshape(1, N)] + list(reversed(bits)), axis=0))
    kb = np.concatenate(bits, axis=0)
    Lk = kb.shape[0]
    (sp, ss), _ = await radix.apply_perm(
        rho, [pay, np.concatenate([kb, v.reshape(1, N), side.reshape(1, N)], axis=0)])
    v_s, side_s = ss[Lk], ss[Lk + 1]
    r_s = await sf.mul(v_s, side_s)
    l_s = (v_s - r_s) % sf.P
    st_s = np.concatenate([np.ones(1, dtype=np.int64), (1 - await radix.adjacent_same(ss[:Lk]))
                           % sf.P])
    big = (await small_to_big_bits(np.stack([l_s, r_s, st_s, side_s]), field)).value
    return _Grouped(N, sp, side_s, l_s, r_s, st_s, big)


@dataclass
class _Counted:
    """Step 2's result: destinations and counts."""

    dest: np.ndarray     # DL for left rows, DR for right rows (big field)
    Mf: Any              # M (big-field shares)
    Ms: int              # M (small-field shares)
    DLs: np.ndarray      # exclusive prefix sums of the copy counts (small field)
    DRs: np.ndarray
    b_s: np.ndarray      # valid right rows of the row's key (small field)
    jjs: np.ndarray      # a right row's index among its key's valid right rows


async def _count(g: _Grouped, field) -> _Counted:
    """2. Group start / end values of the prefix counts, by one fill over 2N rows, in the big
    field (only what the positions' bits need: b of left rows = PR - SR since the right rows
    of a key come first, a of right rows = EL - PL) and in the small field (everything:
    positions and counts are below 2^31 - 1 once M <= MAX_ROWS is known)."""
    p = field.modulus
    N, l_s, r_s, st_s = g.N, g.l_s, g.r_s, g.st_s
    lb, rb, stb, sdb = g.big
    en_s = np.concatenate([st_s[1:], np.ones(1, dtype=np.int64)])
    enb = np.concatenate([stb[1:], np.ones(1, dtype=object)])
    PL, PR = _cumsum(lb, p), _cumsum(rb, p)
    PLs, PRs = np.cumsum(l_s) % sf.P, np.cumsum(r_s) % sf.P
    fb_, fs_ = np.concatenate([stb, enb[::-1]]), np.concatenate([st_s, en_s[::-1]])
    xb = np.concatenate([(PR - rb) % p, PL[::-1]]).reshape(1, 2 * N)
    xs = np.stack([np.concatenate([(PRs - r_s) % sf.P, PLs[::-1]]),
                   np.concatenate([(PLs - l_s) % sf.P, PRs[::-1]])])
    fbig, fsmall = await _fill(fs_, fb_, xb, xs, field)
    SR, EL = fbig[0, :N], fbig[0, N:][::-1]
    SRs, ELs = fsmall[0, :N], fsmall[0, N:][::-1]
    SLs, ERs = fsmall[1, :N], fsmall[1, N:][::-1]
    cnt = (await big_mul(field.array(np.stack([lb, rb]), check=False),
                         field.array(np.stack([(PR - SR) % p, (EL - PL) % p]),
                                     check=False))).value
    cl, cr = cnt
    CL, CR = _cumsum(cl, p), _cumsum(cr, p)
    DL, DR = (CL - cl) % p, (CR - cr) % p
    sel = (await big_mul(field.array(sdb, check=False),
                         field.array((DR - DL) % p, check=False))).value
    a_s, b_s = (ELs - SLs) % sf.P, (ERs - SRs) % sf.P
    cls, crs = await sf.mul(np.stack([l_s, r_s]), np.stack([b_s, a_s]))
    DLs, DRs = (np.cumsum(cls) - cls) % sf.P, (np.cumsum(crs) - crs) % sf.P
    return _Counted(dest=(DL + sel) % p, Mf=CL[-1], Ms=int(cls.sum() % sf.P), DLs=DLs,
                    DRs=DRs, b_s=b_s, jjs=(PRs - SRs - 1) % sf.P)


async def _open_size(Mf: Any, bound: int | None, n: int, m: int, field
                     ) -> tuple[str, int | None, int]:
    """3. M revealed, or only [M <= bound]: (status, M if revealed, output length B)."""
    p = field.modulus
    if bound is None:
        M = int((await mpc.output(field.array(np.array([Mf], dtype=object),
                                              check=False))).value[0])
        if M > MAX_ROWS:
            return "huge", M, 0
        return "ok", M, M
    B = int(bound)
    Lb = max((n * m).bit_length(), B.bit_length(), 1)
    x = (B - Mf + (1 << Lb)) % p  # in (0, 2^(Lb+1)): top bit set iff M <= B
    top = (await small_bits(field.array(np.array([x], dtype=object), check=False),
                            Lb + 1))[Lb]
    if int((await sf.open_(top))[0]) != 1:
        return "overflow", None, 0
    return "ok", None, B


async def _expand(g: _Grouped, c: _Counted, B: int, field) -> tuple:
    """4. Sources (N sorted rows + 2 sentinels) and 2B slots, one radix sort; every slot gets
    the payload of the most recent source before it. Returns the left slots' columns, the
    right slots' columns, the left slots' valid bits and the right slots' (start, b, jj, dr)."""
    p = field.modulus
    N = g.N
    cP = g.sp.shape[0]
    L = max(1, B.bit_length())
    dbits = await small_bits(field.array(np.concatenate([c.dest, [c.Mf, c.Mf]]), check=False),
                             L)
    Ns = N + 2
    T = Ns + 2 * B
    tb = _public_bits(np.arange(B), L)
    which = np.concatenate([g.side_s, [0, 1], np.zeros(B, dtype=np.int64),
                            np.ones(B, dtype=np.int64)])
    isslot = np.concatenate([np.zeros(Ns, dtype=np.int64), np.ones(2 * B, dtype=np.int64)])
    keybits = np.concatenate([isslot.reshape(1, T), np.concatenate([dbits, tb, tb], axis=1),
                              which.reshape(1, T)], axis=0)
    rho = await radix.sort_perm(keybits)
    # payload: the own columns (big field); valid, start, b, jj, dr (small field, the last
    # four for the right side; the right sentinel's make its position come out as t)
    src = np.zeros((cP, T), dtype=object)
    src[:, :N] = g.sp.value
    aux = np.zeros((6, T), dtype=np.int64)
    aux[0, :N] = 1
    aux[1:5, :N] = np.stack([c.DLs, c.b_s, c.jjs, c.DRs])
    aux[1:5, N + 1] = [c.Ms, 1, 0, c.Ms]
    aux[5] = isslot
    (sp2, ss2), how = await radix.apply_perm(rho, [field.array(src, check=False), aux])
    rho2 = await radix.gen_bit_perm(ss2[5])  # sources (public count Ns) to the front
    (cp, cs), how2 = await radix.apply_perm(rho2, [sp2, ss2[:5]])
    d = np.zeros((cP, T), dtype=object)
    d[:, :Ns] = cp.value[:, :Ns]
    d[:, 1:Ns] = (cp.value[:, 1:Ns] - cp.value[:, :Ns - 1]) % p
    ds = np.zeros((5, T), dtype=np.int64)
    ds[:, :Ns] = cs[:, :Ns]
    ds[:, 1:Ns] = (cs[:, 1:Ns] - cs[:, :Ns - 1]) % sf.P
    bp, bs = await radix.unapply([field.array(d, check=False), ds], how2)
    back, backs = await radix.unapply([field.array(_cumsum(bp.value, p), check=False),
                                       np.cumsum(bs, axis=1) % sf.P], how)
    return (back.value[:, Ns:Ns + B], back.value[:, Ns + B:], backs[0, Ns:Ns + B],
            backs[1:5, Ns + B:])


async def _align(rslots: np.ndarray, raux: np.ndarray, B: int, field) -> Any:
    """5. Move the right slots to position start + (t - dr) b + jj, next to their left rows
    (the positions are a permutation of 0..B-1: only a uniformly random one is opened)."""
    start, bb, jj, dr = raux
    q = (np.arange(B, dtype=np.int64) - dr) % sf.P
    pos = (start + await sf.mul(q, bb) + jj) % sf.P
    (rcols,), _ = await radix.apply_perm(pos, [field.array(np.ascontiguousarray(rslots),
                                                           check=False)])
    return rcols
