"""Whether small non-negative whole numbers are zero: a count's test, cheaper than MPyC's.

A group's row count decides whether the group exists (valid = count > 0) and whether its SUM
is NULL; it is a whole number in [0, n] for a public n (the input's rows). MPyC's
``np_equal(x, 0)`` does not know that: it tests a whole field element with sec_param
Legendre symbols, about 6 rounds and much local work per value. For 0 <= x <= bound < 2^m:

    1. random bits b_0..b_{m-1} (started at once, before x is known: ``np_random_bits``) and
       a pseudorandom r_high with k = sec_param bits (PRSS, no communication);
    2. open c = x + r, r = sum 2^i b_i + 2^m r_high (1 round): statistically hiding, since
       r_high has k bits more than x + sum 2^i b_i;
    3. x < 2^m, so x == 0 exactly when c and r agree in their m low bits: the product of
       the m terms 1 - (b_i XOR c_i), linear in b_i for the public c_i (ceil(log2 m) rounds
       of products).

Rounds after x: 1 + ceil(log2 m) (a count of at most 9 rows: 3); work O(m) per value.
Reveals nothing: c is statistically hidden by r's k extra bits. The values must lie in
[0, bound] (the callers' counts of 0/1 flags do); the result is then exact (no error
probability, unlike MPyC's test).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpyc import asyncoro
from mpyc.runtime import mpc

from .masks import open_ints

__all__ = ["is_zero_count"]


def is_zero_count(x: Any, bound: int) -> Any:
    """Secret 0/1 (x == 0) for a secure fixed-point array x of whole numbers in [0, bound]
    (``bound`` public), elementwise, as an integral array of x's type."""
    stype = type(x)
    sec = stype.sectype
    m = max(1, int(bound).bit_length())
    k = mpc.options.sec_param
    if sec.field.characteristic == 2 or \
            sec.frac_length + m + k + 3 >= sec.field.order.bit_length():
        return mpc.np_equal(x, 0)  # no room for the mask: MPyC's own test
    out = _is_zero(x, m)
    out.integral = True
    return out


@asyncoro.mpc_coro
async def _is_zero(x, m: int):
    stype = type(x)
    shape = x.shape
    await mpc.returnType((stype, True, shape))
    field = stype.sectype.field
    f = stype.frac_length
    n = int(np.prod(shape))
    k = mpc.options.sec_param
    bits = mpc.np_random_bits(field, m * n)  # starts now: it does not wait for x
    high = mpc._np_randoms(field, n, 1 << (k + 1))
    if mpc.options.no_prss:
        high = await high
    xv = (await mpc.gather(x)).reshape(-1)  # shares of x 2^f
    b = (await bits).value.reshape(m, n)  # shares of 0/1, unscaled
    p = field.order
    r_low = sum(b[i] * (1 << i) for i in range(m)) % p
    masked = (xv.value * pow(1 << f, -1, p) + r_low) % p  # x 2^f / 2^f: exact, x is whole
    high = getattr(high, "value", high)
    c = await open_ints(field.array((masked + high * (1 << m)) % p, check=False))
    low_bits = np.array([[(int(v) >> i) & 1 for v in c] for i in range(m)], dtype=object)
    # 1 - (b XOR c) = b where c's bit is 1, else 1 - b: linear in b
    terms = field.array(np.where(low_bits == 1, b, (1 - b) % p), check=False)
    while terms.shape[0] > 1:  # the product of the m rows, halving them each round
        half = terms.shape[0] // 2
        prod = await mpc._reshare(terms[:half] * terms[half:2 * half])
        rest = terms.value[2 * half:]
        terms = field.array(np.concatenate([prod.value, rest]) if len(rest) else prod.value,
                            check=False)
    return field.array(terms.value.reshape(shape) * (1 << f) % p, check=False)
