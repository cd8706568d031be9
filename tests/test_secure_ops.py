"""Fast tests of the secure relational operators: MPyC with 1 party, in this process.

Each test builds its own coroutine and runs it with ``mpc.run`` between ``mpc.start()`` and
``mpc.shutdown()``, exactly as a generated program does, and compares with plain Python.
"""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mpyc.runtime import mpc
from mpc_helpers import obj, run, text_table
from sqlmpc.backends.mpyc.lib import encoding as enc
from sqlmpc.backends.mpyc import ops
from sqlmpc.backends.mpyc.lib import aggregate as lib_aggregate

secfxp = mpc.SecFxp(96, 32)

HSET = settings(max_examples=8, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])




@pytest.fixture(autouse=True, params=["pairwise", "radix"])
def group_by_path(request, monkeypatch):
    """Every test twice: small GROUP BYs by pairwise equality (the default up to
    SMALL_GROUP_MAX rows) and by the radix sort (what larger inputs use)."""
    if request.param == "radix":
        monkeypatch.setattr(lib_aggregate, "SMALL_GROUP_MAX", 0)
    return request.param


async def table(rows, cols, integral=None):
    return await ops.share_input(secfxp, obj(rows, len(cols)), cols, [0], integral=integral)


async def rev(t, cols=None, ordered=False):
    companions = {c for name in t.columns for c in ops.with_companions(t, [name])[1:]}
    cols = [c for c in t.columns if c not in companions] if cols is None else cols
    out = await ops.reveal(t, [0], cols, ordered=ordered)
    return [tuple(r) for r in out.tolist()]


def approx_rows(rows, nd=6):
    return sorted(tuple(round(float(x), nd) for x in r) for r in rows)


# ------------------------------------------------------------------ input, reveal, concat


def test_share_and_reveal_ordered_keeps_order_and_exact_ints():
    big = 2**62 - 3  # beyond float64's 2^53: must come back exact
    rows = [(big, 1.25), (-7, -0.5), (0, 3)]

    async def body():
        t = await table(rows, ["a", "b"], integral=[True, False])
        assert t.n == 3
        return await rev(t, ordered=True)

    out = run(body)
    assert out == [(big, 1.25), (-7, -0.5), (0, 3)]
    assert isinstance(out[0][0], int) and out[0][0] == big


def test_reveal_unordered_is_permutation_of_valid_rows():
    rows = [(i, i * 10) for i in range(9)]

    async def body():
        t = await table(rows, ["a", "b"])
        t = ops.filter_rows(t, ops.lt(t.columns["a"], 6))
        return await rev(t)

    out = run(body)
    assert sorted(out) == [(i, i * 10) for i in range(6)]


def test_share_input_empty_and_none():
    async def body():
        t = await ops.share_input(secfxp, None, ["a", "b"], [0])
        assert t.n == 0
        e = await ops.reveal(t, [0], ["a", "b"], ordered=False)
        t2 = await ops.share_input(secfxp, np.zeros((0, 2)), ["a", "b"], [0])
        g = ops.aggregate(t2, [], [("c", "count", None), ("s", "sum", "a"), ("m", "min", "b")])
        return e.shape, await rev(g)

    shape, g = run(body)
    assert shape == (0, 2)
    assert g == [(0, None, None)]  # SQL: SUM and MIN over no rows are NULL, COUNT is 0


def test_share_input_rejects_bad_shape():
    async def body():
        with pytest.raises(ValueError):
            await ops.share_input(secfxp, np.zeros((2, 3)), ["a", "b"], [0])
        return True

    assert run(body)


def test_concat():
    async def body():
        a = await table([(1, 2), (3, 4)], ["x", "y"])
        b = await table([(5, 6)], ["x", "y"])
        e = await ops.share_input(secfxp, None, ["x", "y"], [0])
        b = ops.filter_rows(b, ops.eq(b.columns["x"], 5))
        u = ops.concat([a, e, b])
        assert u.n == 3
        return await rev(u, ordered=True)

    assert run(body) == [(1, 2), (3, 4), (5, 6)]


def test_reveal_only_to_receivers_and_column_subset():
    async def body():
        t = await table([(1, 2)], ["x", "y"])
        none = await ops.reveal(t, [], ["x"], ordered=False)  # nobody receives
        got = await ops.reveal(t, [0], ["y"], ordered=False)
        return none, got

    none, got = run(body)
    assert none is None
    assert got.tolist() == [[2]]


# ------------------------------------------------------------------ expressions


