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

__all__ = ["Shuffle", "new_shuffle", "open_ints", "shuffle", "unshuffle"]


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


async def _reshare_permuted(x, S: tuple[int, ...], perm: np.ndarray | None, inverse: bool):
    """One LWZ step: the first t+1 parties of S permute additive shares of x (field array,
    shape (c, n)) by perm (or its inverse) and reshare them; returns the new Shamir shares."""
    field = type(x).field
    t = mpc.threshold
    senders = list(S[: t + 1])
    shape = x.shape
    if mpc.pid in senders:
        lam = thresha._recombination_vector(field, tuple(i + 1 for i in senders), 0)
        a = (x.value * lam[senders.index(mpc.pid)]) % field.modulus
        if inverse:
            b = np.empty_like(a)
            b[:, perm] = a
        else:
            b = a[:, perm]
        payload = field.array(np.ascontiguousarray(b), check=False)
    else:
        payload = field.array(np.zeros(shape, dtype=object), check=False)
    parts = await mpc.input(payload, senders=senders)
    y = parts[0]
    for p in parts[1:]:
        y = y + p
    return y


async def shuffle(x, sh: Shuffle):
    """Shares of x[:, pi] for the secret shuffle ``sh`` (x: field array (c, n) of shares).
    C(m, t) rounds; see the module docstring."""
    if x.shape[-1] < 2:
        return x
    for S, perm in zip(sh.subsets, sh.perms, strict=True):
        x = await _reshare_permuted(x, S, perm, inverse=False)
    return x


async def unshuffle(x, sh: Shuffle):
    """Shares of y with y[:, pi] = x, i.e. undo :func:`shuffle` (same cost)."""
    if x.shape[-1] < 2:
        return x
    for S, perm in reversed(list(zip(sh.subsets, sh.perms, strict=True))):
        x = await _reshare_permuted(x, S, perm, inverse=True)
    return x


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
