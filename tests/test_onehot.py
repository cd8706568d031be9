"""The one-hot group-by over a declared public key domain (use_domains + backends/mpyc/lib/onehot.py).

- the pass: which aggregates it marks, and which it must leave on the radix path;
- the secure operator with 1 MPyC party in this process vs a plain Python reference;
- the owners' check that every value lies in its declared domain (one line, never dropped);
- slow: whole queries with 3 and 2 data owners (DuckDB local jobs) vs DuckDB on the union.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest
from mpyc.runtime import mpc
from mpc_helpers import run

import sqlmpc
from sqlmpc.backends.mpyc.lib import encoding as enc
from sqlmpc.backends import secure_backend
from sqlmpc.backends.mpyc import support
from sqlmpc.backends.mpyc import ops
from sqlmpc.backends.mpyc.codegen import render_secure_job
from sqlmpc.compiler.catalog import Catalog
from sqlmpc.compiler.ir.dag import Aggregate, Share
from sqlmpc.compiler.errors import CatalogError, DataError, PartyError
from sqlmpc.compiler.explain import explain_text
from sqlmpc.compiler.planner import compile_query
from sqlmpc.compiler.passes.use_domains import MAX_DOMAIN, onehot_columns

TINY = Path(__file__).parent / "fixtures" / "tiny"
secfxp = mpc.SecFxp(96, 32)


def _catalog() -> Catalog:
    return Catalog.load(TINY / "catalog_domains.toml")


def _marked(plan) -> dict[int, dict]:
    dag = plan.dag
    return {n: dag.attr(n, "domain") for n in dag.g
            if isinstance(dag.op(n), Aggregate) and dag.attr(n, "domain")}


# --- the pass -----------------------------------------------------------------------------------
def test_marks_a_secret_key_with_a_declared_domain_and_shares_one_hot_columns():
    plan = compile_query("SELECT vendor, SUM(fare) AS s FROM trips GROUP BY vendor", _catalog())
    assert list(_marked(plan).values()) == [{"trips.vendor": ("Y1", "Y2", "G1", "G2")}]
    dag = plan.dag
    for n in dag.g:
        if isinstance(dag.op(n), Share):
            assert dag.names(n)[-4:] == ["__oh_0", "__oh_1", "__oh_2", "__oh_3"]
            assert not set(dag.op(n).public_columns) & set(dag.names(n))  # secret-shared
    for job in plan.local_jobs.values():
        (out,) = job.outputs
        assert [c for c, _ in out.columns][-4:] == onehot_columns({"k": (1, 2, 3, 4)})
        assert "CASE WHEN" in out.sql and "CASE WHEN" in out.sql_in("duckdb")
        assert job.inputs[0].domains == {"vendor": ["Y1", "Y2", "G1", "G2"]}
    src = render_secure_job(plan)
    assert "ops.aggregate_domain(" in src and "ops.aggregate(" not in src
    assert '"domain": {\n' in plan.to_json()  # plan.json shows the marked aggregate


def test_local_jobs_compute_the_one_hot_columns():
    from sqlmpc.runtime.engines.duckdb import run_local_job
    plan = compile_query("SELECT vendor, passengers, COUNT(*) AS n FROM trips "
                         "GROUP BY vendor, passengers", _catalog(),
                         disable=("split_aggregates",))
    (domain,) = _marked(plan).values()
    tuples = [(v, p) for v in domain["trips.vendor"] for p in domain["trips.passengers"]]
    for job in plan.local_jobs.values():
        (frame,) = run_local_job(job).values()
        for _, row in frame.iterrows():
            hot = [int(row[c]) for c in onehot_columns(domain)]
            assert hot == [int((row["trips.vendor"], row["trips.passengers"]) == t)
                           for t in tuples]


@pytest.mark.parametrize("sql, why", [
    ("SELECT z.borough, SUM(t.fare) AS s FROM trips t JOIN zones z ON t.zone = z.zone "
     "GROUP BY z.borough", "key computed in MPC (after a secure join)"),
    ("SELECT passengers + 1 AS p, COUNT(*) AS n FROM trips GROUP BY passengers + 1",
     "computed key"),
    ("SELECT vendor, passengers, pickup, COUNT(*) AS n FROM trips "
     "GROUP BY vendor, passengers, pickup", "4 x 6 x 6 tuples > MAX_DOMAIN"),
    ("SELECT vendor, distance, COUNT(*) AS n FROM trips GROUP BY vendor, distance",
     "no declared domain"),
    ("SELECT zone, COUNT(*) AS n FROM trips GROUP BY zone", "public key: grouped in the clear"),
    ("SELECT COUNT(*) AS n FROM trips", "no keys"),
])
def test_not_marked(sql, why):
    plan = compile_query(sql, _catalog())
    assert not _marked(plan), why
    assert not any(c.startswith("__oh_") for n in plan.dag.g for c in plan.dag.names(n))
    assert MAX_DOMAIN == 64


def test_disabled_and_all_secure_keep_the_radix_path():
    sql = "SELECT vendor, SUM(fare) AS s FROM trips GROUP BY vendor"
    assert _marked(compile_query(sql, _catalog()))
    assert not _marked(compile_query(sql, _catalog(), disable=("use_domains",)))
    assert not _marked(compile_query(sql, _catalog(), all_secure=True))


def test_min_max_only_over_the_owners_partial_results():
    sql = "SELECT vendor, MAX(fare) AS hi, SUM(fare) AS s FROM trips GROUP BY vendor"
    assert _marked(compile_query(sql, _catalog()))  # final: at most D rows per owner
    assert not _marked(compile_query(sql, _catalog(), disable=("split_aggregates",)))


def test_key_after_a_secure_aggregate_is_not_marked():
    # the outer key comes out of a secure (final) aggregate: computed in MPC
    sql = ("SELECT vendor, MAX(s) AS best FROM (SELECT vendor, passengers, SUM(fare) AS s "
           "FROM trips GROUP BY vendor, passengers) q GROUP BY vendor")
    marked = _marked(compile_query(sql, _catalog()))
    assert len(marked) == 1  # the inner one only
    assert list(marked.values())[0].keys() == {"trips.vendor", "trips.passengers"}


def test_explain_names_the_one_hot_path_and_what_it_reveals():
    plan = compile_query("SELECT vendor, SUM(fare) AS s FROM trips GROUP BY vendor", _catalog())
    text = explain_text(plan, secure=secure_backend())
    assert ("group-by over a declared public domain of 4 values: one-hot columns computed by "
            "each owner, one secure matrix product") in text
    assert "adds 4 one-hot columns" in text
    assert "4 one-hot columns of the declared domain), one row per distinct (vendor)" in text
    assert "to no one: nothing new from the one-hot group-by on (vendor)" in text
    assert "output length: 4, the declared domain's size" in text


@pytest.mark.parametrize("values, message", [
    ('[1, "x"]', "value 'x' is not a int"),
    ("[1, 1]", "value 1 is listed twice"),
    ("[true]", "value True is not a int"),
])
def test_catalog_rejects_bad_domains(values, message):
    text = f"""[parties.a]
