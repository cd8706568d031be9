"""The secure ranking windows (backends/mpyc/lib/window.py) against a plain computation.

One MPyC party in this process; random rows with ties, several partitions and invalid
(filtered-out) rows interleaved, compared with ROW_NUMBER / RANK / DENSE_RANK computed in
Python over the valid rows.
"""

from __future__ import annotations

import random

import pytest
from mpc_helpers import obj, run
from mpyc.runtime import mpc

from sqlmpc.backends.mpyc import ops
from sqlmpc.backends.mpyc.lib.window import window

secfxp = mpc.SecFxp(96, 32)


def _expected(rows, desc):
    """{id: (row_number, rank, dense_rank)} over the valid rows (part, value, id, valid),
    partitioned by part, ordered by value (descending if desc) then id."""
    out = {}
    parts = sorted({p for p, _, _, ok in rows if ok})
    for p in parts:
        mine = sorted(((v, i) for q, v, i, ok in rows if ok and q == p),
                      key=lambda x: (-x[0] if desc else x[0], x[1]))
        rank = dense = 0
        prev = None
        for k, (v, i) in enumerate(mine, 1):
            if v != prev:
                rank, dense, prev = k, dense + 1, v
            out[i] = (k, rank, dense)
    return out


def _secure(rows, desc, partition):
    async def body():
        t = await ops.share_input(secfxp, obj([r[:3] for r in rows], 3), ["p", "v", "i"], [0],
                                  integral=[True] * 3, types=["int"] * 3)
        t = ops.filter_rows(t, ops.const(secfxp, [int(r[3]) for r in rows]))
        # the order keys are (v, i): ROW_NUMBER is deterministic; RANK ties on v only
        w = window(t, ["p"] if partition else [], [("v", desc), ("i", False)],
                   [("rn", "row_number")])
        w = window(w, ["p"] if partition else [], [("v", desc)],
                   [("r", "rank"), ("d", "dense_rank")])
        assert w.n == len(rows)
        got = await ops.reveal(w, [0], ["i", "rn", "r", "d"], ordered=False)
        return {int(i): (int(a), int(b), int(c)) for i, a, b, c in got.tolist()}
    return run(body)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("desc", [False, True])
def test_ranking_windows_match_plain(seed, desc):
    rng = random.Random(seed)
    n = rng.randint(12, 40)
    rows = [(rng.randint(0, 3), rng.randint(0, 5), i, rng.random() < 0.75) for i in range(n)]
    assert _secure(rows, desc, partition=True) == _expected(rows, desc)


def test_without_partition_is_one_partition():
    rows = [(0, v, i, ok) for i, (v, ok) in enumerate([(3, True), (1, True), (3, False),
                                                       (2, True), (1, True), (5, False)])]
    rows_all = [(0, v, i, ok) for _, v, i, ok in rows]
    assert _secure(rows, False, partition=False) == _expected(rows_all, False)


def test_tiny_tables():
    assert _secure([(1, 1, 0, True)], False, partition=True) == {0: (1, 1, 1)}
    assert _secure([(1, 1, 0, False), (1, 2, 1, True)], False, partition=True) == \
        {1: (1, 1, 1)}


def _plain_shift(rows, func, k, default):
    """{id: value} of LAG / LEAD(v, k, default) over partitions p ordered by id."""
    out = {}
    for p in {r[0] for r in rows if r[3]}:
        mine = sorted((i, v) for q, v, i, ok in rows if ok and q == p)
        for j, (i, _) in enumerate(mine):
            t = j - k if func == "lag" else j + k
            out[i] = mine[t][1] if 0 <= t < len(mine) else default
    return out


@pytest.mark.parametrize("func, k, default", [("lag", 1, None), ("lead", 1, None),
                                               ("lag", 2, -1), ("lead", 3, 0)])
