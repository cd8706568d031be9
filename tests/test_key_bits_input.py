"""Key bits input by their owners (``share_input(..., input_bits=...)``, ``SecTable.bits``):
the sort-based operators give the same answers with and without them (and as plain Python),
actually use them (no key bit extraction), never use them for another column, and the
compiler asks for them only for input columns that later operators sort on.

MPyC with 1 party, in this process (fast); the 3-party run is in the generated-program test
at the end (marked slow).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from mpyc.runtime import mpc
from mpc_helpers import obj, run
from sqlmpc.backends.mpyc.lib import bits as bitconv
from sqlmpc.backends.mpyc.lib import aggregate as lib_aggregate
from sqlmpc.backends.mpyc.lib import join as lib_join
from sqlmpc.backends.mpyc.lib import keyspec, radix
from sqlmpc.backends.mpyc import ops
from sqlmpc.backends.mpyc.lib import semijoin as sj
from sqlmpc.backends.mpyc.lib import smallfield as sf
from sqlmpc.backends.mpyc import support
from sqlmpc.backends.mpyc.lib import encoding as enc

secfxp = mpc.SecFxp(96, 32)
INT12 = (-2048, 2047)


@pytest.fixture(autouse=True)
def _sort_paths(monkeypatch):
    """The sort-based operators even on tiny inputs (not the nested loop or pairwise
    group-by, which use no key bits)."""
    monkeypatch.setattr(lib_join, "NESTED_LOOP_MAX", 0)
    monkeypatch.setattr(lib_aggregate, "SMALL_GROUP_MAX", 0)
    monkeypatch.setattr(sj, "NESTED_LOOP_MAX", 0)


@pytest.fixture
def extractions(monkeypatch):
    """Count the key bit extractions (``bitconv.small_bits`` of more than 1 bit: the 1-bit ones
    are the valid flags, which are always extracted)."""
    calls = []
    orig = bitconv.small_bits

    async def counting(av, L, scaled=0):
        if L > 1:
            calls.append((L, av.shape[0]))
        return await orig(av, L, scaled)

    monkeypatch.setattr(radix, "small_bits", counting)
    return calls


ROWS = [(5, 10), (-3, 1), (5, 7), (0, 2), (-3, 4), (2047, 5), (-2048, 6), (5, 1), (0, 0)]


async def table(rows, cols=("k", "v"), bits=("k",), key_bits=None, **kw):
    key_bits = {"k": INT12} if key_bits is None else key_bits
    return await ops.share_input(secfxp, obj(rows, len(cols)) if rows else None, list(cols),
                                 [0], integral=[True] * len(cols), key_bits=key_bits,
                                 input_bits=list(bits), **kw)


async def rev(t, cols, ordered=False):
    out = await ops.reveal(t, [0], cols, ordered=ordered)
    return [tuple(int(x) for x in r) for r in out.tolist()]


def groups(rows):
    s, c = defaultdict(int), defaultdict(int)
    for k, v in rows:
        s[k] += v
        c[k] += 1
    return sorted((k, s[k], c[k]) for k in s)


# ------------------------------------------------------------------ input


def test_owner_bits_are_the_bits_of_x_minus_lo():
    async def body():
        t = await table(ROWS)
        kb = t.bits["k"]
        assert kb.column is t.columns["k"] and kb.spec == keyspec.KeySpec(*INT12)
        opened = await sf.open_(kb.bits)
        return opened

    got = run(body)
    assert got.shape == (12, len(ROWS))
    assert got.tolist() == keyspec.clear_bits([k + 2048 for k, _ in ROWS],
                                            keyspec.KeySpec(0, 4095)).tolist()


def test_value_out_of_range_at_the_owner_is_a_clear_error():
    async def body():
        await table([(1, 1), (4096, 2)], key_bits={"k": 12})

    with pytest.raises(ValueError) as e:
        run(body)
    msg = str(e.value)
    assert msg.startswith("column k: a value lies outside its key range [0, 4095]")
    assert "4096" not in msg  # the value itself is not shown
    with pytest.raises(ValueError, match="input_bits: column 'v' is not integral"):
        run(lambda: ops.share_input(secfxp, obj([(1, 0.5)], 2), ["k", "v"], [0],
                                    integral=[True, False], input_bits=["v"]))


def test_padding_dummy_rows_get_the_bits_of_their_zero_value():
    async def body():
        t = await table([(7, 1), (9, 2)], key_bits={"k": (5, 20)}, pad_to=4)
        return await sf.open_(t.bits["k"].bits), t

    got, t = run(body)
    spec = keyspec.KeySpec(5, 20)
    # rows 2, 3 are dummies (value 0): (0 - 5) mod 16, what extraction gives for them
    assert got.tolist() == keyspec.clear_bits([7, 9, 0, 0], spec).tolist()

    async def grouped():
        t = await table([(7, 1), (9, 2), (7, 5)], key_bits={"k": (5, 20)}, pad_to=8)
        return await rev(ops.aggregate(t, ["k"], [("s", "sum", "v"), ("c", "count", None)]),
                         ["k", "s", "c"])

    assert sorted(run(grouped)) == [(7, 6, 2), (9, 2, 1)]


# ------------------------------------------------------------------ operators


def test_group_by_distinct_order_by_with_and_without_owner_bits(extractions):
    async def body(bits):
        t = await table(ROWS, bits=bits)
        g = ops.aggregate(t, ["k"], [("s", "sum", "v"), ("c", "count", None),
                                     ("mx", "max", "v")])
        d = ops.distinct(t, ["k"])
        o = ops.order_by(t, [("k", True), ("v", False)])
        top = ops.order_by(t, [("k", False)], limit=3)
        return (sorted(await rev(g, ["k", "s", "c"])), sorted(await rev(d, ["k"])),
                await rev(o, ["k", "v"], ordered=True), await rev(top, ["k"], ordered=True))

    with_bits = run(lambda: body(("k",)))
    assert all(L != 12 for L, _ in extractions)  # k never extracted (v: 64 bits, for MAX)
    extractions.clear()
    without = run(lambda: body(()))
    assert any(L == 12 for L, _ in extractions)  # the old path extracts k
    assert with_bits == without
    g, d, o, top = with_bits
    assert g == groups(ROWS)
    assert d == sorted({(k,) for k, _ in ROWS})
    assert o == sorted(ROWS, key=lambda r: (-r[0], r[1]))
    assert top == [(k,) for k in sorted(k for k, _ in ROWS)[:3]]


def test_min_max_use_the_value_columns_bits(extractions):
    async def body():
        t = await table(ROWS, bits=("k", "v"), key_bits={"k": INT12, "v": 8})
        g = ops.aggregate(t, ["k"], [("lo", "min", "v"), ("hi", "max", "v")])
        return sorted(await rev(g, ["k", "lo", "hi"]))

    got = run(body)
    assert extractions == []
    by = defaultdict(list)
    for k, v in ROWS:
        by[k].append(v)
    assert got == sorted((k, min(v), max(v)) for k, v in by.items())


def test_pkfk_join_many_to_many_and_semi_join(extractions):
    pk = [(1, 100), (2, 200), (3, 300), (7, 700)]
    fk = [(2, 5), (9, 6), (1, 7), (2, 8), (7, 9), (4, 10)]

    async def body(bits):
        left = await ops.share_input(secfxp, obj(pk, 2), ["a", "x"], [0], integral=[True] * 2,
                                     key_bits={"a": 10}, input_bits=bits)
        right = await ops.share_input(secfxp, obj(fk, 2), ["b", "y"], [0],
                                      integral=[True] * 2, key_bits={"b": 10},
                                      input_bits=[c.replace("a", "b") for c in bits])
        j = ops.join(left, right, ["a"], ["b"], unique="left")
        mm = await ops.join_many(left, right, ["a"], ["b"])
        semi = ops.semi_join(right, left, ["b"], ["a"])
        anti = ops.semi_join(right, left, ["b"], ["a"], anti=True)
        return (sorted(await rev(j, ["a", "x", "y"])), sorted(await rev(mm, ["a", "x", "y"])),
                sorted(await rev(semi, ["b", "y"])), sorted(await rev(anti, ["b", "y"])))

    with_bits = run(lambda: body(["a"]))
    assert all(L != 10 for L, _ in extractions)  # (join_many extracts its positions' bits)
    extractions.clear()
    without = run(lambda: body([]))
    assert sum(L == 10 for L, _ in extractions) == 4
    assert with_bits == without
    j, mm, sj, aj = with_bits
    pkd = dict(pk)
    assert j == mm == sorted((b, pkd[b], y) for b, y in fk if b in pkd)
    assert sj == sorted((b, y) for b, y in fk if b in pkd)
    assert aj == sorted((b, y) for b, y in fk if b not in pkd)


def test_one_side_with_bits_extracts_only_the_other_side(extractions):
    async def body():
        left = await ops.share_input(secfxp, obj([(1, 1), (2, 2), (3, 3)], 2), ["a", "x"], [0],
                                     integral=[True] * 2, key_bits={"a": 10}, input_bits=["a"])
        right = await ops.share_input(secfxp, obj([(3, 9), (1, 8), (5, 7), (3, 6)], 2),
                                      ["b", "y"], [0], integral=[True] * 2, key_bits={"b": 10})
        j = ops.join(left, right, ["a"], ["b"], unique="left")
        return sorted(await rev(j, ["a", "x", "y"]))

    assert run(body) == [(1, 1, 8), (3, 3, 6), (3, 3, 9)]
    assert extractions == [(10, 4)]  # the right side's 4 keys only


def test_text_keys_with_pieces_and_null_flags(extractions):
    texts = ["a much longer text value", "short", None, "a much longer text value",
             "short", "x", None]
    df_rows = [(t, i) for i, t in enumerate(texts)]

    async def body(bits):
        import pandas as pd
        df = pd.DataFrame(df_rows, columns=["s", "v"])
        d = support.encode_frame(df, ["s", "v"], ["text", "int"], [], 96, 32, nullable=["s"])
        t = await ops.share_input(secfxp, d["rows"], ["s", "v"], [0], integral=[True, True],
                                  types=["text", "int"], extra=d["extra"], input_bits=bits)
        assert set(t.bits) == ({"s", "s~1", "s~2", "s~3", "s~null"} if bits else set())
        g = ops.aggregate(t, ["s"], [("c", "count", None), ("sv", "sum", "v")])
        out = await ops.reveal(g, [0], ["s", "c", "sv"], ordered=False)
        return sorted((("" if r[0] is None else enc.decode_column([r[0]], "text")[0]
                        ), int(r[1]), int(r[2])) for r in out.tolist())

    with_bits = run(lambda: body(["s"]))
    assert all(L == 1 for L, _ in extractions)
    assert with_bits == run(lambda: body([]))
    expect = defaultdict(lambda: [0, 0])
    for t, i in df_rows:
        expect["" if t is None else t][0] += 1
        expect["" if t is None else t][1] += i
    assert with_bits == sorted((k, c, s) for k, (c, s) in expect.items())


# ------------------------------------------------------------------ keeping and dropping


def test_kept_by_filter_rename_projection_concat_and_empty_parts():
    async def body():
        a = await table(ROWS[:4])
        empty = await table([])
        assert empty.bits["k"].bits.shape == (12, 0)
        b = await table(ROWS[4:])
        u = ops.concat([ops.rename(x, {"key": "k", "val": "v"}) for x in (a, empty, b)])
        assert set(u.bits) == {"key"} and u.bits["key"].column is u.columns["key"]
        f = ops.filter_rows(u, ops.gt(u.columns["val"], 1))
        p = ops.project(f, {"kk": f.columns["key"], "w": f.columns["val"] + 1})
        assert set(f.bits) == {"key"} and set(p.bits) == {"kk"}
        g = ops.aggregate(p, ["kk"], [("s", "sum", "w")])
        assert g.bits == {} and ops.order_by(p, [("kk", False)]).bits == {}
        return sorted(await rev(g, ["kk", "s"]))

    assert run(body) == sorted((k, s + c) for k, s, c in groups([r for r in ROWS if r[1] > 1]))


def test_concat_drops_bits_unless_every_part_has_them(extractions):
    async def body():
        a = await table(ROWS[:4])
        b = await table(ROWS[4:], bits=())
        u = ops.concat([a, b])
        assert u.bits == {}
        return await rev(ops.order_by(u, [("k", False), ("v", False)]), ["k", "v"], True)

    assert run(body) == sorted(ROWS)
    assert any(L == 12 for L, _ in extractions)


def test_concat_rebases_narrower_parts_with_the_same_lo():
    async def body():
        a = await table([(3, 1), (1, 2)], key_bits={"k": 2})
        b = await table([(900, 3), (2, 4)], key_bits={"k": 10})
        u = ops.concat([a, b])
        assert u.bits["k"].spec == keyspec.KeySpec(0, 1023)
        return await rev(ops.order_by(u, [("k", False)]), ["k", "v"], True)

    assert run(body) == [(1, 2), (2, 4), (3, 1), (900, 3)]


def test_cache_dropped_after_a_computed_column():
    async def body():
        t = await table(ROWS)
        p = ops.project(t, {"k": -t.columns["k"], "v": t.columns["v"]})  # same name, new values
        assert "k" not in p.bits
        return await rev(ops.order_by(p, [("k", False), ("v", False)]), ["k", "v"], True)

    assert run(body) == sorted((-k, v) for k, v in ROWS)


def test_bits_of_another_column_are_never_used():
    """Regression guard: a cache entry made for column v but filed under k (e.g. by a
    rename or projection that swapped names) must not sort k. Fails if the operators trusted
    the name instead of the array."""
    async def body():
        t = await table(ROWS, bits=("k", "v"), key_bits={"k": INT12, "v": INT12})
        wrong = ops.SecTable(dict(t.columns), t.valid, ranges=dict(t.ranges),
                             bits={"k": t.bits["v"], "v": t.bits["k"]})
        assert wrong.key_bits("k", keyspec.KeySpec(*INT12)) is None
        swapped = ops.project(t, {"k": t.columns["v"], "v": t.columns["k"]})
        assert swapped.bits["k"] is t.bits["v"]  # follows the array, not the name
        return (await rev(ops.order_by(wrong, [("k", False), ("v", False)]), ["k", "v"], True),
                await rev(ops.order_by(swapped, [("k", False), ("v", False)]), ["k", "v"],
                          True))

    got_wrong, got_swapped = run(body)
    assert got_wrong == sorted(ROWS)
    assert got_swapped == sorted((v, k) for k, v in ROWS)


def test_the_cache_is_really_what_the_sort_uses():
    """The other side of the guard above: bits filed for the right array are trusted as they
    are, so the sort follows them (here: deliberately the bits of -k). Without the cache being
    used, the order would be by k."""
    async def body():
        t = await table(ROWS)
        spec = keyspec.KeySpec(*INT12)
        fake = keyspec.clear_bits([-k - 1 for k, _ in ROWS], spec)  # in range: -2048..2047
        t.bits["k"] = ops.KeyBits(t.columns["k"], spec, fake)
        return await rev(ops.order_by(t, [("k", False)]), ["k"], True)

    assert run(body) == [(k,) for k, _ in sorted(ROWS, key=lambda r: -r[0])]


def test_key_bits_small_blocks_and_fit():
    spec = keyspec.KeySpec(0, 15)
    b = keyspec.clear_bits([3, 9], spec)
    assert keyspec.fit_bits(spec, b, keyspec.KeySpec(0, 63)).tolist() == \
        keyspec.clear_bits([3, 9], keyspec.KeySpec(0, 63)).tolist()
    assert keyspec.fit_bits(spec, b, keyspec.KeySpec(0, 3)).tolist() == b[:2].tolist()
    assert keyspec.fit_bits(spec, b, keyspec.KeySpec(1, 16)) is None

    async def body():
        t = await table([(3, 0), (9, 0), (12, 0), (1, 0)], key_bits={"k": 4}, bits=())
        kv = await mpc.gather(t.columns["k"])
        blocks = [(b, 2), (None, 2)]
        out = await radix.key_bits_small([kv], [spec], [True], 32, [blocks])
        return await sf.open_(out[0])

    assert run(body).tolist() == (1 - keyspec.clear_bits([3, 9, 12, 1], spec)).tolist()


# ------------------------------------------------------------------ the compiler's choice


def _share_bits(sql: str, **kw) -> list[list[str]]:
    """The input_bits of every share_input call of the generated program."""
    import ast
    from pathlib import Path

    from sqlmpc.backends.mpyc.codegen import render_secure_job
    from sqlmpc.compiler.catalog import Catalog
    from sqlmpc.compiler.planner import compile_query

    cat = Catalog.load(Path(__file__).parent / "fixtures" / "tiny" / "catalog.toml")
    src = render_secure_job(compile_query(sql, cat, all_secure=True, **kw))
    out = []
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "share_input":
            kws = {k.arg: k.value for k in node.keywords}
            out.append(ast.literal_eval(kws["input_bits"]) if "input_bits" in kws else [])
    return out


@pytest.mark.parametrize("sql, expect", [
    ("SELECT passengers, SUM(fare) AS s FROM trips GROUP BY passengers",
     [["trips.passengers"]] * 2),
    ("SELECT DISTINCT pickup FROM trips", [["trips.pickup"]] * 2),
    ("SELECT pickup, fare FROM trips WHERE fare > 3 ORDER BY pickup DESC LIMIT 3",
     [["trips.pickup"]] * 2),
    ("SELECT fare FROM trips WHERE passengers IN (SELECT zone FROM zones)",
     [["trips.passengers"]] * 2 + [["zones.zone"]]),
    ("SELECT t.fare, z.borough FROM trips t JOIN zones z ON t.passengers = z.zone",
     [["t.passengers"]] * 2 + [["z.zone"]]),
    # a computed key: its bits must be extracted in MPC; nothing is input as bits
    ("SELECT passengers + 1 AS p, COUNT(*) AS c FROM trips GROUP BY passengers + 1",
     [[]] * 2),
    # sums only: no sort at all
    ("SELECT SUM(fare) AS s FROM trips", [[]] * 2),
    # a float ORDER BY key has no integral bits to input
    ("SELECT distance FROM trips ORDER BY distance", [[]] * 2),
])
def test_generated_programs_input_bits_of_sort_keys_only(sql, expect):
    assert sorted(_share_bits(sql)) == sorted(expect)


def test_order_by_limit_sorts_once():
    from pathlib import Path

    from sqlmpc.backends.mpyc.codegen import render_secure_job
    from sqlmpc.compiler.catalog import Catalog
    from sqlmpc.compiler.planner import compile_query

    cat = Catalog.load(Path(__file__).parent / "fixtures" / "tiny" / "catalog.toml")
    src = render_secure_job(compile_query(
        "SELECT pickup FROM trips ORDER BY pickup DESC LIMIT 3", cat, all_secure=True))
    assert src.count("ops.order_by(") == 1 and "limit=3" in src


@pytest.mark.slow
@pytest.mark.parametrize("sql", [
    "SELECT passengers, SUM(fare) AS s, COUNT(*) AS n, MAX(pickup) AS m FROM trips "
    "GROUP BY passengers",
    "SELECT DISTINCT pickup FROM trips",
    "SELECT pickup, passengers FROM trips WHERE fare > 3 ORDER BY pickup DESC, passengers "
    "LIMIT 4",
    "SELECT fare FROM trips WHERE passengers IN (SELECT zone FROM zones)",
    "SELECT t.fare, z.borough FROM trips t JOIN zones z ON t.passengers = z.zone",
])
def test_three_parties_with_owner_bits_match_duckdb(tmp_path, sql, reference, same_result):
    """Generated programs (3 parties, owner bits where the plan allows) against DuckDB."""
    from pathlib import Path

    import pandas as pd

    from sqlmpc.runtime.cli import main

    catalog = Path(__file__).parent / "fixtures" / "tiny" / "catalog.toml"
    q = tmp_path / "q.sql"
    q.write_text(sql)
    out = tmp_path / "result.csv"
    assert main(["run", str(q), "--catalog", str(catalog), "--engine", "duckdb", "--quiet",
                 "--all-secure", "--out", str(out), "--workdir", str(tmp_path / "run")]) == 0
    program = (tmp_path / "run" / "plan" / "secure_job.py").read_text()
    assert "input_bits=" in program
    same_result(pd.read_csv(out), reference(catalog, sql), "ORDER BY" in sql)


def test_through_a_pk_fk_join_only_the_fk_sides_columns_keep_bits(tmp_path):
    """Output row j of the PK-FK join is FK row j, so a GROUP BY on an FK-side column can use
    that column's input bits; PK-side columns are copied into new arrays and cannot."""
    from test_unique_and_padding import shop

    from sqlmpc.compiler.analyses.owner_bits import input_bit_columns
    from sqlmpc.compiler.catalog import Catalog
    from sqlmpc.compiler.planner import compile_query

    cat = Catalog.load(shop(tmp_path))
    join = "FROM orders o JOIN customers c ON o.cid = c.id"
    fk = compile_query(f"SELECT o.qty, SUM(o.amount) AS s {join} GROUP BY o.qty", cat)
    assert sorted(map(sorted, input_bit_columns(fk.dag).values())) == \
        [["c.id"], ["c.id"], ["o.cid", "o.qty"], ["o.cid", "o.qty"]]
    pk = compile_query(f"SELECT c.region, SUM(o.amount) AS s {join} GROUP BY c.region", cat)
    assert sorted(map(sorted, input_bit_columns(pk.dag).values())) == \
        [["c.id"], ["c.id"], ["o.cid"], ["o.cid"]]


def test_pk_fk_join_output_keeps_the_fk_sides_bits_only():
    async def body():
        left = await ops.share_input(secfxp, obj([(1, 10), (2, 20), (3, 30)], 2), ["a", "x"],
                                     [0], integral=[True] * 2, key_bits={"a": 10, "x": 10},
                                     input_bits=["a", "x"])
        right = await ops.share_input(secfxp, obj([(3, 1), (1, 2), (5, 1), (3, 2)], 2),
                                      ["b", "y"], [0], integral=[True] * 2,
                                      key_bits={"b": 10, "y": 4}, input_bits=["b", "y"])
        j = ops.join(left, right, ["a"], ["b"], unique="left")
        assert set(j.bits) == {"b", "y"} and j.bits["y"].column is j.columns["y"]
        g = ops.aggregate(j, ["y"], [("s", "sum", "x")])
        return sorted(await rev(g, ["y", "s"]))

    assert run(body) == [(1, 30), (2, 40)]