[tables.t]
columns = {{ k = "int" }}
parts = {{ a = "a.csv" }}
[tables.t.domains]
k = {values}
"""
    with pytest.raises(CatalogError) as e:
        Catalog.from_toml_text(text, path="c.toml")
    assert str(e.value).endswith(message)
    assert "[tables.t.domains] k" in str(e.value)


def test_catalog_domain_dates_become_iso_text():
    cat = Catalog.from_toml_text("""[parties.a]
[tables.t]
columns = { d = "date" }
parts = { a = "a.csv" }
[tables.t.domains]
d = [2024-01-02, "2024-01-03"]
""", path="c.toml")
    assert cat.tables["t"].domains["d"] == ("2024-01-02", "2024-01-03")


# --- the owners' domain check -------------------------------------------------------------------
def _write_catalog(root: Path, parts: dict[str, list[tuple]], domains: str,
                   trust: str = "") -> Path:
    """Table sales(region text, level int, amount decimal(10,2), score float) in one CSV per
    party, and a catalog declaring `domains` (TOML lines)."""
    root.mkdir(parents=True, exist_ok=True)
    for party, rows in parts.items():
        frame = pd.DataFrame(rows, columns=["region", "level", "amount", "score"])
        frame.to_csv(root / f"{party}.csv", index=False)
    parties = "\n".join(f"[parties.{p}]" for p in parts)
    files = ", ".join(f'{p} = "{p}.csv"' for p in parts)
    (root / "catalog.toml").write_text(f"""{parties}

