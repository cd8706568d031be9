"""GROUP BY on secret keys, and aggregates over a whole table.

``aggs`` everywhere: (output name, func, input column) with func in sum/count/min/max;
count's input is ignored unless it has a NULL flag (then COUNT(col) counts its non-NULL rows).
AVG, STDDEV... are composed by the caller from sums and counts. An input with a NULL flag
(``c~null``) skips its NULL rows, and SUM/MIN/MAX of a group without a non-NULL row is NULL
(an output flag ``o~null``).

Three algorithms, chosen from public lengths only (see :func:`aggregate`): no keys (one
output row), few rows (all pairs compared, a constant number of rounds) and the sort-based
group-by (linear per key bit). Group-bys over public keys are in ``public_keys.py``, over a
declared public domain in ``onehot.py``. None reveals anything beyond public lengths.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpyc.runtime import mpc
from mpyc.sectypes import SecureArray, SecureObject

from .encoding import NULL_FLAG
from .keyspec import TYPE_RANGES
from .limits import SMALL_GROUP_MAX
from .sort import SORT_METHOD, sort_table
from .table import (SecTable, const, null_flag, ones, pieces, sort_keys, stack,
                    with_companions, zeros)
from .zerotest import is_zero_count

__all__ = ["AGG_FUNCS", "SMALL_GROUP_MAX", "aggregate", "check_aggs", "masked_min",
           "names_in_order", "null_outputs", "scalar_to_array", "segmented_sums"]

AGG_FUNCS = ("sum", "count", "min", "max")
Aggs = list[tuple[str, str, str | None]]


def check_aggs(t: SecTable, aggs: Aggs) -> None:
    """Each aggregate's function is known and its input column exists (KeyError, ValueError)."""
    for out, func, col in aggs:
        if func not in AGG_FUNCS:
            raise ValueError(f"aggregate {out!r}: unknown function {func!r}")
        if func != "count" and col is None:
            raise ValueError(f"aggregate {out!r}: {func} needs an input column")
        if col is not None and col not in t.columns:
            raise KeyError(f"aggregate {out!r}: no column {col!r}")


def aggregate(
    t: SecTable,
    keys: list[str],
    aggs: Aggs,
    key_bits: dict[str, Any] | None = None,
    method: str | None = None,
) -> SecTable:
    """GROUP BY on secret keys (or a whole-table aggregate when ``keys`` is empty).

    keys == []: output length 1, valid = 1 (SQL returns one row even for an empty input).
    sum = sum of value*valid (linear, free), count = sum(valid), min/max over valid rows by a
    tree reduction (n-1 comparisons, log2 n rounds); when no row is valid: count = 0 and
    sum/min/max NULL. Reveals nothing.

    keys != []: output length n (padded; only the number of groups stays secret). Up to
    ``SMALL_GROUP_MAX`` rows without MIN/MAX: all pairs of rows compared
    (:func:`_aggregate_small`). Otherwise: stable oblivious radix sort of (keys, aggregate
    inputs) by (valid desc, keys) (``sort.sort_table``: one shuffle-based pass per key bit,
    no comparisons; key widths from ``key_bits`` or the table's key ranges, default 64 bits
    per integer key), adjacent-equality flags from the sorted key bits (XOR + product tree in
    the small field, then converted to a secfxp 0/1), segmented prefix sums/counts (log2 n rounds of
    multiplications), and per MIN/MAX column one more radix sort by (valid desc, keys,
    value) whose group-last rows hold the extreme (value bits from ``key_bits``/ranges, else
    64 or 96; with ``method="network"``: segmented prefix minima, ~n log2 n comparisons),
    then the last row of each group of valid rows is marked valid and carries the key and
    the aggregates. Invalid output rows hold unspecified values. Reveals nothing (the sort
    opens only uniformly random permutations). ``method="network"`` uses the former Batcher
    sort instead. Output columns: the keys, then the aggregates, in the given order.
    """
    check_aggs(t, aggs)
    stype = t.sectype
    for o, f, c in aggs:
        if f in ("min", "max") and len(pieces(t, c)) > 1:
            raise ValueError(f"aggregate {o!r}: {f.upper()} of a text longer than 7 bytes is "
                             f"not supported inside MPC")
    nulls = {c: null_flag(t, c) for _, _, c in aggs
             if c is not None and null_flag(t, c) is not None}
    if not keys:
        return _aggregate_all(t, aggs, nulls)
    for k in keys:
        if k not in t.columns:
            raise KeyError(f"group key {k!r} is not a column")
    key_cols = with_companions(t, keys)
    if t.n == 0:
        empty = key_cols + [a[0] for a in aggs] + \
            [o + NULL_FLAG for o, f, c in aggs if f != "count" and c in nulls]
        return SecTable({c: zeros(stype, 0) for c in empty}, zeros(stype, 0))
    if t.n <= SMALL_GROUP_MAX and (method or SORT_METHOD) == "radix" and \
            not any(f in ("min", "max") for _, f, _ in aggs):
        return _aggregate_small(t, key_cols, aggs, nulls)
    return _aggregate_sorted(t, keys, key_cols, aggs, nulls, key_bits, method)


