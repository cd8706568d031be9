"""The physical plan: JSON round trip, helper compute parties, compute party order, and local jobs
whose SQL runs in DuckDB (a 3-party HHI over small CSVs, checked against the plaintext answer)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from sqlmpc.compiler.catalog import Catalog
from sqlmpc.compiler.ir.dag import Reveal, Share
from sqlmpc.backends import secure_backend
from sqlmpc.compiler.explain import explain as explain_with
from sqlmpc.compiler.planner import compile_query, to_sql


def explain(plan, fmt: str = "text") -> str:
    """compiler.explain with the secure backend, as the runtime calls it."""
    return explain_with(plan, fmt, secure=secure_backend())


TINY = Path(__file__).parent / "fixtures" / "tiny"
HHI = """
WITH revenue AS (
    SELECT vendor AS company, SUM(fare) AS rev FROM trips WHERE fare > 0 GROUP BY vendor
)
SELECT SUM((100.0 * rev / (SELECT SUM(rev) FROM revenue))
         * (100.0 * rev / (SELECT SUM(rev) FROM revenue))) AS hhi
FROM revenue
"""
# company -> (vendor id, fares); each company's trips carry its own vendor id
HHI_DATA = {"c1": ("1", ["10.00", "20.00", "-5.00", "10.00"]),
            "c2": ("2", ["30.00", "10.00"]),
            "c3": ("3", ["5.50", "14.50", "0.00"])}


@pytest.fixture(scope="module")
def tiny() -> Catalog:
    return Catalog.load(TINY / "catalog.toml")


def _catalog(folder: Path, parties: list[str], data: dict[str, tuple[str, list[str]]],
             recipients: list[str] | None = None) -> Catalog:
    folder.mkdir(parents=True, exist_ok=True)
    for party, (vendor, fares) in data.items():
        (folder / party).mkdir(exist_ok=True)
        (folder / party / "trips.csv").write_text(
            "vendor,fare\n" + "".join(f"{vendor},{f}\n" for f in fares))
    lines = [f"[parties.{p}]" for p in parties]
    lines += ["[tables.trips]", 'columns = { vendor = "int", fare = "decimal(10,2)" }',
              "parts = { " + ", ".join(f'{p} = "{p}/trips.csv"' for p in data) + " }"]
    if recipients:
        lines += ["[result]", "recipients = [" + ", ".join(f'"{r}"' for r in recipients) + "]"]
    (folder / "catalog.toml").write_text("\n".join(lines) + "\n")
    return Catalog.load(folder / "catalog.toml")


@pytest.fixture(scope="module")
def hhi_catalog(tmp_path_factory) -> Catalog:
    return _catalog(tmp_path_factory.mktemp("hhi"), ["c1", "c2", "c3", "regulator"], HHI_DATA,
                    ["regulator"])


# --- JSON ------------------------------------------------------------------------------------
def test_plan_json_round_trips(tiny):
    plan = compile_query("SELECT vendor, SUM(fare) AS s FROM trips WHERE fare > 0 GROUP BY vendor "
                         "ORDER BY s DESC", tiny)
    text = plan.to_json()
    data = json.loads(text)
    assert json.dumps(data, indent=2) == text  # nothing is lost or stringified oddly
    assert data["parties"] == ["yellow", "green", "regulator"]
    assert data["recipients"] == ["regulator"]
    assert data["needs_mpc"] is True
    assert data["result_columns"] == [["vendor", "text"], ["s", "decimal(38,2)"]]
    assert set(data["local_jobs"]) == {"yellow", "green"}
    out = data["local_jobs"]["yellow"]["outputs"][0]
    assert out["kind"] == "share" and out["public_columns"] == []
    assert [n["op"] for n in data["dag"]["nodes"]].count("Share") == 2
    ids = {n["id"] for n in data["dag"]["nodes"]}
    assert data["dag"]["root"] in ids
    assert all(i in ids for n in data["dag"]["nodes"] for i in n["inputs"])


def test_same_query_same_plan_text_in_one_process(tiny):
    """Node ids count from 0 per query, so a party's agent, which has compiled other queries
    before, reproduces the client's plan text exactly (and can cache its check of it)."""
    sql = "SELECT vendor, SUM(fare) AS s FROM trips WHERE fare > 0 GROUP BY vendor"
    first = compile_query(sql, tiny).to_json()
    compile_query("SELECT COUNT(DISTINCT vendor) AS k FROM trips", tiny)
    again = compile_query(sql, tiny).to_json()
    assert again == first
    assert min(n["id"] for n in json.loads(first)["dag"]["nodes"]) == 0


