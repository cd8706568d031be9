"""Linear resharing shuffle of secret-shared rows (Laur, Willemson, Zhang).

Protocol ``shuffle`` (semi-honest, honest majority t < m/2, Shamir shares over MPyC's prime
field; works for any m, including m = 1 where it is a local permutation):

    Input: a (c, n) matrix X of Shamir shares (degree t); output: shares of X[:, pi] for a
    uniformly random permutation pi of the n columns (the rows of the table) that no
    coalition of <= t parties knows.

    For every subset S of m - t parties (C(m, t) subsets; 3 for m = 3, t = 1), in a fixed
    order:
      1. the first t + 1 parties S' of S turn their Shamir shares into additive shares of X
         (multiply by their Lagrange coefficient for S'; local);
      2. every party of S knows the random permutation pi_S (derived from the PRSS key that
         MPyC already set up for exactly the subset S, with a fresh unique common input per
         call; without PRSS keys, the first party of S sends a fresh 128-bit seed to the
         rest of S); the parties of S' permute their additive shares by pi_S (local);
      3. each party of S' secret-shares its permuted additive share afresh (``mpc.input``,
         degree t, one round); every party adds the |S'| sharings it receives.
    pi = composition of the pi_S. Any coalition T of <= t parties misses the subset S that
    is the complement of T, so pi_S -- and hence pi -- is uniformly random and unknown to T;
    every sharing T sees is fresh, so T's view is independent of X and of pi.

    Rounds: C(m, t) (one ``mpc.input`` per subset; +1 for the seeds without PRSS).
    Communication: C(m, t) * (t + 1) * (m - 1) * c * n field elements in total.
    Work: O(c * n) per party (linear; no comparisons, no multiplications of secrets).
    Reveals: nothing.

``unshuffle`` applies the inverse permutation pi^-1 with the same protocol (the inverse
pi_S^-1 per subset, subsets in reverse order): used to bring rows back to their input order
after a public rearrangement in the shuffled domain (see ``radix.py``).

Sources: S. Laur, J. Willemson, B. Zhang, "Round-efficient oblivious database manipulation",
ISC 2011 (resharing-based shuffle); used for radix sorting as in G. Asharov et al.,
"Efficient secure three-party sorting with applications to data analysis and heavy hitters",
CCS 2022.

All functions here are coroutines to be awaited *inside* an MPyC coroutine
(``@mpyc.asyncoro.mpc_coro``); they work on raw share arrays (``field.array``) and use only
MPyC's own messaging (``mpc.input``, ``mpc.transfer``, ``mpc.output``), so message labels
follow MPyC's program counter like every built-in protocol.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
from dataclasses import dataclass

import numpy as np
from mpyc import thresha
from mpyc.runtime import mpc

from . import smallfield as sf

__all__ = ["Shuffle", "fast_random_split", "install_fast_random_split", "new_shuffle",
           "open_ints", "shuffle", "unshuffle"]


def _uniform_below(p: int, count: int) -> np.ndarray:
    """``count`` independent uniform integers in [0, p) from the OS CSPRNG, in bulk (one
    ``secrets.token_bytes`` call, then exact rejection of the values >= p)."""
    bits = (p - 1).bit_length()
    k = (bits + 7) // 8
    mask = (1 << bits) - 1
    out = np.empty(count, dtype=object)
    todo = np.arange(count)
    fb = int.from_bytes
    while todo.size:
        buf = secrets.token_bytes(k * todo.size)
        vals = [fb(buf[i:i + k], "little") & mask for i in range(0, len(buf), k)]
        out[todo] = vals
        todo = todo[np.fromiter((v >= p for v in vals), dtype=bool, count=len(vals))]
    return out


def fast_random_split(field, s, t, m):
    """Drop-in replacement of ``mpyc.thresha.np_random_split`` (same arguments, same output
    distribution: degree-t Shamir polynomials with independent uniform coefficients from the
    OS CSPRNG): draws the coefficients in bulk instead of one ``secrets.randbelow`` call per
    coefficient, which dominated resharing (about 10 us per field element). Prime fields
    only; anything else goes to MPyC's own function."""
    p = field.modulus
    if not isinstance(p, int) or getattr(field, "ext_deg", 1) != 1:
        return _np_random_split_mpyc(field, s, t, m)
    if isinstance(s, field.array):
        s = s.value
    s = np.asarray(s, dtype=object).reshape(-1)
    n = len(s)
    coeffs = [_uniform_below(p, n) for _ in range(t)]
    shares = np.empty((m, n), dtype=object)
    for j in range(m):
        x = j + 1
        acc = s
        xp = 1
        for c in coeffs:
            xp *= x
            acc = acc + c * xp
        shares[j] = acc % p if t else acc
    return shares


_np_random_split_mpyc = thresha.np_random_split


def install_fast_random_split() -> None:
    """Make MPyC use :func:`fast_random_split` for all array secret sharing and resharing in
    this process (idempotent). Security is unchanged (same distribution); only speed."""
    thresha.np_random_split = fast_random_split


def _subsets() -> list[tuple[int, ...]]:
    m, t = len(mpc.parties), mpc.threshold
    return list(itertools.combinations(range(m), m - t))


