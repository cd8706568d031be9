"""Secure fixed-point division a / b with a secret divisor, in a constant number of rounds
plus one bit extraction (semi-honest, honest majority; any number of parties).

Why not MPyC's ``np_divide``: for secfxp(l, f) with l > 2f + 1 (sqlmpc's default secfxp(96,
32)) MPyC's reciprocal is not defined, and computing it in a wider type costs three
field conversions (each a bit-wise protocol) plus MPyC's normalisation by a binary adder
circuit in Python: about 0.4 s for one division on this machine. Here:

Protocol ``divide(a, b)`` (a, b secfxp arrays of the same shape; A, B their integer
representations, |A|, |B| < 2^(l-1); F1 their field; g = 2f; F2 a wider prime field, that
of the smallest secfxp(L, g) with room for the bound of step 6 plus k bits):

    1. Masks (1 round): parties 0..t each input uniform random integers, in F1 and in F2,
       for steps 2 and 6 (as in ``bits.small_bits``; no bit generation).
    2. Into F2 (1 round): open c = (A, B) + 2^(l-1) + sum of masks in F1 (statistically
       hiding: the masks have k = sec_param bits more than the values); A and B in F2 are
       c - masks - 2^(l-1) (local).
    3. Bits (``bits.small_bits``, L = l, about log2 l + 4 rounds in GF(2^31-1)): the bits of
       B + 2^(l-1). The top bit s is [B >= 0]; the other bits XOR (1 - s) are those of |B|,
       or of |B| - 1 when B < 0 (two's complement).
    4. Leading one (ceil(log2 l) + 1 rounds): suffix products of the complemented bits give
       the prefix OR from the top (for both signs at once, then the sign picks one), their
       differences the one-hot e of the leading bit p (an extra position for B = -1); daBits
       drawn during step 3 move e and s into F2 (``bits.small_to_big_bits``, 1 round).
    5. Normalise (local + 2 rounds): S = sign(B) 2^(l-2-p) (one product); v = B S lies in
       [1/2, 1] after a truncation; from the minimax line y0 = 2.8242 - 1.8828 v (relative
       error e0 = 1 - v y0, |e0| <= 0.0591), Goldschmidt's iteration y <- y (1 + e),
       e <- e^2 (1/v = y0 (1 + e0)(1 + e0^2)(1 + e0^4)...) for 4 steps (error e0^16 <
       2^-65, so the g + 7 fraction bits limit it): 1 round for e0, then 1 round a step
       (both products of a step in one opening, each truncated in the round that takes
       it; Newton's y <- y (2 - v y) needs 2, one after the other); 1/b = y S 2^f / 2^(l-1),
       kept with g + h fraction bits (h = EXTRA_BITS = 28; one truncation).
    6. Back (2 rounds): a / b = A (1/b), truncated by 2g + h - f bits while moving into F1
       (mask, open in F2, subtract the masks' high parts in F1).

Checked (``valid`` given; used when the compile-time bounds cannot prove that the quotient
fits): in F2, also compare |A| with 2^(l-f-1) |B| (two comparisons of 2l - f bits, one round
of products for |B|), which is exactly |a / b| >= 2^(l-f-1); rows where it holds and B != 0
are zeroed *before* step 6 (an out-of-range quotient would be opened with too few mask bits),
and the number of valid such rows moves back into F1 with the quotients (exactly: its mask
is not truncated), for ``overflow.check_overflow`` to open as one bit with the other checks.

With the zero flags (``divide_with_zero``, ``divide_checked(..., zero=True)``): [B == 0] is
1 - (the sum of step 4's one-hot rows), local; it moves back into F1 exactly in step 6's
opening (at scale 2^f: a secfxp 0/1), beside the quotients: no round and no test more, where
a separate equality test of b with 0 takes MPyC's zero test (about 4 ms of each party's
processor time here).

Rounds: about 2 log2 l + STEPS + 7; with 3 parties over a simulated network (every message
delivered 10 ms late) a division takes 31 message delays, the checked variant 46. Work
O(l log l n). Reveals nothing: every opened value is statistically
hidden by a mask with k more bits than the value's bound (step 3's opening is
``bits.small_bits``'s, uniformly random modulo 2^l). As in MPyC's own fixed-point
arithmetic, results must lie in the type's range (|a / b| < 2^(l-f-1)); a zero divisor gives 0
up to the truncations' few units of 2^-f (the SQL layer turns it into NULL), never a value
outside that range. Precision: the quotient's error is about |a / b| 2^-(2f-1) +
|a| 2^-(2f+h) + (t+1) 2^-f.

Sources: C. Catrina, A. Saxena, "Secure computation with fixed-point numbers", FC 2010
(normalisation, Newton-Raphson reciprocal in MPC); R. E. Goldschmidt, "Applications of
division by convergence", MIT MSc thesis, 1964 (the iteration with two independent
products a step); the conversions and truncations are the mask-and-open protocols of I. Damgard et al., "Unconditionally secure constant-rounds
multi-party computation for equality, comparison, bits and exponentiation", TCC 2006.
"""

