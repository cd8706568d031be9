"""Shared steps of the protocols that open a masked value (fxpdiv.py, overflow.py).

Parties 0..t each input random masks into a field; their sum masks a secret value that is
then opened to everyone (statistically hidden by k extra bits), and the public result is
corrected. The wider secfxp types those protocols compute in are made here too.

:func:`open_product` opens a masked *product* in the round that would otherwise only
multiply: each party's local product of its shares is a sharing of degree 2t, which n >= 2t + 1
parties can open; a pseudorandom sharing of zero of degree 2t (MPyC's PRSS, as MPyC itself
does for its random bits) makes the opened polynomial uniformly random but for its constant
term, so the opening shows only that term: the product plus the mask.
"""

from __future__ import annotations

import secrets

import numpy as np
from mpyc import thresha
from mpyc.runtime import mpc

from .bits import big_mul

_WIDE: dict[tuple[int, int], type] = {}


def wide_type(f: int, need_bits: int) -> type:
    """A secfxp type with 2f fraction bits whose prime field has at least need_bits bits."""
    key = (f, need_bits)
    if key not in _WIDE:
        size = 4 * f
        while mpc.SecFxp(size, 2 * f).field.modulus.bit_length() < need_bits:
            size += 8
        _WIDE[key] = mpc.SecFxp(size, 2 * f)
    return _WIDE[key]


def draw(n: int, bits: int) -> list[int]:
    """n uniform random integers in [0, 2^bits) (this party's masks)."""
    width = (bits + 7) // 8
    raw = secrets.token_bytes(width * n)
    top = (1 << bits) - 1
    return [int.from_bytes(raw[i * width:(i + 1) * width], "little") & top for i in range(n)]


def input_masks(field, values: list[int] | None, n: int):
    """Parties 0..t input their masks into ``field`` (one round); await the result with
    :func:`summed`."""
    arr = field.array(np.array(values if values is not None else [0] * n, dtype=object),
                      check=False)
    return mpc.input(arr, senders=list(range(mpc.threshold + 1)))


async def summed(fut):
    """The sum of the masks the parties input (a secure field array)."""
    parts = await fut
    parts = [q[0] if isinstance(q, list) else q for q in parts]
    total = parts[0]
    for q in parts[1:]:
        total = total + q
    return total


async def open_ints(x) -> np.ndarray:
    """Open a field array to all parties: exact non-negative Python ints (object array)."""
    v = await mpc.output(x)
    return np.asarray(getattr(v, "value", v), dtype=object)


def fused_opening() -> bool:
    """Can :func:`open_product` open a product in one round here (PRSS keys, n >= 2t + 1)?"""
    return not mpc.options.no_prss and len(mpc.parties) >= 2 * mpc.threshold + 1


async def open_product(x, y, masked, linear=None) -> np.ndarray:
    """Open x * y + masked to all parties in one round: x, y this party's shares (field
    arrays, degree t), ``masked`` this party's shares (degree t) of what is added to the
    product before it opens (a mask with k bits more than the product, plus offsets).
    ``linear``: a linear map applied to the products first (e.g. summing some of them).
    Without PRSS (``fused_opening()`` false) the product is taken first (one more round).
    Returns exact non-negative ints (object array)."""
    linear = linear or (lambda v: v)
    if not fused_opening():
        return await open_ints(linear(await big_mul(x, y)) + masked)
    local = linear(x * y)
    field = local.field
    m, t = len(mpc.parties), mpc.threshold
    zero = thresha.np_pseudorandom_share_0(field, m, mpc.pid, mpc.prfs(field.order),
                                           mpc._prss_uci(), int(np.prod(local.shape)))
    local = local + masked + field.array(zero.value.reshape(local.shape), check=False)
    v = await mpc.output(local, threshold=2 * t)
    return np.asarray(getattr(v, "value", v), dtype=object)
