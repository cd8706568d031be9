"""Secure overflow checks: results that the compile-time bounds (compiler/analyses/bounds.py)
cannot prove to fit the secure type are checked inside MPC, and only "overflow: yes/no" is
opened, once per checked operation, to the compute parties, before anything is revealed.

How MPyC's secfxp(l, f) behaves out of range (what makes a check sound): values are field
elements x 2^f in a prime field of l + f + k + 2 bits (160 bits for secfxp(96, 32), k = 30 the
statistical security parameter); the type's range is |v| < 2^(l-f-1) (2^63).

- Additions and sums are exact in the field as long as |raw| < p/2 (|v| < 2^126): a sum of n
  in-range values can be checked *after* the fact (:func:`check_fits`), with a comparison
  sized for n (MPyC's ``np_sgn`` with an explicit bit length; valid up to 2^32 terms).
- A product of two non-integral values is a field product at scale 2^(2f) (wraps modulo p
  once |a b| >= 2^94), followed by MPyC's truncation, which opens the product masked by only
  k bits more than the type's range: beyond 2^63 it is wrong *and* no longer statistically
  hidden. So a product is never computed in F1 unchecked: :func:`checked_mul` moves the
  operands into a wider field (as ``fxpdiv`` does), multiplies exactly there, compares
  |a b| with 2^63 there, zeroes the rows that overflow and moves the product back. A square
  (x * x) needs no wide field: x^2 fits exactly when |x| is at most sqrt(2^63), which is
  compared first, in the type's own field; the rows beyond it are zeroed before squaring.
- A quotient by a secret divisor is computed in a wider field already (``fxpdiv``); its
  checked variant compares |a| with 2^63 |b| there (:func:`checked_div`). A quotient by a
  public divisor is a checked product by its reciprocal; a power, checked products.

Rows that overflow are zeroed (also invalid rows, e.g. filtered out, which must not reach a
comparison out of range); only valid rows count towards the opened bit.
"""

from __future__ import annotations

from math import isqrt
from typing import Any

import numpy as np
from mpyc import asyncoro
from mpyc.runtime import mpc
from mpyc.sectypes import SecureObject

from ....compiler.errors import SqlmpcError
from . import fxpdiv
from .bits import big_mul
from .expr import eq
from .masks import draw, input_masks, open_ints, open_product, summed, wide_type
from .table import lift

__all__ = ["SecureOverflow", "check_fits", "check_overflow", "check_sum", "checked_div",
           "checked_div_zero", "checked_mul", "checked_power"]

Checks = list[tuple[str, Any]]


class SecureOverflow(SqlmpcError, ArithmeticError):
    """A checked secure result does not fit the secure type (only that bit was opened)."""


def message(what: str, bits: int) -> str:
    """The one line for an overflow: names the operation, never a value."""
    return (f"overflow: {what} does not fit the secure type's range (|value| < 2^{bits}); "
            f"nothing was revealed")


def checked_mul(checks: Checks, what: str, valid: Any, a: Any, b: Any) -> Any:
    """a * b elementwise (secure arrays of one length n, or public numbers), checked: rows
    whose |a b| >= 2^(l-f-1) become 0 and count as an overflow if valid. Appends (what,
    secret count) to ``checks``. Cost: 3n values moved into a wider field and the product
    back (two openings of masked values), two wide multiplications, one wide comparison of
    2n values (about 2l bits each). Reveals nothing (the check's bit is opened later by
    :func:`check_overflow`)."""
    stype = type(valid)
    n = valid.shape[0]
    square = a is b and isinstance(a, SecureObject)
    a = lift(a, stype) if not isinstance(a, SecureObject) else a
    b = lift(b, stype) if not isinstance(b, SecureObject) else b
    zero = _zeros(stype, n)
    a, b = a + zero, b + zero  # broadcast public scalars / length-1 arrays (free)
    if n == 0:
        return a * b
    if square:
        return _checked_square(checks, what, valid, a)
    out = _wide_product(a, b, valid, bool(a.integral and b.integral))
    checks.append((what, out[n]))
    prod = out[:n]
    prod.integral = bool(a.integral and b.integral)
    return prod


def _checked_square(checks: Checks, what: str, valid: Any, x: Any) -> Any:
    """x * x, checked without the wide field: x^2 < 2^(l-f-1) exactly when the integer
    representation X = x 2^f has |X| <= T = isqrt(2^(l-1+f) - 1), a comparison of l-bit
    values in the type's own field. Rows beyond T are zeroed first (so the product's
    truncation, which opens it masked for the type's range, never sees a larger one), then
    squared as usual. Cost: one comparison of 2n values of l + 1 bits, two products; the
    overflow count is opened later by :func:`check_overflow`, like every other check's."""
    stype = type(x)
    sec = stype.sectype
    l, f = sec.bit_length, stype.frac_length
    field = sec.field
    bound = isqrt((1 << (l - 1 + f)) - 1) + 1  # |X| >= bound: the square overflows
    shifted = mpc.np_stack([x, -x])
    below = mpc.np_sgn(shifted - stype(field.array(np.full(shifted.shape, bound,
                                                           dtype=object))),
                       l=l + 1, LT=True)  # 1 where +-X < bound
    over = 2 - below[0] - below[1]
    checks.append((what, mpc.np_sum(over * valid)))
    kept = x * (1 - over)
    square = kept * kept
    square.integral = bool(x.integral)
    return square


