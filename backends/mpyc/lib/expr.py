"""Row expressions: elementwise operations on secure arrays (or public numbers/arrays).

The code generator translates a SQL row expression into calls of these functions on a
table's columns (``t.columns[...]``): comparisons give secret 0/1 arrays, booleans are 0/1
arithmetic, texts are lists of 7-byte pieces (``encoding.py``). Either side of a binary
operation may be public; with no secure operand the result is plain numpy. Each function
states its cost; none reveals anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from mpyc.runtime import mpc
from mpyc.sectypes import SecureObject

from . import encoding, fxpdiv
from .encoding import piece_name
from .table import SecTable, const, lift, pieces, sec_type_of

__all__ = ["abs_", "and_", "column", "div", "div_zero", "eq", "flags", "ge", "gt", "le", "lt",
           "ne", "neg", "not_", "null_or", "or_", "parts", "power", "text_columns", "text_compare",
           "text_literal", "text_where", "where"]


def _binary(a: Any, b: Any) -> tuple[Any, Any, type | None]:
    stype = sec_type_of(a, b)
    if stype is None:
        return np.asarray(a), np.asarray(b), None
    return lift(a, stype), lift(b, stype), stype


def lt(a: Any, b: Any) -> Any:
    """a < b as secret 0/1 (one secure comparison per element; exact if |a-b| < 2^(l-f-1))."""
    a, b, s = _binary(a, b)
    return (a < b).astype(int) if s is None else mpc.np_less(a, b)


def gt(a: Any, b: Any) -> Any:
    """a > b as secret 0/1 (one secure comparison per element)."""
    return lt(b, a)


def le(a: Any, b: Any) -> Any:
    """a <= b as secret 0/1, computed as 1 - (b < a)."""
    r = lt(b, a)
    return 1 - r


def ge(a: Any, b: Any) -> Any:
    """a >= b as secret 0/1, computed as 1 - (a < b)."""
    r = lt(a, b)
    return 1 - r


def eq(a: Any, b: Any) -> Any:
    """a == b as secret 0/1 (MPyC's probabilistic zero test; cheaper than a comparison)."""
    a, b, s = _binary(a, b)
    return (a == b).astype(int) if s is None else mpc.np_equal(a, b)


def ne(a: Any, b: Any) -> Any:
    """a != b as secret 0/1."""
    r = eq(a, b)
    return 1 - r


def and_(a: Any, b: Any) -> Any:
    """Boolean AND of 0/1 values: a*b (one secure multiplication)."""
    a, b, _ = _binary(a, b)
    return a * b


def or_(a: Any, b: Any) -> Any:
    """Boolean OR of 0/1 values: a + b - a*b (one secure multiplication)."""
    a, b, _ = _binary(a, b)
    return a + b - a * b


def not_(a: Any) -> Any:
    """Boolean NOT of a 0/1 value: 1 - a (free)."""
    return 1 - a


def where(cond: Any, a: Any, b: Any) -> Any:
    """cond ? a : b elementwise for a secret 0/1 cond: cond*(a-b) + b (one multiplication)."""
    stype = sec_type_of(cond, a, b)
    if stype is None:
        return np.where(cond, a, b)
    cond, a, b = lift(cond, stype), lift(a, stype), lift(b, stype)
    return mpc.np_where(cond, a, b)


def div(a: Any, b: Any) -> Any:
    """a / b elementwise (fixed-point, f fractional bits; b must be nonzero).

    Public divisor (Python number or numpy array): multiplication by the public reciprocal
    (one truncation). Secret divisor: ``fxpdiv.divide`` (one bit extraction of b to normalise
    it, Goldschmidt's iteration with 2f + 7 fraction bits in a wider field, about 25 rounds; see
    fxpdiv.py): absolute error about |a / b| 2^-2f plus a few units of 2^-f. Types with
    l - 1 < 2f use MPyC's reciprocal (np_divide) instead. A zero divisor gives 0, not an
    error (it cannot be detected without revealing it; the SQL layer marks it NULL).
    """
    if not isinstance(b, SecureObject):
        if not isinstance(a, SecureObject):
            return np.asarray(a) / np.asarray(b)
        if isinstance(b, int | float):
            return a * (1.0 / b)  # NB: a / b would take MPyC's integral-only path for ints
        return a * (1.0 / np.asarray(b, dtype=float))
    a, b = _aligned(a, b)
    if fxpdiv.supported(type(b)):  # l - 1 >= 2f, e.g. the default secfxp(96, 32)
        return fxpdiv.divide(a, b)
    return mpc.np_divide(a, b)  # MPyC's reciprocal is valid for l <= 2f + 1


def div_zero(a: Any, b: Any) -> tuple[Any, Any]:
    """(a / b, b == 0): div(a, b) and eq(b, 0) at once (SQL's x / y, NULL where y = 0). A
    secret divisor's zero flag comes out of the division protocol itself (``fxpdiv``: no
    round and no zero test more); otherwise the two are computed apart."""
    if isinstance(b, SecureObject) and fxpdiv.supported(type(b)):
        a, b = _aligned(a, b)
        if b.ndim == 1:
            return fxpdiv.divide_with_zero(a, b)
    return div(a, b), eq(b, 0)


def _aligned(a: Any, b: SecureObject) -> tuple[Any, Any]:
    """a lifted to b's secure type, both broadcast to one shape (free)."""
    stype = type(b)
    a = lift(a, stype)
    if a.shape != b.shape:
        shape = np.broadcast_shapes(a.shape, b.shape)
        zero = const(stype.sectype, np.zeros(shape, dtype=object), integral=True)
        a, b = a + zero, b + zero
    return a, b


def neg(a: Any) -> Any:
    """-a (free)."""
    return -a


def abs_(a: Any) -> Any:
    """|a| (one secure sign computation per element)."""
    return mpc.np_absolute(a)


def power(x: Any, k: int) -> Any:
    """x ** k for a small whole k by repeated squaring (log2(k) secure multiplications)."""
    result, base = None, x
    while k:
        if k & 1:
            result = base if result is None else result * base
        k >>= 1
        if k:
            base = base * base
    return result


def null_or(*flags: Any) -> Any:
    """OR of NULL flags (0/1, secure or public): an expression is NULL if an operand is."""
    out = flags[0]
    for f in flags[1:]:
        out = or_(out, f)
    return out


def column(secfxp: type, x: Any, n: int) -> Any:
    """A secure array of length n from a secure array, a public array or a public scalar."""
    if isinstance(x, SecureObject):
        return x
    arr = np.asarray(x, dtype=object)
    if arr.ndim == 0:
        arr = np.full(n, arr.item(), dtype=object)
    arr = np.array([int(v) if isinstance(v, (bool, np.bool_)) else v for v in arr], dtype=object)
    return const(secfxp, arr)


def flags(secfxp: type, x: Any, n: int) -> Any:
    """Filter flags as a secure 0/1 array (a constant condition becomes a constant array)."""
    return column(secfxp, x, n)


# --------------------------------------------------------------------------------------------
# Texts: lists of 7-byte pieces, piece 0 most significant (encoding.py)
# --------------------------------------------------------------------------------------------


def text_compare(op: str, a: Sequence[Any], b: Sequence[Any]) -> Any:
    """Compare texts given as piece lists (secure arrays or public ints; padded with zero
    pieces to equal length): op in eq/ne/lt/le/gt/ge, lexicographic on the pieces (piece 0
    most significant), i.e. SQL's binary collation. Cost: one batched equality test per
    piece for eq/ne; for the orders also one comparison per piece, combined with k-1
    multiplications."""
    k = max(len(a), len(b))
    a = list(a) + [0] * (k - len(a))
    b = list(b) + [0] * (k - len(b))
    if op in ("gt", "ge"):
        a, b, op = b, a, {"gt": "lt", "ge": "le"}[op]
    eqs = [eq(x, y) for x, y in zip(a, b)]
    if op in ("eq", "ne"):
        r = eqs[0]
        for e in eqs[1:]:
            r = and_(r, e)
        return r if op == "eq" else not_(r)
    # lt: a0 < b0, or a0 == b0 and (a1 < b1, or ...); le: the last piece compares with <=
    r = lt(a[-1], b[-1]) if op == "lt" else le(a[-1], b[-1])
    for i in range(k - 2, -1, -1):
        r = lt(a[i], b[i]) + eqs[i] * r  # the two cases exclude each other: a sum is an OR
    return r


def text_where(cond: Any, a: Sequence[Any], b: Sequence[Any]) -> list[Any]:
    """cond ? a : b for texts as piece lists (padded to equal length)."""
    k = max(len(a), len(b))
    a = list(a) + [0] * (k - len(a))
    b = list(b) + [0] * (k - len(b))
    return [where(cond, x, y) for x, y in zip(a, b)]


def parts(t: SecTable, name: str) -> list:
    """A text column as its list of piece arrays (see encoding.py)."""
    return [t.columns[c] for c in pieces(t, name)]


def text_literal(value: str) -> list[int]:
    """A text constant as its pieces."""
    return encoding.text_pieces(value)


def text_columns(secfxp: type, name: str, values: list, n: int) -> dict:
    """Output columns {name: piece 0, name~1: piece 1, ...} of a text-valued expression
    given as its piece ``values``."""
    return {piece_name(name, i): column(secfxp, p, n) for i, p in enumerate(values)}