def test_expression_helpers_with_scalars_and_arrays():
    a_vals = [3, -1, 2.5, 0, 7]
    b_vals = [3, 2, -2.5, 1, 7.5]

    async def body():
        t = await table(list(zip(a_vals, b_vals, strict=True)), ["a", "b"])
        a, b = t.columns["a"], t.columns["b"]
        pub = np.array(b_vals)
        exprs = {
            "lt": ops.lt(a, b), "le": ops.le(a, b), "gt": ops.gt(a, b), "ge": ops.ge(a, b),
            "eq": ops.eq(a, b), "ne": ops.ne(a, b),
            "lt_s": ops.lt(a, 2), "gt_s_left": ops.lt(2, a), "eq_arr": ops.eq(pub, a),
            "and": ops.and_(ops.lt(a, 3), ops.gt(b, 0)), "or": ops.or_(ops.lt(a, 0), ops.gt(b, 5)),
            "not": ops.not_(ops.eq(a, 3)), "where": ops.where(ops.lt(a, b), a, b),
            "where_s": ops.where(ops.lt(a, 1), 100, a),
            "div_pub": ops.div(a, 4), "div_pub_arr": ops.div(a, np.array([1, 2, 4, 8, 16])),
            "div_sec": ops.div(a, ops.where(ops.eq(b, 0), 1, b)), "neg": ops.neg(a),
            "abs": ops.abs_(a), "mix": a * b + 2 - a,
        }
        p = ops.project(t, exprs)
        return await rev(p, ordered=True)

    out = run(body)
    names = ["lt", "le", "gt", "ge", "eq", "ne", "lt_s", "gt_s_left", "eq_arr", "and", "or",
             "not", "where", "where_s", "div_pub", "div_pub_arr", "div_sec", "neg", "abs", "mix"]
    for i, (a, b) in enumerate(zip(a_vals, b_vals, strict=True)):
        exp = [a < b, a <= b, a > b, a >= b, a == b, a != b, a < 2, 2 < a, b == a,
               a < 3 and b > 0, a < 0 or b > 5, a != 3, min(a, b) if a < b else b,
               100 if a < 1 else a, a / 4, a / [1, 2, 4, 8, 16][i], a / (1 if b == 0 else b),
               -a, abs(a), a * b + 2 - a]
        for name, e, g in zip(names, exp, out[i], strict=True):
            assert float(g) == pytest.approx(float(e), abs=1e-6), (name, a, b)


# ------------------------------------------------------------------ aggregate


def ref_aggregate(rows, key_idx, val_idx):
    groups = defaultdict(list)
    for r in rows:
        groups[tuple(r[i] for i in key_idx)].append(r[val_idx])
    return sorted(k + (sum(v), len(v), min(v), max(v)) for k, v in groups.items())


AGGS = [("s", "sum", "v"), ("c", "count", None), ("mn", "min", "v"), ("mx", "max", "v")]


def test_aggregate_group_by_two_keys_with_filter():
    rows = [(1, 2, 5.5), (1, 2, -1.25), (2, 2, 3), (1, 3, 4), (2, 2, 10), (1, 2, 0), (9, 9, 9)]

    async def body():
        t = await table(rows, ["k1", "k2", "v"])
        t = ops.filter_rows(t, ops.lt(t.columns["k1"], 5))
        g = ops.aggregate(t, ["k1", "k2"], AGGS)
        assert list(g.columns) == ["k1", "k2", "s", "c", "mn", "mx"] and g.n == len(rows)
        return await rev(g)

    exp = ref_aggregate([r for r in rows if r[0] < 5], [0, 1], 2)
    assert approx_rows(run(body)) == approx_rows(exp)


def test_aggregate_all_equal_keys_and_all_invalid():
    rows = [(4, 1), (4, -2), (4, 3)]

    async def body():
        t = await table(rows, ["k", "v"])
        g = ops.aggregate(t, ["k"], AGGS)
        none = ops.aggregate(ops.filter_rows(t, ops.lt(t.columns["k"], 0)), ["k"], AGGS)
        return await rev(g), await rev(none)

    g, none = run(body)
    assert g == [(4, 2, 3, -2, 3)]
    assert none == []


def test_aggregate_no_keys():
    rows = [(1, -3.5), (2, 4), (3, 8), (4, -10)]

    async def body():
        t = await table(rows, ["k", "v"])
        t = ops.filter_rows(t, ops.lt(t.columns["k"], 4))
        g = ops.aggregate(t, [], AGGS)
        assert g.n == 1
        z = ops.aggregate(ops.filter_rows(t, ops.lt(t.columns["k"], 0)), [], AGGS)
        return await rev(g), await rev(z)

    g, z = run(body)
    assert g == [(8.5, 3, -3.5, 8)]
    assert z == [(None, 0, None, None)]  # SQL: NULL over no rows, COUNT 0


