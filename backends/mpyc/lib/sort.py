"""Oblivious sorting of a table's rows, and the operators that are one sort: ORDER BY, DISTINCT.

:func:`sort_table` sorts a table's rows stably by (valid desc, keys...) with the radix sort of
``radix.py`` (Asharov et al., CCS 2022: one shuffle-based pass per key bit, no comparisons,
linear in n per key bit; key widths from ``key_bits`` hints or the table's key ranges, and
the owners' key bits where they input them). ``method="network"`` runs the former Batcher
merge-exchange network instead (what ``mpc.np_sort`` runs: ~n log2(n)^2 / 4 secfxp
compare-exchanges), kept as the benchmark baseline. Every sort opens only uniformly random
permutations: it reveals nothing beyond the public n.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from mpyc.runtime import mpc

from . import radix
from .keyspec import KeySpec, spec_for
from .table import SecTable, copy, ones, sort_keys, stack, unstack, with_companions, zeros

__all__ = ["SORT_METHOD", "adjacent_equal", "distinct", "key_spec", "order_by", "sort_table",
           "sort_table_network"]


@functools.lru_cache(maxsize=64)
def _network(n: int) -> tuple[tuple[np.ndarray, int], ...]:
    """Layers (I, d) of Batcher's merge-exchange sort (Knuth 5.2.2 M), as in mpc.np_sort:
    compare-exchange positions I and I + d. Public, data-independent."""
    layers = []
    if n < 2:
        return ()
    t = (n - 1).bit_length()
    p = 1 << (t - 1)
    while p:
        d, q, r = p, 1 << (t - 1), 0
        while d:
            index = np.fromiter((i for i in range(n - d) if i & p == r), dtype=int)
            if index.size:
                layers.append((index, d))
            d, q, r = q - p, q >> 1, p
        p >>= 1
    return tuple(layers)


def _lex_less(
    k1: list[Any], k0: list[Any], bits: list[bool], widths: list[int | None] | None = None
) -> Any:
    """Secret 0/1: (k1[0], k1[1], ...) < (k0[0], k0[1], ...) lexicographically.

    k1[i], k0[i] are 1-D secure arrays (already negated for descending keys; 0/1 bit keys
    are flagged in ``bits`` and compared with one multiplication instead of a comparison).
    All non-bit comparisons of a layer run in one np_less and one np_equal call.
    """
    r = len(k1)
    gen = [i for i in range(r) if not bits[i]]
    lts: list[Any] = [None] * r
    eqs: list[Any] = [None] * r
    if gen:
        a = mpc.np_stack([k1[i] for i in gen]) if len(gen) > 1 else k1[gen[0]]
        b = mpc.np_stack([k0[i] for i in gen]) if len(gen) > 1 else k0[gen[0]]
        # A known bound |k1 - k0| < 2^(w-1) (scaled by 2^f) lets np_sgn use w-bit masks instead
        # of l-bit ones: the cost of a comparison is about linear in the bit length.
        ws = [widths[i] if widths else None for i in gen]
        w = None if None in ws else max(ws)
        lt_all = mpc.np_sgn(a - b, l=w, LT=True) if w else mpc.np_less(a, b)
        eq_gen = [i for i in gen if i < r - 1]  # the last key's equality is never needed
        if eq_gen:
            if len(gen) > 1:
                sel = np.array([gen.index(i) for i in eq_gen])
                eq_all = mpc.np_equal(a[sel], b[sel])
            else:
                eq_all = mpc.np_equal(a, b)
        for j, i in enumerate(gen):
            lts[i] = lt_all[j] if len(gen) > 1 else lt_all
            if i in eq_gen:
                eqs[i] = eq_all[eq_gen.index(i)] if len(gen) > 1 else eq_all
    for i in range(r):
        if bits[i]:
            x, y = k1[i], k0[i]
            xy = x * y
            lts[i] = y - xy  # x=0, y=1
            eqs[i] = 1 - x - y + 2 * xy
    res = lts[r - 1]
    for i in range(r - 2, -1, -1):
        res = lts[i] + eqs[i] * res
    return res


def _sort_matrix(m: Any, keys: list[tuple[int, bool, bool, int | None]]) -> Any:
    """Obliviously sort the columns of matrix m (shape (c, n); one table row per column of m)
    by the key rows ``keys`` = [(row index in m, descending, is_0/1_bit, width), ...],
    lexicographic; width (or None) is a public bound: |key difference| * 2^f < 2^(width-1).

    Batcher merge-exchange network, one vectorised compare-exchange per layer: per layer one
    batched np_less/np_equal over all keys, r-1 multiplications to combine keys, and one
    multiplication to swap whole rows. Not stable: ties end in an input-dependent order.
    """
    n = m.shape[1]
    if n < 2 or not keys:
        return m
    m = copy(m)
    rows = np.array([k[0] for k in keys])
    sign = [(-1 if k[1] else 1) for k in keys]
    bits = [bool(k[2]) for k in keys]
    widths = [k[3] for k in keys]
    for index, d in _network(n):
        b0 = m[:, index]
        b1 = m[:, index + d]
        kb0 = b0[rows]
        kb1 = b1[rows]
        k0, k1 = [], []
        for j in range(len(keys)):
            x0, x1 = kb0[j], kb1[j]
            if bits[j]:
                if sign[j] < 0:  # descending bit: compare complements
                    x0, x1 = 1 - x0, 1 - x1
            elif sign[j] < 0:
                x0, x1 = -x0, -x1
            k0.append(x0)
            k1.append(x1)
        c = _lex_less(k1, k0, bits, widths)  # swap when row at I+d sorts before row at I
        h = c * (b1 - b0)
        m = mpc.np_update(m, (slice(None), index), b0 + h)
        m = mpc.np_update(m, (slice(None), index + d), b1 - h)
    return m


def sort_table_network(
    t: SecTable,
    keys: list[tuple[str, bool]],
    extra: dict[str, Any] | None = None,
    widths: dict[str, int] | None = None,
) -> tuple[dict[str, Any], Any]:
    """Sort t's rows by (valid desc, keys...) and return (sorted columns incl. extra, valid)."""
    names = list(t.columns)
    extra = extra or {}
    all_names = names + list(extra) + ["\0valid"]
    cols = [t.columns[c] for c in names] + list(extra.values()) + [t.valid]
    m = stack(cols, t.sectype, t.n)
    pos = {c: i for i, c in enumerate(all_names)}
    spec = [(pos["\0valid"], True, True, None)]
    for name, desc in keys:
        if name not in pos:
            raise KeyError(f"sort key {name!r} is not a column")
        spec.append((pos[name], desc, False, (widths or {}).get(name)))
    m = _sort_matrix(m, spec)
    out = unstack(m, all_names)
    valid = out.pop("\0valid")
    return out, valid


