"""GROUP BY on public keys: keys every owner declared public ("*") travel in the clear.

The groups are then found in the clear -- no secure sort, no secure comparison -- and only the
aggregates over the secret values and valid flags are computed in MPC. Security model as for
every operator: Shamir secret sharing, passive adversaries, honest majority; the key values
are public by the owners' declaration, and nothing else is opened.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpyc.runtime import mpc

from . import encoding
from .aggregate import aggregate, check_aggs, names_in_order, null_outputs
from .encoding import piece_name
from .table import SecTable, const, copy, null_flag, stack, zeros
from .zerotest import is_zero_count

__all__ = ["aggregate_public_keys"]


def aggregate_public_keys(
    t: SecTable, key_columns: dict[str, np.ndarray], aggs: list[tuple[str, str, str | None]]
) -> SecTable:
    """GROUP BY on PUBLIC keys (known in the clear to all parties) over secret values/valid.

    ``key_columns``: name -> plain numpy array of length n (encoded numbers, e.g. from
    ``encoding.encode_column``), the same at every party. The groups are the distinct public
    key tuples, in sorted order; no comparison on secrets is needed to find them.

    Algorithm: a public permutation brings each group's rows together (free); sums and counts
    are differences of prefix sums at public group boundaries (free, linear); min/max are
    segmented prefix minima over (value, valid) pairs restricted to public segments
    (log2 n rounds, <= n log2 n comparisons per column); valid = (count > 0), one equality
    test per group. Output length: the number of distinct public key tuples G (public anyway).
    Output columns: the keys (as public secure constants, so downstream code is uniform), then
    the aggregates. min/max of a group with no valid row: unspecified (its valid flag is 0).
    Reveals nothing.
    """
    check_aggs(t, aggs)
    stype = t.sectype
    n = t.n
    knames = list(key_columns)
    karrs = [np.asarray(key_columns[k]) for k in knames]
    for k, a in zip(knames, karrs, strict=True):
        if a.shape != (n,):
            raise ValueError(f"public key {k!r} has shape {a.shape}, expected ({n},)")
    if not knames:
        return aggregate(t, [], aggs)
    if n == 0:
        cols = {k: zeros(stype, 0) for k in knames} | {a[0]: zeros(stype, 0) for a in aggs}
        return SecTable(cols, zeros(stype, 0))
    perm, groups, gs, starts, ends = _public_groups(karrs)
    out = _key_constants(stype, knames, karrs, groups)
    valid = t.valid[perm]
    # rows that count per aggregate argument: valid, and not NULL for a NULL-flagged argument
    nullable = list(dict.fromkeys(c for _, _, c in aggs if c is not None
                                  and null_flag(t, c) is not None))
    masks = {c: valid * (1 - null_flag(t, c)[perm]) for c in nullable}
    sums = [(o, c) for o, f, c in aggs if f == "sum"]
    rows = [t.columns[c][perm] * masks.get(c, valid) for _, c in sums] + [valid]
    rows += [masks[c] for c in nullable]
    x = stack(rows, stype, n)
    cs = mpc.np_concatenate([zeros(stype, len(rows)).reshape(len(rows), 1),
                             mpc.np_cumsum(x, axis=1)], axis=1)
    tot = cs[:, ends] - cs[:, starts]
    for i, (o, _) in enumerate(sums):
        out[o] = tot[i]
    cnt = tot[len(sums)]
    nn_count = {c: tot[len(sums) + 1 + i] for i, c in enumerate(nullable)}
    for o, f, c in aggs:
        if f == "count":
            out[o] = nn_count.get(c, cnt)
    for key in dict.fromkeys(c if c in masks else None for _, f, c in aggs if f in ("min", "max")):
        mins = [(o, f, c) for o, f, c in aggs if f in ("min", "max")
                and (c if c in masks else None) == key]
        xm = stack([(-1 if f == "max" else 1) * t.columns[c][perm] for _, f, c in mins], stype, n)
        mn = _public_seg_min(xm, masks.get(key, valid), gs)[:, ends - 1]
        for i, (o, f, _) in enumerate(mins):
            out[o] = -mn[i] if f == "max" else mn[i]
    # no non-NULL value: NULL; the counts are sums of 0/1 flags, whole numbers in [0, n]
    null_outputs(out, aggs, {c: None for c in nullable}, nn_count, rows=n)
    gvalid = 1 - is_zero_count(cnt, n)
    names = [c for k in knames for c in out if c == k or c.startswith(k + encoding.COMPANION)]
    return SecTable({c: out[c] for c in names + names_in_order(aggs, out)}, gvalid)


def public_group_keys(key_columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The key values of the groups :func:`aggregate_public_keys` outputs, in its order, in
    the clear (as the keys themselves are): what later public steps (a projection passing a
    key on, a filter on it) read."""
    knames = list(key_columns)
    karrs = [np.asarray(key_columns[k]) for k in knames]
    if not knames or karrs[0].shape[0] == 0:
        return {k: a[:0] for k, a in zip(knames, karrs)}
    groups = _public_groups(karrs)[1]
    return {k: np.unique(a)[groups[:, j]] for j, (k, a) in enumerate(zip(knames, karrs))}


def _public_groups(karrs: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """In the clear: the permutation that brings each group's rows together, the distinct
    key-code tuples (sorted), each sorted row's group id, and every group's [start, end)."""
    codes = []
    for a in karrs:
        _, inv = np.unique(a, return_inverse=True)
        codes.append(inv.reshape(-1))
    groups, gid = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
    gid = gid.reshape(-1)
    g = groups.shape[0]
    perm = np.argsort(gid, kind="stable")
    gs = gid[perm]
    starts = np.searchsorted(gs, np.arange(g), side="left")
    ends = np.searchsorted(gs, np.arange(g), side="right")  # exclusive
    return perm, groups, gs, starts, ends


def _key_constants(stype: type, knames: list[str], karrs: list[np.ndarray],
                   groups: np.ndarray) -> dict[str, Any]:
    """The groups' key values as public secure constants (texts as their 7-byte pieces)."""
    out: dict[str, Any] = {}
    for j, k in enumerate(knames):
        values = np.unique(karrs[j])[groups[:, j]]
        if any(isinstance(v, str) for v in values):  # public texts travel as strings
            for i, piece in enumerate(encoding.encode_text(values.tolist())):
                out[piece_name(k, i)] = const(stype.sectype, piece)
        else:
            out[k] = const(stype.sectype, values.astype(object))
    return out


def _public_seg_min(x: Any, v: Any, seg: np.ndarray) -> Any:
    """Inclusive prefix minima over valid entries within public segments (seg sorted ids).
    Round d combines position i with i-d only where both lie in the same (public) segment."""
    n = x.shape[1]
    d = 1
    while d < n:
        idx = np.nonzero(seg[d:] == seg[:-d])[0] + d
        if idx.size == 0:
            break
        cur, prev = x[:, idx], x[:, idx - d]
        vc, vp = v[idx], v[idx - d]
        vcp = vc * vp
        # take prev if prev is valid and (cur is not, or prev < cur)
        pick = (vp - vcp) + vcp * mpc.np_less(prev, cur)
        upd = cur + pick * (prev - cur)
        x = mpc.np_update(copy(x), (slice(None), idx), upd)
        v = mpc.np_update(copy(v), idx, vc + vp - vcp)
        d *= 2
    return x
