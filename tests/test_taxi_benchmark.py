"""The taxi HHI example and benchmark (benchmarks/taxi_hhi.py, examples/taxi).

Fast: the example compiles for both layouts into the plan the experiment relies on (only
per-company sums are shared), and the benchmark's helpers (sizes, warm catalogs, agreement
check, table). Slow: `python -m benchmarks.taxi_hhi --quick --phases cold` end to end, checking
the JSON records and that every mode gives the same HHI.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import sqlmpc
from benchmarks import taxi_hhi

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "taxi"


@pytest.mark.parametrize("layout", ["company", "platform"])
def test_example_compiles_to_local_sums(layout):
    sql = (EXAMPLE / "query.sql").read_text()
    catalog = EXAMPLE / f"catalog_{layout}.toml"
    plan = sqlmpc.compile_sql(sql, catalog)
    codes = [1, 2, 3] if layout == "company" else [1, 2, 3, 4, 5]
    assert plan.needs_mpc
    assert sorted(plan.local_jobs) == [f"{layout}{i}" for i in (1, 2, 3)]
    for job in plan.local_jobs.values():
        (share,) = [o for o in job.outputs if o.kind == "share"]
        # one row per company, never trips: only VendorID, the revenue subtotal and the
        # one-hot columns of VendorID's declared public codes leave
        names = [c for c, _ in share.columns]
        assert names[0].lower().endswith("vendorid") and len(names) == 2 + len(codes)
        assert all(n.startswith("__oh_") for n in names[2:])
        (part,) = job.inputs
        assert set(part.columns) == {"VendorID", "trip_distance", "fare_amount"}
        assert part.domains == {"VendorID": codes}
    text = sqlmpc.explain_sql(sql, catalog)
    assert "sum(fare_amount) per (VendorID)" in text
    assert f"group-by over a declared public domain of {len(codes)} values" in text


def test_example_catalogs_point_into_ignored_data():
    for layout in ("company", "platform"):
        doc = tomllib.loads((EXAMPLE / f"catalog_{layout}.toml").read_text())
        for path in doc["tables"]["trips"]["parts"].values():
            assert path.startswith(f"data/{layout}/") and path.endswith("/trips.parquet")
    ignored = subprocess.run(["git", "check-ignore", "-q", "examples/taxi/data/x.parquet"],
                             cwd=ROOT, capture_output=True)
    if ignored.returncode == 128:
        pytest.skip("not a git checkout")
    assert ignored.returncode == 0, "examples/taxi/data/ must be ignored by git"


def test_parse_sizes():
    assert taxi_hhi.parse_sizes("1000000, 5m,20k,1_000") == [1_000_000, 5_000_000, 20_000, 1000]
    with pytest.raises(Exception):
        taxi_hhi.parse_sizes("ten")


def test_warm_catalog_names_each_party_server(tmp_path):
    cat = tmp_path / "catalog.toml"
    cat.write_text('[parties.company1]\n[parties.company2]\n[parties.helper]\n\n[tables.trips]\n'
                   'columns = { VendorID = "int" }\n'
                   'parts = { company1 = "a.parquet", company2 = "b.parquet" }\n')
    warm = taxi_hhi.warm_catalog(cat, {"company1": "sc://127.0.0.1:1", "company2":
                                       "sc://127.0.0.1:2"}, "t")
    doc = tomllib.loads(warm.read_text())
    assert doc["parties"]["company1"]["spark_master"] == "sc://127.0.0.1:1"
    assert doc["parties"]["company2"]["spark_master"] == "sc://127.0.0.1:2"
    assert "spark_master" not in doc["parties"]["helper"]
    assert warm.parent == cat.parent  # relative parts still resolve
    assert taxi_hhi.catalog_files(warm) == [str(tmp_path / "a.parquet"),
                                            str(tmp_path / "b.parquet")]


def test_children_do_not_inherit_the_connect_only_marker(monkeypatch):
    """pyspark marks a process Connect-only (SPARK_CONNECT_MODE_ENABLED) once it opened a
    Spark Connect session; agents and parties started afterwards (a 2-party run's helper)
    must not inherit it, nor a caller's JVM."""
    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")
    monkeypatch.setenv("SPARK_REMOTE", "sc://127.0.0.1:1")
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "1")
    env = taxi_hhi.party_environment(PYTHONUNBUFFERED="1")
    assert not {"SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "PYSPARK_GATEWAY_PORT"} & set(env)
    assert env["PYTHONUNBUFFERED"] == "1" and env["PATH"] == os.environ["PATH"]


def test_agreement_check_and_table():
    recs = [{"rows": 10, "mode": "plaintext", "phase": "warm", "seconds": 2.0, "hhi": 3000.0},
            {"rows": 10, "mode": "sqlmpc", "phase": "warm", "seconds": 2.2,
             "hhi": 3000.0 * (1 + 1e-9), "local_span": 1.0, "secure_span": 1.0, "launcher": 0.2}]
    taxi_hhi.check_agreement(recs)
    text = taxi_hhi.table(recs)
    assert "1.100" in text and "sqlmpc" in text
    recs[1]["hhi"] = 3001.0
    with pytest.raises(taxi_hhi.BenchError, match="disagree"):
        taxi_hhi.check_agreement(recs)


@pytest.mark.slow
def test_quick_benchmark_cold(tmp_path):
    """The CI benchmark end to end (cold phase): every mode gives the same HHI."""
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "benchmarks.taxi_hhi", "--quick", "--phases", "cold",
           "--all-secure-limit", "90", "--json", str(out), "--data", str(tmp_path / "data"),
           "--workdir", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all modes agree on the HHI" in proc.stdout
    records = json.loads(out.read_text())
    assert isinstance(records, list) and records
    for r in records:
        assert {"rows", "mode", "phase", "seconds", "hhi"} <= set(r)
        assert r["phase"] == "cold"
        assert r["mode"] in ("plaintext", "sqlmpc", "all-secure")
        assert isinstance(r["rows"], int) and r["seconds"] > 0
        assert 0 < r["hhi"] <= 10_000
    sizes = {r["rows"] for r in records}
    for n in sizes:
        modes = {r["mode"]: r for r in records if r["rows"] == n}
        assert {"plaintext", "sqlmpc"} <= set(modes)
        want = modes["plaintext"]["hhi"]
        for r in modes.values():
            assert math.isclose(r["hhi"], want, rel_tol=taxi_hhi.HHI_RTOL)
    # nothing of the run is left behind
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("taxi-hhi-")]
    assert not taxi_hhi.stray_pids(tmp_path)