def test_aggregate_text_and_date_keys():
    vendors = ["yellow", "green", "yellow", "€uro", "green"]
    days = ["2024-01-02", "2024-01-02", "2024-01-02", "2023-12-31", "2024-01-03"]
    fares = [10.5, 3.25, 1.0, 7.0, 2.0]

    async def body():
        m = np.empty((5, 3), dtype=object)
        m[:, 0] = enc.encode_column(vendors, "text")
        m[:, 1] = enc.encode_column(days, "date")
        m[:, 2] = enc.encode_column(fares, "decimal(10,2)")
        t = await ops.share_input(secfxp, m, ["vendor", "day", "fare"], [0],
                                  integral=[True, True, False])
        g = ops.aggregate(t, ["vendor", "day"], [("s", "sum", "fare")])
        return await ops.reveal(g, [0], ["vendor", "day", "s"], ordered=False)

    out = run(body)
    got = sorted(zip(enc.decode_column(out[:, 0], "text"),
                     [d.isoformat() for d in enc.decode_column(out[:, 1], "date")],
                     enc.decode_column(out[:, 2], "decimal(10,2)"), strict=True))
    exp = defaultdict(float)
    for v, d, f in zip(vendors, days, fares, strict=True):
        exp[(v, d)] += f
    assert got == sorted((v, d, round(s, 2)) for (v, d), s in exp.items())


def test_aggregate_public_keys():
    rows = [(1, 5.0), (2, 3.0), (3, -1.0), (4, 8.0), (5, 2.0), (6, 6.0)]
    pk = np.array([20, 10, 20, 10, 30, 20])
    pk2 = np.array([1, 1, 1, 1, 1, 2])

    async def body():
        t = await table(rows, ["id", "v"])
        t = ops.filter_rows(t, ops.ne(t.columns["id"], 4))
        g = ops.aggregate_public_keys(t, {"g": pk}, AGGS)
        g2 = ops.aggregate_public_keys(t, {"g": pk, "h": pk2}, [("c", "count", None)])
        # a group whose rows are all invalid must vanish
        t3 = ops.filter_rows(t, ops.ne(t.columns["id"], 5))
        g3 = ops.aggregate_public_keys(t3, {"g": pk}, [("s", "sum", "v")])
        return await rev(g, ordered=True), await rev(g2, ordered=True), await rev(g3)

    g, g2, g3 = run(body)
    assert g == [(10, 3, 1, 3, 3), (20, 10, 3, -1, 6), (30, 2, 1, 2, 2)]
    assert g2 == [(10, 1, 1), (20, 1, 2), (20, 2, 1), (30, 1, 1)]
    assert sorted(g3) == [(10, 3), (20, 10)]


# ------------------------------------------------------------------ join, distinct, order by


def test_join_multi_key_with_duplicates():
    left = [(1, 1, 10), (1, 2, 11), (2, 1, 12), (1, 1, 13)]
    right = [(1, 1, 100), (1, 1, 101), (3, 3, 102)]

    async def body():
        lt_ = await table(left, ["a", "b", "x"])
        rt = await table(right, ["c", "d", "y"])
        rt = ops.filter_rows(rt, ops.ne(rt.columns["y"], 101))
        j = ops.join(lt_, rt, ["a", "b"], ["c", "d"])
        assert j.n == 12 and list(j.columns) == ["a", "b", "x", "c", "d", "y"]
        e = ops.join(lt_, await ops.share_input(secfxp, None, ["c", "d", "y"], [0]),
                     ["a", "b"], ["c", "d"])
        assert e.n == 0
        return await rev(j)

    exp = sorted(l_ + r for l_ in left for r in right
                 if l_[:2] == r[:2] and r[2] != 101)
    assert sorted(run(body)) == exp


def test_distinct():
    rows = [(1, 2), (1, 2), (2, 2), (1, 3), (2, 2), (5, 5)]

    async def body():
        t = await table(rows, ["a", "b"])
        t = ops.filter_rows(t, ops.ne(t.columns["a"], 5))
        d = ops.distinct(t, ["a", "b"])
        d1 = ops.distinct(t, ["b"])
        return await rev(d), await rev(d1)

    d, d1 = run(body)
    assert sorted(d) == [(1, 2), (1, 3), (2, 2)]
    assert sorted(d1) == [(2,), (3,)]