SORT_METHOD = "radix"
"""Default sorting protocol of the operators: "radix" (``radix.py``: shuffle-based radix sort,
linear per key bit) or "network" (Batcher's merge-exchange network on secfxp comparisons,
the previous implementation, kept as the benchmark baseline). Operators also take
``method=``."""


def key_spec(t: SecTable, name: str, col: Any, key_bits: dict[str, Any] | None) -> Any:
    """Public key range of a sort key: ``key_bits`` > the table's ranges > the default
    (64-bit ints for integral columns, 96-bit scaled values otherwise)."""
    f = t.sectype.frac_length
    integral = bool(getattr(col, "integral", False))
    if key_bits and name in key_bits:
        return spec_for(key_bits[name], integral, f)
    if name in t.ranges:
        return t.ranges[name]
    return spec_for(None, integral, f)


def sort_table(
    t: SecTable,
    keys: list[tuple[str, bool]],
    key_bits: dict[str, Any] | None = None,
    method: str | None = None,
    same: bool = False,
) -> tuple[dict[str, Any], Any, Any]:
    """Sort t's rows stably by (valid desc, keys...): (sorted columns, valid, same) where
    ``same`` (only if requested; secret 0/1 of length n-1) says row i+1 equals row i on
    (valid, keys). Radix sort by default (see ``radix.py``); "network" = Batcher. Key bits
    input by the owners (``t.bits``, see ``table.KeyBits``) are used where they fit a key's
    range; the rest are extracted."""
    method = method or SORT_METHOD
    names = list(t.columns)
    for name, _ in keys:
        if name not in t.columns:
            raise KeyError(f"sort key {name!r} is not a column")
    n = t.n
    if method == "network":
        # the baseline gets the same key-width knowledge: narrower comparisons (np_sgn)
        f = t.sectype.frac_length
        widths = {}
        for k, _ in keys:
            sp = key_spec(t, k, t.columns[k], key_bits)
            widths[k] = sp.bits + (f if sp.integral else 0) + 2
        cols, valid = sort_table_network(t, keys, None, widths)
        sm = None
        if same:
            sm = adjacent_equal([cols[k] for k, _ in keys], n) if keys and n > 1 else None
            if sm is not None and n > 1:
                sm = sm * valid[1:] + (1 - valid[1:]) * (1 - valid[:-1])
        return cols, valid, sm
    if method != "radix":
        raise ValueError(f"unknown sort method {method!r}")
    stype = t.sectype
    ints = [bool(getattr(t.columns[c], "integral", False)) for c in names]
    if n < 2:
        sm = zeros(stype, 0) if same else None
        return dict(t.columns), t.valid, sm
    m = stack([t.columns[c] for c in names] + [t.valid], stype, n)
    kcols = [t.valid] + [t.columns[k] for k, _ in keys]
    specs = [KeySpec(0, 1)] + [key_spec(t, k, t.columns[k], key_bits) for k, _ in keys]
    desc = [True] + [bool(d) for _, d in keys]
    cached = [None] + [t.key_bits(k, sp) for (k, _), sp in zip(keys, specs[1:], strict=True)]
    out = radix.sort_rows(kcols, specs, desc, m, same_keys=len(kcols) if same else 0,
                          cached=cached if any(c is not None for c in cached) else None)
    cols = {}
    for i, c in enumerate(names):
        a = out[i]
        a.integral = ints[i]
        cols[c] = a
    valid = out[len(names)]
    valid.integral = True
    sm = None
    if same:
        sm = out[len(names) + 1][: n - 1]
        sm.integral = True
    return cols, valid, sm