from __future__ import annotations

import numpy as np
from mpyc import asyncoro
from mpyc.runtime import mpc

from . import smallfield as sf
from .bits import big_mul, big_mul_started, dabits, small_bits, small_to_big_bits
from .input import started, taken
from .masks import draw, input_masks, open_ints, open_product, summed, wide_type

__all__ = ["divide", "divide_checked", "divide_with_zero"]

#: Goldschmidt's steps (each squares the error, as Newton's would): relative error
#: 0.0591^16 < 2^-65 (then the g + 7 fraction bits limit it)
STEPS = 4
EXTRA_BITS = 28  # fraction bits of 1/b beyond 2f: keeps |a| 2^-(2f+28) small for big |a|


async def _trunc(x, m: int, bound: int, y=None):
    """Shares of about x / 2^m (probabilistic rounding) for field shares x with |x| < 2^bound,
    or of x y / 2^m (|x y| < 2^bound) when ``y`` is given: then the product and the
    truncation take one round together (``masks.open_product``). One opening of
    x (y) + 2^bound + r, r uniform with k bits more than the value (PRSS)."""
    field = x.field
    n = x.shape[0]
    k = mpc.options.sec_param
    r_lo = mpc._np_randoms(field, n, 1 << m)
    r_hi = mpc._np_randoms(field, n, 1 << (bound + 1 - m + k))
    if mpc.options.no_prss:
        r_lo, r_hi = await r_lo, await r_hi
    mask = field(1 << bound) + r_hi * field(1 << m) + r_lo
    c = await (open_ints(x + mask) if y is None else open_product(x, y, mask))
    top = field.array(c >> m, check=False)  # public ints (object array)
    return top - r_hi - field(1 << (bound - m))


def supported(stype: type) -> bool:
    """The protocol needs l - 1 >= 2f (else MPyC's own reciprocal applies); ``stype`` a
    secfxp type or its array type."""
    sec = getattr(stype, "sectype", stype)
    return sec.bit_length - 1 >= 2 * sec.frac_length


def divide(a, b):
    """a / b elementwise for secfxp arrays a, b of one shape (see the module docstring)."""
    return _divide(a, b, None, a.shape, False)


def divide_with_zero(a, b):
    """(a / b, [b == 0]) for secfxp arrays a, b of one length n: the quotients and the
    divisors' zero flags (secfxp 0/1), from one run of the protocol."""
    n = a.shape[0]
    out = _divide(a, b, None, (2 * n,), True)
    return out[:n], out[n:]


def divide_checked(a, b, valid, zero: bool = False):
    """a / b for secfxp arrays a, b, valid of one length n, checked: one secfxp array of
    n + 1, the quotients (0 where |a / b| >= 2^(l-f-1)) and, last, the number of valid rows
    that overflowed, secret (see the module docstring); `zero`: n more, the divisors' zero
    flags [b == 0] (secfxp 0/1)."""
    n = a.shape[0]
    return _divide(a, b, valid, (2 * n + 1 if zero else n + 1,), zero)


