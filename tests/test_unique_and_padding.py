"""Unique keys and the PK-FK join in query plans; padded input sizes.

- catalog: `primary_key`, `unique`, `pad_rows` validated with one clear line each;
- infer_unique (compiler/passes/infer_unique.py): which joins may use the PK-FK join, and the
  unsound cases that must stay n x m (two raw tables without declared keys, a join on a
  non-key column of an aggregate, a self-union);
- code generation: `unique=` in the generated MPyC program exactly where it is sound;
- explain: the join algorithm, output lengths, what each secure operator reveals, and what
  each share's size reveals (exact, power-of-two bucket, declared bound);
- local checks: a part with a duplicate declared key or more rows than pad_rows fails with one
  line (DuckDB engine; the Spark program carries the same check);
- share_input padding with the 1-party MPyC harness;
- slow differential runs (DuckDB engine, 3 parties) against DuckDB over the union of parts.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

import sqlmpc
from sqlmpc.compiler.catalog import Catalog
from sqlmpc.compiler.ir.dag import Join
from sqlmpc.compiler.errors import CatalogError, DataError
from sqlmpc.backends import secure_backend
from sqlmpc.compiler.explain import explain_text
from sqlmpc.compiler.passes.infer_unique import join_unique_side
from sqlmpc.compiler.ir.plan import secure_nodes
from sqlmpc.compiler.planner import compile_query

TINY = Path(__file__).parent / "fixtures" / "tiny"


def tiny(name: str = "catalog.toml") -> Catalog:
    return Catalog.load(TINY / name)


def secure_joins(plan) -> list[int]:
    return [n for n in secure_nodes(plan.dag) if isinstance(plan.dag.op(n), Join)
            and plan.dag.op(n).left_keys]


def join_lines(plan) -> list[str]:
    from sqlmpc.backends.mpyc.codegen import render_secure_job
    return [ln.strip() for ln in render_secure_job(plan).splitlines() if "ops.join" in ln]


# --- catalog --------------------------------------------------------------------------------------
BASE = """
[parties.a]
[parties.b]
[tables.t]
columns = { id = "int", k = "int", v = "decimal(10,2)" }
parts = { a = "a.csv", b = "b.csv" }
"""


@pytest.mark.parametrize("extra, message", [
    ('primary_key = "id"', "[tables.t] primary_key: a key must be a non-empty list of column "
                           "names, got 'id'"),
    ("primary_key = []", "[tables.t] primary_key: a key must be a non-empty list of column "
                         "names, got []"),
    ('primary_key = ["nope"]', "[tables.t] primary_key: unknown column 'nope'"),
    ('primary_key = ["id", "id"]', "[tables.t] primary_key: a column is listed twice in "
                                   "['id', 'id']"),
    ('unique = ["id"]', "[tables.t] unique: a key must be a non-empty list of column names, "
                        "got 'id'"),
    ("unique = []", '[tables.t] unique: must be a non-empty list of column lists, e.g. '
                    'unique = [["a", "b"]]'),
    ("pad_rows = 0", "[tables.t] pad_rows: must be a positive integer (a public upper bound on "
                     "the rows of each part), got 0"),
    ("pad_rows = true", "[tables.t] pad_rows: must be a positive integer (a public upper bound "
                        "on the rows of each part), got True"),
    ('pad_rows = "10"', "[tables.t] pad_rows: must be a positive integer (a public upper bound "
                        "on the rows of each part), got '10'"),
])
def test_catalog_rejects_bad_keys_and_bounds(extra, message):
    with pytest.raises(CatalogError) as e:
        Catalog.from_toml_text(BASE + extra + "\n", path="cat.toml")
    assert str(e.value) == f"catalog error: cat.toml: {message}"


def test_catalog_keys_and_bound():
    cat = Catalog.from_toml_text(BASE + 'primary_key = ["id"]\nunique = [["k", "v"], ["id"]]\n'
                                 "pad_rows = 1000\n", path="cat.toml")
    assert cat.tables["t"].unique == (("id",), ("k", "v"))  # the repeated key once
    assert cat.tables["t"].pad_rows == 1000
    plain = Catalog.from_toml_text(BASE, path="cat.toml")
    assert plain.tables["t"].unique == () and plain.tables["t"].pad_rows is None


# --- infer_unique and the generated program -------------------------------------------------------
PKFK = ("SELECT z.borough, SUM(t.fare) AS s FROM trips t JOIN zones z ON t.zone = z.zone "
        "GROUP BY z.borough")
AGG_JOIN = ("SELECT t.vendor, t.fare, s.total FROM trips t JOIN (SELECT zone, SUM(fare) AS total "
            "FROM trips GROUP BY zone) s ON t.zone = s.zone")
NON_KEY = ("SELECT t.vendor, s.zone FROM trips t JOIN (SELECT zone, SUM(passengers) AS total "
           "FROM trips GROUP BY zone) s ON t.passengers = s.total")


def test_declared_primary_key_gives_pkfk_join():
    plan = compile_query(PKFK, tiny("catalog_keys.toml"))
    (j,) = secure_joins(plan)
    assert join_unique_side(plan.dag, j) == "right"
    assert join_lines(plan) == [f"t{j} = ops.join(t{plan.dag.inputs(j)[0]}, "
                                f"t{plan.dag.inputs(j)[1]}, ['t.zone'], ['z.zone'], "
                                f"unique='right')"]


def test_raw_tables_without_declared_keys_stay_nested_loop():
    """Unsound without a key: zones could hold a zone twice (the PK-FK join would add them)."""
    plan = compile_query(PKFK, tiny())
    (j,) = secure_joins(plan)
    assert join_unique_side(plan.dag, j) is None
    (line,) = join_lines(plan)
    assert "unique=" not in line


def test_aggregate_subquery_is_the_pk_side():
    plan = compile_query(AGG_JOIN, tiny())
    (line,) = join_lines(plan)
    assert line.endswith("['t.zone'], ['s.zone'], unique='right')")


def test_join_on_a_non_key_column_of_an_aggregate_stays_nested_loop():
    """Unsound: several zones may have the same total."""
    plan = compile_query(NON_KEY, tiny())
    (line,) = join_lines(plan)
    assert "unique=" not in line


def test_pk_on_the_left_side():
    sql = ("SELECT s.zone, t.fare FROM (SELECT zone, SUM(fare) AS total FROM trips GROUP BY zone)"
           " s JOIN trips t ON s.zone = t.zone")
    (line,) = join_lines(compile_query(sql, tiny()))
    assert line.endswith("unique='left')")


def test_join_keys_wider_than_the_key_are_fine_narrower_are_not():
    cat = tiny()
    wider = ("SELECT t.fare FROM trips t JOIN (SELECT zone, passengers, SUM(fare) AS s FROM trips "
             "GROUP BY zone, passengers) g ON t.zone = g.zone AND t.passengers = g.passengers")
    (line,) = join_lines(compile_query(wider, cat))
    assert "unique='right'" in line
    narrower = ("SELECT t.fare FROM trips t JOIN (SELECT zone, passengers, SUM(fare) AS s FROM "
                "trips GROUP BY zone, passengers) g ON t.zone = g.zone")
    (line,) = join_lines(compile_query(narrower, cat))
    assert "unique=" not in line  # (zone, passengers) is unique, zone alone is not


def test_key_declared_over_all_parts_holds_after_the_union():
    cat = tiny("catalog_keys.toml")
    sql = ("SELECT a.fare FROM trips a JOIN trips b ON a.vendor = b.vendor AND a.fare = b.fare")
    (line,) = join_lines(compile_query(sql, cat))
    assert "unique='right'" in line
    # one party's part unioned with itself repeats every key: not unique (only the left is)
    sql = ("SELECT a.fare FROM trips a JOIN (SELECT vendor, fare FROM yellow.trips UNION ALL "
           "SELECT vendor, fare FROM yellow.trips) b ON a.vendor = b.vendor AND a.fare = b.fare")
    (line,) = join_lines(compile_query(sql, cat))
    assert line.endswith("unique='left')")


def test_disable_and_all_secure_use_the_nested_loop():
    cat = tiny("catalog_keys.toml")
    (line,) = join_lines(compile_query(PKFK, cat, disable=("infer_unique",)))
    assert "unique=" not in line
    (line,) = join_lines(compile_query(PKFK, cat, all_secure=True))
    assert "unique=" not in line


# --- explain --------------------------------------------------------------------------------------
def test_explain_names_the_join_algorithm_and_what_operators_reveal():
    text = explain_text(compile_query(PKFK, tiny("catalog_keys.toml")),
                        secure=secure_backend())
    assert "joins rows where zone = zone [secret keys: PK-FK sort join, linear per key bit]" in text
    assert ("algorithm: PK-FK sort join, the right input unique on (zone); output length: the "
            "left input's length (left x right when that is at most 256: a nested loop is "
            "faster there); reveals nothing beyond public lengths") in text
    assert "the PK-FK join sorts both inputs obliviously" in text
    text = explain_text(compile_query(PKFK, tiny()), secure=secure_backend())
    assert ("algorithm: sort-based many-to-many join: the number of joined rows M is revealed "
            "to the compute parties") in text
    assert "the number of joined rows M of the join on (zone)" in text.split("What is revealed")[1]
    mpc_part = text.split("In MPC")[1].split("Revealed to")[0]
    ops = [ln for ln in mpc_part.splitlines() if ln.startswith("     - ")]
    notes = [ln for ln in mpc_part.splitlines() if ln.startswith("         ")]
    assert len(ops) == len(notes) and all("reveals nothing beyond public lengths" in n
                                          or "M is revealed" in n for n in notes)


def test_explain_states_the_limit_the_join_uses():
    """explain's words come from the backend, which reads the join's own threshold."""
    from sqlmpc.backends.mpyc.lib import join, limits
    assert join.NESTED_LOOP_MAX == limits.NESTED_LOOP_MAX
    text = explain_text(compile_query(PKFK, tiny("catalog_keys.toml")), secure=secure_backend())
    assert f"(left x right when that is at most {join.NESTED_LOOP_MAX}: a nested loop" in text


# --- local checks of declared keys and bounds -----------------------------------------------------
def _workspace(tmp_path: Path, a_rows: str, extra: str = "") -> Path:
    (tmp_path / "a").mkdir(parents=True)
    (tmp_path / "b").mkdir(parents=True)
    (tmp_path / "a" / "t.csv").write_text("id,v\n" + a_rows)
    (tmp_path / "b" / "t.csv").write_text("id,v\n7,1\n")
    cat = tmp_path / "catalog.toml"
    cat.write_text('[parties.a]\n[parties.b]\n[parties.c]\n[tables.t]\n'
                   'columns = { id = "int", v = "int" }\n'
                   'parts = { a = "a/t.csv", b = "b/t.csv" }\n' + extra)
    return cat


def _run_local(catalog: Path, sql: str, party: str = "a"):
    from sqlmpc.runtime.engines.duckdb import run_local_job
    plan = compile_query(sql, Catalog.load(catalog))
    return run_local_job(plan.local_jobs[party])


def test_duplicate_declared_key_in_a_part_is_one_clear_line(tmp_path):
    cat = _workspace(tmp_path, "1,10\n2,20\n3,5\n2,30\n", 'primary_key = ["id"]\n')
    with pytest.raises(DataError) as e:
        _run_local(cat, "SELECT id, SUM(v) AS s FROM t GROUP BY id")
    assert str(e.value) == (f"party a: data file {tmp_path / 'a' / 't.csv'}, row 4: key (id) = "
                            f"(2) repeats row 2, but table t declares it unique (primary_key / "
                            f"unique in the catalog)")
    assert _run_local(cat, "SELECT id, SUM(v) AS s FROM t GROUP BY id", party="b")


def test_composite_key_duplicates_and_no_false_alarm(tmp_path):
    cat = _workspace(tmp_path, "1,10\n1,20\n2,10\n1,10\n", 'unique = [["id", "v"]]\n')
    with pytest.raises(DataError, match=r"row 4: key \(id, v\) = \(1, 10\) repeats row 1"):
        _run_local(cat, "SELECT id, v FROM t")
    ok = _workspace(tmp_path / "ok", "1,10\n1,20\n2,10\n", 'unique = [["id", "v"]]\n')
    assert _run_local(ok, "SELECT id, v FROM t")


def test_part_larger_than_pad_rows_is_one_clear_line(tmp_path):
    cat = _workspace(tmp_path, "1,10\n2,20\n3,5\n", "pad_rows = 2\n")
    with pytest.raises(DataError) as e:
        _run_local(cat, "SELECT SUM(v) AS s FROM t")
    assert str(e.value) == (f"party a: data file {tmp_path / 'a' / 't.csv'} has 3 rows, more "
                            f"than pad_rows = 2 declared for table t in the catalog")


def test_spark_program_carries_the_checks(tmp_path):
    from sqlmpc.backends.spark.codegen import render_local_job
    cat = _workspace(tmp_path, "1,10\n", 'primary_key = ["id"]\npad_rows = 50\n')
    plan = compile_query("SELECT id, SUM(v) AS s FROM t GROUP BY id", Catalog.load(cat))
    text = render_local_job(plan.local_jobs["a"])
    assert '"unique": [[\'id\']],' in text and '"max_rows": 50,' in text
    from sqlmpc.backends.spark import jobkit  # the program's fixed code, which checks them
    assert "jobkit.main(PARTY, INPUTS, OUTPUTS)" in text and jobkit.check_keys_and_size


@pytest.mark.slow
def test_spark_rejects_a_duplicate_key(tmp_path):
    from sqlmpc.runtime.engines.spark import run_local_job
    cat = _workspace(tmp_path, "1,10\n2,20\n2,30\n", 'primary_key = ["id"]\n')
    plan = compile_query("SELECT id, SUM(v) AS s FROM t GROUP BY id", Catalog.load(cat))
    with pytest.raises(DataError, match=r"row 3: key \(id\) = \(2\) repeats row 2, but table t"):
        run_local_job(plan.local_jobs["a"], workdir=tmp_path / "work", timeout=300)


# --- differential: sqlmpc (3 parties, DuckDB engine) == DuckDB on the union -----------------------
def shop(tmp_path: Path, *, customers: int = 40, orders: int = 60, extra: str = "",
         seed: int = 5) -> Path:
    """customers (primary key id) split between a and b; orders (cid -> customers.id) at b and
    c, some orders of unknown customers. Deterministic."""
    rnd = random.Random(seed)
    ids = rnd.sample(range(1, 10 * customers), customers)
    for p in ("a", "b", "c"):
        (tmp_path / p).mkdir(parents=True, exist_ok=True)
    regions = ["N", "S", "E", "W"]
    half = customers // 2
    for p, chunk in (("a", ids[:half]), ("b", ids[half:])):
        (tmp_path / p / "customers.csv").write_text(
            "id,region,credit\n" + "".join(f"{i},{rnd.choice(regions)},{rnd.randint(0, 900)}\n"
                                           for i in chunk))
    for p in ("b", "c"):
        lines = []
        for _ in range(orders):
            cid = rnd.choice(ids) if rnd.random() < 0.9 else 10 * customers + rnd.randint(1, 9)
            lines.append(f"{cid},{rnd.randint(1, 9999) / 100:.2f},{rnd.randint(1, 5)}\n")
        (tmp_path / p / "orders.csv").write_text("cid,amount,qty\n" + "".join(lines))
    cat = tmp_path / "catalog.toml"
    cat.write_text(f"""
