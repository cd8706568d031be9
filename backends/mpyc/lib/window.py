"""Secure window functions on secret rows: ROW_NUMBER, RANK, DENSE_RANK, LAG, LEAD, SUM, COUNT,
MIN and MAX OVER (PARTITION BY ... ORDER BY ...), and PERCENTILE_CONT / _DISC (per partition
or over all rows).

Protocol :func:`window` (semi-honest, honest majority; any number of parties)::

    out = window(t, ["t.vendor"], [("t.fare", True)], [("rn", "row_number"), ("r", "rank")])

Algorithm, on the n (padded) rows:

    1. One stable oblivious radix sort of all columns by (valid desc, partition keys, order
       keys) (``sort.sort_table``, with the adjacent-equality flags ``same`` of the sorted
       keys): valid rows first, each partition contiguous and in window order.
    2. Partition starts: where the partition keys differ from the row before (one batched
       ``np_equal`` of adjacent sorted partition columns; no partition: only the first row),
       or the row is the first valid or first invalid one. Peer starts (rows that differ on
       partition or order keys): 1 - same.
    3. Segmented prefix sums (Hillis-Steele, ceil(log2 n) rounds, a few multiplications per
       row and round): ROW_NUMBER = running count of rows in the partition; DENSE_RANK =
       running count of peer starts in the partition; RANK = the ROW_NUMBER of the first row
       of each peer group, spread over the group by a segmented sum of (row number x peer
       start) with the peer starts as segment starts.
    4. LAG / LEAD (x, k, default): x shifted by k rows (public), kept where the k row
       boundaries crossed are all inside one partition (a product of k - 1 adjacent flags),
       else the default or NULL (a NULL flag ``name~null``); text pieces shift alike.
    5. SUM / COUNT / MIN / MAX (x) OVER: segmented prefix sums (minima: a comparison per row
       and round) of x (of the non-NULL flags for COUNT);
       for the whole partition (no ORDER BY) or up to the last peer (ORDER BY, SQL's default
       frame) the value at the segment's last row is carried back over the segment (the
       same scan on the reversed rows). SUM of no non-NULL value is NULL (a comparison of
       the count with 0 per row). The caller checks SUM against the secure range.
    6. PERCENTILE_CONT / _DISC (p) of x (MEDIAN = PERCENTILE_CONT 0.5) per partition (see
       ``_group_quantile``: the same selection with each row's secret rank and its
       partition's secret count, one comparison per row), or over all rows, sorted
       by x: with c = the secret number of valid non-NULL x (the first c sorted rows), the
       position h = p (c - 1) (DISC: the first row k with k + 1 >= p c) is selected
       obliviously: one secure comparison of h with each public position k gives the step
       [h >= k], adjacent differences the one-hot row of floor(h), dot products x[floor(h)]
       and x[floor(h) + 1], and CONT interpolates with h - floor(h). The value goes to every
       row (NULL when c = 0). n comparisons, a constant number of rounds after the sort.

Output: the sorted table (its columns in sorted order, valid flags with them) plus one secret
column per function (with a NULL flag ``name~null`` where the function can be NULL). Row order carries no meaning in SQL, so nothing is un-sorted.
Reveals nothing beyond the public length n (the sort opens only uniformly random
permutations). Ranks and counts are at most n and LAG / LEAD copy values: no overflow; a
SUM may overflow and is checked by the program (lib/overflow.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from mpyc.runtime import mpc

from .aggregate import segmented_sums
from .encoding import NULL_FLAG
from .sort import adjacent_equal, sort_table
from .table import SecTable, ones, pieces, sort_keys, zeros

__all__ = ["AGGREGATE_FUNCTIONS", "FRAMES", "OFFSET_FUNCTIONS", "QUANTILE_FUNCTIONS",
           "RANKING_FUNCTIONS", "segmented_minima", "window"]

RANKING_FUNCTIONS = ("row_number", "rank", "dense_rank")
OFFSET_FUNCTIONS = ("lag", "lead")
QUANTILE_FUNCTIONS = ("percentile_cont", "percentile_disc")
AGGREGATE_FUNCTIONS = ("sum", "count", "min", "max")
# the frames of SUM / COUNT OVER: the whole partition, up to the current row's last peer
# (SQL's default with ORDER BY), up to the current row (ROWS ... CURRENT ROW)
FRAMES = ("partition", "peers", "rows")


def window(t: SecTable, partition: Sequence[str], order: Sequence[tuple[str, bool]],
           funcs: Sequence[tuple], key_bits: dict[str, Any] | None = None,
           method: str | None = None) -> SecTable:
    """The rows of ``t`` (sorted by partition and order keys) with a column per function of
    ``funcs``: (name, ranking function) or (name, "lag" | "lead", column, offset, default
    number or None) or (name, "percentile_cont" | "percentile_disc", column, fraction) (alone;
    MEDIAN is PERCENTILE_CONT 0.5) or (name, "sum" | "count", column or
    None for COUNT(*), frame in FRAMES); see the module docstring."""
    for name, func, *_ in funcs:
        if func not in RANKING_FUNCTIONS + OFFSET_FUNCTIONS + QUANTILE_FUNCTIONS + \
                AGGREGATE_FUNCTIONS:
            raise ValueError(f"window {name!r}: unknown function {func!r}")
    for c in list(partition) + [c for c, _ in order]:
        if c not in t.columns:
            raise KeyError(f"window: no column {c!r}")
    quantiles = [f for f in funcs if f[1] in QUANTILE_FUNCTIONS]
    if quantiles:  # over each partition's rows sorted by the value itself
        if len(funcs) != 1:
            raise ValueError("window: a quantile is computed alone")
        order = [(quantiles[0][2], False)]
    stype, n = t.sectype, t.n
    if n == 0:
        cols = {**t.columns, **{name: zeros(stype, 0) for name, *_ in funcs}}
        return SecTable(cols, t.valid, ranges=dict(t.ranges))
    keys = sort_keys(t, [(p, False) for p in partition] + list(order))
    cols, valid, same = sort_table(SecTable(dict(t.columns), t.valid, ranges=t.ranges,
                                            bits=t.bits), keys, key_bits, method, same=True)
    if n == 1:
        peer_start = part_start = ones(stype, 1)
    else:
        peer_start = mpc.np_concatenate([ones(stype, 1), 1 - same])
        # a NULL key (value 0, flag 1) is a partition apart from the key 0
        part_cols = [cols[p] for c in partition for p in pieces(t, c) +
                     ([c + NULL_FLAG] if c + NULL_FLAG in cols else [])]
        same_part = adjacent_equal(part_cols, n) if part_cols else ones(stype, n - 1)
        # a partition never spans the boundary between the valid and the invalid rows:
        # (valid, next valid) = (1, 0) makes the factor 0; (1, 1) and (0, 0) make it 1
        same_part = same_part * (1 - valid[:-1] + valid[1:])
        part_start = mpc.np_concatenate([ones(stype, 1), 1 - same_part])
    row_number = segmented_sums(mpc.np_stack([ones(stype, n), peer_start]), part_start)
    out = dict(cols)
    for name, func, *args in funcs:
        if func in QUANTILE_FUNCTIONS and partition:
            out |= _group_quantile(t, cols, valid, name, func, *args, row_number[0],
                                   part_start)
            continue
        if func in QUANTILE_FUNCTIONS:
            out |= _quantile(t, cols, valid, name, func, *args)
            continue
        if func in AGGREGATE_FUNCTIONS:
            out |= _running_aggregate(t, cols, valid, name, func, *args, part_start,
                                      peer_start)
            continue
        if func in OFFSET_FUNCTIONS:
            arg, offset, default = args
            out |= _offset_value(t, cols, name, func, arg, offset, default,
                                 1 - part_start[1:] if n > 1 else zeros(stype, 0))
            continue
        if func == "row_number":
            value = row_number[0]
        elif func == "dense_rank":
            value = row_number[1]
        else:
            value = segmented_sums(mpc.np_stack([row_number[0] * peer_start]), peer_start)[0]
        value.integral = True
        out[name] = value
    return SecTable(out, valid, ranges=dict(t.ranges))


def _offset_value(t: SecTable, cols: dict[str, Any], name: str, func: str, arg: str,
                  offset: int, default: float | None, same_part: Any) -> dict[str, Any]:
    """LAG / LEAD(arg, offset, default) over the sorted columns: the value `offset` rows
    before (LAG) or after (LEAD) in the same partition, else the default (NULL without one).
    `same_part[j]` is 1 when sorted rows j and j+1 are valid rows of one partition."""
    stype, n = t.sectype, t.n
    if offset < 1 or n <= offset:
        inside = zeros(stype, n)
    else:
        run = same_part  # run[j]: rows j .. j+k are one partition (k = 1, 2, ...)
        for k in range(2, offset + 1):
            run = run[:-1] * same_part[k - 1:]
        pad = zeros(stype, offset)
        inside = mpc.np_concatenate([pad, run] if func == "lag" else [run, pad])
    out = {}
    names = pieces(t, arg) + ([arg + NULL_FLAG] if arg + NULL_FLAG in t.columns else [])
    for c in names:
        x = cols[c]
        if offset < 1 or n <= offset:
            moved = zeros(stype, n)
        elif func == "lag":
            moved = mpc.np_concatenate([zeros(stype, offset), x[:-offset]])
        else:
            moved = mpc.np_concatenate([x[offset:], zeros(stype, offset)])
        value = inside * moved
        if c == arg and default is not None:
            value = value + (1 - inside) * default
        value.integral = bool(getattr(x, "integral", False)) and \
            (default is None or float(default).is_integer())
        out[name + c[len(arg):]] = value
    missing = 1 - inside if default is None else zeros(stype, n)
    flag = out.get(name + NULL_FLAG)
    out[name + NULL_FLAG] = missing if flag is None else flag + missing  # both never 1
    out[name + NULL_FLAG].integral = True
    return out


def _quantile(t: SecTable, cols: dict[str, Any], valid: Any, name: str, func: str, arg: str,
              p: float) -> dict[str, Any]:
    """PERCENTILE_CONT / _DISC(p) of `arg` over the rows sorted by it (valid, non-NULL first),
    as a column of n equal values and its NULL flag (see the module docstring)."""
    stype, n = t.sectype, t.n
    x = cols[arg]
    null = cols.get(arg + NULL_FLAG)
    present = valid if null is None else valid * (1 - null)
    c = present.sum()
    k = np.arange(n + 1)  # the public positions 0 .. n
    if func == "percentile_cont":
        h = (c - 1) * p
        at_least = 1 - mpc.np_less(zeros(stype, n + 1) + h, k)  # [h >= k]
    else:  # the row: the first k with k + 1 >= p c; [row >= k] = 1 - [k >= p c] (k >= 1)
        reached = 1 - mpc.np_less(k[1:], zeros(stype, n) + c * p)
        at_least = mpc.np_concatenate([ones(stype, 1), 1 - reached])
    one_hot = at_least[:-1] - at_least[1:]  # 1 at the selected row only
    lo = (one_hot * x).sum()
    value = lo
    if func == "percentile_cont":
        nxt = mpc.np_concatenate([x[1:], zeros(stype, 1)])
        hi = (one_hot * nxt).sum()
        value = lo + (h - at_least[1:].sum()) * (hi - lo)
    column = zeros(stype, n) + value
    empty = 1 - mpc.np_less(zeros(stype, 1), zeros(stype, 1) + c)[0]  # c == 0: NULL
    flag = zeros(stype, n) + empty
    flag.integral = True
    column.integral = False
    return {name: column, name + NULL_FLAG: flag}


def _group_quantile(t: SecTable, cols: dict[str, Any], valid: Any, name: str, func: str,
                    arg: str, p: float, row_number: Any, part_start: Any) -> dict[str, Any]:
    """PERCENTILE_CONT / _DISC(p) of `arg` per partition, the rows sorted by (partition,
    NULL flag, value): a column holding each partition's value on all its rows, and its NULL
    flag (the partition has no non-NULL value). Per row, with r its rank among the
    partition's non-NULL values (they come first) and c their number (a segmented sum
    carried back over the partition): CONT selects the row r = floor(h), h = p (c - 1), as
    the last row of the prefix [h >= r] (one comparison per row) and interpolates towards the
    next row with h - r; DISC selects the first row with r + 1 >= p c (one comparison per
    row). The selected row's value spreads over its partition by a segmented sum."""
    stype, n = t.sectype, t.n
    x = cols[arg]
    null = cols.get(arg + NULL_FLAG)
    present = valid if null is None else valid * (1 - null)
    c = _carry_back(segmented_sums(mpc.np_stack([present]), part_start)[0], part_start)
    r = row_number - 1  # rank among the partition's rows; its non-NULL values come first
    inside = 1 - part_start[1:]  # rows i and i + 1 are in one partition
    if func == "percentile_cont":
        h = (c - 1) * p
        upto = present * (1 - mpc.np_less(h, r))  # [h >= r]: ones up to floor(h)
        after = mpc.np_concatenate([upto[1:] * inside, zeros(stype, 1)])
        nxt = mpc.np_concatenate([x[1:], zeros(stype, 1)])
        picked = (upto - after) * (x + (h - r) * (nxt - x))
    else:
        reached = present * (1 - mpc.np_less(r + 1, c * p))  # [r + 1 >= p c]: from the row on
        before = mpc.np_concatenate([zeros(stype, 1), reached[:-1] * inside])
        picked = reached * (1 - before) * x  # the first such row (not the NULLs after)
    value = _carry_back(segmented_sums(mpc.np_stack([picked]), part_start)[0], part_start)
    value.integral = False
    empty = mpc.np_less(c, 0.5)  # no non-NULL value: NULL
    empty.integral = True
    return {name: value, name + NULL_FLAG: empty}