def _perm_from_seed(seed: bytes, n: int) -> np.ndarray:
    """A uniformly random permutation of range(n) from a secret seed: sort n 64-bit outputs
    of SHAKE-256(seed) (ties, probability < n^2 / 2^65, broken by index)."""
    if n < 2:
        return np.arange(n)
    r = np.frombuffer(hashlib.shake_256(seed).digest(8 * n), dtype=np.uint64)
    return np.argsort(r, kind="stable")


@dataclass
class Shuffle:
    """A secret shuffle pi of n rows: per subset S of m - t parties, pi_S if this party is in
    S, else None. pi = pi_{S_k} o ... o pi_{S_1} (applied in the order of ``subsets``)."""

    n: int
    subsets: list[tuple[int, ...]]
    perms: list[np.ndarray | None]


async def new_shuffle(n: int) -> Shuffle:
    """Draw a fresh secret shuffle of n rows (local with PRSS keys; else one round)."""
    subsets = _subsets()
    perms: list[np.ndarray | None] = []
    keys = getattr(mpc, "_prss_keys", None) if not mpc.options.no_prss else None
    if keys is not None and all(S in keys for S in subsets if mpc.pid in S):
        uci = mpc._prss_uci()  # unique common input: same at every party, fresh per call
        for S in subsets:
            if mpc.pid in S:
                perms.append(_perm_from_seed(keys[S] + uci + b"sqlmpc-shuffle", n))
            else:
                perms.append(None)
        return Shuffle(n, subsets, perms)
    # No PRSS keys: the first party of each subset sends a fresh seed to the others in it.
    arcs = {p: [] for p in range(len(mpc.parties))}
    for S in subsets:
        arcs[S[0]].extend(S)
    mine = {S: secrets.token_bytes(16) for S in subsets if S[0] == mpc.pid}
    got = await mpc.transfer(mine, sender_receivers={p: sorted(set(r)) for p, r in arcs.items()})
    seeds = {}
    for d in got:
        seeds.update(d)
    for S in subsets:
        perms.append(_perm_from_seed(seeds[S], n) if mpc.pid in S else None)
    return Shuffle(n, subsets, perms)


def _permute(a, perm, inverse: bool):
    if inverse:
        b = np.empty_like(a)
        b[..., perm] = a
        return b
    return np.ascontiguousarray(a[..., perm])


async def _reshare_permuted(xs: list, S: tuple[int, ...], perm: np.ndarray | None,
                            inverse: bool) -> list:
    """One LWZ step for every array in xs (MPyC field arrays of the big field, or int64
    arrays of ``smallfield``): the first t+1 parties of S permute additive shares by perm
    (or its inverse) and reshare them. Returns the new Shamir shares (same kinds)."""
    t = mpc.threshold
    senders = list(S[: t + 1])
    me = senders.index(mpc.pid) if mpc.pid in senders else None
    pending = []
    for x in xs:
        if isinstance(x, np.ndarray):  # small field GF(2^31 - 1)
            pending.append(None)
            continue
        field = type(x).field
        if me is not None:
            lam = thresha._recombination_vector(field, tuple(i + 1 for i in senders), 0)[me]
            a = _permute((x.value * lam) % field.modulus, perm, inverse)
            payload = field.array(a, check=False)
        else:
            payload = field.array(np.zeros(x.shape, dtype=object), check=False)
        pending.append(mpc.input(payload, senders=senders))  # a Future; awaited below
    out = []
    for x, fut in zip(xs, pending, strict=True):
        if fut is None:
            v = None
            if me is not None:
                lam = sf.lagrange(tuple(i + 1 for i in senders))[me]
                v = _permute(x * lam % sf.P, perm, inverse)
            out.append(await sf.reshare_from(v, senders, x.shape))
        else:
            out.append(None)
    for i, fut in enumerate(pending):
        if fut is not None:
            parts = await fut
            parts = [q[0] if isinstance(q, list) else q for q in parts]  # Future of [[array]]
            y = parts[0]
            for q in parts[1:]:
                y = y + q
            out[i] = y
    return out


async def shuffle(xs: list, sh: Shuffle) -> list:
    """Shares of x[..., pi] for every x in xs (big-field arrays or small-field int64 arrays,
    last axis = rows), for the secret shuffle ``sh``. C(m, t) rounds; see the module
    docstring."""
    if sh.n < 2:
        return list(xs)
    for S, perm in zip(sh.subsets, sh.perms, strict=True):
        xs = await _reshare_permuted(xs, S, perm, inverse=False)
    return xs


async def unshuffle(xs: list, sh: Shuffle) -> list:
    """Shares of y with y[..., pi] = x for every x in xs: undoes :func:`shuffle` (same
    cost)."""
    if sh.n < 2:
        return list(xs)
    for S, perm in reversed(list(zip(sh.subsets, sh.perms, strict=True))):
        xs = await _reshare_permuted(xs, S, perm, inverse=True)
    return xs


async def open_ints(x, frac_length: int = 0) -> np.ndarray:
    """Open field array x of shares to all parties as signed Python ints, divided exactly by
    2^frac_length (the values must be integral multiples of it). One round (``mpc.output``)."""
    field = type(x).field
    y = await mpc.output(x)
    v = np.asarray(getattr(y, "value", y), dtype=object).reshape(x.shape)
    p = field.modulus
    v = np.where(v > p // 2, v - p, v)
    if frac_length:
        v = v >> frac_length
    return v
