"""The sort-based many-to-many join (backends/mpyc/lib/mmjoin.py) against a Python reference:
1 party in-process (fast), 3 parties (slow), and a many-to-many query vs DuckDB (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mpyc.runtime import mpc
from mpc_helpers import obj, run, text_table
from sqlmpc.backends.mpyc.lib import encoding as enc
from sqlmpc.backends.mpyc.lib import mmjoin
from sqlmpc.backends.mpyc import ops

secfxp = mpc.SecFxp(96, 32)

HSET = settings(max_examples=10, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


async def table(rows, cols, keep=None, integral=None):
    t = await ops.share_input(secfxp, obj(rows, len(cols)), cols, [0], integral=integral)
    if keep is not None:  # clear some valid flags (filtered-out rows must never join)
        t = ops.filter_rows(t, ops.const(secfxp, np.array(keep, dtype=object)))
    return t


async def rev(t, cols=None):
    companions = {c for name in t.columns for c in ops.with_companions(t, [name])[1:]}
    cols = [c for c in t.columns if c not in companions] if cols is None else cols
    out = await ops.reveal(t, [0], cols, ordered=False)
    return sorted(tuple(r) for r in out.tolist())


def ref_join(left, right, lk, rk, lkeep=None, rkeep=None):
    lkeep = lkeep or [True] * len(left)
    rkeep = rkeep or [True] * len(right)
    return sorted(a + b for a, ka in zip(left, lkeep, strict=True) if ka
                  for b, kb in zip(right, rkeep, strict=True) if kb
                  and all(a[i] == b[j] for i, j in zip(lk, rk, strict=True)))


def mm(left, right, lk, rk, lcols, rcols, lkeep=None, rkeep=None, **kw):
    """Join with join_many (1 party); returns (output length, sorted revealed rows)."""
    async def body():
        a = await table(left, lcols, lkeep)
        b = await table(right, rcols, rkeep)
        j = await ops.join_many(a, b, [lcols[i] for i in lk], [rcols[i] for i in rk], **kw)
        assert list(j.columns) == lcols + rcols
        return j.n, await rev(j)

    return run(body)


keys = st.integers(0, 7)


@HSET
@given(st.lists(st.tuples(keys, st.integers(-50, 50)), min_size=17, max_size=40),
       st.lists(st.tuples(keys, st.integers(-50, 50)), min_size=17, max_size=40),
       st.data())
def test_property_random_duplicates_both_sides(left, right, data):
    lkeep = data.draw(st.lists(st.booleans(), min_size=len(left), max_size=len(left)))
    rkeep = data.draw(st.lists(st.booleans(), min_size=len(right), max_size=len(right)))
    want = ref_join(left, right, [0], [0], lkeep, rkeep)
    n, got = mm(left, right, [0], [0], ["k", "x"], ["k2", "y"], lkeep, rkeep,
                key_bits={"k": 3})
    assert n == len(want)  # M is the revealed output length
    assert got == want


def test_default_64_bit_keys_negative_values():
    left = [(-(1 << 40) + i % 3, i) for i in range(20)]
    right = [(-(1 << 40) + j % 4, 100 + j) for j in range(18)]
    n, got = mm(left, right, [0], [0], ["k", "x"], ["k2", "y"])
    assert got == ref_join(left, right, [0], [0]) and n == len(got)


def test_no_matches_gives_empty_output():
    left = [(i, i) for i in range(20)]
    right = [(100 + j, j) for j in range(20)]
    assert mm(left, right, [0], [0], ["k", "x"], ["k2", "y"], key_bits={"k": 8}) == (0, [])


def test_all_equal_keys_is_the_cross_product():
    left = [(5, i) for i in range(17)]
    right = [(5, 100 + j) for j in range(19)]
    n, got = mm(left, right, [0], [0], ["k", "x"], ["k2", "y"], key_bits={"k": 3})
    assert n == 17 * 19 and got == ref_join(left, right, [0], [0])


def test_all_rows_invalid_and_empty_sides():
    left = [(1, i) for i in range(20)]
    right = [(1, j) for j in range(20)]
    assert mm(left, right, [0], [0], ["k", "x"], ["k2", "y"], lkeep=[False] * 20) == (0, [])

    async def body():
        a = await table(left, ["k", "x"])
        e = await ops.share_input(secfxp, None, ["k2", "y"], [0])
        j1 = await ops.join_many(a, e, ["k"], ["k2"])
        j2 = await ops.join_many(e, a, ["k2"], ["k"])
        return j1.n, list(j1.columns), j2.n

    assert run(body) == (0, ["k", "x", "k2", "y"], 0)


def test_multiple_keys_and_more_columns_on_one_side():
    rng = np.random.default_rng(3)
    left = [tuple(int(x) for x in r) for r in rng.integers(0, 3, (30, 4))]
    right = [tuple(int(x) for x in r) for r in rng.integers(0, 3, (25, 2))]
    n, got = mm(left, right, [0, 2], [1, 0], ["a", "b", "c", "d"], ["e", "f"],
                key_bits={"a": 2, "c": 2})
    assert got == ref_join(left, right, [0, 2], [1, 0]) and n == len(got)


def test_columns_keep_fractions_and_integral_flags():
    left = [(i % 4, i + 0.25) for i in range(20)]
    right = [(j % 5, -j / 8) for j in range(20)]

    async def body():
        a = await table(left, ["k", "x"], integral=[True, False])
        b = await table(right, ["k2", "y"], integral=[True, False])
        j = await ops.join_many(a, b, ["k"], ["k2"], key_bits={"k": 3})
        assert j.columns["k"].integral and not j.columns["x"].integral
        s = ops.aggregate(j, [], [("s", "sum", "x"), ("t", "sum", "y")])
        return await rev(s)

    want = ref_join(left, right, [0], [0])
    (got,) = run(body)
    assert got == pytest.approx((sum(r[1] for r in want), sum(r[3] for r in want)))


def test_padded_bound_hides_size_and_fails_clearly_above_it():
    left = [(i % 5, i) for i in range(20)]
    right = [(j % 7, 100 + j) for j in range(20)]
    want = ref_join(left, right, [0], [0])
    M = len(want)
    n, got = mm(left, right, [0], [0], ["k", "x"], ["k2", "y"], key_bits={"k": 3},
                max_rows=M + 13)
    assert n == M + 13 and got == want  # rows M .. M+12 invalid
    n, got = mm(left, right, [0], [0], ["k", "x"], ["k2", "y"], key_bits={"k": 3},
                max_rows=M)
    assert n == M and got == want
    with pytest.raises(mmjoin.JoinTooLarge, match="more joined rows than the bound"):
        mm(left, right, [0], [0], ["k", "x"], ["k2", "y"], key_bits={"k": 3},
           max_rows=M - 1)
    n, got = mm(left, [(50, 0)] * 20, [0], [0], ["k", "x"], ["k2", "y"], max_rows=5)
    assert n == 5 and got == []  # M = 0: all padding


def test_output_beyond_max_rows_fails_after_revealing_m(monkeypatch):
    """M is revealed anyway without a bound; above MAX_ROWS (positions must stay below the
    small field's 2^31 - 1) the join stops with one line instead of computing garbage."""
    monkeypatch.setattr(mmjoin, "MAX_ROWS", 10)
    left = [(1, i) for i in range(17)]
    right = [(1, j) for j in range(17)]
    with pytest.raises(mmjoin.JoinTooLarge, match="289 joined rows"):
        mm(left, right, [0], [0], ["k", "x"], ["k2", "y"])
    with pytest.raises(ValueError, match="above the supported 10"):
        mm(left, right, [0], [0], ["k", "x"], ["k2", "y"], max_rows=11)


def test_bad_arguments_one_line_errors():
    async def body():
        a = await table([(1, 1)] * 20, ["k", "x"])
        b = await table([(1, 1)] * 20, ["k2", "y"])
        errs = []
        for kw, lk, rk in (({"max_rows": -1}, ["k"], ["k2"]), ({}, ["k"], []),
                           ({}, ["nope"], ["k2"])):
            try:
                await ops.join_many(a, b, lk, rk, **kw)
            except (ValueError, KeyError) as e:
                errs.append(str(e))
        try:  # the synchronous join cannot reveal M: it names join_many
            ops.join(a, b, ["k"], ["k2"])
        except ValueError as e:
            errs.append(str(e))
        return errs

    errs = run(body)
    assert len(errs) == 4
    assert "max_rows" in errs[0] and "keys" in errs[1] and "nope" in errs[2]
    assert "join_many" in errs[3]


def test_dispatch_unique_side_and_tiny_inputs_reveal_nothing():
    left = [(i, i) for i in range(20)]
    right = [(j % 25, j) for j in range(30)]

    async def body():
        a = await table(left, ["k", "x"])
        b = await table(right, ["k2", "y"])
        pk = await ops.join_many(a, b, ["k"], ["k2"], unique="left", key_bits={"k": 5})
        small = await ops.join_many(await table(left[:5], ["k", "x"]),
                                    await table(right[:5], ["k2", "y"]), ["k"], ["k2"])
        return pk.n, await rev(pk), small.n, await rev(small)

    n1, got1, n2, got2 = run(body)
    assert n1 == 30 and got1 == ref_join(left, right, [0], [0])  # the FK side's length
    assert n2 == 25 and got2 == ref_join(left[:5], right[:5], [0], [0])


WORDS = ["Engineer", "Engineering", "Engineering Manager", "abcdefg", "abcdefgh", "x" * 30,
         "Zürich", None]


def test_text_keys_of_several_pieces_and_null_keys_never_match():
    rng = np.random.default_rng(7)
    left = [(WORDS[i], int(v)) for i, v in zip(rng.integers(0, 8, 24), range(24), strict=True)]
    right = [(WORDS[i], int(v)) for i, v in
             zip(rng.integers(0, 7, 20), range(100, 120), strict=True)]
    right += [("x" * 40, 200), (None, 201)]  # 6 pieces here, up to 5 on the left; a NULL

    async def body():
        a = await text_table(left, ["text", "int"])
        b = await text_table(right, ["text", "int"])
        b = ops.project(b, {"k": b.columns["c0"], "v": b.columns["c1"],
                            **{c.replace("c0", "k"): b.columns[c] for c in b.columns
                               if c.startswith("c0~")}})
        assert "c0~null" in a.columns and len(ops.pieces(b, "k")) == 6
        j = await ops.join_many(a, b, ["c0"], ["k"])
        return j.n, await rev(j, ["c0", "c1", "v"])

    n, got = run(body)
    want = sorted((x, i, v) for x, i in left for y, v in right if x is not None and x == y)
    assert n == len(want) > 0
    assert sorted((enc.decode_column([k], "text")[0], i, v) for k, i, v in got) == want


# ------------------------------------------------------------------ 3 parties (slow)

SCRIPT = textwrap.dedent('''
    import json, os
    import numpy as np
    from mpyc.runtime import mpc
    from sqlmpc.backends.mpyc import ops

    def rows_of(pid, n):
        rng = np.random.default_rng(pid)
        return np.stack([rng.integers(0, 12, n), rng.integers(0, 1000, n)], 1).astype(object)

    async def main():
        secfxp = mpc.SecFxp(96, 32)
        await mpc.start()
        res = {}
        left = await ops.share_input(secfxp, rows_of(1, 40) if mpc.pid == 1 else None,
                                     ["k", "x"], [1])
        right = await ops.share_input(secfxp, rows_of(2, 30) if mpc.pid == 2 else None,
                                      ["k2", "y"], [2])
        left = ops.filter_rows(left, ops.lt(left.columns["x"], 800))
        j = await ops.join_many(left, right, ["k"], ["k2"], key_bits={"k": 4})
        res["n"] = j.n
        out = await ops.reveal(j, [0], ["k", "x", "k2", "y"], ordered=False)
        res["rows"] = None if out is None else sorted(map(list, out.tolist()))
        p = await ops.join_many(left, right, ["k"], ["k2"], key_bits={"k": 4},
                                max_rows=j.n + 7)
        res["pn"] = p.n
        out = await ops.reveal(p, [0], ["k", "x", "k2", "y"], ordered=False)
        res["prows"] = None if out is None else sorted(map(list, out.tolist()))
        await mpc.shutdown()
        with open(os.path.join(os.environ["OUT_DIR"], f"party{mpc.pid}.json"), "w") as fh:
            json.dump(res, fh)

    mpc.run(main())
''')


@pytest.mark.slow
def test_three_parties(tmp_path):
    script = tmp_path / "mm3.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OUT_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, str(script), "-M3", "--no-log"], check=False,
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = {p: json.loads((tmp_path / f"party{p}.json").read_text()) for p in range(3)}

    def rows_of(pid, n):
        rng = np.random.default_rng(pid)
        return [tuple(int(x) for x in r) for r in
                np.stack([rng.integers(0, 12, n), rng.integers(0, 1000, n)], 1)]

    left = [r for r in rows_of(1, 40) if r[1] < 800]
    want = sorted(list(a + b) for a in left for b in rows_of(2, 30) if a[0] == b[0])
    assert res[0]["rows"] == want and res[0]["prows"] == want
    for p in range(3):  # M is known to every compute party, the rows only to the receiver
        assert res[p]["n"] == len(want) and res[p]["pn"] == len(want) + 7
    assert res[1]["rows"] is None and res[2]["rows"] is None


# ------------------------------------------------------------------ compiled queries

def test_explain_states_that_m_is_revealed(datasets):
    """No side of diagnoses JOIN medications is unique: explain names the algorithm and lists
    M among what is revealed, to the compute parties; the program awaits join_many."""
    import sqlmpc
    from sqlmpc.backends.mpyc.codegen import render_secure_job
    from sqlmpc.backends import secure_backend
    from sqlmpc.compiler.explain import explain_text

    plan = sqlmpc.compile_sql(MM_QUERY, datasets["medical"])
    text = explain_text(plan, secure=secure_backend())
    assert ("algorithm: sort-based many-to-many join: the number of joined rows M is revealed "
            "to the compute parties") in text
    leaks = text.split("What is revealed, to whom:")[1]
    assert "the number of joined rows M of the join on (patient_id)" in leaks
    line = next(ln for ln in leaks.splitlines() if "joined rows M" in ln)
    assert line.strip().startswith("- to " + ", ".join(plan.compute_parties) + ":")
    assert "await ops.join_many(" in render_secure_job(plan)


# ------------------------------------------------------------------ a query vs DuckDB (slow)

MM_QUERY = """SELECT d.code, m.drug, COUNT(*) AS n FROM diagnoses d
              JOIN medications m ON d.patient_id = m.patient_id GROUP BY d.code, m.drug"""


@pytest.mark.slow
def test_many_to_many_query_matches_duckdb(datasets, reference, same_result, tmp_path):
    """Patients have several diagnoses and several medications: no side is unique, so the
    generated program awaits join_many (M revealed) and the counts must equal DuckDB's."""
    import sqlmpc
    from sqlmpc.backends.mpyc.codegen import render_secure_job

    catalog = datasets["medical"]
    plan = sqlmpc.compile_sql(MM_QUERY, catalog)
    assert "await ops.join_many(" in render_secure_job(plan)
    result = sqlmpc.run_sql(MM_QUERY, catalog, engine="duckdb", quiet=True, workdir=tmp_path)
    want = reference(catalog, MM_QUERY)
    assert len(want[0]) > 3  # (rows, types): 11 (code, drug) pairs
    same_result(result, want, False)
