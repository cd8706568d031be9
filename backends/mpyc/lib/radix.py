"""Oblivious radix sort of secret-shared rows (Asharov et al., CCS 2022), linear per key bit.

Protocol ``sort_rows(bits, payload)`` (semi-honest, honest majority; any number of parties):

    Input: secret key bits ``bits`` (shape (L, n), 0/1, row 0 the least significant bit of
    the whole composite key) and a payload matrix (c, n). Output: the payload with its n
    columns (table rows) permuted into ascending key order, *stably* (rows with equal keys
    keep their input order).

    1. rho := GenBitPerm(bits[0]), where GenBitPerm(b) is the stable destination of every
       row when sorting by one bit: with s0 = prefix sums of (1 - b), s1 = prefix sums of b
       and Z = s0[n-1] (the number of zeros), dest = (s0 - 1) + b * (Z + s1 - s0)
       (prefix sums are local; one vectorised multiplication: 1 round).
    2. For each next bit i = 1 .. L-1 ("compose" step; rho = destinations so far):
       a. shuffle the pair (rho, bits[i]) with a fresh secret permutation pi
          (``shuffle.shuffle``: C(m,t) rounds, linear);
       b. open pi(rho) to all parties -- a uniformly random permutation, independent of the
          data because pi is random and unknown to any t parties (1 round);
       c. place pi(bits[i]) at the opened positions (public indexing, local): bit i in the
          order sorted by bits 0..i-1;
       d. sigma := GenBitPerm(that bit) (1 round); gather sigma at the opened positions
          (local) and unshuffle (``shuffle.unshuffle``: C(m,t) rounds): the new rho, i.e.
          sigma o rho, in input order.
    3. Shuffle (rho, payload) with a fresh pi, open pi(rho) (uniformly random), and place the
       payload at the opened positions (local).

    Rounds: about (2 C(m,t) + 2) per key bit (8 for m = 3) plus C(m,t) + 1 at the end.
    Work and communication: O(n) per key bit plus O(c n) once -- no comparisons at all.
    Reveals: only uniformly random permutations (pi(rho) for fresh secret pi), i.e. nothing
    beyond the public n.

Key bits (``key_bits``): a column whose values lie in a public range [lo, hi]
(``keyspec.KeySpec``) costs L = bit_length(hi - lo) bits; the bits of (x - lo) come from
``bits.small_bits`` (a random mask, one opening of the masked value, and an adder circuit on
secret bits; it is the most expensive part after the passes, linear in L). Descending keys use
the complemented bits.

Key bits input by their owners (``key_bits_small(..., cached=...)``): when a key column comes
straight from an owner's input (through row-preserving steps only), the owner computes the
bits of (x - lo) in the clear (``keyspec.clear_bits``; it checks lo <= x <= hi first) and
secret-shares them in the small field at input time, next to the value itself
(``input.share_input(..., input_bits=...)``: one more resharing round per sender, L small-field
elements per value). The sort then takes those shares and skips the extraction above
(one big-field opening and ~log2 L + 4 rounds of small-field multiplications per batch of keys);
columns without owner bits (or rows without them) are extracted as before, in one batch.
Rounds: 0 at sort time for owner bits (1 at input). Reveals: nothing -- the owner shares
bits of its own values exactly as it shares the values (Shamir shares, degree t), and which
columns are input as bits is public (decided by the compiler from the plan alone). A wrong
cached value (bits of another column) would give wrong answers, never a leak; the operators
use the cache only for the very column object it was made for.

Sources: G. Asharov, K. Hamada, D. Ikarashi, R. Kikuchi, A. Nof, B. Pinkas, K. Takahashi,
J. Tomida, "Efficient secure three-party sorting with applications to data analysis and heavy
hitters", ACM CCS 2022 (radix sort from shuffles; GenBitPerm; compose/apply); D. Bogdanov,
S. Laur, R. Talviste, "A practical analysis of oblivious sorting algorithms for secure
multi-party computation", NordSec 2014; the shuffle: see ``shuffle.py``.

The operators built on these steps: ``sort.py`` (ORDER BY, DISTINCT, GROUP BY's sort),
``join.py`` (the PK-FK join), ``semijoin.py``, ``mmjoin.py`` and ``reveal.py`` (compaction).
"""


