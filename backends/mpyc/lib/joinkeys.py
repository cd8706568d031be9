"""Join keys as the sort-based joins need them: text pieces aligned, NULL keys out, owners' bits.

Shared by the PK-FK join (``join.py``) and the many-to-many join (``mmjoin.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .encoding import piece_name
from .keyspec import clear_bits
from .table import KeyBits, SecTable, companion_range, null_flag, pieces, zeros

__all__ = ["join_keys", "two_sided_bits"]


def join_keys(left: SecTable, right: SecTable, left_keys: Sequence[str],
              right_keys: Sequence[str]) -> tuple[SecTable, SecTable, list[str], list[str]]:
    """Expand join keys to their text pieces (the side with fewer pieces gets zero pieces) and
    drop rows whose key is NULL (NULL never equals anything). Free but for one
    multiplication per nullable key. The owners' key bits stay with the (same) columns; a
    zero piece gets its public bits (a public value's shares are the value itself)."""
    lk, rk = [], []
    lcols, rcols = dict(left.columns), dict(right.columns)
    lranges, rranges = dict(left.ranges), dict(right.ranges)
    lbits, rbits = dict(left.bits), dict(right.bits)
    lvalid, rvalid = left.valid, right.valid
    for a, b in zip(left_keys, right_keys, strict=True):
        pa, pb = pieces(left, a), pieces(right, b)
        for i in range(max(len(pa), len(pb))):
            for p, name, cols, ranges, kbits, side in ((pa, a, lcols, lranges, lbits, left),
                                                       (pb, b, rcols, rranges, rbits, right)):
                if i >= len(p):
                    piece = piece_name(name, i)
                    cols[piece] = zeros(side.sectype, side.n)
                    ranges[piece] = companion_range(side, piece, name)
                    kbits[piece] = KeyBits(cols[piece], ranges[piece], clear_bits(
                        np.zeros(side.n, dtype=object), ranges[piece]))
            lk.append(piece_name(a, i))
            rk.append(piece_name(b, i))
        if null_flag(left, a) is not None:
            lvalid = lvalid * (1 - null_flag(left, a))
        if null_flag(right, b) is not None:
            rvalid = rvalid * (1 - null_flag(right, b))
    return (SecTable(lcols, lvalid, ranges=lranges, bits=lbits),
            SecTable(rcols, rvalid, ranges=rranges, bits=rbits), lk, rk)


def two_sided_bits(first: SecTable, second: SecTable, first_keys: Sequence[str],
                   second_keys: Sequence[str], specs: Sequence[Any]) -> list | None:
    """Owner key bits of the keys of two tables whose rows are concatenated (``first``'s
    rows first), as blocks for ``radix.key_bits_small`` (a side without them is extracted);
    None when neither side has any."""
    out = []
    for a, b, sp in zip(first_keys, second_keys, specs, strict=True):
        out.append([(first.key_bits(a, sp), first.n), (second.key_bits(b, sp), second.n)])
    return out if any(x is not None for blocks in out for x, _ in blocks) else None