@asyncoro.mpc_coro
async def _divide(a, b, valid, shape, zero: bool):
    """Long because it is one protocol whose steps share masks and fields (numbered as in
    the module docstring)."""
    stype = type(a)
    await mpc.returnType((stype, False, shape))
    sec = stype.sectype
    l, f = sec.bit_length, stype.frac_length
    g = 2 * f
    if l - 1 < g:
        raise ValueError(f"fxpdiv.divide needs l - 1 >= 2f, got secfxp({l}, {f})")
    k = mpc.options.sec_param
    t = mpc.threshold
    h = EXTRA_BITS
    slack = (t + 1).bit_length() + 1       # the sum of t + 1 masks, plus an offset
    q_bound = (l - f) + 2 * g + h          # |a/b| 2^(2g+h) < 2^q_bound in step 6 (+1 bit
    #                                        for the approximation's error at the range's edge)
    drop = 2 * g + h - f                   # 2g + h fraction bits -> f
    cmp_l = 2 * l - f                      # |+-A - 2^(l-f-1) |B|| < 2^(cmp_l - 1)
    F1 = sec.field
    wide = wide_type(f, max(q_bound + 1 + k + slack + 1, cmp_l + k + 3))
    F2 = wide.field
    checked = valid is not None
    av = (await mpc.gather(a)).reshape(-1)
    bv = (await mpc.gather(b)).reshape(-1)
    n = av.shape[0]
    if n == 0:
        return F1.array(np.zeros(shape, dtype=object), check=False)
    half = 1 << (l - 1)
    moved = 3 if checked else 2  # A, B (and the valid flags) move into F2

    # 1. masks: moved n for the move into F2 (values < 2^l), n for the move back
    sender = mpc.pid <= t
    m_in = draw(moved * n, l + k) if sender else None
    # moved back with the quotients, exactly: the checked variant's count, the zero flags
    back = n + (1 if checked else 0) + (n if zero else 0)
    m_out = draw(back, q_bound + 1 + k) if sender else None
    f_in1 = input_masks(F1, m_in, moved * n)
    f_in2 = input_masks(F2, m_in, moved * n)
    f_out2 = input_masks(F2, m_out, back)
    f_out1 = input_masks(F1, [v >> drop for v in m_out[:n]] + m_out[n:] if sender else None,
                         back)

    # 3. (first: it is the longest, and runs beside step 2 and the daBits step 4 needs) bits
    #    of B + 2^(l-1); s = [B >= 0]; u = bits of |B| (B >= 0) or of |B| - 1 (B < 0)
    bits_started = started(small_bits(bv + F1(half), l))
    random_bits = dabits((l + 1) * n, F2)

    # 2. A, B into F2 (unscaled integers)
    r_in1, r_in2 = await summed(f_in1), await summed(f_in2)
    parts = [av.value, bv.value]
    if checked:
        parts.append((await mpc.gather(valid)).value.reshape(-1))
    ab = F1.array(np.concatenate(parts), check=False)
    c = await open_ints(ab + F1(half) + r_in1)
    c2 = F2.array(c, check=False) - r_in2 - F2(half)
    a2, b2 = c2[:n], c2[n:2 * n]

    (bits,) = await taken(bits_started)
    s = bits[l - 1]
    low = bits[:l - 1]

    # 4. one-hot of the leading one of u = low XOR (1 - s) (row i = bit i); row l-1: u == 0
    #    and B < 0 (B = -1)
    e2 = await _leading_one(low, s, F2, random_bits)  # (l + 1, n) raw 0/1 in F2
    # 5. the reciprocal 1/b with g + h fraction bits, by normalisation and Goldschmidt's iteration
    rec = await _reciprocal(b2, e2, l, f, F2)

    # 6. A (1/b) 2^(g+h) = (a/b) 2^(2g+h) (A has f fraction bits: scale it by 2^(g-f));
    #    drop 2g + h - f fraction bits while moving into F1: mask, open in F2, subtract in F1
    #    (the last product is taken in the round that opens it: masks.open_product)
    left, right, linear = a2 * F2(1 << (g - f)), rec, None
    if checked:  # the count (secret, at scale 2^f) is opened later with the other checks
        x = big_mul_started(left, right)  # its round overlaps with the comparison's
        left, right, linear = await _overflowed(x, a2, b2, c2[2 * n:], e2, wide, l, f, cmp_l)
    if zero:  # [B == 0] = 1 - the one-hot's sum (its B = -1 row included), at scale 2^f
        nonzero = np.sum(e2.value[:l], axis=0) % F2.modulus
        flags = F2.array((1 - nonzero) * (1 << f) % F2.modulus, check=False)
        left, right, linear = _appended(left, right, linear, flags)
    r_out2, r_out1 = await summed(f_out2), await summed(f_out1)
    c = await open_product(left, right, F2(1 << q_bound) + r_out2, linear)
    c = np.concatenate([c[:n] >> drop, c[n:] - (1 << q_bound) + (1 << (q_bound - drop))])
    q = F1.array(c, check=False) - r_out1 - F1(1 << (q_bound - drop))
    return F1.array(q.value.reshape(shape), check=False)