def _running_aggregate(t: SecTable, cols: dict[str, Any], valid: Any, name: str, func: str,
                       arg: str | None, frame: str, part_start: Any, peer_start: Any
                       ) -> dict[str, Any]:
    """SUM / COUNT(arg) OVER the frame (see the module docstring) of the sorted rows."""
    stype, n = t.sectype, t.n
    null = cols.get(arg + NULL_FLAG) if arg is not None else None
    present = valid if null is None else valid * (1 - null)
    rows = [present] + ([cols[arg] * present] if func == "sum" else [])
    sums = segmented_sums(mpc.np_stack(rows), part_start)
    if frame != "rows":  # carry each segment's last value back over the segment
        segment = part_start if frame == "partition" else peer_start  # peers: one partition
        sums = mpc.np_stack([_carry_back(row, segment) for row in sums])
    count = sums[0]
    count.integral = True
    if func == "count":
        return {name: count}
    if func in ("min", "max"):
        sign = 1 if func == "min" else -1
        lowest = segmented_minima(sign * cols[arg], present, part_start)
        value = sign * (lowest if frame == "rows" else _carry_back(lowest, part_start if
                                                                    frame == "partition"
                                                                    else peer_start))
        sums = mpc.np_stack([count, value])
    value = sums[1]
    value.integral = bool(getattr(cols[arg], "integral", False))
    empty = mpc.np_less(count, 0.5) if null is not None else zeros(stype, n)
    empty.integral = True
    return {name: value, name + NULL_FLAG: empty}