def test_plan_json_of_every_supported_shape_loads(tiny):
    for sql in ["SELECT COUNT(DISTINCT vendor) AS k FROM trips",
                "SELECT vendor, AVG(fare) AS a FROM trips GROUP BY vendor",
                "SELECT t.vendor, z.borough FROM trips t JOIN zones z ON t.zone = z.zone",
                "SELECT vendor FROM trips ORDER BY fare LIMIT 1"]:
        data = json.loads(compile_query(sql, tiny).to_json())
        assert data["sql"] == sql
        assert json.loads(explain(compile_query(sql, tiny), "json"))["revealed"]


# --- compute parties and helpers -------------------------------------------------------------
def test_two_parties_get_a_helper_and_explain_says_so(tmp_path):
    data = {"a": HHI_DATA["c1"], "b": HHI_DATA["c2"]}
    cat = _catalog(tmp_path, ["a", "b"], data)
    plan = compile_query("SELECT SUM(fare) AS s FROM trips", cat)
    assert plan.helpers == ["helper"]
    assert plan.compute_parties == ["a", "b", "helper"]
    text = explain(plan)
    assert "  MPC among: a, b, helper" in text.splitlines()
    assert ("  helper: a helper compute party added because MPC needs an honest majority of at "
            "least 3 parties; it holds no data and learns nothing but the row counts listed "
            "below") in text.splitlines()
    assert "among 3 compute parties" in text


def test_one_party_gets_two_helpers(tmp_path):
    cat = _catalog(tmp_path, ["a", "r"], {"a": HHI_DATA["c1"]}, ["r"])
    plan = compile_query("SELECT SUM(fare) AS s FROM trips", cat)
    assert plan.compute_parties == ["a", "r", "helper"]
    cat1 = _catalog(tmp_path / "one", ["a"], {"a": HHI_DATA["c1"]}, ["a"])
    assert compile_query("SELECT SUM(fare) AS s FROM trips", cat1).helpers == []  # no MPC


def test_three_parties_need_no_helper(hhi_catalog):
    plan = compile_query(HHI, hhi_catalog)
    assert plan.helpers == []
    assert plan.compute_parties == ["c1", "c2", "c3", "regulator"]  # catalog order


def test_helper_name_never_collides_with_a_party(tmp_path):
    cat = _catalog(tmp_path, ["helper", "helper1"], {"helper": HHI_DATA["c1"],
                                                      "helper1": HHI_DATA["c2"]})
    plan = compile_query("SELECT SUM(fare) AS s FROM trips", cat)
    assert len(set(plan.compute_parties)) == len(plan.compute_parties)


def test_no_mpc_when_the_only_recipient_holds_all_the_data():
    cat = Catalog.load(TINY / "catalog_yellow.toml")
    plan = compile_query("SELECT vendor, SUM(fare) AS s FROM yellow.trips GROUP BY vendor", cat)
    assert not plan.needs_mpc and plan.helpers == []
    (out,) = plan.local_jobs["yellow"].outputs
    assert out.kind == "result"
    assert "no MPC needed" in explain(plan)


# --- local jobs run in DuckDB; the plan computed in the clear gives the HHI ---------------------
def _register(con, inputs) -> None:
    for part in inputs:
        types = {"int": "BIGINT", "float": "DOUBLE", "text": "VARCHAR", "date": "DATE",
                 "bool": "BOOLEAN"}
        spec = ", ".join(f"'{c}': '{types.get(t, t.upper())}'" for c, t in part.columns.items())
        con.execute(f'CREATE OR REPLACE VIEW "{part.view}" AS SELECT * FROM read_csv('
                    f"'{part.path}', header = true, columns = {{{spec}}}, auto_detect = false)")


def _expected_hhi() -> float:
    revenue = {}
    for vendor, fares in HHI_DATA.values():
        revenue[vendor] = sum(float(f) for f in fares if float(f) > 0)
    total = sum(revenue.values())
    return sum((100.0 * r / total) ** 2 for r in revenue.values())


def test_hhi_local_jobs_run_in_duckdb(hhi_catalog):
    plan = compile_query(HHI, hhi_catalog)
    assert set(plan.local_jobs) == {"c1", "c2", "c3"}
    shared = []
    for party, job in plan.local_jobs.items():
        assert [p.view for p in job.inputs] == [f"{party}_trips"]
        assert job.inputs[0].columns == {"vendor": "int", "fare": "decimal(10,2)"}
        (out,) = job.outputs
        assert out.kind == "share"
        assert out.rows == "one row per distinct (vendor)"
        con = duckdb.connect(":memory:")
        _register(con, job.inputs)
        rel = con.sql(out.sql_in("duckdb"))
        assert rel.columns == [c for c, _ in out.columns]
        rows = rel.fetchall()
        assert len(rows) == 1  # one company per party: one row enters MPC
        shared += rows
        con.close()
    # the secure part in the clear: the HHI from the three shared rows
    revenue = [float(r[1]) for r in shared]
    hhi = sum((100.0 * r / sum(revenue)) ** 2 for r in revenue)
    assert hhi == pytest.approx(_expected_hhi())