async def _overflowed(x, a2, b2, v2, e2, wide, l: int, f: int, cmp_l: int):
    """The checked variant's step, all in F2 = wide.field (x: the started product A (1/b)):
    factors (left, right) and a linear
    map whose image of left * right is x with the rows where |A| >= 2^(l-f-1) |B| and B != 0
    zeroed, followed by the number of such rows among the valid ones at scale 2^f (the
    product is taken where it is opened)."""
    F2 = wide.field
    n = a2.shape[0]
    sign = e2[l] * F2(2) - F2(1)                     # +1 for B >= 0, -1 for B < 0
    nonzero = F2.array(np.sum(e2.value[:l], axis=0) % F2.modulus, check=False)
    limit = await big_mul(b2, sign) * F2(1 << (l - f - 1))  # 2^(l-f-1) |B|
    both = wide.array(F2.array(np.concatenate([(a2 - limit).value, (-a2 - limit).value]),
                               check=False))
    below = await mpc.gather(mpc.np_sgn(both, l=cmp_l, LT=True))  # 0/1 at scale 2^(2f)
    inv = F2(pow(1 << (2 * f), -1, F2.modulus))
    over = await big_mul(F2(2) - (below[:n] + below[n:]) * inv, nonzero)
    vbit = v2 * F2(pow(1 << f, -1, F2.modulus))
    x = await mpc.gather(x)
    left = F2.array(np.concatenate([x.value, over.value]), check=False)
    right = F2.array(np.concatenate([(F2(1) - over).value, vbit.value]), check=False)
    return left, right, _kept_and_count(n, f)


def _appended(left, right, linear, rows):
    """The factors and linear map of step 6's opening with `rows` (field shares) opened too,
    unchanged, after what the map gives: their products are rows x 1."""
    F = left.field
    k = rows.shape[0]
    head = linear or (lambda prods: prods)
    left = F.array(np.concatenate([left.value, rows.value]), check=False)
    right = F.array(np.concatenate([right.value, np.ones(k, dtype=object)]), check=False)

    def linear_appended(prods):
        kept = head(F.array(prods.value[:-k], check=False))
        return F.array(np.concatenate([kept.value, prods.value[-k:]]), check=False)
    return left, right, linear_appended


def _kept_and_count(n: int, f: int):
    """The linear map [kept (n), counted (n)] -> [kept, sum(counted) 2^f] (n + 1)."""
    def linear(prods):
        F = prods.field
        count = int(np.sum(prods.value[n:]) % F.modulus) * (1 << f) % F.modulus
        return F.array(np.concatenate([prods.value[:n], [count]]), check=False)
    return linear