from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpyc import asyncoro
from mpyc.runtime import mpc

from . import shuffle as shf
from . import smallfield as sf
from .bits import small_bits, small_to_big_bits
from .keyspec import KeySpec

__all__ = ["Applied", "adjacent_same", "apply_perm", "compact", "equal_rows", "gen_bit_perm",
           "key_bits_small", "sort_core", "sort_perm", "sort_rows", "unapply"]


# --------------------------------------------------------------------------------------------
# Shuffle-based permutations in the small field
# --------------------------------------------------------------------------------------------


async def gen_bit_perm(b: np.ndarray) -> np.ndarray:
    """Stable destinations (0-based) when sorting by the secret 0/1 vector b. 1 round."""
    s0 = np.cumsum(1 - b) % sf.P
    s1 = np.cumsum(b) % sf.P
    z = s0[-1]
    prod = await sf.mul(b, (s1 - s0 + z) % sf.P)
    return (s0 - 1 + prod) % sf.P


async def _compose(rho: np.ndarray, bit: np.ndarray) -> np.ndarray:
    """One radix pass: new destinations sigma o rho, sigma sorting ``bit`` (input order)
    stably after the order rho. See the module docstring, step 2."""
    n = rho.shape[0]
    sh = await shf.new_shuffle(n)
    (y,) = await shf.shuffle([np.stack([rho, bit])], sh)
    rp = await sf.open_(y[0])
    placed = np.empty(n, dtype=np.int64)
    placed[rp] = y[1]
    sigma = await gen_bit_perm(placed)
    (w,) = await shf.unshuffle([sigma[rp].reshape(1, n)], sh)
    return w[0]


async def sort_perm(bits: np.ndarray) -> np.ndarray:
    """rho (small-field shares (n,)): the stable destination of every row when sorting by
    the secret bits (small-field shares (L, n), row 0 least significant)."""
    rho = await gen_bit_perm(bits[0])
    for i in range(1, bits.shape[0]):
        rho = await _compose(rho, bits[i])
    return rho


@dataclass
class Applied:
    """How rows were moved: the shuffle and the opened shuffled destinations; lets
    :func:`unapply` move rows of the sorted order back to the input order."""

    sh: shf.Shuffle
    rp: np.ndarray


async def apply_perm(rho: np.ndarray, payloads: list) -> tuple[list, Applied]:
    """Rows (last axis) of every payload (big-field or small-field shares) moved to the
    secret destinations rho: shuffle (rho, payloads), open the shuffled rho (uniformly
    random), place publicly. C(m,t) + 1 rounds."""
    n = rho.shape[0]
    sh = await shf.new_shuffle(n)
    ys = await shf.shuffle([rho.reshape(1, n)] + list(payloads), sh)
    rp = await sf.open_(ys[0][0])
    outs = []
    for y in ys[1:]:
        if isinstance(y, np.ndarray):
            o = np.empty_like(y)
            o[..., rp] = y
        else:
            v = np.empty(y.shape, dtype=object)
            v[..., rp] = y.value
            o = y.field.array(v, check=False)
        outs.append(o)
    return outs, Applied(sh, rp)


async def unapply(rows: list, how: Applied) -> list:
    """Inverse of :func:`apply_perm`: rows of the sorted order back to the input order
    (public gather + unshuffle: C(m,t) rounds). Reveals nothing."""
    ys = []
    for y in rows:
        if isinstance(y, np.ndarray):
            ys.append(np.ascontiguousarray(y[..., how.rp]))
        else:
            ys.append(y.field.array(np.ascontiguousarray(y.value[..., how.rp]), check=False))
    return await shf.unshuffle(ys, how.sh)