def checked_div(checks: Checks, what: str, valid: Any, a: Any, b: Any) -> Any:
    """a / b elementwise, checked like :func:`checked_mul` (rows whose |a / b| >= 2^(l-f-1)
    become 0 and count as an overflow if valid; a zero divisor gives 0, as ``expr.div``).
    A public divisor: a checked product by its reciprocal. A secret one: ``fxpdiv``'s
    checked protocol (two comparisons of 2l - f bits more than the unchecked division)."""
    stype = type(valid)
    if not isinstance(b, SecureObject):
        inverse = np.divide(1.0, np.asarray(b, dtype=float),
                            out=np.zeros(np.shape(b)), where=np.asarray(b) != 0)
        return checked_mul(checks, what, valid, a, inverse if np.ndim(b) else float(inverse))
    if not fxpdiv.supported(stype):
        raise SecureOverflow(f"division {what}: no checked division in this secure type")
    return _secret_division(checks, what, valid, a, b, zero=False)[0]


def checked_div_zero(checks: Checks, what: str, valid: Any, a: Any, b: Any
                     ) -> tuple[Any, Any]:
    """(checked_div(...), b == 0): a secret divisor's zero flag from the same run of the
    division protocol (see ``expr.div_zero``)."""
    if isinstance(b, SecureObject) and fxpdiv.supported(type(valid)):
        return _secret_division(checks, what, valid, a, b, zero=True)
    return checked_div(checks, what, valid, a, b), eq(b, 0)


def _secret_division(checks: Checks, what: str, valid: Any, a: Any, b: Any, zero: bool
                     ) -> tuple[Any, Any]:
    """fxpdiv's checked protocol on n = len(valid) rows: (quotients, the divisors' zero flags
    with `zero`, else None); the overflow count joins `checks`."""
    stype = type(valid)
    n = valid.shape[0]
    a = lift(a, stype) if not isinstance(a, SecureObject) else a
    nothing = _zeros(stype, n)
    a, b = a + nothing, b + nothing
    if n == 0:
        return a, a if zero else None
    out = fxpdiv.divide_checked(a, b, valid, zero=zero)
    checks.append((what, out[n]))
    return out[:n], out[n + 1:] if zero else None


def checked_power(checks: Checks, what: str, valid: Any, x: Any, k: int) -> Any:
    """x ** k for a small whole k by repeated squaring, every product checked."""
    result, base = None, x
    while k:
        if k & 1:
            result = base if result is None else checked_mul(checks, what, valid, result, base)
        k >>= 1
        if k:
            base = checked_mul(checks, what, valid, base, base)
    return result


def check_fits(checks: Checks, what: str, valid: Any, x: Any, terms: int) -> Any:
    """Check that |x| < 2^(l-f-1) on the valid rows, for x (a secure array, exact in the
    field) a sum of at most ``terms`` values each in range. Returns x with the rows out of
    range zeroed; appends (what, secret count of valid rows out of range) to ``checks``.
    Cost: one comparison of 2n values sized for ``terms``, one multiplication."""
    stype = type(x)
    sec = stype.sectype
    l, f = sec.bit_length, stype.frac_length
    k = mpc.options.sec_param
    n = x.shape[0]
    if n == 0:
        return x
    L = (l - 1) + (max(terms, 1) + 1).bit_length() + 1  # |x -+ 2^(l-f-1)| raw < 2^(L-1)
    if L + k + 2 > sec.field.modulus.bit_length():
        raise SecureOverflow(f"overflow check of {what}: more than 2^32 terms, too many to "
                             f"check in this secure type")
    limit = 1 << (l - f - 1)
    both = mpc.np_stack([x - limit, -x - limit])
    below = mpc.np_sgn(both, l=L, LT=True)  # 1 where x < limit, resp. -x < limit
    over = 2 - below[0] - below[1]
    checks.append((what, mpc.np_sum(over * valid)))
    return x * (1 - over)


def check_sum(checks: Checks, what: str, t: Any, column: str, terms: int) -> Any:
    """:func:`check_fits` on an aggregate's output column (its valid rows are the groups)."""
    t.columns[column] = check_fits(checks, what, t.valid, t.columns[column], terms)
    return t


async def check_overflow(checks: Checks) -> None:
    """Open, per check, only whether any valid row overflowed (to all compute parties); stop
    with :class:`SecureOverflow` naming the first operation that did. Nothing else opens."""
    # all bits are opened at once (one protocol's rounds, not one per check), each on its own
    opened = [mpc.is_zero_public(count) for _, count in checks]
    for (what, count), zero in zip(checks, opened):
        if not await zero:
            sec = type(count)
            raise SecureOverflow(message(what, sec.bit_length - sec.frac_length - 1))


