"""The field, the encoding and the Shamir sharing of contributors' values (the API contract).

Every value v becomes the field element x = round(v * 2^32) mod p (a categorical value: its
index in the column's `values`, times 2^32), with p the prime of MPyC's SecFxp(96, 32) field,
so the shares ARE MPyC shares of secfxp values and the servers compute on them as they are.
Shamir sharing with threshold t = (m - 1) // 2 for m servers: a random polynomial of degree t
per value, coefficients uniform in [0, p) from `secrets`; server i (0-based, in the session's
order) gets f(i + 1), as mpyc.thresha does. Decimals are scaled exactly (never via float).
"""

from __future__ import annotations

import secrets
from decimal import Decimal, InvalidOperation
from fractions import Fraction

#: the prime of MPyC's mpc.SecFxp(96, 32).field (tests/test_contributors.py checks it), kept
#: here so that contributors' clients need not import MPyC's runtime
MODULUS = 1461501637330902918203684832716283019655932542919
FRAC_BITS = 32
SECFXP_BITS = 96


def encode_number(value: Fraction | Decimal | int) -> int:
    """x = round(v * 2^32) mod p, exactly."""
    scaled = Fraction(value) * (1 << FRAC_BITS)
    return round(scaled) % MODULUS


def decode_number(x: int) -> Fraction:
    """The value a field element encodes (the inverse of encode_number; negatives above p/2)."""
    x %= MODULUS
    if x > MODULUS // 2:
        x -= MODULUS
    return Fraction(x, 1 << FRAC_BITS)


def parse_decimal(text: str) -> Decimal | None:
    """A number cell's text as an exact Decimal, or None when it is not a finite number."""
    try:
        d = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def share_values(values: list[int], m: int, t: int) -> list[list[int]]:
    """Shamir shares of field elements: result[i][j] = f_j(i + 1) for server i, value j."""
    if not 0 <= t < m:
        raise ValueError(f"threshold {t} with {m} servers")
    p = MODULUS
    out = [[0] * len(values) for _ in range(m)]
    for j, secret in enumerate(values):
        coefs = [secret % p] + [secrets.randbelow(p) for _ in range(t)]
        for i in range(m):
            x, acc = i + 1, 0
            for c in reversed(coefs):  # Horner
                acc = (acc * x + c) % p
            out[i][j] = acc
    return out


def reconstruct(shares: dict[int, int]) -> int:
    """The secret from {server index (0-based): share} of at least t + 1 servers (Lagrange at
    0); for tests and audits, never run by a single server on real data."""
    p = MODULUS
    xs = {i + 1: s for i, s in shares.items()}
    total = 0
    for xi, si in xs.items():
        num, den = 1, 1
        for xj in xs:
            if xj != xi:
                num = num * (-xj) % p
                den = den * (xi - xj) % p
        total = (total + si * num * pow(den, -1, p)) % p
    return total