async def key_bits_small(cols: list, specs: list[KeySpec], desc: list[bool], f: int,
                         cached: list | None = None) -> list:
    """Small-field bits (L_i, n), LSB first, of each key column (big-field shares of secfxp
    values). Columns with the same (integral, bit length) share one extraction.

    ``cached`` (optional, one entry per column): bits already held as small-field shares --
    key bits input by their owners (module docstring) -- fitted to specs[i]
    (``keyspec.fit_bits``): None (extract), an int64 array (L_i, n), or blocks
    [(array (L_i, n_b) or None, n_b), ...] covering the n rows in order (e.g. the two sides of
    a join); only the missing blocks are extracted (in one batch per (integral, L)).
    Descending keys are complemented either way."""
    n = cols[0].shape[0] if cols else 0
    blocks: list[list] = []  # per column: [[bits or None, start, stop], ...]
    todo: dict[tuple[bool, int], list[tuple[int, int, int, int]]] = {}
    for i, spec in enumerate(specs):
        L = spec.bits
        c = cached[i] if cached else None
        segs = [(c, n)] if c is None or isinstance(c, np.ndarray) else list(c)
        if sum(nb for _, nb in segs) != n:
            raise ValueError(f"cached key bits cover {sum(nb for _, nb in segs)} of {n} rows")
        col_blocks, start = [], 0
        for arr, nb in segs:
            if arr is not None and np.shape(arr) != (L, nb):
                raise ValueError(f"cached key bits of shape {np.shape(arr)}, expected {(L, nb)}")
            col_blocks.append([arr, start, start + nb])
            if arr is None and nb:
                todo.setdefault((spec.integral, L), []).append((i, len(col_blocks) - 1,
                                                                 start, start + nb))
            start += nb
        blocks.append(col_blocks)
    for (integral, L), idx in todo.items():
        field = cols[idx[0][0]].field
        vals = []
        for i, _, a, b in idx:
            lo = specs[i].lo << f if integral else specs[i].lo
            vals.append((cols[i].value[a:b] - lo) % field.modulus)
        stacked = field.array(np.concatenate(vals), check=False)
        bits = await small_bits(stacked, L, scaled=f if integral else 0)
        pos = 0
        for i, j, a, b in idx:
            blocks[i][j][0] = bits[:, pos:pos + (b - a)]
            pos += b - a
    out: list = []
    for i, spec in enumerate(specs):
        parts = [np.zeros((spec.bits, 0), dtype=np.int64) if arr is None else arr
                 for arr, _, _ in blocks[i]]
        bits = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        out.append((1 - bits) % sf.P if desc[i] else bits)
    return out


async def adjacent_same(bits: np.ndarray) -> np.ndarray:
    """Small-field 0/1 (n-1,): row i+1 has the same bits as row i (bits (L, n) in sorted
    order). One round of XORs, then a product tree: 1 + ceil(log2 L) rounds."""
    if bits.shape[1] < 2:
        return np.zeros(0, dtype=np.int64)
    x, y = bits[:, 1:], bits[:, :-1]
    e = (1 - (x + y - 2 * await sf.mul(x, y))) % sf.P  # 1 where equal
    while e.shape[0] > 1:
        h = e.shape[0] // 2
        prod = await sf.mul(e[:h], e[h:2 * h])
        e = np.concatenate([prod, e[2 * h:]], axis=0)
    return e[0]