# --------------------------------------------------------------------------------------------
# The wide product
# --------------------------------------------------------------------------------------------



def _zeros(stype: type, n: int) -> Any:
    return stype(stype.sectype.field.array(np.zeros(n, dtype=object)), integral=True)


@asyncoro.mpc_coro
async def _wide_product(a, b, valid, integral: bool):
    """[a * b with overflowing rows zeroed (n values), the number of valid rows that
    overflowed (secret)] as one secfxp array of n + 1 (see :func:`checked_mul`). The count
    moves back with the products and is opened by :func:`check_overflow` with the other
    checks, so no opening of it waits here. With ``integral`` (both factors whole numbers,
    public) the product's f dropped bits are zeros: it is divided by 2^f exactly in F2 and
    moved back whole, so it stays a whole number (the parties' masks' rounded top parts would
    leave it off by up to t units of 2^-f)."""
    stype = type(a)
    n = a.shape[0]
    await mpc.returnType((stype, False, (n + 1,)))
    sec = stype.sectype
    l, f = sec.bit_length, stype.frac_length
    k = mpc.options.sec_param
    t = mpc.threshold
    slack = (t + 1).bit_length() + 1
    p_bits = 2 * (l - 1)               # |A B| < 2^(2l-2) for in-range A, B
    cmp_l = p_bits + 2                 # |A B -+ 2^(l-1+f)| < 2^(cmp_l - 1)
    q_bound = l - 1 + f                # a kept product at scale 2^(2f) is below this
    wide = wide_type(f, max(cmp_l + k + 3, p_bits + 2 + k + slack))
    F1, F2 = sec.field, wide.field
    half = 1 << (l - 1)
    av, bv, vv = await mpc.gather(a, b, valid)
    x = F1.array(np.concatenate([av.value.reshape(-1), bv.value.reshape(-1),
                                 vv.value.reshape(-1)]), check=False)
    sender = mpc.pid <= t
    m_in = draw(3 * n, l + k) if sender else None
    m_out = draw(n + 1, q_bound + 1 + k) if sender else None
    f_in1, f_in2 = input_masks(F1, m_in, 3 * n), input_masks(F2, m_in, 3 * n)
    f_out2 = input_masks(F2, m_out, n + 1)
    # the products' masks lose f bits on the way back unless exact; the count's never do
    f_out1 = input_masks(F1, ([v for v in m_out] if integral else
                              [v >> f for v in m_out[:n]] + [m_out[n]]) if sender else None,
                         n + 1)
    # into F2: open the masked values (statistically hidden: k bits more than the values)
    r1, r2 = await summed(f_in1), await summed(f_in2)
    c = await open_ints(x + F1(half) + r1)
    x2 = F2.array(c, check=False) - r2 - F2(half)
    a2, b2, v2 = x2[:n], x2[n:2 * n], x2[2 * n:]
    prod = await big_mul(a2, b2)                                   # exact, scale 2^(2f)
    limit = F2(1 << q_bound)
    both = wide.array(F2.array(np.concatenate([(prod - limit).value, (-prod - limit).value]),
                               check=False))
    below = await mpc.gather(mpc.np_sgn(both, l=cmp_l, LT=True))  # bit 2^(2f)
    inv = F2(pow(1 << (2 * f), -1, F2.modulus))
    over = F2(2) - (below[:n] + below[n:]) * inv                    # 1: out of range
    vbit = v2 * F2(pow(1 << f, -1, F2.modulus))
    left = F2.array(np.concatenate([prod.value, over.value]), check=False)
    right = F2.array(np.concatenate([(F2(1) - over).value, vbit.value]), check=False)
    # back into F1, dropping f fraction bits: mask, open in F2, subtract the masks' top parts;
    # the products kept = prod (1 - over) and counted = over vbit are taken in the round that
    # opens them (masks.open_product), the count at scale 2^f, exact
    scale = pow(1 << f, -1, F2.modulus) if integral else 1  # exact: A B 2^(2f) / 2^f

    def linear(prods):
        count = int(np.sum(prods.value[n:]) % F2.modulus) * (1 << f) % F2.modulus
        kept = prods.value[:n] * scale % F2.modulus
        return F2.array(np.concatenate([kept, [count]]), check=False)

    ro2, ro1 = await summed(f_out2), await summed(f_out1)
    if integral:
        c = await open_product(left, right, F2(1 << (q_bound - f)) + ro2, linear)
        q = F1.array(c, check=False) - ro1 - F1(1 << (q_bound - f))
    else:
        c = await open_product(left, right, F2(1 << q_bound) + ro2, linear)
        c = np.concatenate([c[:n] >> f, c[n:] - (1 << q_bound) + (1 << (q_bound - f))])
        q = F1.array(c, check=False) - ro1 - F1(1 << (q_bound - f))
    return q
