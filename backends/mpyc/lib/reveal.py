"""Opening the result to its recipients only: :func:`reveal`.

This is the one place (besides the input row counts of ``input.share_input`` and, for the
many-to-many join, the join size) where anything secret is opened, and it is opened only to
the parties named as receivers.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
from mpyc.runtime import mpc

from . import encoding, radix
from .encoding import NULL_FLAG
from .sort import SORT_METHOD, sort_table_network
from .table import SecTable, const, pieces, stack, with_companions

__all__ = ["RANDOM_BITS", "reveal"]

RANDOM_BITS = 40  # secret random tiebreak for an unordered reveal with method="network"


async def reveal(
    t: SecTable, receivers: list[int], columns: list[str], ordered: bool,
    method: str | None = None,
) -> np.ndarray | None:
    """Open the valid rows of ``columns`` to the parties in ``receivers`` only.

    Procedure: (1) bring valid rows to the front obliviously (compaction): if ``ordered``,
    by one stable radix pass on the valid bit, so valid rows keep their order (skipped when
    the table comes straight from ``sort.order_by``, which already put valid rows first);
    otherwise the rows are first shuffled with the resharing shuffle (``shuffle.py``) and
    then compacted the same way, so a row's output position is uniformly random,
    independent of which input row or party it came from. Cost: one 1-bit extraction, one
    multiplication, one or two shuffles and one opening of a random permutation -- linear
    in n. (``method="network"``: the former Batcher sorts on (valid, position) or (valid,
    a secret random 40-bit number).) (2) Multiply every column by valid, so invalid rows
    become all-zero.
    (3) Open the (len(columns)+1) x n matrix [columns; valid] to the receivers only
    (``mpc.output(..., receivers=...)``); the other parties send their shares and learn nothing.

    Reveals to the receivers: the valid rows (in a data-independent order when not ordered)
    and their number k (also evident from the zero padding) -- n is public anyway; to the
    other parties: nothing. Cost: one sort (skipped for order_by output) + one round.

    Returns, at a receiver, a k x len(columns) object matrix of Python numbers: int for every
    integral value (exact, reconstructed from the field element, never via float), float
    otherwise (suitable for ``encoding.decode_column``); None at every other party.
    """
    for c in columns:
        if c not in t.columns:
            raise KeyError(f"reveal: no column {c!r}")
    logical = list(columns)
    columns = with_companions(t, logical)
    receivers = [receivers] if isinstance(receivers, int) else list(receivers)
    stype = t.sectype
    n = t.n
    f = stype.frac_length
    if n == 0:
        return np.empty((0, len(logical)), dtype=object) if mpc.pid in receivers else None
    sub = SecTable({c: t.columns[c] for c in columns}, t.valid)
    cols, valid = _valid_first(sub, columns, ordered and t.valid_first, ordered, method)
    # Zero the invalid rows: the receivers then see nothing of filtered-out data. The flags
    # are 0/1, so the product is exact (no truncation): a revealed sum beyond the type's
    # range (analyses/bounds.py, _revealed_only) opens as the field holds it.
    valid.integral = True
    m = valid.reshape(1, n)
    if columns:
        m = mpc.np_concatenate([stack([cols[c] for c in columns], stype, n) * valid, m], axis=0)
    opened = await mpc.output(m, receivers=receivers, raw=True)
    if mpc.pid not in receivers:
        return None
    ints = np.asarray(opened.signed_(), dtype=object).reshape(len(columns) + 1, n)
    return _numbers(t, ints, columns, logical, f)


def _valid_first(sub: SecTable, columns: list[str], sorted_already: bool, ordered: bool,
                 method: str | None) -> tuple[dict[str, Any], Any]:
    """The table's columns and valid flags with the valid rows first (see :func:`reveal`,
    step 1): in their order when ``ordered``, else in a uniformly random order."""
    stype = sub.sectype
    n = sub.n
    f = stype.frac_length
    method = method or SORT_METHOD
    if sorted_already or n == 1:  # one row has no order to hide, none to compact
        return sub.columns, sub.valid
    if method == "radix":
        m = stack([sub.columns[c] for c in columns] + [sub.valid], stype, n)
        out = radix.compact(m, len(columns), shuffle_first=not ordered)
        valid = out[len(columns)]
        valid.integral = True
        return {c: out[i] for i, c in enumerate(columns)}, valid
    if ordered:
        pos = const(stype.sectype, np.arange(n, dtype=object), integral=True)
        w = n.bit_length() + f + 2  # positions differ by < n
        cols, valid = sort_table_network(sub, [("\0pos", False)], {"\0pos": pos},
                                         {"\0pos": w})
        cols.pop("\0pos")
        return cols, valid
    rnd = _random_tiebreak(stype, n, RANDOM_BITS)
    w = RANDOM_BITS + f + 2  # random numbers differ by < 2^RANDOM_BITS
    cols, valid = sort_table_network(sub, [("\0rnd", False)], {"\0rnd": rnd}, {"\0rnd": w})
    cols.pop("\0rnd")
    return cols, valid


def _numbers(t: SecTable, ints: np.ndarray, columns: list[str], logical: list[str],
             f: int) -> np.ndarray:
    """A receiver's k x len(logical) matrix of Python numbers from the opened field
    integers: the valid rows, long texts joined from their pieces, NULLs as None."""
    vflags = [_field_to_number(int(v), f) for v in ints[-1]]
    k = int(sum(vflags))
    if vflags[:k] != [1] * k or any(vflags[k:]):
        raise RuntimeError("reveal: valid flags are not 0/1 with valid rows first")
    values = {c: [_field_to_number(int(ints[j, i]), f) for i in range(k)]
              for j, c in enumerate(columns)}
    out = np.empty((k, len(logical)), dtype=object)
    for j, c in enumerate(logical):
        ps = pieces(t, c)
        if len(ps) == 1:
            col = values[c]
        else:  # a long text: join its pieces, piece 0 most significant (see encoding.py)
            col = [0] * k
            for p in ps:
                col = [(x << encoding.PIECE_BITS) | int(y) for x, y in zip(col, values[p])]
        if c + NULL_FLAG in values:
            col = [None if flag else x for x, flag in zip(col, values[c + NULL_FLAG])]
        out[:, j] = col
    return out


def _random_tiebreak(stype: type, n: int, bits: int = 40) -> Any:
    """n secret uniformly random integers in [0, 2^bits) (linear combination of random bits;
    one batch of random bits, no comparison)."""
    r = mpc.np_random_bits(stype.sectype, bits * n).reshape(n, bits)
    pow2 = np.array([1 << i for i in range(bits)], dtype=object)
    return mpc.np_sum(r * pow2, axis=1)


def _field_to_number(v: int, f: int) -> int | Fraction:
    """A revealed fixed-point integer as its exact value: a Python int when integral, else a
    Fraction (decode_column rounds a decimal to its scale from it exactly; float64 would lose
    digits above 2^53)."""
    if v % (1 << f) == 0:
        return v >> f
    return Fraction(v, 1 << f)