def test_lag_lead_match_plain(func, k, default):
    rng = random.Random(k)
    rows = [(rng.randint(0, 2), rng.randint(-5, 5), i, rng.random() < 0.8) for i in range(25)]

    async def body():
        t = await ops.share_input(secfxp, obj([r[:3] for r in rows], 3), ["p", "v", "i"], [0],
                                  integral=[True] * 3, types=["int"] * 3)
        t = ops.filter_rows(t, ops.const(secfxp, [int(r[3]) for r in rows]))
        w = window(t, ["p"], [("i", False)], [("x", func, "v", k, default)])
        got = await ops.reveal(w, [0], ["i", "x", "x~null"], ordered=False)
        return {int(i): (None if int(f) else int(x)) for i, x, f in got.tolist()}
    assert run(body) == _plain_shift(rows, func, k, default)


@pytest.mark.parametrize("func, p", [("percentile_cont", 0.5), ("percentile_cont", 0.25),
                                      ("percentile_cont", 1.0), ("percentile_disc", 0.5),
                                      ("percentile_disc", 0.75), ("percentile_disc", 0.0)])
@pytest.mark.parametrize("size", [0, 1, 4, 9])
def test_quantiles_match_duckdb(func, p, size):
    import duckdb
    rng = random.Random(size)
    rows = [(0, rng.randint(-9, 9), i, rng.random() < 0.7 or i == 0) for i in range(size + 3)]
    rows = [r if i < size else r[:3] + (False,) for i, r in enumerate(rows)]
    values = [v for _, v, _, ok in rows if ok]
    want = duckdb.sql(f"SELECT {func.replace('percentile', 'quantile')}(v, {p}) FROM "
                      f"(SELECT UNNEST({values or [0]}::DOUBLE[]) AS v) WHERE {len(values)} > 0"
                      ).fetchall()[0][0]

    async def body():
        t = await ops.share_input(secfxp, obj([r[:3] for r in rows], 3), ["p", "v", "i"], [0],
                                  integral=[True] * 3, types=["int"] * 3)
        t = ops.filter_rows(t, ops.const(secfxp, [int(r[3]) for r in rows]))
        w = window(t, [], [], [("q", func, "v", p)])
        # every row carries the value, the invalid ones too: open them all
        every = ops.SecTable({c: w.columns[c] for c in ("q", "q~null")},
                             ops.const(secfxp, [1] * w.n))
        got = await ops.reveal(every, [0], ["q", "q~null"], ordered=False)
        return {(None if int(f) else round(float(q), 6)) for q, f in got.tolist()}
    assert run(body) == {None if want is None else round(float(want), 6)}


@pytest.mark.parametrize("frame", ["partition", "peers", "rows"])
@pytest.mark.parametrize("seed", [4, 5])
def test_sum_count_min_max_over_match_duckdb(frame, seed):
    import duckdb
    rng = random.Random(seed)
    rows = [(rng.randint(0, 2), rng.randint(-3, 3), i, rng.random() < 0.8) for i in range(20)]
    over = {"partition": "PARTITION BY p",
            "peers": "PARTITION BY p ORDER BY v",
            "rows": "PARTITION BY p ORDER BY v, i ROWS BETWEEN UNBOUNDED PRECEDING AND "
                    "CURRENT ROW"}[frame]
    values = ", ".join(f"({p}, {v}, {i})" for p, v, i, ok in rows if ok)
    want = {i: tuple(r) for i, *r in duckdb.sql(
        f"SELECT i, SUM(v) OVER ({over}), COUNT(*) OVER ({over}), MIN(v) OVER ({over}), "
        f"MAX(v) OVER ({over}) "
        f"FROM (VALUES {values}) AS r(p, v, i)").fetchall()}
    order = [] if frame == "partition" else [("v", False)] + ([("i", False)] if frame == "rows"
                                                             else [])

    async def body():
        t = await ops.share_input(secfxp, obj([r[:3] for r in rows], 3), ["p", "v", "i"], [0],
                                  integral=[True] * 3, types=["int"] * 3)
        t = ops.filter_rows(t, ops.const(secfxp, [int(r[3]) for r in rows]))
        w = window(t, ["p"], order, [("s", "sum", "v", frame), ("c", "count", None, frame),
                                     ("lo", "min", "v", frame), ("hi", "max", "v", frame)])
        got = await ops.reveal(w, [0], ["i", "s", "c", "lo", "hi"], ordered=False)
        return {int(r[0]): tuple(int(x) for x in r[1:]) for r in got.tolist()}
    assert run(body) == want