def adjacent_equal(cols: list[Any], n: int) -> Any:
    """Secret 0/1 of length n-1: row i+1 equals row i on all cols (one np_equal batch)."""
    if not cols:
        return None
    a = mpc.np_stack([c[1:] for c in cols])
    b = mpc.np_stack([c[:-1] for c in cols])
    e = mpc.np_equal(a, b)
    res = e[0]
    for i in range(1, len(cols)):
        res = res * e[i]
    return res


def distinct(
    t: SecTable,
    columns: list[str],
    key_bits: dict[str, Any] | None = None,
    method: str | None = None,
) -> SecTable:
    """SELECT DISTINCT columns: stable oblivious radix sort by (valid desc, columns) (see
    :func:`aggregate`), then each valid row that differs from its predecessor stays valid.

    Output length n (only the number of distinct rows stays secret); output columns: the
    given columns. Cost: one radix sort (one pass per key bit) + equality flags from the
    sorted bits. Reveals nothing.
    """
    for c in columns:
        if c not in t.columns:
            raise KeyError(f"distinct: no column {c!r}")
    keys = sort_keys(t, [(c, False) for c in columns])
    columns = with_companions(t, columns)
    sub = SecTable({c: t.columns[c] for c in columns}, t.valid,
                   ranges={c: r for c, r in t.ranges.items() if c in columns},
                   bits={c: b for c, b in t.bits.items() if c in columns})
    n = t.n
    if n < 2:
        return sub
    cols, valid, same = sort_table(sub, keys, key_bits, method, same=True)
    first = mpc.np_concatenate([ones(t.sectype, 1), 1 - same])
    return SecTable(cols, valid * first, ranges=dict(sub.ranges))


def order_by(
    t: SecTable,
    keys: list[tuple[str, bool]],
    limit: int | None = None,
    key_bits: dict[str, Any] | None = None,
    method: str | None = None,
    offset: int = 0,
) -> SecTable:
    """ORDER BY keys (True = descending) [LIMIT limit [OFFSET offset]]: stable oblivious
    radix sort by
    (valid desc, keys) (descending keys sort on complemented bits).

    Valid rows come first, in key order (ties keep their input order with the radix sort;
    unspecified with ``method="network"``); with a public ``limit`` only the first
    min(n, limit) rows are kept (output length min(n, limit), else n; the number of valid
    rows among them stays secret); a public ``offset`` first drops that many rows (the valid
    rows come first, so these are the first valid rows). Cost: one sort as in :func:`aggregate` (linear in n per
    key bit, so top-k is a full sort followed by a free slice). Reveals nothing beyond the
    public output length.
    """
    cols, valid, _ = sort_table(t, sort_keys(t, keys), key_bits, method)
    if limit is not None:
        if limit < 0:
            raise ValueError("LIMIT must be non-negative")
        lo = min(max(offset, 0), t.n)
        k = min(lo + limit, t.n)
        ints = {c: bool(getattr(a, "integral", False)) for c, a in cols.items()}
        cols = {c: a[lo:k] for c, a in cols.items()}
        for c, a in cols.items():
            a.integral = ints[c]
        valid = valid[lo:k]
        valid.integral = True
    return SecTable(cols, valid, valid_first=True, ranges=dict(t.ranges))