def test_order_by_limit_desc_and_negative():
    rows = [(3, -1.5), (1, 2.0), (3, 4.0), (-2, 0.0), (0, 9.0), (1, -7.0)]

    async def body():
        t = await table(rows, ["a", "b"])
        t = ops.filter_rows(t, ops.ne(t.columns["b"], 9))
        o = ops.order_by(t, [("a", True), ("b", False)], limit=4)
        assert o.n == 4
        o2 = ops.order_by(t, [("b", False)], limit=None)
        o3 = ops.order_by(t, [("a", False)], limit=100)
        assert o3.n == 6
        return await rev(o, ordered=True), await rev(o2, ordered=True), await rev(o3, ordered=True)

    o, o2, o3 = run(body)
    kept = [r for r in rows if r[1] != 9]
    assert o == sorted(kept, key=lambda r: (-r[0], r[1]))[:4]
    assert o2 == sorted(kept, key=lambda r: r[1])
    assert [r[0] for r in o3] == sorted(r[0] for r in kept)


# ------------------------------------------------------------------ property tests

small_int = st.integers(min_value=-3, max_value=3)
val = st.one_of(st.integers(-1000, 1000), st.sampled_from([0.5, -2.25, 1.125, 1e6]))


@HSET
@given(st.lists(st.tuples(small_int, small_int, val, st.booleans()), min_size=0, max_size=9))
def test_property_aggregate(rows):
    data = [(a, b, v) for a, b, v, _ in rows]
    keep = [int(k) for *_, k in rows]

    async def body():
        if not data:
            t = await ops.share_input(secfxp, None, ["a", "b", "v"], [0])
        else:
            t = await table(data, ["a", "b", "v"])
        flags = ops.const(secfxp, np.array(keep, dtype=object))
        t = ops.filter_rows(t, flags)
        return await rev(ops.aggregate(t, ["a", "b"], AGGS))

    exp = ref_aggregate([r for r, k in zip(data, keep, strict=True) if k], [0, 1], 2)
    assert approx_rows(run(body)) == approx_rows(exp)


@HSET
@given(st.lists(st.tuples(small_int, small_int), min_size=1, max_size=10),
       st.lists(st.booleans(), min_size=10, max_size=10))
def test_property_distinct(rows, keep):
    keep = keep[: len(rows)]

    async def body():
        t = await table(rows, ["a", "b"])
        t = ops.filter_rows(t, ops.const(secfxp, np.array(keep, dtype=object)))
        return await rev(ops.distinct(t, ["a", "b"]))

    assert sorted(run(body)) == sorted({r for r, k in zip(rows, keep, strict=True) if k})


@HSET
@given(st.lists(st.tuples(small_int, val), min_size=1, max_size=5),
       st.lists(st.tuples(small_int, val), min_size=1, max_size=5))
def test_property_join(left, right):
    async def body():
        lt_ = await table(left, ["k", "x"])
        rt = await table(right, ["k2", "y"])
        return await rev(ops.join(lt_, rt, ["k"], ["k2"]))

    exp = [l_ + r for l_ in left for r in right if l_[0] == r[0]]
    assert approx_rows(run(body)) == approx_rows(exp)


@HSET
@given(st.lists(st.tuples(small_int, val, st.booleans()), min_size=1, max_size=10),
       st.booleans(), st.one_of(st.none(), st.integers(0, 12)))
def test_property_order_by(rows, desc, limit):
    data = [(a, v) for a, v, _ in rows]
    keep = [int(k) for *_, k in rows]

    async def body():
        t = await table(data, ["a", "v"])
        t = ops.filter_rows(t, ops.const(secfxp, np.array(keep, dtype=object)))
        o = ops.order_by(t, [("a", desc), ("v", False)], limit)
        return await rev(o, ordered=True)

    kept = [r for r, k in zip(data, keep, strict=True) if k]
    exp = sorted(kept, key=lambda r: (-r[0] if desc else r[0], r[1]))
    if limit is not None:
        exp = exp[:limit]
    got = run(body)
    assert [(a, Fraction(v).limit_denominator(2**32)) for a, v in got] == [
        (a, Fraction(v)) for a, v in exp]


# --- long texts (several 7-byte pieces) and NULL flags ------------------------------------------
def _unique_text(data, n):
    words = ["", "a", "Engineer", "Engineering", "Engineering Manager", "Zürich", "€" * 5,
             "abcdefg", "abcdefgh", "x" * 30]
    return data.draw(st.lists(st.sampled_from(words), min_size=0, max_size=n))