def _aggregate_sorted(t: SecTable, keys: list[str], key_cols: list[str], aggs: Aggs,
                      nulls: dict[str, Any], key_bits: dict[str, Any] | None,
                      method: str | None) -> SecTable:
    """The sort-based group-by of :func:`aggregate` (keys, n > 0)."""
    stype = t.sectype
    n = t.n
    arg_cols = [c for _, _, c in aggs if c is not None]
    sub = SecTable({c: t.columns[c] for c in dict.fromkeys(
        key_cols + arg_cols + [c + NULL_FLAG for c in nulls])}, t.valid, ranges=t.ranges,
        bits=t.bits)
    by_keys = sort_keys(t, [(k, False) for k in keys])
    sorted_cols, valid, same = sort_table(sub, by_keys, key_bits, method, same=True)
    # same[i]: row i+1 has the same (valid, keys) as row i; valid rows come first, so an
    # invalid row never joins a group of valid rows.
    if same is not None and n > 1:
        start = mpc.np_concatenate([ones(stype, 1), 1 - same])
        last = valid * mpc.np_concatenate([1 - same, ones(stype, 1)])
    else:
        start = ones(stype, n)
        last = valid
    out = {k: sorted_cols[k] for k in key_cols}
    nn_count = _segment_sums(out, sorted_cols, valid, start, aggs, nulls)
    mins = [(o, f, c) for o, f, c in aggs if f in ("min", "max")]
    if mins and (method or SORT_METHOD) == "radix":
        for o, f, c in mins:
            out[o] = _group_extreme(t, sub, key_cols, by_keys, f, c, nulls, key_bits, method)
    elif mins:
        if nulls:
            raise ValueError("MIN/MAX of a nullable column needs the radix method")
        x = stack([(-1 if f == "max" else 1) * sorted_cols[c] for _, f, c in mins], stype, n)
        mn = _seg_min_scan(x, start)
        for i, (o, f, _) in enumerate(mins):
            out[o] = -mn[i] if f == "max" else mn[i]
    null_outputs(out, aggs, nulls, nn_count)
    order = key_cols + [o for o, _, _ in aggs] + [o + NULL_FLAG for o, _, _ in aggs
                                                  if o + NULL_FLAG in out]
    return SecTable({c: out[c] for c in order}, last,
                    ranges={k: t.ranges[k] for k in key_cols if k in t.ranges})


