"""Shamir sharing over the small prime field GF(2^31 - 1) on numpy int64 arrays.

Why: MPyC keeps every share as a Python int in an object array; for the 160-bit field of
secfxp(96, 32) each operation costs about a microsecond per element. Sorting permutations,
key bits and positions only need a field larger than the number of rows, so the radix sort
(``radix.py``) runs its passes in GF(P), P = 2^31 - 1, where shares are int64 numpy arrays
and products of two shares fit in int64 (< 2^62): the same protocols run about 50x faster.

Sharing: degree-t Shamir shares at x = pid + 1 (as MPyC), t = mpc.threshold, same parties
and the same (semi-honest, honest-majority) security as MPyC's own sharing. Randomness:
uniform coefficients from the OS CSPRNG (``secrets.token_bytes``, exact rejection).

Protocols (each one round; messages sent with MPyC's per-program-counter channels, inside
an ``@mpc_coro``, exactly like MPyC's built-in protocols):

* :func:`reshare_from` -- the given senders Shamir-share a value each; every party sums the
  shares it receives (input, and the resharing step of ``shuffle.py``). Reveals nothing.
* :func:`mul` -- Gennaro-Rabin-Rabin multiplication: local product (degree 2t), each party
  reshares its product share with degree t, every party recombines with the Lagrange
  coefficients for all m points (needs 2t < m). Reveals nothing.
* :func:`open_` -- every party sends its share to every party, each recombines from the
  first t + 1 shares. Reveals the value (to all parties).
* :func:`open_xor` -- opens a XOR b of secret bits: the local product's degree-2t shares,
  re-randomised by a pseudorandom sharing of 0 (MPyC's PRSS keys, as its own fused
  openings), recombined from all 2t + 1 (needs 2t < m). Reveals a XOR b only.
"""

from __future__ import annotations

import functools
import secrets
from asyncio import Future

import numpy as np
from mpyc import asyncoro, thresha
from mpyc.runtime import mpc

from ....compiler.errors import SqlmpcError

P = (1 << 31) - 1

__all__ = ["P", "PeerMessageError", "lagrange", "mul", "open_", "open_xor", "recombine",
           "reshare_each", "reshare_from", "split", "uniform", "xor"]


def uniform(shape) -> np.ndarray:
    """Uniform int64 values in [0, P) from the OS CSPRNG (exact: rejection of 2^31 - 1)."""
    n = int(np.prod(shape))
    out = np.empty(n, dtype=np.int64)
    todo = np.arange(n)
    while todo.size:
        r = np.frombuffer(secrets.token_bytes(4 * todo.size), dtype=np.uint32).astype(np.int64)
        r &= P  # 31 random bits
        out[todo] = r
        todo = todo[r == P]
    return out.reshape(shape)


def split(v: np.ndarray, t: int, m: int) -> list[np.ndarray]:
    """Degree-t Shamir shares of v (int64 in [0, P)) for x = 1..m."""
    coeffs = [uniform(v.shape) for _ in range(t)]
    shares = []
    for j in range(m):
        x = j + 1
        acc = v.copy()
        xp = 1
        for c in coeffs:
            xp = xp * x % P
            acc = (acc + c * xp) % P
        shares.append(acc)
    return shares


@functools.cache
def lagrange(xs: tuple[int, ...]) -> tuple[int, ...]:
    """Lagrange coefficients at 0 for the points xs (mod P) (also used by ``shuffle.py``)."""
    out = []
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if i != j:
                num = num * (-xj) % P
                den = den * (xi - xj) % P
        out.append(num * pow(den, P - 2, P) % P)
    return tuple(out)


def recombine(xs: tuple[int, ...], shares: list[np.ndarray]) -> np.ndarray:
    """The secret from its shares at the points xs (Lagrange interpolation at 0, mod P)."""
    lam = lagrange(xs)
    acc = np.zeros_like(shares[0])
    for c, s in zip(lam, shares, strict=True):
        acc = (acc + s * c) % P
    return acc


class PeerMessageError(SqlmpcError, ValueError):
    """A peer's message is not the array of shares this protocol step expects."""


def _dump(a: np.ndarray) -> bytes:
    """Shares as raw little-endian int64 bytes: data only (the receiver knows the shape)."""
    return np.ascontiguousarray(a, dtype="<i8").tobytes()