@settings(max_examples=6, deadline=None)
@given(st.data())
def test_group_by_and_distinct_of_long_texts(data):
    words = _unique_text(data, 14)
    rows = [(w, i) for i, w in enumerate(words)]

    async def body():
        t = await text_table(rows, ["text", "int"]) if rows else None
        if t is None:
            return [], []
        g = ops.aggregate(t, ["c0"], [("n", "count", None), ("s", "sum", "c1")])
        d = ops.distinct(t, ["c0"])
        return await rev(g, ["c0", "n", "s"]), await rev(d, ["c0"])

    g, d = run(body)
    want = defaultdict(lambda: [0, 0])
    for w, i in rows:
        want[w][0] += 1
        want[w][1] += i
    got = {enc.decode_column([k], "text")[0]: (n, s) for k, n, s in g}
    assert got == {w: tuple(v) for w, v in want.items()}
    assert sorted(enc.decode_column([k for (k,) in d], "text")) == sorted(set(words))


def test_text_compare_order_by_and_join_across_piece_counts():
    left = [("Engineering Manager", 1), ("Engineer", 2), ("Zürich", 3), ("abc", 4)]
    right = [("Engineer", 10), ("Engineering Manager", 20), ("x" * 30, 30)]  # 5 pieces, left 3

    async def body():
        a = await text_table(left, ["text", "int"])
        b = await text_table(right, ["text", "int"])
        assert len(ops.pieces(a, "c0")) == 3 and len(ops.pieces(b, "c0")) == 5
        b = ops.project(b, {"k": b.columns["c0"], "v": b.columns["c1"],
                            **{f"k~{i}": b.columns[f"c0~{i}"] for i in range(1, 5)}})
        j = ops.join(a, b, ["c0"], ["k"])
        lit = [int(x) for x in enc.text_pieces("Engineering")]
        lt = ops.text_compare("lt", [a.columns[c] for c in ops.pieces(a, "c0")], lit)
        eq = ops.text_compare("eq", [a.columns[c] for c in ops.pieces(a, "c0")],
                              enc.text_pieces("Engineer"))
        o = ops.order_by(a, [("c0", True)])
        u = ops.concat([a, await text_table([("short", 5)], ["text", "int"])])
        return (await rev(j, ["c0", "c1", "v"]), await mpc.output(lt), await mpc.output(eq),
                await rev(o, ["c0"], ordered=True), await rev(u, ["c0", "c1"]))

    j, lt, eq, o, u = run(body)
    assert sorted((enc.decode_column([k], "text")[0], x, v) for k, x, v in j) == \
        [("Engineer", 2, 10), ("Engineering Manager", 1, 20)]
    words = [w for w, _ in left]
    assert [int(x) for x in lt] == [int(w.encode() < b"Engineering") for w in words]
    assert [int(x) for x in eq] == [int(w == "Engineer") for w in words]
    assert enc.decode_column([k for (k,) in o], "text") == sorted(words, reverse=True,
                                                                  key=lambda w: w.encode())
    assert sorted(enc.decode_column([k for k, _ in u], "text")) == sorted(words + ["short"])


def test_null_flags_in_aggregates_and_reveal():
    rows = [(1, 5.0), (1, None), (2, None), (3, 2.5), (3, 4.0)]

    async def body():
        t = await text_table(rows, ["int", "float"])
        g = ops.aggregate(t, ["c0"], [("s", "sum", "c1"), ("n", "count", "c1"),
                                      ("m", "max", "c1"), ("all", "count", None)])
        a = ops.aggregate(t, [], [("s", "sum", "c1"), ("n", "count", "c1"), ("lo", "min", "c1")])
        return await rev(g, ["c0", "s", "n", "m", "all"]), await rev(a, ["s", "n", "lo"])

    g, a = run(body)
    assert sorted(g) == [(1, 5, 1, 5, 2), (2, None, 0, None, 1), (3, 6.5, 2, 4, 2)]
    assert a == [(11.5, 3, 2.5)]


def test_public_text_keys_longer_than_a_piece():
    keys = np.array(["Yellow Cab Co", "Green", "Yellow Cab Co", "Green", "Very Long Company Name"],
                    dtype=object)

    async def body():
        t = await table([(1,), (2,), (3,), (4,), (5,)], ["v"], integral=[True])
        g = ops.aggregate_public_keys(t, {"k": keys}, [("s", "sum", "v")])
        return await rev(g, ["k", "s"])

    got = {enc.decode_column([k], "text")[0]: s for k, s in run(body)}
    assert got == {"Yellow Cab Co": 4, "Green": 6, "Very Long Company Name": 5}
