"""Products of secure fixed-point arrays truncated with enough mask bits (a fix of MPyC 0.11).

A product of two fixed-point numbers with f fractional bits has 2f of them; MPyC drops f by
a probabilistic truncation that opens the product plus a random mask. For secure scalars the
mask has k (statistical security) bits more than the product can have (l + f bits); for
secure *arrays* ``mpc.np_trunc`` forgets the + f (it tests the array type against
``SecureFixedPoint``, which only scalar types derive from), so for ``SecFxp(96, 32)`` the
mask covers 96 bits where the product can have 128. Then a product beyond 2^31 in magnitude
is hidden only to a statistical distance |v| / 2^126 instead of 2^-k, and a negative one
below -2^(95 - 64) wraps and comes out wrong (-3e9 * 3e9 gave 7.9e28).

:func:`install` (done on import) replaces ``mpc.np_trunc`` on the runtime object with one
that passes MPyC's own scalar rule, l = bit length + f, for fixed-point arrays when the caller
gives no l; every array product (``np_multiply``, ``np_matmul``, ...) goes through it. The
field is large enough: scalar products already use that length.
"""

from __future__ import annotations

from typing import Any

from mpyc.runtime import mpc

__all__ = ["install"]


def _is_fixed_point_array(a: Any) -> bool:
    sectype = getattr(type(a), "sectype", None)
    return sectype is not None and issubclass(sectype, mpc.SecureFixedPoint)


def install() -> None:
    """Make ``mpc.np_trunc`` size its mask for fixed-point arrays as for scalars (once)."""
    original = mpc.np_trunc
    if getattr(original, "sqlmpc_fixed", False):
        return

    def np_trunc(a: Any, f: int | None = None, l: int | None = None) -> Any:  # noqa: E741
        if l is None and _is_fixed_point_array(a):
            sectype = type(a).sectype
            l = sectype.bit_length + (sectype.frac_length if f is None else f)  # noqa: E741
        return original(a, f=f, l=l)

    np_trunc.sqlmpc_fixed = True  # type: ignore[attr-defined]
    mpc.np_trunc = np_trunc


install()
