"""Public sizes at which the secure operators switch algorithms.

Kept apart from the operators so that the backend's description of them (``describe.py``,
what ``explain`` prints) reads the very numbers the operators use without importing MPyC.
Each choice depends on public lengths only, so it reveals nothing.
"""

from __future__ import annotations

__all__ = ["NESTED_LOOP_MAX", "RANGE_BITS", "SECFXP_BITS", "SECFXP_FRACTION",
           "SEMIJOIN_NESTED_LOOP_MAX", "SMALL_GROUP_MAX"]

SECFXP_BITS = 96       # l: total bits of the one secure fixed-point type
SECFXP_FRACTION = 32   # f: fractional bits (ints exact up to 2^63, fractions to 2^-32)
RANGE_BITS = SECFXP_BITS - SECFXP_FRACTION - 1
"""Every secure value has |v| < 2^RANGE_BITS (2^63): what owners check when they share, and
what the secure overflow checks (overflow.py) test where the bounds prove nothing."""

NESTED_LOOP_MAX = 256
"""join: with n * m at most this, the n x m nested-loop join is used even when a unique side
is declared (it is faster for tiny inputs: one batched equality test, no sort), and no
many-to-many join (which reveals its size) is needed."""

SEMIJOIN_NESTED_LOOP_MAX = 256
"""semi_join: with n * m at most this, the nested loop is used (one batched equality test, no
sort): measured faster than the radix sort's bit extraction and passes there (the break-even
is near 16 x 16 rows with 64-bit keys; see ``semijoin.py``)."""

SMALL_GROUP_MAX = 64
"""aggregate: up to this many rows (and no MIN/MAX), group by comparing all pairs of rows
(``aggregate._aggregate_small``: a constant number of rounds) instead of a radix sort (a few
rounds per key bit: hundreds for 64-bit keys). Typical for combining the owners' partial
aggregates."""
