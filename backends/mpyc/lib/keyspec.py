"""Public key ranges of sort keys, and the bits of clear key values.

A sort key's cost is linear in its bit length, so every sort-based operator wants to know the
smallest public range [lo, hi] its key values lie in: :class:`KeySpec` (from the catalog
type, ``TYPE_RANGES``, or a caller's hint, :func:`spec_for`). An owner that inputs the bits of
its own key values (``input.share_input(..., input_bits=...)``, see ``radix.py``, "Key bits
input by their owners") computes them in the clear with :func:`clear_bits`; :func:`fit_bits`
reuses bits made for one range for another. Public schema knowledge only: nothing here
touches a secret, and nothing here needs MPyC.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TYPE_RANGES", "KeySpec", "clear_bits", "fit_bits", "spec_for"]


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
