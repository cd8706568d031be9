"""Fast tests (MPyC with 1 party, in this process) of the radix sort, the resharing shuffle, the
small-field protocols and the operators built on them (group-by, distinct, order by, reveal's
compaction, the sort-based PK-FK join). The 3-party versions are in test_radix_3party.py.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mpyc.runtime import mpc
from mpc_helpers import obj, run
from sqlmpc.backends.mpyc.lib import bits as bitconv
from sqlmpc.backends.mpyc.lib import aggregate as lib_aggregate
from sqlmpc.backends.mpyc.lib import join as lib_join
from sqlmpc.backends.mpyc.lib import keyspec, radix
from sqlmpc.backends.mpyc import ops
from sqlmpc.backends.mpyc.lib import shuffle as shf
from sqlmpc.backends.mpyc.lib import smallfield as sf
from sqlmpc.backends.mpyc.lib.table import stack

secfxp = mpc.SecFxp(96, 32)
F = 32
HSET = settings(max_examples=10, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])




async def table(rows, cols, integral=None, **kw):
    integral = [True] * len(cols) if integral is None else integral
    return await ops.share_input(secfxp, obj(rows, len(cols)), cols, [0], integral=integral, **kw)


async def rev(t, cols=None, ordered=False):
    cols = list(t.columns) if cols is None else cols
    out = await ops.reveal(t, [0], cols, ordered=ordered)
    return [tuple(r) for r in out.tolist()]


def sort_plain(keys, desc=None):
    """Stable sort of row indices by the key tuples (list per row)."""
    n = len(keys)
    idx = list(range(n))
    desc = desc or [False] * (len(keys[0]) if n else 0)
    for j in reversed(range(len(desc))):
        idx.sort(key=lambda i, j=j: keys[i][j], reverse=desc[j])
    return idx


async def radix_sort(keys, specs, desc=None):
    """Sort rows (key columns + index) with radix.sort_rows; return the payload index order."""
    n = len(keys)
    k = len(specs)
    desc = desc or [False] * k
    t = await table([tuple(r) + (i,) for i, r in enumerate(keys)],
                    [f"k{j}" for j in range(k)] + ["i"],
                    integral=[s.integral for s in specs] + [True])
    m = stack([t.columns[f"k{j}"] for j in range(k)] + [t.columns["i"]], t.sectype, n)
    out = radix.sort_rows([t.columns[f"k{j}"] for j in range(k)], specs, desc, m)
    o = await mpc.output(out[k])
    return [int(round(float(x))) for x in o]


INT30 = keyspec.KeySpec(0, (1 << 30) - 1)


@pytest.fixture(autouse=True)
def _always_sort_join(monkeypatch):
    """Test the sort-based join and group-by even on the tiny inputs where n x m or the
    pairwise group-by would be chosen."""
    monkeypatch.setattr(lib_join, "NESTED_LOOP_MAX", 0)
    monkeypatch.setattr(lib_aggregate, "SMALL_GROUP_MAX", 0)


# ------------------------------------------------------------------ sort


def test_sort_stable_with_duplicates():
    keys = [(5,), (3,), (5,), (0,), (3,), (7,), (0,), (5,)]
    assert run(lambda: radix_sort(keys, [INT30])) == sort_plain(keys)


def test_sort_all_equal_and_single_and_empty():
    keys = [(4,)] * 9
    assert run(lambda: radix_sort(keys, [INT30])) == list(range(9))
    assert run(lambda: radix_sort([(1,)], [INT30])) == [0]

    async def empty():
        t = await table([], ["k"])
        m = stack([t.columns["k"]], t.sectype, 0)
        out = radix.sort_rows([t.columns["k"]], [INT30], [False], m)
        return out.shape

    assert run(empty) == (1, 0)


def test_sort_negative_range_descending_multikey():
    keys = [(-3, 2), (5, 1), (-3, 1), (0, 9), (5, 1), (-1000, 0)]
    specs = [keyspec.KeySpec(-1024, 1023), keyspec.KeySpec(0, 15)]
    got = run(lambda: radix_sort(keys, specs, [True, False]))
    assert got == sort_plain(keys, [True, False])


def test_sort_default_64bit_and_fractional_keys():
    keys = [(2**62,), (-(2**62),), (0,), (17,), (-1,)]
    assert run(lambda: radix_sort(keys, [keyspec.spec_for(None, True, F)])) == sort_plain(keys)
    fk = [(1.5,), (-0.25,), (1.25,), (-7.75,), (1.5,)]
    spec = keyspec.spec_for(None, False, F)
    assert run(lambda: radix_sort(fk, [spec])) == sort_plain(fk)


@HSET
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(-50, 50)), max_size=25),
       st.lists(st.booleans(), min_size=2, max_size=2))
def test_property_sort(keys, desc):
    specs = [keyspec.KeySpec(0, 7), keyspec.KeySpec(-64, 63)]
    if not keys:
        return
    assert run(lambda: radix_sort(keys, specs, desc)) == sort_plain(keys, desc)


def test_spec_for():
    assert keyspec.spec_for(30, True, F).bits == 30
    assert keyspec.spec_for((-5, 10), True, F) == keyspec.KeySpec(-5, 10)
    assert keyspec.spec_for(None, True, F).bits == 64
    assert keyspec.spec_for(None, False, F).bits == 96
    assert keyspec.TYPE_RANGES["text"].bits == 56 and keyspec.TYPE_RANGES["date"].bits == 20
    with pytest.raises(ValueError):
        keyspec.spec_for(0, True, F)


# ------------------------------------------------------------------ primitives


def test_shuffle_and_unshuffle_small_and_big_field():
    async def body():
        n = 50
        sh = await shf.new_shuffle(n)
        a = np.arange(n, dtype=np.int64).reshape(1, n) * 3 % sf.P
        field = secfxp.field
        b = field.array(np.arange(n, dtype=object).reshape(1, n) + 10**30)
        ya, yb = await shf.shuffle([a, b], sh)
        za, zb = await shf.unshuffle([ya, yb], sh)
        return a, b, ya, yb, za, zb

    a, b, ya, yb, za, zb = run(body)
    assert sorted(ya[0].tolist()) == sorted(a[0].tolist())
    assert ya[0].tolist() != a[0].tolist()  # a random permutation of 50 (fails w.p. 1/50!)
    # the same permutation on both arrays
    assert [(int(v) - 10**30) * 3 for v in yb.value[0]] == ya[0].tolist()
    assert za.tolist() == a.tolist() and zb.value.tolist() == b.value.tolist()


def test_smallfield_split_recombine_and_uniform():
    v = np.array([0, 1, 5, sf.P - 1], dtype=np.int64)
    shares = sf.split(v, 1, 3)
    got = sf.recombine((1, 2), shares[:2])
    assert got.tolist() == v.tolist()
    got = sf.recombine((2, 3), shares[1:])
    assert got.tolist() == v.tolist()
    u = sf.uniform((1000,))
    assert u.min() >= 0 and u.max() < sf.P


def test_fast_random_split_matches_shamir():
    field = secfxp.field
    s = np.array([3, 10**40, 0], dtype=object)
    sh = shf.fast_random_split(field, field.array(s), 1, 3)
    p = field.modulus
    lam = shf.thresha._recombination_vector(field, (1, 3), 0)
    rec = [(lam[0] * int(sh[0][i]) + lam[1] * int(sh[2][i])) % p for i in range(3)]
    assert rec == [int(x) for x in s]


def test_small_bits_and_back():
    async def body():
        vals = [0, 1, 6, 1023, 512]
        t = await table([(v,) for v in vals], ["k"])
        av = await mpc.gather(t.columns["k"])
        bits = await bitconv.small_bits(av, 10, scaled=F)
        big = await bitconv.small_to_big_bits(bits, secfxp.field)
        return vals, bits, big

    vals, bits, big = run(body)
    for j, v in enumerate(vals):
        assert [int(bits[i, j]) for i in range(10)] == [(v >> i) & 1 for i in range(10)]
    assert [int(x) for x in big.value.reshape(10, -1)[:, 3]] == [1] * 10


# ------------------------------------------------------------------ operators


def ref_group(rows):
    g = defaultdict(list)
    for k, v in rows:
        g[k].append(v)
    return sorted((k, sum(v), len(v), min(v), max(v)) for k, v in g.items())


AGGS = [("s", "sum", "v"), ("c", "count", None), ("mn", "min", "v"), ("mx", "max", "v")]


@HSET
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(-20, 20)), max_size=20),
       st.integers(-25, 25))
def test_property_group_by_radix_with_filter(rows, cut):
    async def body():
        t = await table(rows, ["k", "v"], types=["int", "int"], key_bits={"k": 3})
        t = ops.filter_rows(t, ops.gt(t.columns["v"], cut))
        return await rev(ops.aggregate(t, ["k"], AGGS))

    got = sorted(tuple(int(round(x)) for x in r) for r in run(body))
    assert got == ref_group([r for r in rows if r[1] > cut])


def test_group_by_text_and_date_types_and_network_baseline_agree():
    rows = [(10, 3, 1.5), (11, 3, 2.0), (10, 4, 1.0), (10, 3, 0.25), (11, 3, 5.0)]

    async def body():
        t = await table(rows, ["a", "b", "v"], integral=[True, True, False],
                        types=["text", "date", "float"])
        g1 = ops.aggregate(t, ["a", "b"], [("s", "sum", "v"), ("c", "count", None)])
        g2 = ops.aggregate(t, ["a", "b"], [("s", "sum", "v"), ("c", "count", None)],
                           method="network")
        return await rev(g1), await rev(g2)

    r1, r2 = run(body)
    exp = sorted([(10, 3, 1.75, 2), (11, 3, 7.0, 2), (10, 4, 1.0, 1)])
    assert sorted(r1) == exp and sorted(r2) == exp


def test_distinct_order_by_stable_limit_and_reveal_ordered():
    rows = [(3, 0), (1, 1), (3, 2), (2, 3), (1, 4), (3, 5)]

    async def body():
        t = await table(rows, ["k", "i"], key_bits={"k": 2, "i": 3})
        t = ops.filter_rows(t, ops.ne(t.columns["i"], 2))
        d = await rev(ops.distinct(t, ["k"]))
        o = await rev(ops.order_by(t, [("k", True)], limit=4), ordered=True)
        f = await rev(t, ordered=True)  # compaction keeps the order
        return d, o, f

    d, o, f = run(body)
    assert sorted(d) == [(1,), (2,), (3,)]
    assert o == [(3, 0), (3, 5), (2, 3), (1, 1)]  # ties keep input order (stable)
    assert f == [r for r in rows if r[1] != 2]


def test_reveal_unordered_compaction_is_a_permutation_of_valid_rows():
    rows = [(i, i % 3) for i in range(30)]

    async def body():
        t = await table(rows, ["a", "b"])
        t = ops.filter_rows(t, ops.eq(t.columns["b"], 1))
        return await rev(t)

    got = run(body)
    assert sorted(got) == [r for r in rows if r[1] == 1]


def ref_join(left, right):
    return sorted((a, x, b, y) for a, x in left for b, y in right if a == b)


@pytest.mark.parametrize("unique", ["left", "right"])
def test_pkfk_join_matches_and_keeps_fk_order(unique):
    pk = [(7, 70), (3, 30), (9, 90), (1, 10), (4, 40)]
    fk = [(3, 1), (3, 2), (8, 3), (7, 4), (1, 5), (3, 6), (0, 7), (9, 8)] * 3
    left, right = (pk, fk) if unique == "left" else (fk, pk)

    async def body():
        lt = await table(left, ["a", "x"], key_bits={"a": 4})
        rt = await table(right, ["b", "y"], key_bits={"b": 4})
        j = ops.join(lt, rt, ["a"], ["b"], unique=unique)
        assert j.n == len(fk) and list(j.columns) == ["a", "x", "b", "y"]
        return await rev(j, ordered=True)

    got = run(body)
    exp = [(a, x, b, y) for a, x in left for b, y in right if a == b]
    fkpos = 2 if unique == "left" else 0
    fk_order = [r for r in fk if r[0] in {p[0] for p in pk}]
    assert [tuple(g[fkpos:fkpos + 2]) for g in got] == fk_order
    assert sorted(got) == sorted(exp)


def test_pkfk_join_invalid_pk_duplicates_and_empty_sides():
    pk = [(5, 1), (5, 2), (6, 3), (2, 4), (2, 5)]  # valid after the filter: x in (2, 3, 5)
    fk = [(5, 0), (6, 0), (2, 0), (9, 0)] * 20

    async def body():
        lt = await table(pk, ["a", "x"], key_bits={"a": 4})
        lt = ops.filter_rows(lt, ops.ne(lt.columns["x"], 1) * ops.ne(lt.columns["x"], 4))
        rt = await table(fk, ["b", "y"], key_bits={"b": 4})
        j = await rev(ops.join(lt, rt, ["a"], ["b"], unique="left"))
        e1 = await table([], ["c", "z"])
        j2 = ops.join(e1, rt, ["c"], ["b"], unique="left")
        j3 = ops.join(rt, e1, ["b"], ["c"], unique="right")
        return j, await rev(j2), j3.n

    j, j2, n3 = run(body)
    assert sorted(j) == sorted([(5, 2, 5, 0), (6, 3, 6, 0), (2, 5, 2, 0)] * 20)
    assert j2 == [] and n3 == 80


@HSET
@given(st.lists(st.integers(0, 12), unique=True, max_size=12),
       st.lists(st.integers(0, 14), max_size=30))
def test_property_pkfk_join(pkeys, fkeys):
    left = [(k, 100 + k) for k in pkeys]
    right = [(k, i) for i, k in enumerate(fkeys)]

    async def body():
        lt = await table(left, ["a", "x"], key_bits={"a": 4})
        rt = await table(right, ["b", "y"], key_bits={"b": 4})
        return await rev(ops.join(lt, rt, ["a"], ["b"], unique="left"))

    got = sorted(tuple(int(v) for v in r) for r in run(body))
    assert got == ref_join(left, right)


def test_multi_key_pkfk_join_with_default_widths():
    pk = [(1, 2, 12), (1, 3, 13), (2, 2, 22)]
    fk = [(1, 3, 0), (2, 2, 1), (2, 3, 2), (1, 2, 3)] * 70  # n*m > NESTED_LOOP_MAX

    async def body():
        lt = await table(pk, ["a1", "a2", "x"])
        rt = await table(fk, ["b1", "b2", "y"])
        return await rev(ops.join(lt, rt, ["a1", "a2"], ["b1", "b2"], unique="left"))

    got = sorted(run(body))
    exp = sorted((a1, a2, x, b1, b2, y) for a1, a2, x in pk for b1, b2, y in fk
                 if (a1, a2) == (b1, b2))
    assert got == exp