def _segment_sums(out: dict[str, Any], sorted_cols: dict[str, Any], valid: Any, start: Any,
                  aggs: Aggs, nulls: dict[str, Any]) -> dict[str, Any]:
    """SUM and COUNT outputs by segmented prefix sums over the sorted rows (into ``out``);
    returns the non-NULL row count per NULL-able argument."""
    stype = type(valid)
    n = valid.shape[0]
    present = {c: 1 - sorted_cols[c + NULL_FLAG] for c in nulls}  # 1 where the arg is not NULL
    sums = [(o, c) for o, f, c in aggs if f == "sum"]
    counts = [(o, c) for o, f, c in aggs if f == "count"]
    nn_args = list(dict.fromkeys(c for _, f, c in aggs if c in nulls))
    sum_rows = [sorted_cols[c] * present[c] if c in nulls else sorted_cols[c] for _, c in sums]
    sum_rows += [valid] + [present[c] for c in nn_args]  # counts: all rows, non-NULL rows
    s = segmented_sums(stack(sum_rows, stype, n), start)
    for i, (o, _) in enumerate(sums):
        out[o] = s[i]
    nn_count = {c: s[len(sums) + 1 + i] for i, c in enumerate(nn_args)}
    for o, c in counts:
        out[o] = nn_count[c] if c in nulls else s[len(sums)]
    return nn_count


def _group_extreme(t: SecTable, sub: SecTable, key_cols: list[str], by_keys: list,
                   func: str, c: str, nulls: dict[str, Any], key_bits: dict[str, Any] | None,
                   method: str | None) -> Any:
    """MIN or MAX of column ``c`` per group by one more radix sort, by (valid desc, keys,
    [not NULL,] value): groups occupy the same positions as in the main sort, and the last
    row of a group holds its maximum (value ascending) or minimum (value descending), a NULL
    only if the whole group is NULL. No comparisons."""
    extra = {"\0v": sub.columns[c]}
    ranges = {"\0v": sub.ranges[c]} if c in sub.ranges else {}
    vbits = {"\0v": sub.bits[c]} if c in sub.bits else {}  # same array: same bits
    vkeys = [("\0v", func == "min")]
    if c in nulls:
        extra["\0nn"] = 1 - sub.columns[c + NULL_FLAG]
        ranges["\0nn"] = TYPE_RANGES["bool"]
        vkeys = [("\0nn", False)] + vkeys
    table = SecTable(extra | {k: sub.columns[k] for k in key_cols}, t.valid,
                     ranges=ranges | {k: sub.ranges[k] for k in key_cols if k in sub.ranges},
                     bits=vbits | {k: sub.bits[k] for k in key_cols if k in sub.bits})
    hints = (key_bits or {}) | ({"\0v": key_bits[c]} if key_bits and c in key_bits else {})
    sc, _, _ = sort_table(table, by_keys + vkeys, hints, method)
    return sc["\0v"]


def null_outputs(out: dict[str, Any], aggs: Aggs, nulls: dict[str, Any],
                 nn_count: dict[str, Any], rows: int | None = None) -> None:
    """The NULL flags ``o~null`` of SUM/MIN/MAX outputs over NULL-able arguments (into
    ``out``): 1 where the group has no non-NULL value (one batch of zero tests). ``rows``:
    every count, of every output row, is a whole number in [0, rows] (then the cheaper
    ``zerotest.is_zero_count``)."""
    nn_args = list(nn_count)
    if not nn_args:
        return
    counts = mpc.np_stack([nn_count[c] for c in nn_args])
    empty = mpc.np_equal(counts, 0) if rows is None else is_zero_count(counts, rows)
    for o, f, c in aggs:
        if f != "count" and c in nulls:
            out[o + NULL_FLAG] = empty[nn_args.index(c)]