def _load(data: bytes, shape, source: int) -> np.ndarray:
    """The int64 array of `shape` in a peer's message: raw bytes, nothing in it is executed;
    a message of the wrong length is refused with one line."""
    shape = tuple(int(d) for d in shape) if isinstance(shape, (tuple, list)) else (int(shape),)
    expected = 8 * int(np.prod(shape, dtype=np.int64))
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) != expected:
        size = len(data) if isinstance(data, (bytes, bytearray, memoryview)) else "a non-byte"
        raise PeerMessageError(f"MPyC party {source} sent a {size}-byte share message where "
                               f"{expected} bytes (int64 shape {shape}) were expected; refused")
    return np.frombuffer(data, dtype="<i8").astype(np.int64).reshape(shape)


@asyncoro.mpc_coro
async def _exchange(out: dict[int, bytes], sources: list[int]):
    """Send out[peer] to each peer (own message kept), receive one message from each source.
    Returns the list of received byte strings, in the order of ``sources``."""
    await mpc.returnType(Future)
    for peer, data in out.items():
        if peer != mpc.pid:
            mpc._send_message(peer, data)
    got = [out[mpc.pid] if s == mpc.pid else mpc._receive_message(s) for s in sources]
    return await mpc.gather(got)


async def reshare_from(v: np.ndarray | None, senders: list[int], shape) -> np.ndarray:
    """Each party in ``senders`` Shamir-shares its int64 array v (shape ``shape``); every
    party returns the sum of the shares it received. One round."""
    acc = np.zeros(shape, dtype=np.int64)
    for part in await reshare_each(v, senders, shape):
        acc = (acc + part) % P
    return acc


async def reshare_each(v: np.ndarray | None, senders: list[int], shape) -> list[np.ndarray]:
    """Each party in ``senders`` Shamir-shares its int64 array v (shape ``shape``); every
    party returns the shares it received, one array per sender (in the order of
    ``senders``). One round, whatever the number of senders."""
    m, t = len(mpc.parties), mpc.threshold
    out = {}
    if mpc.pid in senders:
        shares = split(np.asarray(v, dtype=np.int64) % P, t, m)
        out = {j: _dump(shares[j]) for j in range(m)}
    got = await _exchange(out, list(senders))
    return [_load(g, shape, s) for s, g in zip(senders, got, strict=True)]


async def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Shares of a * b (elementwise) from shares of a and b. One round."""
    m, t = len(mpc.parties), mpc.threshold
    d = a * b % P
    if m == 1:
        return d
    shares = split(d, t, m)
    got = await _exchange({j: _dump(shares[j]) for j in range(m)}, list(range(m)))
    return recombine(tuple(range(1, m + 1)), [_load(g, d.shape, j) for j, g in enumerate(got)])


async def open_(a: np.ndarray) -> np.ndarray:
    """Open shares a to all parties: values in [0, P) (int64). One round."""
    if len(mpc.parties) == 1:
        return a % P
    return await _open_degree(a, mpc.threshold)


async def open_xor(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Open a XOR b for secret bits a, b (shares, one shape): values 0/1 (int64). One round
    with PRSS keys and 2t < m (a + b - 2ab locally, of degree 2t, plus a pseudorandom
    degree-2t sharing of 0, opened from all 2t + 1 shares); else :func:`xor`, then
    :func:`open_` (two rounds)."""
    m, t = len(mpc.parties), mpc.threshold
    if m == 1 or mpc.options.no_prss or m < 2 * t + 1:
        return await open_(await xor(a, b))
    local = (a + b - 2 * (a * b % P)) % P
    zero = thresha.np_pseudorandom_share_0(_gf(), m, mpc.pid, mpc.prfs(P), mpc._prss_uci(),
                                           local.size)
    z = np.asarray(zero.value, dtype=object).astype(np.int64).reshape(local.shape)
    return await _open_degree(np.ascontiguousarray((local + z) % P), 2 * t)


async def _open_degree(a: np.ndarray, d: int) -> np.ndarray:
    """Open shares a of degree d (d < m) to all parties: recombined from the first d + 1."""
    m = len(mpc.parties)
    got = await _exchange({j: _dump(a) for j in range(m)}, list(range(d + 1)))
    return recombine(tuple(range(1, d + 2)), [_load(g, a.shape, j) for j, g in enumerate(got)])


@functools.cache
def _gf():
    """MPyC's prime field GF(P), for its pseudorandom sharings of 0."""
    from mpyc.finfields import GF
    return GF(P)


async def xor(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Shares of a XOR b for secret bits a, b: a + b - 2ab. One round."""
    return (a + b - 2 * await mul(a, b)) % P
