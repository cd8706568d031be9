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

Key bits (``key_bits``): a column whose values lie in a public range [lo, hi] costs
L = bit_length(hi - lo) bits; the bits of (x - lo) come from MPyC's ``np_to_bits`` (a random
bit mask, one opening of the masked value, and a binary subtraction circuit; it is the most
expensive part after the passes, linear in L). Descending keys use the complemented bits.

Key bits input by their owners (``key_bits_small(..., cached=...)``): when a key column comes
straight from an owner's input (through row-preserving steps only), the owner computes the
bits of (x - lo) in the clear (:func:`clear_bits`; it checks lo <= x <= hi first) and
secret-shares them in the small field at input time, next to the value itself
(``secure_ops.share_input(..., input_bits=...)``: one more resharing round per sender, L small-
field elements per value). The sort then takes those shares and skips the extraction above
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
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np
from mpyc import asyncoro
from mpyc.runtime import mpc

from . import shuffle as shf
from . import smallfield as sf

__all__ = ["KeySpec", "apply_perm", "clear_bits", "fit_bits", "key_bits_small", "small_bits",
           "small_to_big_bits", "sort_perm", "sort_rows", "spec_for", "unapply"]


# --------------------------------------------------------------------------------------------
# Key specifications and bit extraction
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeySpec:
    """Public range of a key column: integral values in [lo, hi] (or, when ``integral`` is
    False, any secfxp value: its 2^f-scaled representation in [lo, hi])."""

    lo: int
    hi: int
    integral: bool = True

    @property
    def bits(self) -> int:
        return max(1, (self.hi - self.lo).bit_length())


TYPE_RANGES = {
    "bool": KeySpec(0, 1),
    "text": KeySpec(0, (1 << 56) - 1),  # 7 UTF-8 bytes, packed big-endian (encoding.py)
    "date": KeySpec(-(1 << 19), (1 << 19) - 1),  # days since 1970: years 535 .. 3405
    "int": KeySpec(-(1 << 63), (1 << 63) - 1),
}


def spec_for(bits: int | tuple[int, int] | KeySpec | None, integral: bool, f: int) -> KeySpec:
    """KeySpec from a user hint: int L = values in [0, 2^L); (lo, hi) = values in [lo, hi];
    None = default (64-bit signed ints; 96-bit scaled values for non-integral columns)."""
    if isinstance(bits, KeySpec):
        return bits
    if isinstance(bits, tuple):
        lo, hi = int(bits[0]), int(bits[1])
        if lo > hi:
            raise ValueError(f"key range {bits}: lo > hi")
        if not integral:  # a range of the numbers: scale to the representation
            return KeySpec(lo << f, hi << f, False)
        return KeySpec(lo, hi)
    if isinstance(bits, int):
        if bits < 1:
            raise ValueError("key_bits must be >= 1")
        if not integral:
            return KeySpec(0, ((1 << bits) << f) - 1, False)
        return KeySpec(0, (1 << bits) - 1)
    if integral:
        return TYPE_RANGES["int"]
    return KeySpec(-(1 << 95), (1 << 95) - 1, False)


def clear_bits(values, spec: KeySpec) -> np.ndarray:
    """The bits (int64 (L, n), row 0 least significant) of (x - spec.lo) mod 2^L for clear
    integers x (an owner's own encoded values; L = spec.bits). Values in [lo, hi] give the
    exact bits of x - lo; what extraction (:func:`small_bits`) gives for a shared x is the
    same residue mod 2^L, so even values outside the range (padding's zero rows) stay
    consistent with their shared values. Local, no communication."""
    L = spec.bits
    d = [(int(x) - spec.lo) % (1 << L) for x in np.asarray(values, dtype=object).reshape(-1)]
    if L <= 64:
        v = np.array(d, dtype=np.uint64)
        sh = np.arange(L, dtype=np.uint64)[:, None]
        return ((v[None, :] >> sh) & np.uint64(1)).astype(np.int64)
    return np.array([[(x >> i) & 1 for x in d] for i in range(L)], dtype=np.int64).reshape(L, -1)


def fit_bits(have: KeySpec, bits: np.ndarray, want: KeySpec) -> np.ndarray | None:
    """Bits of a key for range ``want`` from its bits for range ``have`` (small-field shares
    (have.bits, n)), or None when they cannot be had for free (a different lo or kind: the
    caller then extracts). Same lo: the low want.bits rows when narrower ((x - lo) mod 2^L,
    what extraction yields), zero rows on top when wider (x - lo < 2^have.bits)."""
    if have.lo != want.lo or have.integral != want.integral or bits.shape[0] != have.bits:
        return None
    L = want.bits
    if L <= bits.shape[0]:
        return bits[:L]
    return np.concatenate([bits, np.zeros((L - bits.shape[0], bits.shape[1]), dtype=np.int64)])