def test_hhi_whole_plan_in_the_clear_matches(hhi_catalog):
    plan = compile_query(HHI, hhi_catalog)
    dag = plan.dag.copy()
    for n in list(dag.topo()):  # bypass shares and reveals: every party's step in the clear
        if isinstance(dag.op(n), (Share, Reveal)):
            (src,) = dag.inputs(n)
            for c in dag.consumers(n):
                dag.replace_input(c, n, src)
            dag.remove(n)
    inputs: dict = {}
    (top,) = dag.inputs(dag.root)
    sql = to_sql(dag, top, hhi_catalog, inputs).sql(dialect="duckdb")
    con = duckdb.connect(":memory:")
    _register(con, inputs.values())
    ((hhi,),) = con.sql(sql).fetchall()
    assert hhi == pytest.approx(_expected_hhi())


def test_hhi_all_secure_shares_every_trip_row(hhi_catalog):
    plan = compile_query(HHI, hhi_catalog, all_secure=True)
    for job in plan.local_jobs.values():
        (out,) = job.outputs
        assert out.rows == "one row per row of its part of trips"
    text = explain(plan)
    assert "--all-secure" in text.splitlines()[0]


def test_hhi_explain_shows_local_sums(hhi_catalog):
    text = explain(compile_query(HHI, hhi_catalog))
    assert text.count("     - sum(fare) per (vendor)") == 3
    assert "MPC among: c1, c2, c3, regulator" in text
    assert "Revealed to regulator only: the result" in text


def test_explain_tells_a_cross_join_from_pairing_with_one_row(tiny):
    cross = explain(compile_query("SELECT a.vendor, b.zone FROM yellow.trips a CROSS JOIN "
                                  "yellow.trips b", tiny))
    assert "pairs every row of one input with every row of the other (a cross join)" in cross
    assert "single row" not in cross
    scalar = explain(compile_query("SELECT vendor, fare / (SELECT SUM(fare) FROM trips) AS f "
                                   "FROM trips", tiny))
    assert "pairs every row with the single row of a subquery result" in scalar
    assert "(a cross join)" not in scalar


@pytest.mark.parametrize("trust, public", [('"*"', True), ('["a", "b"]', False)])
def test_a_trust_list_never_reaches_an_added_helper_party(tmp_path, trust, public):
    """Two owners get a helper compute party the catalog does not list: a key that the owners
    trust to each other by name is grouped in secret; only a key declared public ("*") is
    sent in the clear to every compute party, the helper included."""
    from sqlmpc.compiler.catalog import Catalog
    from sqlmpc.compiler.ir.plan import secure_nodes
    for p in ("a", "b"):
        (tmp_path / f"{p}.csv").write_text("k,v\n1,2\n")
    (tmp_path / "catalog.toml").write_text(
        '[parties.a]\n[parties.b]\n[tables.t]\ncolumns = { k = "int", v = "int" }\n'
        'parts = { a = "a.csv", b = "b.csv" }\n'
        f'[tables.t.trust]\nk = {trust}\n')
    plan = compile_query("SELECT k, SUM(v) AS s FROM t GROUP BY k",
                         Catalog.load(tmp_path / "catalog.toml"))
    assert plan.helpers == ["helper"]
    grouped_in_clear = [n for n in secure_nodes(plan.dag) if plan.dag.attr(n, "public_keys")]
    assert bool(grouped_in_clear) is public


# --- a process compiles a recurring query once -------------------------------------------------

def test_a_query_run_again_reuses_its_plan_until_the_catalog_changes(tmp_path):
    from sqlmpc.runtime.config import compile_plan, load_catalog
    sql = "SELECT SUM(fare) AS s FROM trips"
    path = tmp_path / "catalog.toml"
    text = (TINY / "catalog.toml").read_text()
    for party in ("yellow", "green", "regulator"):  # the parts stay where they are
        text = text.replace(f'{party} = "{party}/', f'{party} = "{TINY}/{party}/')
    path.write_text(text)
    first = compile_plan(sql, load_catalog(path))
    assert compile_plan(sql, load_catalog(path)) is first          # an equal catalog, reloaded
    assert compile_plan(sql, load_catalog(path), all_secure=True) is not first  # other options
    assert compile_plan(sql + " ", load_catalog(path)) is not first
    path.write_text(text.replace("[result]", "[tables.trips.ranges]\nfare = [0, 1000]\n\n"
                                             "[result]", 1))
    changed = compile_plan(sql, load_catalog(path))
    assert changed is not first and changed.dag.g.graph.get("ranges") != \
        first.dag.g.graph.get("ranges")
