"""The secret table every operator takes and returns, and the plumbing around it.

A :class:`SecTable` holds n rows (n public), each column a 1-D MPyC secure fixed-point array
of length n, and a secret 0/1 ``valid`` flag per row: a table's *number of rows* is secret
as well, since filters, joins and group-bys never drop rows, they clear ``valid`` flags.

Numbers: one secure type per program, ``secfxp = mpc.SecFxp(l, f)``; ints are exact up to
2^(l-f-1), fractions to 2^-f (see ``encoding.py``). Booleans are secfxp 0/1 values. Public
constants (:func:`const`) are secure arrays whose shares are the value itself: free.

A logical column may have companion columns (text pieces ``c~1``..., a NULL flag
``c~null``; ``encoding.py``, "Companion columns"): :func:`pieces`, :func:`null_flag`,
:func:`with_companions` and :func:`sort_keys` expand a column name to them, so code for
one-piece, non-null columns never mentions them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
from mpyc.runtime import mpc
from mpyc.sectypes import SecureArray, SecureObject

from .encoding import COMPANION, NULL_FLAG
from .keyspec import TYPE_RANGES, KeySpec, fit_bits

__all__ = ["COMPANION", "NULL_FLAG", "KeyBits", "SecTable", "companion_range", "const", "copy",
           "lift", "null_flag", "ones", "pieces", "sec_type_of", "sort_keys", "stack",
           "to_field_matrix", "unstack", "with_companions", "zeros"]


@dataclass(frozen=True)
class KeyBits:
    """Small-field shares of the key bits of one column, input by the column's owners (see
    ``input.share_input``'s ``input_bits`` and ``radix.py``, "Key bits input by their
    owners"): ``bits`` (int64 (spec.bits, n), row 0 least significant) are the bits of
    x - spec.lo for the values x of exactly the secure array ``column`` -- the cache is used
    only while the table still holds that very array (``is``), so a recomputed or reordered
    column never gets stale bits."""

    column: Any
    spec: Any
    bits: np.ndarray


@dataclass
class SecTable:
    """A secret table: n rows (n public), each column a 1-D secure array of length n.

    ``valid`` holds secret 0/1 flags saying which of the n rows are really in the table.
    ``valid_first`` is a public promise (set only by ``sort.order_by``) that all valid rows
    precede all invalid rows; ``reveal`` uses it to skip a compaction sort.
    """

    columns: dict[str, Any]
    valid: Any
    valid_first: bool = field(default=False)
    ranges: dict[str, Any] = field(default_factory=dict)
    """Public key ranges per column (``keyspec.KeySpec``; from the catalog types given to
    ``input.share_input`` or ``key_bits``): narrower keys sort faster. Carried along by the
    operators that keep a column unchanged."""
    bits: dict[str, KeyBits] = field(default_factory=dict)
    """Key bits input by the owners, per column (see :class:`KeyBits`): kept only by the
    operators that keep the column's array and rows unchanged (filters, projections and
    renames that copy it, UNION ALL of parts that all have them, semi-joins, the FK side of
    a PK-FK join); every other operator builds a table without them."""

    @property
    def n(self) -> int:
        """Public number of (padded) rows."""
        return int(self.valid.shape[0])

    @property
    def sectype(self) -> type:
        """The secure array type (``secfxp.array``) of this table."""
        return type(self.valid)

    def key_bits(self, name: str, spec: Any) -> np.ndarray | None:
        """The owners' bits of column ``name`` fitted to the key range ``spec``
        (``keyspec.fit_bits``), or None (no cache, or not for this very column array, or not
        convertible for free): the sort then extracts the bits itself."""
        kb = self.bits.get(name)
        if kb is None or kb.column is not self.columns.get(name):
            return None
        if kb.bits.shape != (kb.spec.bits, self.n):
            return None
        return fit_bits(kb.spec, kb.bits, spec)

    def keep_bits(self, columns: dict[str, Any]) -> dict[str, KeyBits]:
        """The cache entries still valid for ``columns`` (same arrays, same rows), renamed to
        the names they have there; for a table whose rows are this table's rows."""
        by_id = {id(a): c for c, a in self.columns.items()}
        out = {}
        for name, a in columns.items():
            old = by_id.get(id(a))
            kb = self.bits.get(old) if old is not None else None
            if kb is not None and kb.column is a:
                out[name] = kb
        return out


# --------------------------------------------------------------------------------------------
# Constants and plumbing
# --------------------------------------------------------------------------------------------