# --------------------------------------------------------------------------------------------
# Bits in the small field from values in the big field
# --------------------------------------------------------------------------------------------


async def _carries(g: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Carry into every bit position (L, n) from secret generate bits g and propagate bits p
    (both (L, n), row 0 least significant): Kogge-Stone parallel prefix, (g, p) o (g', p') =
    (g + p g', p p') (g and p g' are never both 1), ceil(log2 L) rounds of one vectorised
    multiplication each."""
    L = g.shape[0]
    d = 1
    while d < L:
        prods = await sf.mul(np.stack([p[d:], p[d:]]), np.stack([g[:-d], p[:-d]]))
        g = np.concatenate([g[:d], (g[d:] + prods[0]) % sf.P])
        p = np.concatenate([p[:d], prods[1]])
        d *= 2
    return _shift_up(g)  # the carry into bit i is the prefix generate of bits 0..i-1


async def _add_public(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Bits of (x + c) mod 2^L: x secret bits (L, n), c public 0/1 (L, n).
    ceil(log2 L) + 1 rounds (parallel-prefix carries)."""
    g = np.where(c == 1, x, 0) % sf.P
    p = np.where(c == 1, 1 - x, x) % sf.P  # x xor c
    return await sf.xor(p, await _carries(g, p))


async def _add_secret(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bits of (x + y) mod 2^L for secret bits x, y (L, n). ceil(log2 L) + 2 rounds
    (parallel-prefix carries)."""
    g = await sf.mul(x, y)
    p = (x + y - 2 * g) % sf.P
    return await sf.xor(p, await _carries(g, p))


def _shift_up(v: np.ndarray) -> np.ndarray:
    z = np.zeros_like(v)
    z[1:] = v[:-1]
    return z


async def _sum_bits(c: np.ndarray, vecs: list[np.ndarray]) -> np.ndarray:
    """Bits of (c + sum(vecs)) mod 2^L: c public bits, vecs secret bit matrices (L, n).
    Carry-save reduction to two vectors, then one parallel-prefix adder."""
    vecs = list(vecs)
    if len(vecs) == 1:
        return await _add_public(vecs[0], c)
    x, y = vecs[0], vecs[1]
    xy = await sf.mul(x, y)
    w = (x + y - 2 * xy) % sf.P
    u = np.where(c == 1, 1 - w, w) % sf.P
    maj = np.where(c == 1, (x + y - xy), xy) % sf.P
    vecs = [u, _shift_up(maj)] + vecs[2:]
    while len(vecs) > 2:
        x, y, z = vecs[:3]
        xy = await sf.mul(x, y)
        w = (x + y - 2 * xy) % sf.P
        wz = await sf.mul(w, z)
        vecs = [(w + z - 2 * wz) % sf.P, _shift_up((xy + wz) % sf.P)] + vecs[3:]
    return await _add_secret(vecs[0], vecs[1])


async def small_bits(av, L: int, scaled: int = 0) -> np.ndarray:
    """Shares in GF(2^31 - 1) (int64 (L, n), row 0 least significant) of the L bits of the
    values whose big-field shares are av (MPyC field array (n,)); each value, divided
    exactly by 2^scaled, must lie in [0, 2^L).

    Protocol: parties j = 0..t each draw uniform rho_j in [0, 2^L), input rho_j in the big
    field and the bits of (-rho_j mod 2^L) in the small field (one round); with R a PRSS
    random number of k + 5 bits (k = sec_param), open c = a + sum_j rho_j + 2^L R
    (c mod 2^L is uniform to any t parties, the rest statistically hidden); then
    a = (c mod 2^L) + sum_j (-rho_j) mod 2^L, computed on secret bits by a carry-save adder
    and a parallel-prefix (Kogge-Stone) adder in the small field (about log2 L + 4 rounds of
    small-field multiplications). Reveals nothing (statistical distance 2^-k). Cost in the big
    field: one input and one opening of n values -- no big-field multiplication at all."""
    field = av.field
    n = av.shape[0]
    m, t = len(mpc.parties), mpc.threshold
    if n == 0:
        return np.zeros((L, 0), dtype=np.int64)
    senders = list(range(t + 1))
    rho = None
    if mpc.pid in senders:
        rb = np.frombuffer(secrets.token_bytes(((L + 7) // 8) * n), dtype=np.uint8)
        rb = np.unpackbits(rb.reshape(n, -1), axis=1, bitorder="little")[:, :L]
        weights = np.array([1 << i for i in range(L)], dtype=object)
        rho = (rb.astype(object) * weights).sum(axis=1)  # exact Python ints
        sigma = np.array([(-int(r)) % (1 << L) for r in rho], dtype=object)
        sbits = np.array([[(int(x) >> i) & 1 for x in sigma] for i in range(L)], dtype=np.int64)
    big = field.array(rho if rho is not None else np.zeros(n, dtype=object), check=False)
    fut = mpc.input(big, senders=senders)
    small = []
    for j in senders:
        small.append(await sf.reshare_from(sbits if mpc.pid == j else None, [j], (L, n)))
    parts = await fut
    parts = [q[0] if isinstance(q, list) else q for q in parts]
    rho_sum = parts[0]
    for q in parts[1:]:
        rho_sum = rho_sum + q
    k = mpc.options.sec_param
    # a + sum rho < (t + 2) 2^L: R needs k bits more than the carry (t + 2 < 2^4 for m < 29)
    if L + k + 6 >= field.modulus.bit_length():
        raise ValueError(f"{L}-bit keys do not fit the field for bit extraction")
    r_hi = mpc._np_randoms(field, n, 1 << (k + 5))
    if mpc.options.no_prss:
        r_hi = await r_hi
    a = av * field(1 << scaled).reciprocal() if scaled else av
    c = a + rho_sum + r_hi * field(1 << L)
    cv = await mpc.output(c)
    cv = np.asarray(getattr(cv, "value", cv), dtype=object) % (1 << L)
    cbits = np.array([[(int(x) >> i) & 1 for x in cv] for i in range(L)], dtype=np.int64)
    return await _sum_bits(cbits, small)


async def small_to_big_bits(b: np.ndarray, field) -> object:
    """Big-field shares (MPyC field array, raw 0/1) of the small-field secret bits b.
    daBits: parties 0..t input random bits r_j in both fields (1 round); r = XOR of them
    (t multiplications in each field); open e = b XOR r in the small field; then
    b = e XOR r in the big field (local). Reveals nothing (e is uniform)."""
    shape = b.shape
    t = mpc.threshold
    senders = list(range(t + 1))
    n = int(np.prod(shape))
    mine = None
    if mpc.pid in senders:
        mine = np.unpackbits(np.frombuffer(secrets.token_bytes((n + 7) // 8), dtype=np.uint8))
        mine = mine[:n].astype(np.int64)
    big = field.array(mine.astype(object) if mine is not None else np.zeros(n, dtype=object),
                      check=False)
    fut = mpc.input(big, senders=senders)
    rs = []
    for j in senders:
        rs.append(await sf.reshare_from(mine if mpc.pid == j else None, [j], (n,)))
    parts = await fut
    parts = [q[0] if isinstance(q, list) else q for q in parts]
    r_small = rs[0]
    r_big = parts[0]
    for q_small, q_big in zip(rs[1:], parts[1:], strict=True):
        r_small = await sf.xor(r_small, q_small)
        prod = await _mul(r_big, q_big)
        r_big = r_big + q_big - prod * field(2)
    e = await sf.open_(await sf.xor(b.reshape(-1) % sf.P, r_small))
    one = field.array(np.ones(n, dtype=object), check=False)
    out = field.array(np.where(e == 1, (one - r_big).value, r_big.value), check=False)
    return field.array(out.value.reshape(shape), check=False)


async def _mul(a, b):
    """Secure product of raw big-field share arrays a, b (one round, vectorised)."""
    secfld = _secfld(a.field)
    return await mpc.gather(mpc.np_multiply(secfld.array(a), secfld.array(b)))


_SECFLD: dict[int, type] = {}


def _secfld(field) -> type:
    t = _SECFLD.get(field.modulus)
    if t is None:
        t = mpc.SecFld(modulus=field.modulus)
        if t.field is not field:  # MPyC caches GF(p): the same class, so shares mix freely
            raise TypeError("secure field type does not share the secfxp field")
        _SECFLD[field.modulus] = t
    return t


# --------------------------------------------------------------------------------------------
# Shuffle-based permutations in the small field
# --------------------------------------------------------------------------------------------


async def _gen_bit_perm(b: np.ndarray) -> np.ndarray:
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
    sigma = await _gen_bit_perm(placed)
    (w,) = await shf.unshuffle([sigma[rp].reshape(1, n)], sh)
    return w[0]


async def sort_perm(bits: np.ndarray) -> np.ndarray:
    """rho (small-field shares (n,)): the stable destination of every row when sorting by
    the secret bits (small-field shares (L, n), row 0 least significant)."""
    rho = await _gen_bit_perm(bits[0])
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
    key bits input by their owners (module docstring) -- fitted to specs[i] (:func:`fit_bits`):
    None (extract), an int64 array (L_i, n), or blocks [(array (L_i, n_b) or None, n_b), ...]
    covering the n rows in order (e.g. the two sides of a join); only the missing blocks are
    extracted (in one batch per (integral, L)). Descending keys are complemented either way."""
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
    rho = await _gen_bit_perm((1 - b[0]) % sf.P)
    (out,), _ = await apply_perm(rho, [p])
    return out


async def _equal_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Small-field 0/1 per column: x[:, j] == y[:, j] for bit matrices x, y (L, n).
    XOR (1 round) + product tree (ceil(log2 L) rounds)."""
    e = (1 - (x + y - 2 * await sf.mul(x, y))) % sf.P
    while e.shape[0] > 1:
        h = e.shape[0] // 2
        e = np.concatenate([await sf.mul(e[:h], e[h:2 * h]), e[2 * h:]], axis=0)
    return e[0]


@asyncoro.mpc_coro
async def pkfk_fill(keys, specs, upay, uvalid, cached=None):
    """PK-FK join core (see ``secure_ops.join``). keys: secfxp arrays of length nu + nf
    (PK side rows first), most significant first; upay: secfxp (c, nu), the PK side's
    columns; uvalid: its valid flags (nu,); cached: owner key bits per key (see
    :func:`key_bits_small`), or None. Returns secfxp (c + 1, nf): for every FK row
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
    bits = await key_bits_small(kv, specs, [False] * len(kv), f, cached)
    uv = (await small_bits(uvv, 1, scaled=f))[0]
    side = np.concatenate([np.zeros(nu, dtype=np.int64), np.ones(nf, dtype=np.int64)])
    vbit = np.concatenate([uv, np.zeros(nf, dtype=np.int64)])
    allbits = np.concatenate([vbit.reshape(1, N), side.reshape(1, N)] + list(reversed(bits)),
                             axis=0)
    rho = await sort_perm(allbits)
    kb = np.concatenate(bits, axis=0)
    Lk = kb.shape[0]
    pay = np.zeros((c, N), dtype=object)
    pay[:, :nu] = up.value
    small = np.concatenate([kb, vbit.reshape(1, N), side.reshape(1, N)], axis=0)
    (sp, ss), how = await apply_perm(rho, [field.array(pay, check=False), small])
    side_s = ss[Lk + 1]
    rho2 = await _gen_bit_perm(side_s)  # PK rows (side 0) first, stable
    (cp, cs), how2 = await apply_perm(rho2, [sp, ss[: Lk + 1]])
    dp = np.zeros((c, N), dtype=object)
    dp[:, :nu] = cp.value[:, :nu]
    dp[:, 1:nu] = (cp.value[:, 1:nu] - cp.value[:, : nu - 1]) % p
    ds = np.zeros((Lk + 1, N), dtype=np.int64)
    ds[:, :nu] = cs[:, :nu]
    ds[:, 1:nu] = (cs[:, 1:nu] - cs[:, : nu - 1]) % sf.P
    bp, bs = await unapply([field.array(dp, check=False), ds], how2)
    recent_p = np.cumsum(bp.value, axis=1) % p
    recent_s = np.cumsum(bs, axis=1) % sf.P
    eq = await _equal_rows(recent_s[:Lk], ss[:Lk])
    m1 = await sf.mul(eq, recent_s[Lk])
    matched = await sf.mul(m1, side_s)
    mbig = await small_to_big_bits(matched, field)
    out = np.concatenate([recent_p, (mbig.value * (1 << f) % p).reshape(1, N)], axis=0)
    (back,) = await unapply([field.array(out, check=False)], how)
    return field.array(np.ascontiguousarray(back.value[:, nu:]), check=False)


def _seg_sum(x, start):
    """Inclusive segmented prefix sums of the rows of x (c, n); segments begin where start
    is 1 (Hillis-Steele, ceil(log2 n) rounds, 2 multiplications per round)."""
    n = x.shape[1]
    fl = start
    d = 1
    while d < n:
        upd = x[:, d:] + (1 - fl[d:]) * x[:, :-d]
        x = mpc.np_concatenate([x[:, :d], upd], axis=1)
        fd = fl[d:] + fl[:-d] - fl[d:] * fl[:-d]
        fl = mpc.np_concatenate([fl[:d], fd])
        d *= 2
    return x


shf.install_fast_random_split()