[parties.a]
[parties.b]
[parties.c]

[tables.customers]
columns = {{ id = "int", region = "text", credit = "int" }}
parts = {{ a = "a/customers.csv", b = "b/customers.csv" }}
primary_key = ["id"]
{extra}
[tables.orders]
columns = {{ cid = "int", amount = "decimal(10,2)", qty = "int" }}
parts = {{ b = "b/orders.csv", c = "c/orders.csv" }}
""")
    return cat


DIFF = {
    "declared-pk": ("SELECT c.region, SUM(o.amount) AS s, COUNT(*) AS n, MAX(c.credit) AS top "
                    "FROM orders o JOIN customers c ON o.cid = c.id GROUP BY c.region"),
    "aggregate-subquery": ("SELECT o.cid, o.amount, t.total FROM orders o JOIN (SELECT cid, "
                           "SUM(qty) AS total FROM orders GROUP BY cid) t ON o.cid = t.cid "
                           "WHERE o.amount > 60"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DIFF))
def test_pkfk_query_matches_duckdb(name, tmp_path, reference, same_result):
    catalog = shop(tmp_path / "data")
    sql = DIFF[name]
    plan = sqlmpc.compile_sql(sql, catalog)
    assert any("unique=" in ln for ln in join_lines(plan))
    result = sqlmpc.run_sql(sql, catalog, engine="duckdb", quiet=True, workdir=tmp_path / "run")
    same_result(result, reference(catalog, sql), False)


# --- padded input sizes: the plan ---------------------------------------------------------------
def _pads(plan) -> dict[str, list]:
    return {p: [o.pad for o in j.outputs if o.kind == "share"] for p, j in plan.local_jobs.items()}


def test_pad_rows_bound_follows_the_local_plan(tmp_path):
    cat = Catalog.load(shop(tmp_path, extra="pad_rows = 500\n"))
    # customers rows: filtered, then grouped: at most 500 per part
    sql = "SELECT region, COUNT(*) AS n FROM customers WHERE credit > 10 GROUP BY region"
    assert _pads(compile_query(sql, cat)) == {"a": [500], "b": [500]}
    # a whole-table aggregate is exactly one row: nothing to hide
    sql = "SELECT SUM(credit) AS s FROM customers"
    plan = compile_query(sql, cat)
    assert all(p in ([None], [1]) for p in _pads(plan).values())
    # orders declares no bound: exact counts, unless --pad-inputs pow2
    sql = "SELECT cid, amount FROM orders"
    assert _pads(compile_query(sql, cat)) == {"b": [None], "c": [None]}
    assert _pads(compile_query(sql, cat, pad_inputs="pow2")) == {"b": ["pow2"], "c": ["pow2"]}
    # a LIMIT bounds its rows by itself, with or without pad_rows
    sql = "SELECT id FROM a.customers ORDER BY id LIMIT 7"
    assert _pads(compile_query(sql, cat)) == {"a": [7]}
    sql = "SELECT cid FROM b.orders ORDER BY cid LIMIT 9"
    assert _pads(compile_query(sql, cat)) == {"b": [9]}


def test_pad_rows_with_an_unbounded_table_in_the_same_share_is_an_error(tmp_path):
    cat = Catalog.load(shop(tmp_path, extra="pad_rows = 500\n"))
    sql = ("SELECT c.region, SUM(o.amount) AS s FROM b.customers c JOIN b.orders o "
           "ON c.id = o.cid GROUP BY c.region")
    with pytest.raises(sqlmpc.SqlmpcError) as e:
        compile_query(sql, cat)
    assert str(e.value) == ("cannot hide the number of rows shared from table(s) customers "
                            "(pad_rows): the same rows also depend on table(s) orders, which "
                            "declare no pad_rows; declare it there too, or use --pad-inputs pow2")


def test_groups_of_declared_domain_keys_are_padded_to_the_domain_size(monkeypatch):
    cat = Catalog.load(Path(__file__).parent / "fixtures" / "tiny" / "catalog_domains.toml")
    # vendor: 4 declared values; (vendor, passengers): 4 x 6 tuples; padded without any option
    sql = "SELECT vendor, SUM(fare) AS s FROM trips GROUP BY vendor"
    assert _pads(compile_query(sql, cat)) == {"yellow": [4], "green": [4]}
    assert _pads(compile_query(sql, cat, pad_inputs="pow2")) == {"yellow": [4], "green": [4]}
    sql2 = "SELECT vendor, passengers, COUNT(*) AS n FROM trips GROUP BY vendor, passengers"
    assert _pads(compile_query(sql2, cat)) == {"yellow": [24], "green": [24]}
    sql3 = "SELECT COUNT(DISTINCT vendor) AS n FROM trips WHERE fare > 3"
    assert _pads(compile_query(sql3, cat)) == {"yellow": [4], "green": [4]}
    # a key without a declared domain (distance), or raw rows: the exact count, as before
    for other in ("SELECT distance, COUNT(*) AS n FROM trips GROUP BY distance",
                  "SELECT vendor, fare FROM trips"):
        assert _pads(compile_query(other, cat)) == {"yellow": [None], "green": [None]}
        assert _pads(compile_query(other, cat, pad_inputs="pow2")) == {
            "yellow": ["pow2"], "green": ["pow2"]}
    # a domain too large to pad by default keeps the exact count
    monkeypatch.setattr("sqlmpc.compiler.analyses.padding.MAX_DEFAULT_PAD", 23)
    assert _pads(compile_query(sql2, cat)) == {"yellow": [None], "green": [None]}
    text = explain_text(compile_query(sql, cat), secure=secure_backend())
    assert ("how many rows yellow secret-shares into MPC (one row per distinct (vendor)): "
            "nothing beyond the public bound 4 (padded with dummy rows)") in text


def test_explain_states_what_each_share_size_reveals(tmp_path):
    cat = Catalog.load(shop(tmp_path, extra="pad_rows = 500\n"))
    sql = "SELECT c.region, SUM(o.amount) AS s FROM orders o JOIN customers c ON o.cid = c.id " \
          "GROUP BY c.region"
    text = explain_text(compile_query(sql, cat, pad_inputs="pow2"),
                        secure=secure_backend())
    assert ("to a, b, c: how many rows a secret-shares into MPC (one row per row of its part of "
            "customers): nothing beyond the public bound 500 (padded with dummy rows)") in text
    assert ("to a, b, c: how many rows c secret-shares into MPC (one row per row of its part of "
            "orders): rounded up to a power of two (only ceil(log2 n) is revealed)") in text
    text = explain_text(compile_query(sql, cat), secure=secure_backend())
    assert ("to a, b, c: how many rows c secret-shares into MPC (one row per row of its part of "
            "orders)\n") in text


def test_cli_pad_inputs_flag(tmp_path, capsys):
    from sqlmpc.runtime.cli import main
    cat = shop(tmp_path)
    q = tmp_path / "q.sql"
    q.write_text("SELECT cid, amount FROM orders WHERE qty > 1")
    assert main(["explain", str(q), "--catalog", str(cat), "--pad-inputs", "pow2"]) == 0
    assert "rounded up to a power of two" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["explain", str(q), "--catalog", str(cat), "--pad-inputs", "pow3"])


# --- padded input sizes: share_input with one MPyC party ------------------------------------------
def _share_padded(rows: list[tuple], pad_to, k: int = 2):
    """(public n, revealed valid rows, secure SUM/COUNT) of rows shared with pad_to."""
    from mpc_helpers import obj, run
    from mpyc.runtime import mpc

    from sqlmpc.backends.mpyc import ops
    secfxp = mpc.SecFxp(96, 32)

    async def body():
        mine = obj(rows, k) if rows else np.zeros((0, k), dtype=object)
        t = await ops.share_input(secfxp, mine, ["k", "v"], [0], integral=[True, True],
                                  pad_to=pad_to)
        out = await ops.reveal(t, [0], ["k", "v"], ordered=True)
        g = ops.aggregate(t, [], [("s", "sum", "v"), ("n", "count", None)])
        agg = await ops.reveal(g, [0], ["s", "n"], ordered=True)
        return t.n, [tuple(r) for r in out.tolist()], tuple(agg.tolist()[0])

    return run(body)


def test_share_input_pads_to_a_bound_with_invalid_rows():
    rows = [(1, 10), (2, 20), (3, 5)]
    n, got, agg = _share_padded(rows, 5)
    assert n == 5  # the public length is the bound, not 3
    assert got == rows and agg == (35, 3)  # the dummy rows are invalid: no effect


def test_share_input_pads_to_a_power_of_two():
    rows = [(i, i * i) for i in range(5)]
    n, got, agg = _share_padded(rows, "pow2")
    assert n == 8 and got == rows and agg == (sum(i * i for i in range(5)), 5)
    n, got, agg = _share_padded(rows[:4], "pow2")
    assert n == 4 and agg == (14, 4)
    n, got, agg = _share_padded([], "pow2")  # an empty part looks like one row
    assert n == 1 and got == [] and agg == (None, 0)  # SQL: SUM of no rows is NULL


def test_share_input_without_padding_reveals_the_count():
    n, got, agg = _share_padded([(1, 2), (3, 4)], None)
    assert n == 2 and agg == (6, 2)


def test_share_input_refuses_more_rows_than_the_bound():
    with pytest.raises(ValueError, match="3 rows, more than the padding bound 2"):
        _share_padded([(1, 1), (2, 2), (3, 3)], 2)


# --- padded input sizes: differential runs (slow) -----------------------------------------------
PAD_SQL = ("SELECT c.region, SUM(o.amount) AS s, COUNT(*) AS n FROM orders o "
           "JOIN customers c ON o.cid = c.id WHERE o.qty >= 2 GROUP BY c.region")


@pytest.mark.slow
def test_padded_shares_match_duckdb(tmp_path, reference, same_result):
    """customers padded to the catalog's pad_rows, orders to powers of two (CLI flag): the
    same result as DuckDB, and the parties really shared the padded counts."""
    import json

    from sqlmpc.runtime.cli import main
    catalog = shop(tmp_path / "data", customers=30, orders=21, extra="pad_rows = 40\n")
    q = tmp_path / "q.sql"
    q.write_text(PAD_SQL)
    out, stats = tmp_path / "result.csv", tmp_path / "stats.json"
    assert main(["run", str(q), "--catalog", str(catalog), "--engine", "duckdb", "--quiet",
                 "--pad-inputs", "pow2", "--out", str(out), "--stats", str(stats),
                 "--workdir", str(tmp_path / "run")]) == 0
    import pandas as pd
    same_result(pd.read_csv(out), reference(catalog, PAD_SQL), False)
    plan = compile_query(PAD_SQL, Catalog.load(catalog), pad_inputs="pow2")
    assert {p: [o.pad for o in j.outputs] for p, j in plan.local_jobs.items()} == {
        "a": [40], "b": [40, "pow2"], "c": ["pow2"]}
    program = (tmp_path / "run" / "plan" / "secure_job.py").read_text()
    assert program.count("pad_to=40") == 2 and program.count("pad_to='pow2'") == 2
    assert json.loads(stats.read_text())


def test_shares_with_public_columns_are_not_padded():
    """Public key values go in the clear one per row: padding would hide nothing."""
    cat = tiny()
    sql = "SELECT vendor, SUM(fare) AS s FROM trips GROUP BY vendor"
    plan = compile_query(sql, cat, pad_inputs="pow2")
    assert all(o.public_columns and o.pad is None
               for j in plan.local_jobs.values() for o in j.outputs)
    plan = compile_query(sql, cat, pad_inputs="pow2", disable=("use_public_keys",))
    assert all(o.pad == "pow2" for j in plan.local_jobs.values() for o in j.outputs)


def test_generated_program_pads_where_the_plan_says(tmp_path):
    from sqlmpc.backends.mpyc.codegen import render_secure_job
    cat = Catalog.load(shop(tmp_path, extra="pad_rows = 40\n"))
    program = render_secure_job(compile_query(PAD_SQL, cat, pad_inputs="pow2"))
    calls = [ln for ln in program.splitlines() if "ops.share_input(" in ln]
    assert len(calls) == 4
    assert sum("pad_to=40)" in c for c in calls) == 2
    assert sum("pad_to='pow2')" in c for c in calls) == 2
    program = render_secure_job(compile_query(PAD_SQL, cat))
    assert program.count("pad_to=40)") == 2 and "pow2" not in program