def _aggregate_small(t: SecTable, key_cols: list[str], aggs: Aggs,
                     nulls: dict[str, Any]) -> SecTable:
    """GROUP BY over few rows by pairwise key equality (like the nested-loop join).

    E[i, j] = (row j has row i's keys) * valid_j: n^2 * len(keys) equality tests in one batch.
    Row i's group sums and counts are E @ [values; 1] (one secure matrix product); row i
    represents its group (stays valid) when it is valid and no earlier row j < i is in its
    group: sum_{j<i} E[i, j] == 0 (public triangular mask, n equality tests). Output: n rows,
    the representatives valid, as :func:`aggregate`. Rounds: a constant (two equality
    batches, two multiplications); work O(n^2). Reveals nothing beyond the public length n.
    """
    stype = t.sectype
    n = t.n
    li, ri = np.repeat(np.arange(n), n), np.tile(np.arange(n), n)
    e = mpc.np_equal(stack([t.columns[k][li] for k in key_cols], stype, n * n),
                     stack([t.columns[k][ri] for k in key_cols], stype, n * n))
    same = e[0]
    for i in range(1, len(key_cols)):
        same = same * e[i]
    members = (same * t.valid[ri]).reshape(n, n)  # E[i, j]
    earlier = mpc.np_sum(members * np.tril(np.ones((n, n), dtype=int), -1), axis=1)
    first = t.valid * is_zero_count(earlier, n)  # earlier counts 0/1 products: in [0, n]
    present = {c: 1 - nf for c, nf in nulls.items()}  # 1 where the argument is not NULL
    sums = [(o, c) for o, f, c in aggs if f == "sum"]
    nn_args = list(dict.fromkeys(c for _, f, c in aggs if c in nulls))
    cols = [t.columns[c] * present[c] if c in nulls else t.columns[c] for _, c in sums]
    cols += [ones(stype, n)] + [present[c] for c in nn_args]
    tot = mpc.np_matmul(members, mpc.np_stack(cols).T).T  # (len(cols), n)
    out = {k: t.columns[k] for k in key_cols}
    for i, (o, _) in enumerate(sums):
        out[o] = tot[i]
    nn_count = {c: tot[len(sums) + 1 + i] for i, c in enumerate(nn_args)}
    for o, f, c in aggs:
        if f == "count":
            out[o] = nn_count[c] if c in nulls else tot[len(sums)]
    null_outputs(out, aggs, nulls, nn_count, rows=n)  # sums of 0/1 products
    return SecTable({k: out[k] for k in key_cols} | {o: out[o] for o in names_in_order(aggs, out)},
                    first, ranges={k: t.ranges[k] for k in key_cols if k in t.ranges})


def _aggregate_all(t: SecTable, aggs: Aggs, nulls: dict[str, Any]) -> SecTable:
    """aggregate() without keys: one row, valid = 1; SUM/MIN/MAX over no (non-NULL) rows are
    NULL (a ``~null`` flag), COUNT is 0."""
    stype = t.sectype
    v = t.valid
    n = t.n
    masks = {None: v} | {c: v * (1 - nf) for c, nf in nulls.items()}  # rows that count per arg
    cnt = {c: (mpc.np_sum(m) if n else zeros(stype, 1)[0]) for c, m in masks.items()}
    out: dict[str, Any] = {}
    sums = [(o, c) for o, f, c in aggs if f == "sum"]
    if sums:
        if n:
            x = stack([t.columns[c] for _, c in sums], stype, n)
            w = stack([masks[c if c in nulls else None] for _, c in sums], stype, n)
            tot = mpc.np_sum(x * w, axis=1)
        else:
            tot = zeros(stype, len(sums))
        for i, (o, _) in enumerate(sums):
            out[o] = tot[i]
    for key in dict.fromkeys(c if c in nulls else None for _, f, c in aggs if f in ("min", "max")):
        mins = [(o, f, c) for o, f, c in aggs if f in ("min", "max")
                and (c if c in nulls else None) == key]
        x = stack([(-1 if f == "max" else 1) * t.columns[c] for _, f, c in mins], stype, n)
        mn, _ = masked_min(x, masks[key])
        for i, (o, f, _) in enumerate(mins):
            out[o] = -mn[i] if f == "max" else mn[i]
    for o, f, c in aggs:
        if f == "count":
            out[o] = cnt[c if c in nulls else None]
    nullable = [(o, c if c in nulls else None) for o, f, c in aggs if f != "count"]
    if nullable:
        keys = list(dict.fromkeys(c for _, c in nullable))
        # counts of 0/1 flags: whole numbers in [0, n]
        empty = is_zero_count(mpc.np_stack([scalar_to_array(cnt[c], stype) for c in keys]), n)
        for o, c in nullable:
            out[o + NULL_FLAG] = empty[keys.index(c)]
    cols = {o: scalar_to_array(x, stype) for o, x in out.items()}
    return SecTable({o: cols[o] for o in names_in_order(aggs, cols)}, ones(stype, 1))