def to_field_matrix(secfxp: type, values: Any) -> Any:
    """Scale numbers by 2^f into a field array of ``secfxp`` losslessly.

    Python/numpy ints (also beyond 2^53, e.g. packed texts in object arrays) are shifted
    exactly; Decimals and Fractions are scaled exactly and rounded once; floats are scaled by 2^f (exact in binary) and rounded to the nearest integer,
    like MPyC does for float arrays. Mixed object arrays (ints and floats) are fine.
    """
    v = np.asarray(values, dtype=object)
    f = secfxp.frac_length
    exact = (int, np.integer, bool, np.bool_)
    # Decimals (and Fractions) are scaled with exact rational arithmetic, rounded once:
    # through float64 a decimal above 2^53 would lose its last digits
    flat = [int(x) << f if isinstance(x, exact) else
            round(Fraction(x) * (1 << f)) if isinstance(x, Decimal | Fraction) else
            round(float(x) * (1 << f))
            for x in v.reshape(-1)]
    scaled = np.empty(len(flat), dtype=object)
    scaled[:] = flat
    return secfxp.field.array(scaled.reshape(v.shape))


def _is_integral(values: Any) -> bool:
    v = np.asarray(values, dtype=object).reshape(-1)
    return all(
        isinstance(x, int | np.integer | bool | np.bool_) or
        (x == int(x) if isinstance(x, Decimal | Fraction) else float(x).is_integer()) for x in v
    )


def const(secfxp: type, values: Any, integral: bool | None = None) -> Any:
    """A public constant as a secure array (every party holds the value itself as its share).

    Free: no communication. ``integral`` is MPyC's flag that all entries are integers (it lets
    multiplications skip truncation); computed from the values when not given.
    """
    if integral is None:
        integral = _is_integral(values)
    return secfxp.array(to_field_matrix(secfxp, values), integral=integral)


def zeros(stype: type, n: int, integral: bool = True) -> Any:
    """n public zeros of the secure array type ``stype`` (free)."""
    return const(stype.sectype, np.zeros(n, dtype=object), integral=integral)


def ones(stype: type, n: int) -> Any:
    """n public ones of the secure array type ``stype`` (free)."""
    return const(stype.sectype, np.ones(n, dtype=object), integral=True)


def sec_type_of(*xs: Any) -> type | None:
    """The secure array type of the first secure operand, or None when all are public."""
    for x in xs:
        if isinstance(x, SecureArray):
            return type(x)
        if isinstance(x, SecureObject):
            return type(x).array
    return None


def lift(x: Any, stype: type) -> Any:
    """Secure arrays pass; public numbers/arrays become (free) public secure constants."""
    if isinstance(x, SecureObject):
        return x
    return const(stype.sectype, np.asarray(x, dtype=object))


def copy(a: Any) -> Any:
    """A copy of a secure array (``mpc.np_update`` works in place: copy first)."""
    return mpc.np_copy(a)


def stack(cols: Sequence[Any], stype: type, n: int) -> Any:
    """Stack 1-D columns into a (len(cols), n) matrix (handles n == 0 and no columns)."""
    if not cols:
        return const(stype.sectype, np.zeros((0, n), dtype=object), integral=True)
    return mpc.np_stack(list(cols))


def unstack(m: Any, names: Sequence[str]) -> dict[str, Any]:
    """The rows of matrix m as columns named ``names``."""
    return {name: m[i] for i, name in enumerate(names)}


# --------------------------------------------------------------------------------------------
# Companion columns: long texts and NULLs (see encoding.py, "Companion columns")
# --------------------------------------------------------------------------------------------


def pieces(t: SecTable, name: str) -> list[str]:
    """The piece columns of ``name`` in order: [name, name~1, ...] (just [name] usually)."""
    out = [name]
    while f"{name}{COMPANION}{len(out)}" in t.columns:
        out.append(f"{name}{COMPANION}{len(out)}")
    return out


def null_flag(t: SecTable, name: str) -> Any | None:
    """The secret NULL flag of column ``name``, or None when the column cannot be NULL."""
    return t.columns.get(name + NULL_FLAG)


def with_companions(t: SecTable, names: Sequence[str]) -> list[str]:
    """``names`` and all their companion columns (pieces, NULL flags), each name's together."""
    out: list[str] = []
    for c in names:
        out += pieces(t, c)
        if c + NULL_FLAG in t.columns:
            out.append(c + NULL_FLAG)
    return out


def sort_keys(t: SecTable, keys: Sequence[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """Expand sort keys to their companions: the NULL flag first, ascending (NULLs sort last,
    as in DuckDB and Spark's default for ascending keys), then the text pieces in order."""
    out: list[tuple[str, bool]] = []
    for c, desc in keys:
        if c + NULL_FLAG in t.columns:
            out.append((c + NULL_FLAG, False))
        out += [(p, desc) for p in pieces(t, c)]
    return out


def companion_range(t: SecTable, name: str, base: str) -> KeySpec:
    """The public key range of companion ``name`` of column ``base``: 0/1 for a NULL flag,
    the column's own range for a text piece."""
    if name.endswith(NULL_FLAG):
        return TYPE_RANGES["bool"]
    return t.ranges.get(base, TYPE_RANGES["text"])
