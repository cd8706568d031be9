"""Moving secret values between MPyC's big field and the small field GF(2^31 - 1) as bits.

The radix sort (``radix.py``) and the operators built on it work on bits and permutations in
the small field (``smallfield.py``: int64 shares, about 50x faster than MPyC's object arrays),
while the table's values live in secfxp's big field. Two conversions connect them:

* :func:`small_bits` -- small-field shares of the L low bits of big-field values (mask,
  open, and a carry-save + parallel-prefix adder on secret bits; statistically hiding);
* :func:`small_to_big_bits` -- big-field 0/1 shares of small-field secret bits (daBits,
  :func:`dabits`, which a protocol may draw before it needs them).

plus :func:`big_mul`, one vectorised secure product of raw big-field share arrays. Semi-
honest, honest majority, any number of parties; each function states its rounds and what it
reveals (nothing).
"""

from __future__ import annotations

import secrets
from asyncio import Future

import numpy as np
from mpyc import asyncoro
from mpyc.runtime import mpc

from . import smallfield as sf

__all__ = ["big_mul", "big_mul_started", "dabits", "small_bits", "small_to_big_bits"]


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


async def _sum_bits(c: np.ndarray, vecs: list[np.ndarray], xy: np.ndarray | None = None
                    ) -> np.ndarray:
    """Bits of (c + sum(vecs)) mod 2^L: c public bits, vecs secret bit matrices (L, n).
    Carry-save reduction to two vectors, then one parallel-prefix adder. `xy`: the product
    of the first two vectors, when the caller took it already (beside c's opening)."""
    vecs = list(vecs)
    if len(vecs) == 1:
        return await _add_public(vecs[0], c)
    x, y = vecs[0], vecs[1]
    if xy is None:
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
    small = await sf.reshare_each(sbits if mpc.pid in senders else None, senders, (L, n))
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
    opened = mpc.output(c)
    # the carry-save adder's first product needs no c: it is taken in the round that opens c
    xy = await sf.mul(small[0], small[1]) if len(small) > 1 else None
    cv = await opened
    cv = np.asarray(getattr(cv, "value", cv), dtype=object) % (1 << L)
    cbits = np.array([[(int(x) >> i) & 1 for x in cv] for i in range(L)], dtype=np.int64)
    return await _sum_bits(cbits, small, xy)


async def small_to_big_bits(b: np.ndarray, field, random_bits: Future | None = None) -> object:
    """Big-field shares (MPyC field array, raw 0/1) of the small-field secret bits b: with
    daBits r (:func:`dabits`; `random_bits`: drawn beforehand for b.size bits, else now),
    open e = b XOR r in the small field (1 round, ``sf.open_xor``); then b = e XOR r in the
    big field (local). Reveals nothing (e is uniform)."""
    shape = b.shape
    n = int(np.prod(shape))
    r_small, r_big = await (random_bits if random_bits is not None else dabits(n, field))
    e = await sf.open_xor(b.reshape(-1) % sf.P, r_small)
    one = field.array(np.ones(n, dtype=object), check=False)
    out = field.array(np.where(e == 1, (one - r_big).value, r_big.value), check=False)
    return field.array(out.value.reshape(shape), check=False)


@asyncoro.mpc_coro
async def dabits(n: int, field):
    """n random daBits: (small-field shares, `field` shares) of the same secret random bits.
    Parties 0..t input random bits r_j in both fields (1 round); r = XOR of them (t
    multiplications in each field). An MPyC coroutine: it starts when called and runs beside
    what follows (so a protocol can draw them before it needs them); await the result."""
    await mpc.returnType(Future)
    t = mpc.threshold
    senders = list(range(t + 1))
    mine = None
    if mpc.pid in senders:
        mine = np.unpackbits(np.frombuffer(secrets.token_bytes((n + 7) // 8), dtype=np.uint8))
        mine = mine[:n].astype(np.int64)
    big = field.array(mine.astype(object) if mine is not None else np.zeros(n, dtype=object),
                      check=False)
    fut = mpc.input(big, senders=senders)
    rs = await sf.reshare_each(mine if mpc.pid in senders else None, senders, (n,))
    parts = await fut
    parts = [q[0] if isinstance(q, list) else q for q in parts]
    r_small = rs[0]
    r_big = parts[0]
    for q_small, q_big in zip(rs[1:], parts[1:], strict=True):
        r_small = await sf.xor(r_small, q_small)
        prod = await big_mul(r_big, q_big)
        r_big = r_big + q_big - prod * field(2)
    return r_small, r_big


async def big_mul(a, b):
    """Secure product of raw big-field share arrays a, b (one round, vectorised)."""
    return await mpc.gather(big_mul_started(a, b))


def big_mul_started(a, b):
    """:func:`big_mul` started now, to be awaited with ``mpc.gather`` later (so that its
    round overlaps with other work)."""
    secfld = _secfld(a.field)
    return mpc.np_multiply(secfld.array(a), secfld.array(b))


_SECFLD: dict[int, type] = {}


def _secfld(field) -> type:
    """The secure field type over ``field`` itself (MPyC caches GF(p): one class). It keeps
    the field's signedness: MPyC's SecFld sets ``is_signed`` on that shared class, and an
    unsigned secfxp field opens every negative number as a huge positive one."""
    t = _SECFLD.get(field.modulus)
    if t is None:
        t = mpc.SecFld(modulus=field.modulus, signed=bool(field.is_signed))
        if t.field is not field:  # MPyC caches GF(p): the same class, so shares mix freely
            raise TypeError("secure field type does not share the secfxp field")
        _SECFLD[field.modulus] = t
    return t