def _carry_back(x: Any, start: Any) -> Any:
    """Every row gets the value of the last row of its segment (segments begin where start
    is 1): the segmented sum of the last rows' values over the reversed rows."""
    stype = type(start)
    end = mpc.np_concatenate([start[1:], ones(stype, 1)])
    return segmented_sums(mpc.np_stack([(x * end)[::-1]]), end[::-1])[0][::-1]


def segmented_minima(x: Any, present: Any, start: Any) -> Any:
    """Inclusive segmented prefix minima of x (n,) over the rows where present is 1 (0 where a
    segment has none so far); segments begin where start is 1. ceil(log2 n) rounds, each one
    batched comparison of n pairs (value, present)."""
    n = x.shape[0]
    f, v, m = start, present, x * present
    d = 1
    while d < n:
        cur, prev = m[d:], m[:-d]
        vc, vp = v[d:], v[:-d]
        take = (1 - f[d:]) * vp  # the earlier prefix may give the minimum
        smaller = mpc.np_less(prev, cur)
        use = take * (1 - vc + vc * smaller)  # prev wins when cur is absent or larger
        m = mpc.np_concatenate([m[:d], cur + use * (prev - cur)])
        v = mpc.np_concatenate([v[:d], vc + take - vc * take])
        f = mpc.np_concatenate([f[:d], f[d:] + f[:-d] - f[d:] * f[:-d]])
        d *= 2
    return m
