"""Random secret bits from the parties' own coin flips (MPyC's method without PRSS, for speed).

MPyC 0.11 makes a secret random bit in a prime field by opening the square of a
pseudorandom secret r and taking a modular square root of it (one exponentiation modulo a
160-256-bit prime per bit, about 13 us); a comparison of l-bit numbers takes l of them, and
the overflow checks of one query's division and products take some 2,000 per party: most of
the secure part's local work. The same runtime has a second method, which it uses when PRSS
is off: parties 0..t each input a uniformly random sign (+1 or -1) per bit, and their product
is a uniformly random sign as long as one of them is honest (t + 1 inputs, at most t of them
corrupt); (sign + 1) / 2 is the bit. It costs one input round and ceil(log2(t + 1))
multiplication rounds (t = 1: one) of plain field arithmetic: one round more, far less work.

:func:`install` (done on import) makes ``mpc.np_random_bits`` use that method for prime
fields; binary fields keep MPyC's own. Reveals nothing: every value sent is a share of an
input or of a product (resharing).
"""

from __future__ import annotations

import secrets
from asyncio import Future

import numpy as np
from mpyc import asyncoro
from mpyc.runtime import mpc

__all__ = ["install", "np_random_bits"]

_MPYC = type(mpc).np_random_bits  # MPyC's own (unbound)


async def _signs(field, n: int):
    """Shares (field array) of n uniformly random signs: the product of parties 0..t's input
    signs, multiplied pairwise in ceil(log2(t + 1)) rounds."""
    senders = list(range(mpc.threshold + 1))
    if mpc.pid in senders:
        coins = np.unpackbits(np.frombuffer(secrets.token_bytes((n + 7) // 8), np.uint8))[:n]
        mine = field.array(2 * coins.astype(object) - 1)
    else:
        mine = field.array(np.zeros(n, dtype=object), check=False)
    signs = await mpc.input(mine, senders=senders)
    signs = [s[0] if isinstance(s, list) else s for s in signs]
    while len(signs) > 1:
        half = (len(signs) + 1) // 2
        odd = len(signs) % 2
        prods = [await mpc._reshare(a * b) for a, b in zip(signs[odd:half], signs[half:])]
        signs = signs[:odd] + prods
    return signs[0]


@asyncoro.mpc_coro
async def _secure_bits(sftype, n: int, signed: bool):
    await mpc.returnType((sftype.array, True, (n,)))
    return _to_bits(await _signs(sftype.field, n), signed, sftype.frac_length)


@asyncoro.mpc_coro
async def _field_bits(field, n: int, signed: bool):
    await mpc.returnType(Future)
    return _to_bits(await _signs(field, n), signed, 0)


def _to_bits(signs, signed: bool, f: int):
    field = signs.field
    bits = signs.value
    if not signed:
        bits = (bits + 1) * ((field.characteristic + 1) >> 1)  # (sign + 1) / 2
    return field.array(bits * (1 << f))


def np_random_bits(self, sftype, n, signed=False):
    """``mpc.np_random_bits`` from the parties' coin flips in prime fields."""
    secure = isinstance(sftype, type) and issubclass(sftype, mpc.SecureObject)
    field = sftype.field if secure else sftype
    if not n or field.characteristic == 2 or mpc.options.no_prss:
        return _MPYC(self, sftype, n, signed)
    return (_secure_bits if secure else _field_bits)(sftype, n, signed)


def install() -> None:
    """Make the runtime's ``np_random_bits`` this module's (idempotent)."""
    mpc.np_random_bits = np_random_bits.__get__(mpc)


install()