[tables.sales]
columns = {{ region = "text", level = "int", amount = "decimal(10,2)", score = "float" }}
parts = {{ {files} }}
{trust}
[tables.sales.domains]
{domains}
""")
    return root / "catalog.toml"


REGIONS = ["North-East region", "South", "West side of town"]  # texts over 7 bytes
DOMAINS = f"region = {REGIONS!r}\nlevel = [1, 2, 3, 4]".replace("'", '"')


def test_value_outside_the_domain_stops_the_owner_with_one_line(tmp_path):
    from sqlmpc.runtime.engines.duckdb import run_local_job
    path = _write_catalog(tmp_path, {"a": [("South", 1, 2.5, 0.5), ("South", 7, 1.0, 0.1)],
                                     "b": [("South", 2, 1.0, 0.2)]}, DOMAINS)
    plan = compile_query("SELECT level, SUM(amount) AS s FROM sales GROUP BY level",
                         Catalog.load(path))
    assert _marked(plan)
    with pytest.raises(DataError) as e:
        run_local_job(plan.local_jobs["a"])
    assert str(e.value) == (f"party a: data file {tmp_path / 'a.csv'}, row 2, column 'level': "
                            f"value '7' is not one of the 4 values declared for it in "
                            f"[tables.sales.domains] of the catalog")
    run_local_job(plan.local_jobs["b"])  # b's data are inside the domain


def test_spark_local_job_checks_the_domain():
    from sqlmpc.backends.spark.codegen import render_local_job
    plan = compile_query("SELECT vendor, SUM(fare) AS s FROM trips GROUP BY vendor", _catalog())
    text = render_local_job(plan.local_jobs["yellow"])
    assert "\"domains\": {'vendor': ['Y1', 'Y2', 'G1', 'G2']}," in text
    from sqlmpc.backends.spark import jobkit  # the program's fixed code, which checks it
    assert "jobkit.main(PARTY, INPUTS, OUTPUTS)" in text and jobkit.check_domains


# --- the secure operator, 1 party ---------------------------------------------------------------
AGGS = [("s", "sum", "v"), ("n", "count", None), ("nv", "count", "v"), ("lo", "min", "v"),
        ("hi", "max", "w")]


async def _share(frame: pd.DataFrame, types: dict[str, str]):
    cols = list(types)
    nullable = [c for c in cols if frame[c].isna().any()]
    d = support.encode_frame(frame, cols, list(types.values()), [], 96, 32, nullable=nullable)
    return await ops.share_input(secfxp, d["rows"] if len(frame) else None, cols, [0],
                                 types=list(types.values()),
                                 integral=[t != "float" for t in types.values()],
                                 extra=d["extra"])


def _frame(rows: list[tuple], keys: list[str], domain: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=keys + ["v", "w", "keep"])
    for j, t in enumerate(domain):
        frame[f"__oh_{j}"] = [int(tuple(r[:len(keys)]) == t) for r in rows]
    return frame


def _reference(rows: list[tuple], nkeys: int) -> dict[tuple, tuple]:
    groups: dict[tuple, list] = defaultdict(list)
    for r in rows:
        if r[nkeys + 2]:  # keep: the filter below
            groups[tuple(r[:nkeys])].append(r)
    out = {}
    for k, rs in groups.items():
        v = [r[nkeys] for r in rs if r[nkeys] is not None]
        w = [r[nkeys + 1] for r in rs]
        out[k] = (round(sum(v), 4) if v else None, len(rs), len(v),
                  round(min(v), 4) if v else None, round(max(w), 4))
    return out


def _run_operator(rows, keys, key_types, domain):
    frame = _frame(rows, keys, domain)
    types = {k: t for k, t in zip(keys, key_types)} | {"v": "float", "w": "float",
                                                       "keep": "int"}
    types |= {f"__oh_{j}": "int" for j in range(len(domain))}

    async def body():
        t = await _share(frame, types)
        t = ops.filter_rows(t, t.columns["keep"])  # some rows invalid, as after a WHERE
        g = ops.aggregate_domain(t, [f"__oh_{j}" for j in range(len(domain))], domain,
                                    keys, AGGS, types=key_types)
        assert g.n == len(domain)
        return await ops.reveal(g, [0], keys + [a[0] for a in AGGS], ordered=False)

    got = {}
    for r in run(body).tolist():
        key = tuple(enc.decode_column([x], t)[0] for x, t in zip(r, key_types))
        got[key] = tuple(None if x is None else round(float(x), 4) for x in r[len(keys):])
    return got


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_operator_matches_python_on_random_rows(seed):
    rng = random.Random(seed)
    domain = [(k,) for k in (3, 5, 8, 13, 21)]  # 21 never occurs: an empty group
    rows = [(rng.choice([3, 5, 8, 13]), None if rng.random() < 0.2 else rng.uniform(-50, 50),
             rng.uniform(-9, 9), int(rng.random() < 0.8)) for _ in range(rng.randint(1, 40))]
    got = _run_operator(rows, ["k"], ["int"], domain)
    want = _reference(rows, 1)
    assert got.keys() == want.keys()
    for k in want:
        for a, b in zip(got[k], want[k]):
            assert (a is None and b is None) or a == pytest.approx(b, abs=1e-4), (k, got, want)


def test_operator_two_keys_and_long_text_keys():
    domain = [(r, lv) for r in REGIONS for lv in (1, 2)]
    rows = [("North-East region", 1, 1.5, 2.0, 1), ("North-East region", 2, None, 3.0, 1),
            ("West side of town", 1, 4.0, -1.0, 1), ("West side of town", 1, 6.0, 5.0, 1),
            ("South", 2, 7.0, 1.0, 0)]  # South's only row is filtered out: an empty group
    got = _run_operator(rows, ["r", "lv"], ["text", "int"], domain)
    assert got == {("North-East region", 1): (1.5, 1, 1, 1.5, 2.0),
                   ("North-East region", 2): (None, 1, 0, None, 3.0),
                   ("West side of town", 1): (10.0, 2, 2, 4.0, 5.0)}


def test_operator_on_empty_input():
    domain = [("a",), ("b",)]

    async def body():
        t = await _share(_frame([], ["k"], domain).astype(object),
                         {"k": "text", "v": "float", "w": "float", "keep": "int",
                          "__oh_0": "int", "__oh_1": "int"})
        g = ops.aggregate_domain(t, ["__oh_0", "__oh_1"], domain, ["k"],
                                    [("s", "sum", "v"), ("n", "count", None)], types=["text"])
        assert g.n == 2
        return await ops.reveal(g, [0], ["k", "s", "n"], ordered=False)

    assert run(body).shape[0] == 0


def test_operator_rejects_mismatched_columns():
    async def body():
        t = await _share(_frame([("a", 1.0, 1.0, 1)], ["k"], [("a",)]),
                         {"k": "text", "v": "float", "w": "float", "keep": "int",
                          "__oh_0": "int"})
        with pytest.raises(ValueError, match="1 one-hot columns for 2 domain tuples"):
            ops.aggregate_domain(t, ["__oh_0"], [("a",), ("b",)], ["k"], [])

    run(body)


# --- whole queries, several parties ---------------------------------------------------------------
def _random_parts(parties: list[str], rows: int, seed: int) -> dict[str, list[tuple]]:
    rng = random.Random(seed)
    return {p: [(rng.choice(REGIONS[:2]), rng.randint(1, 4), round(rng.uniform(0, 100), 2),
                 round(rng.uniform(0, 1), 3)) for _ in range(rows)] for p in parties}


DIFF_CASES = [
    pytest.param("SELECT region, level, SUM(amount) AS s, COUNT(*) AS n, MIN(amount) AS lo, "
                 "MAX(score) AS hi FROM sales GROUP BY region, level", (), id="two-keys-partial"),
    pytest.param("SELECT region, level, SUM(amount) AS s, AVG(score) AS a FROM sales "
                 "WHERE score > 0.3 GROUP BY region, level", ("split_aggregates",),
                 id="raw-rows-filter"),
    pytest.param("SELECT region, SUM(CASE WHEN level <> 2 THEN amount END) AS q, "
                 "MAX(CASE WHEN level <> 2 THEN score END) AS m, COUNT(*) AS n FROM sales "
                 "WHERE level = 2 OR (region = 'South' AND level = 3) GROUP BY region", (),
                 id="nulls"),  # all NULL for North-East
    pytest.param("SELECT level, COUNT(*) AS n FROM sales GROUP BY level HAVING COUNT(*) > 3", (),
                 id="having"),
]


@pytest.mark.slow
@pytest.mark.parametrize("parties", [["a", "b", "c"], ["a", "b"]], ids=["3-owners", "2-owners"])
@pytest.mark.parametrize("sql, disable", DIFF_CASES)
def test_matches_duckdb(tmp_path, reference, same_result, parties, sql, disable):
    path = _write_catalog(tmp_path / "data", _random_parts(parties, 12, len(sql)), DOMAINS)
    plan = compile_query(sql, Catalog.load(path), disable=disable)
    assert _marked(plan), "the query must take the one-hot path"
    result = sqlmpc.run_sql(sql, path, engine="duckdb", quiet=True, disable=disable,
                            workdir=tmp_path / "run")
    want = reference(path, sql)
    if "level <> 2" in sql:  # the case meant to give NULL sums: it must
        assert any(v is None for row in want[0] for v in row), want
    same_result(result, want, False)


@pytest.mark.slow
def test_out_of_domain_value_stops_the_run(tmp_path):
    parts = _random_parts(["a", "b", "c"], 5, 7)
    parts["b"].append(("Atlantis", 1, 1.0, 0.5))
    path = _write_catalog(tmp_path / "data", parts, DOMAINS)
    with pytest.raises(PartyError, match=r"party b: data file .*b\.csv, row 6, column 'region': "
                                        r"value 'Atlantis' is not one of the 3 values"):
        sqlmpc.run_sql("SELECT region, COUNT(*) AS n FROM sales GROUP BY region", path,
                       engine="duckdb", quiet=True, workdir=tmp_path / "run")


@pytest.mark.slow
@pytest.mark.skipif(__import__("shutil").which("java") is None, reason="Spark needs Java")
def test_spark_and_duckdb_report_the_same_out_of_domain_value(tmp_path):
    from sqlmpc.runtime.engines.duckdb import run_local_job as run_duckdb
    from sqlmpc.runtime.engines.spark import run_local_job as run_spark
    path = _write_catalog(tmp_path, {"a": [("South", 1, 2.5, 0.5), ("Atlantis", 2, 1.0, 0.1)],
                                     "b": [("South", 2, 1.0, 0.2)]}, DOMAINS)
    plan = compile_query("SELECT region, SUM(amount) AS s FROM sales GROUP BY region",
                         Catalog.load(path))
    messages = []
    for run_job in (run_duckdb, lambda job: run_spark(job, workdir=tmp_path / "w", timeout=600)):
        with pytest.raises(DataError) as e:
            run_job(plan.local_jobs["a"])
        messages.append(str(e.value))
    assert messages[0] == messages[1] == (
        f"party a: data file {tmp_path / 'a.csv'}, row 2, column 'region': value 'Atlantis' is "
        f"not one of the 3 values declared for it in [tables.sales.domains] of the catalog")
    (frame,) = run_spark(plan.local_jobs["b"], workdir=tmp_path / "w2", timeout=600).values()
    assert frame["__oh_1"].tolist() == [1] and frame["__oh_0"].tolist() == [0]
