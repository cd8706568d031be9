"""Shared steps of the protocols that open a masked value (fxpdiv.py, overflow.py).

Parties 0..t each input random masks into a field; their sum masks a secret value that is
then opened to everyone (statistically hidden by k extra bits), and the public result is
corrected. The wider secfxp types those protocols compute in are made here too.
"""

from __future__ import annotations

import secrets

import numpy as np
from mpyc.runtime import mpc

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