async def _leading_one(low: np.ndarray, s: np.ndarray, F2, random_bits) -> object:
    """Step 4: in F2, the one-hot of the leading one of the bits u = low XOR (1 - s) (low:
    (l - 1, n), row i = bit i), a row for B = -1 (u == 0 and B < 0) and the sign bit s
    (B >= 0); `random_bits`: the (l + 1) n daBits that move them.

    The suffix products of 1 - u (prod_{j >= i} (1 - u_j): the prefix OR from the top) are
    taken for both signs at once, of 1 - low (B >= 0) and of low (B < 0), and the sign picks
    one in the round after them, which also gives the B = -1 row: u itself (a product) is
    never taken."""
    l, n = low.shape[0] + 1, low.shape[1]
    suffix = np.stack([(1 - low) % sf.P, low % sf.P])  # (2, l - 1, n): s = 1, s = 0
    d = 1
    while d < l - 1:
        prod = await sf.mul(suffix[:, :-d], suffix[:, d:])
        suffix = np.concatenate([prod, suffix[:, -d:]], axis=1)
        d *= 2
    signs = np.stack([np.broadcast_to(s % sf.P, suffix[0].shape),
                      np.broadcast_to((1 - s) % sf.P, suffix[0].shape)])
    picked = await sf.mul(suffix, np.ascontiguousarray(signs))
    suffix = (picked[0] + picked[1]) % sf.P
    minus_one = picked[1][0]  # suffix[0] (1 - s) = (1 - s) prod_j low_j: s (1 - s) = 0
    above = np.concatenate([suffix[1:], np.ones((1, n), dtype=np.int64)], axis=0)
    onehot = (above - suffix) % sf.P
    e = np.concatenate([onehot, minus_one.reshape(1, n), s.reshape(1, n)], axis=0)
    return await small_to_big_bits(e, F2, random_bits)


async def _reciprocal(b2, e2, l: int, f: int, F2):
    """Step 5: R = (1/b) 2^(g+h) in F2 (g = 2f, h = EXTRA_BITS) from B in F2 and the one-hot
    e2 of its leading bit (with the B = -1 and sign rows)."""
    g, h = 2 * f, EXTRA_BITS
    n = b2.shape[0]
    # S = sign(B) 2^(l-2-p) (the row of B = -1 stands for p = -1); B S = |B| 2^(l-2-p)
    # lies in [2^(l-2), 2^(l-1)], so v = B S / 2^(l-1) is in [1/2, 1]
    weights = np.array([1 << (l - 2 - i) for i in range(l - 1)] + [1 << (l - 1)],
                       dtype=object).reshape(-1, 1)
    S = F2.array((e2.value[:l] * weights).sum(axis=0) % F2.modulus, check=False)
    S = await big_mul(S, e2[l] * F2(2) - F2(1))
    # each product below is truncated in the round that takes it (_trunc with two factors)
    v = await _trunc(b2, l - 1 - g, l + 1, S)  # g fraction bits
    # Goldschmidt's iteration from y0 = c0 - c1 v, the line closest to 1/v on [1/2, 1] in
    # relative error (1/17 at c1 = 32/17, c0 = 3 c1 / 2; here c1 = 241/128, error 0.0591):
    # with e0 = 1 - v y0, 1/v = y0 (1 + e0)(1 + e0^2)(1 + e0^4)..., each step's two products
    # (y (1 + e) and e^2) in one round. Everything holds frac = g + 7 fraction bits (y0
    # exactly); y < 2^6 even when B = 0 (then v = 0, e = 1 and y doubles at each step)
    frac = g + 7
    one = F2(1 << frac)
    y = F2.array(np.full(n, 723 << (g - 1), dtype=object), check=False) - v * F2(241)
    e = one - await _trunc(v, g, 2 * g + 10, y)
    for step in range(STEPS):
        if step == STEPS - 1:  # the last step needs no e^2
            y = await _trunc(y, frac, 2 * frac + 8, one + e)
            break
        both = await _trunc(F2.array(np.concatenate([y.value, e.value]), check=False), frac,
                            2 * frac + 8,
                            F2.array(np.concatenate([(one + e).value, e.value]), check=False))
        y, e = both[:n], both[n:]
    # R = (1/b) 2^(g+h) = y 2^frac S 2^(f+h) / 2^(l-1+7), as B = b 2^f and 1/B = y S / 2^(l-1)
    return await _trunc(y, l - 1 - f - h + 7, g + l + 15, S)