def names_in_order(aggs: Aggs, cols: dict[str, Any]) -> list[str]:
    """Aggregate output names in the given order, each followed by its NULL flag if any."""
    return [c for o, _, _ in aggs for c in (o, o + NULL_FLAG) if c in cols]


def scalar_to_array(x: Any, stype: type) -> Any:
    """A secure (or public) scalar as a secure array of length 1."""
    if isinstance(x, SecureArray):
        return x.reshape(1) if x.shape != (1,) else x
    return mpc.np_fromlist([x]) if isinstance(x, SecureObject) else const(stype.sectype, [x])


# --------------------------------------------------------------------------------------------
# Scans and reductions
# --------------------------------------------------------------------------------------------


def segmented_sums(x: Any, start: Any) -> Any:
    """Inclusive segmented prefix sums of every row of x (c, n); segments begin where
    start (n,) is 1. Hillis-Steele: ceil(log2 n) rounds, 2 multiplications per round."""
    n = x.shape[1]
    f = start
    d = 1
    while d < n:
        upd = x[:, d:] + (1 - f[d:]) * x[:, :-d]
        x = mpc.np_concatenate([x[:, :d], upd], axis=1)
        fd = f[d:] + f[:-d] - f[d:] * f[:-d]
        f = mpc.np_concatenate([f[:d], fd])
        d *= 2
    return x


def _seg_min_scan(x: Any, start: Any) -> Any:
    """Inclusive segmented prefix minima of every row of x (c, n) (segments as above).
    ceil(log2 n) rounds, each one batched np_less over about c*n elements."""
    n = x.shape[1]
    f = start
    d = 1
    while d < n:
        cur, prev = x[:, d:], x[:, :-d]
        c = mpc.np_less(prev, cur) * (1 - f[d:])  # take the earlier value if smaller
        upd = cur + c * (prev - cur)
        x = mpc.np_concatenate([x[:, :d], upd], axis=1)
        fd = f[d:] + f[:-d] - f[d:] * f[:-d]
        f = mpc.np_concatenate([f[:d], fd])
        d *= 2
    return x


def masked_min(x: Any, v: Any) -> tuple[Any, Any]:
    """Minimum of each row of x (c, n) over positions where v is 1 -- v (n,) one mask for all
    rows, or (c, n) one mask per row -- as a tree reduction of (value, valid) pairs:
    ceil(log2 n) rounds, n-1 comparisons per row in total, no sentinel (so no range
    assumption). Returns (c,) minima (0 where nothing valid) and the any-valid flag(s)."""
    c, n = x.shape
    per_row = len(v.shape) == 2
    if n == 0:
        return zeros(type(v), c, integral=True), zeros(type(v), c if per_row else 1)[0]
    while x.shape[1] > 1:
        n = x.shape[1]
        h = n // 2
        xa, xb = x[:, :h], x[:, h:2 * h]
        va, vb = (v[:, :h], v[:, h:2 * h]) if per_row else (v[:h], v[h:2 * h])
        vab = va * vb
        # take b if b is valid and (a is not, or b < a)
        pick = (vb - vab) + vab * mpc.np_less(xb, xa)
        xm = xa + pick * (xb - xa)
        vm = va + vb - vab
        if n % 2:
            xm = mpc.np_concatenate([xm, x[:, 2 * h:]], axis=1)
            vm = mpc.np_concatenate([vm, v[:, 2 * h:]], axis=1) if per_row else \
                mpc.np_concatenate([vm, v[2 * h:]])
        x, v = xm, vm
    anyv = v[:, 0] if per_row else v[0]
    return x[:, 0] * anyv, anyv