async def sort_core(kv: list, specs: list, desc: list, payloads: list, f: int,
                    same_keys: int = 0, cached: list | None = None):
    """Sort (inside a coroutine). kv: big-field shares of the key columns, most significant
    first; payloads: arrays to move (big or small field); cached: owner key bits per key
    (see :func:`key_bits_small`). Returns (sorted payloads, same, Applied), where same
    (big-field raw 0/1, length n-1, or None if same_keys == 0) says that row i+1 equals row
    i on the first ``same_keys`` keys."""
    bits = await key_bits_small(kv, specs, desc, f, cached)
    allbits = np.concatenate(list(reversed(bits)), axis=0)  # least significant key first
    rho = await sort_perm(allbits)
    extra = []
    if same_keys:
        extra = [np.concatenate(bits[:same_keys], axis=0)]
    outs, how = await apply_perm(rho, list(payloads) + extra)
    same = None
    if same_keys:
        same_small = await adjacent_same(outs[-1])
        outs = outs[:-1]
        field = kv[0].field
        same = await small_to_big_bits(same_small, field) if same_small.size else \
            field.array(np.zeros(0, dtype=object), check=False)
    return outs, same, how


@asyncoro.mpc_coro
async def sort_rows(keys, specs, desc, payload, same_keys=0, cached=None):
    """Payload (secfxp array (c, n)) with its rows sorted stably by the secret keys.

    ``keys``: list of secfxp arrays (n,) in significance order (first = most significant),
    ``specs``: their :class:`KeySpec`, ``desc``: descending flags, ``cached``: None or one
    entry per key, the key's bits input by its owners (see :func:`key_bits_small`). Returns a
    secfxp array (c, n) -- or (c + 1, n) when ``same_keys`` > 0: the last row then holds the
    0/1 flag "row i+1 equals row i on the first same_keys keys" (0 in the last position) --
    with ``integral`` False (callers restore per-column flags)."""
    stype = type(payload)
    c, n = payload.shape
    extra = 1 if same_keys else 0
    await mpc.returnType((stype, False, (c + extra, n)))
    p = await mpc.gather(payload)
    field = stype.sectype.field
    f = stype.frac_length
    if n < 2 or not keys:
        if not extra:
            return p
        return field.array(np.concatenate([p.value, np.zeros((1, n), dtype=object)]),
                           check=False)
    kv = [await mpc.gather(k) for k in keys]
    (out,), same, _ = await sort_core(kv, specs, desc, [p], f, same_keys, cached)
    if not extra:
        return out
    row = np.concatenate([same.value * (1 << f) % field.modulus, np.zeros(1, dtype=object)])
    return field.array(np.concatenate([out.value, row.reshape(1, n)]), check=False)


@asyncoro.mpc_coro
async def compact(payload, valid_row: int, shuffle_first: bool):
    """Payload (secfxp (c, n)) with the rows whose 0/1 entry in row ``valid_row`` is 1
    moved to the front, stably; with ``shuffle_first`` the rows are first shuffled, so the
    valid rows come out in a uniformly random order (independent of where they came from).
    Cost: (shuffle) + one 1-bit extraction + one radix pass. Reveals nothing."""
    stype = type(payload)
    c, n = payload.shape
    await mpc.returnType((stype, False, (c, n)))
    p = await mpc.gather(payload)
    if n < 2:
        return p
    f = stype.frac_length
    if shuffle_first:
        sh = await shf.new_shuffle(n)
        (p,) = await shf.shuffle([p], sh)
    field = p.field
    v = field.array(p.value[valid_row], check=False)
    b = await small_bits(v, 1, scaled=f)
    rho = await gen_bit_perm((1 - b[0]) % sf.P)
    (out,), _ = await apply_perm(rho, [p])
    return out


async def equal_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Small-field 0/1 per column: x[:, j] == y[:, j] for bit matrices x, y (L, n).
    XOR (1 round) + product tree (ceil(log2 L) rounds)."""
    e = (1 - (x + y - 2 * await sf.mul(x, y))) % sf.P
    while e.shape[0] > 1:
        h = e.shape[0] // 2
        e = np.concatenate([await sf.mul(e[:h], e[h:2 * h]), e[2 * h:]], axis=0)
    return e[0]


shf.install_fast_random_split()
