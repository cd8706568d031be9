"""The taxi HHI example and benchmark (benchmarks/taxi_hhi.py and its parts, benchmarks/taxi/).

Fast: the example compiles for both layouts into the plan the experiment relies on (only
per-company sums are shared), the benchmark's parts (sizes, warm catalogs, agreement check,
table, the DuckDB plaintext baseline) and its command line (--plot without matplotlib fails at
once). Slow: `python -m benchmarks.taxi_hhi --quick` end to end on Spark (cold) and on DuckDB
(cold and warm, with party agents), checking the JSON records and that every mode gives the
same HHI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import sqlmpc
from sqlmpc.runtime.engines.spark import party_environment

from benchmarks import taxi_hhi
from benchmarks.taxi import data, model, plaintext, probe, processes, report
from benchmarks.taxi.common import HHI_RTOL, BenchError

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
                             cwd=ROOT, capture_output=True, check=False)
    if ignored.returncode == 128:
        pytest.skip("not a git checkout")
    assert ignored.returncode == 0, "examples/taxi/data/ must be ignored by git"


def test_parse_sizes():
    assert data.parse_sizes("1000000, 5m,20k,1_000") == [1_000_000, 5_000_000, 20_000, 1000]
    with pytest.raises(argparse.ArgumentTypeError, match="not a row count"):
        data.parse_sizes("ten")
    with pytest.raises(argparse.ArgumentTypeError, match="positive"):
        data.parse_sizes("0")


def test_warm_catalog_names_each_party_server(tmp_path):
    cat = tmp_path / "catalog.toml"
    cat.write_text('[parties.company1]\n[parties.company2]\n[parties.helper]\n\n[tables.trips]\n'
                   'columns = { VendorID = "int" }\n'
                   'parts = { company1 = "a.parquet", company2 = "b.parquet" }\n')
    warm = data.warm_catalog(cat, {"company1": "sc://127.0.0.1:1",
                                   "company2": "sc://127.0.0.1:2"}, "t")
    doc = tomllib.loads(warm.read_text())
    assert doc["parties"]["company1"]["spark_master"] == "sc://127.0.0.1:1"
    assert doc["parties"]["company2"]["spark_master"] == "sc://127.0.0.1:2"
    assert "spark_master" not in doc["parties"]["helper"]
    assert warm.parent == cat.parent  # relative parts still resolve
    assert data.catalog_files(warm) == [str(tmp_path / "a.parquet"),
                                        str(tmp_path / "b.parquet")]


def test_children_do_not_inherit_the_connect_only_marker(monkeypatch):
    """pyspark marks a process Connect-only (SPARK_CONNECT_MODE_ENABLED) once it opened a
    Spark Connect session; agents and parties started afterwards (a 2-party run's helper)
    must not inherit it, nor a caller's JVM."""
    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")
    monkeypatch.setenv("SPARK_REMOTE", "sc://127.0.0.1:1")
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "1")
    env = party_environment(PYTHONUNBUFFERED="1")
    assert not {"SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "PYSPARK_GATEWAY_PORT"} & set(env)
    assert env["PYTHONUNBUFFERED"] == "1" and env["PATH"] == os.environ["PATH"]


def test_agreement_check_and_table():
    recs = [{"rows": 10, "mode": "plaintext", "phase": "warm", "seconds": 2.0, "hhi": 3000.0},
            {"rows": 10, "mode": "sqlmpc", "phase": "warm", "seconds": 2.2,
             "hhi": 3000.0 * (1 + 1e-9), "local_span": 1.0, "secure_span": 1.0, "launcher": 0.2}]
    report.check_agreement(recs)
    text = report.table(recs)
    assert "1.100" in text and "sqlmpc" in text
    recs[1]["hhi"] = 3001.0
    with pytest.raises(BenchError, match="disagree"):
        report.check_agreement(recs)


def test_duckdb_plaintext_is_the_query_over_every_file(tmp_path):
    """The DuckDB baseline runs the query's own SQL over the union of the parties' files: it
    gives the HHI computed by hand from the same rows."""
    import duckdb
    import pandas as pd
    import pyarrow.parquet as pq
    from sqlmpc.datasets.taxi import generate
    catalog = generate(3_000, 3, "company", tmp_path / "d", seed=5, quiet=True)
    files = data.catalog_files(catalog)
    trips = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
    valid = trips[(trips.fare_amount > 0) & (trips.trip_distance > 0)]
    revenue = valid.groupby("VendorID").fare_amount.sum()
    want = float(((100.0 * revenue / revenue.sum()) ** 2).sum())
    with duckdb.connect() as con:
        got = plaintext.duckdb_hhi(con, files, (ROOT / "examples/taxi/query.sql").read_text())
    assert len(revenue) == 3 and math.isclose(got, want, rel_tol=1e-9)


def test_plot_without_matplotlib_fails_before_running(monkeypatch, capsys):
    """--plot checks matplotlib first: one line and exit status 2, and no data generated."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises
    monkeypatch.setattr(taxi_hhi, "run_experiment",
                        lambda args: pytest.fail("ran the experiment without matplotlib"))
    assert taxi_hhi.main(["--quick", "--plot", "out/x.png"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["taxi_hhi: error: --plot needs matplotlib: pip install sqlmpc[plot]"]


def test_bad_phases_is_one_line(capsys):
    assert taxi_hhi.main(["--phases", "hot"]) == 2
    assert capsys.readouterr().err.strip() == (
        "taxi_hhi: error: --phases takes cold and/or warm, got ['hot']")


def test_isolated_estimate_takes_the_slowest_party_alone():
    """launcher + the slowest party's (time until its job + job) without its lock wait +
    the secure part; the waits of a serialised run do not count."""
    parties = {"company1": {"t": {"spawned": 100.0, "local_done": 101.0}},   # ran first
               "company2": {"t": {"spawned": 100.0, "local_done": 102.5}},   # waited 1.0
               "company3": {"t": {"spawned": 100.0, "local_done": 103.2}}}   # waited 2.5
    probes = {"company1": {"wait": 0.0, "job": 0.9}, "company2": {"wait": 1.0, "job": 1.4},
              "company3": {"wait": 2.5, "job": 0.6}}
    est = model.isolated_estimate(parties, probes, launcher=0.2, secure=0.1)
    assert math.isclose(est["local_isolated"], 1.5)  # company2: 2.5 s less 1.0 s waiting
    assert math.isclose(est["seconds"], 0.2 + 1.5 + 0.1)
    assert est["local_jobs"] == {"company1": 0.9, "company2": 1.4, "company3": 0.6}


def test_rounds_and_rtt():
    counter = probe.RoundCounter()
    for event in "ssrrsrsss":  # send, send | receipts | send | receipt | three sends
        counter.sent(10) if event == "s" else counter.receipt()
    assert counter.as_dict() == {"messages": 6, "rounds": 3, "bytes": 60}
    probes = {"a": {"rounds": 40, "messages": 90, "bytes": 5000}, "b": {"wait": 0.1},
              "c": {"rounds": 42, "messages": 80, "bytes": 4000}}
    assert model.rounds_of(probes) == {"rounds": 42, "messages": 90, "mpc_bytes": 5000}
    assert model.rounds_of({"b": {"wait": 0.1}}) == {}
    assert math.isclose(model.with_rtt(0.5, 42, 20.0), 0.5 + 43 * 0.020)


def test_probe_files_are_read_per_party_and_cleared(tmp_path):
    folder = tmp_path / "probe"
    probe.clear_probes(folder, serialize=True)
    assert (folder / probe.SERIALIZE).exists()
    probe.write(folder / "company1.job.json", {"wait": 0.5, "job": 1.0})
    probe.write(folder / "company1.mpc.json", {"messages": 3, "rounds": 2, "bytes": 99})
    assert probe.read_probes(folder) == {"company1": {"wait": 0.5, "job": 1.0, "messages": 3,
                                                      "rounds": 2, "bytes": 99}}
    probe.clear_probes(folder, serialize=False)
    assert probe.read_probes(folder) == {} and not (folder / probe.SERIALIZE).exists()
    probe.clear_probes(folder, serialize=True, latency_ms=10)
    assert probe.latency_of(folder) == 0.01
    probe.clear_probes(folder, serialize=True)
    assert probe.latency_of(folder) == 0.0


def test_delayed_delivery_keeps_the_order_and_waits():
    """The simulated WAN: bytes reach the protocol `delay` after they arrived, in order."""
    import asyncio
    got: list[tuple[float, bytes]] = []

    async def main():
        loop = asyncio.get_running_loop()
        wire = probe.DelayedDelivery(lambda d: got.append((loop.time(), d)), 0.05)
        t0 = loop.time()
        for chunk in (b"a", b"b", b"c"):  # arrivals in one instant: the same deadline
            wire.arrived(chunk)
        await asyncio.sleep(0.02)
        wire.arrived(b"d")
        assert got == []  # nothing before its delay
        await asyncio.sleep(0.1)
        return t0
    t0 = asyncio.run(main())
    assert [d for _, d in got] == [b"a", b"b", b"c", b"d"]
    assert all(t - t0 >= 0.05 for t, _ in got[:3]) and got[3][0] - t0 >= 0.07


def test_table_shows_rounds_and_the_rtt_estimate():
    args = argparse.Namespace(layout="company", parties=3, engine="duckdb", agents=True,
                              rtt=20.0)
    results = {(10, "plaintext", "warm"): [{"seconds": 1.0, "hhi": 3000.0}],
               (10, "isolated", "warm"): [{"seconds": 1.2, "hhi": 3000.0, "rounds": 40,
                                           "measured": 2.0, "local_jobs": {"a": 0.5}}]}
    recs = report.summarise(results, args)
    iso = recs[1]
    assert iso["mode"] == "isolated" and iso["measured"] == 2.0
    assert math.isclose(iso["seconds_rtt"], 1.2 + 41 * 0.02)
    text = report.table(recs, 20.0)
    assert "+20ms s" in text and "2.020" in text and "1.200" in text
    # a simulated WAN is measured: no rounds x RTT added to it
    args.wan = 20.0
    results[(10, "wan", "warm")] = [{"seconds": 1.5, "hhi": 3000.0, "rounds": 40,
                                     "measured": 2.5}]
    wan = [r for r in report.summarise(results, args) if r["mode"] == "wan"][0]
    assert wan["wan_ms"] == 20.0 and "seconds_rtt" not in wan


@pytest.mark.parametrize("argv, message", [
    (["--isolated", "--phases", "cold"], "--isolated needs the warm phase with party agents"),
    (["--isolated", "--no-agents"], "--isolated needs the warm phase with party agents"),
    (["--rtt", "20", "--phases", "cold"], "--rtt needs the warm phase with party agents"),
    (["--rtt", "-1"], "--rtt takes milliseconds between 0 and 10000, got -1"),
    (["--wan", "20", "--phases", "cold"], "--wan needs the warm phase with party agents"),
    (["--wan", "20000"], "--wan takes milliseconds between 0 and 10000, got 20000"),
])
def test_isolated_and_rtt_arguments_are_checked(argv, message, capsys):
    assert taxi_hhi.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"taxi_hhi: error: {message}") and "\n" not in err


def run_quick(tmp_path: Path, *extra: str) -> list[dict]:
    """`python -m benchmarks.taxi_hhi --quick ...` in a subprocess; its JSON records, checked
    for shape and agreement, and nothing of the run left behind."""
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "benchmarks.taxi_hhi", "--quick", "--all-secure-limit", "90",
           "--json", str(out), "--data", str(tmp_path / "data"), "--workdir", str(tmp_path),
           *extra]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all modes agree on the HHI" in proc.stdout
    records = json.loads(out.read_text())
    assert isinstance(records, list) and records
    for r in records:
        assert {"rows", "mode", "phase", "seconds", "hhi", "engine"} <= set(r)
        assert r["mode"] in ("plaintext", "sqlmpc", "isolated", "wan", "all-secure")
        assert isinstance(r["rows"], int) and r["seconds"] > 0
        assert 0 < r["hhi"] <= 10_000
    for n, phase in {(r["rows"], r["phase"]) for r in records}:
        modes = {r["mode"]: r for r in records if r["rows"] == n and r["phase"] == phase}
        assert {"plaintext", "sqlmpc"} <= set(modes)
        want = modes["plaintext"]["hhi"]
        for r in modes.values():
            assert math.isclose(r["hhi"], want, rel_tol=HHI_RTOL)
    # nothing of the run is left behind
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("taxi-hhi-")]
    assert not processes.stray_pids(tmp_path)
    return records


@pytest.mark.slow
def test_quick_benchmark_cold_spark(tmp_path):
    """The CI benchmark end to end on Spark (cold phase): sqlmpc and plaintext give the same
    HHI (the all-secure mode, a cold JVM per party more, is run on DuckDB below)."""
    records = run_quick(tmp_path, "--phases", "cold", "--engine", "spark", "--no-all-secure")
    assert {(r["phase"], r["engine"]) for r in records} == {("cold", "spark")}


@pytest.mark.slow
def test_quick_benchmark_duckdb_cold_and_warm(tmp_path):
    """On DuckDB, cold and warm (party agents on DuckDB, one plaintext connection)."""
    records = run_quick(tmp_path, "--phases", "cold,warm", "--engine", "duckdb", "--warmup", "1",
                        "--isolated", "--rtt", "20", "--wan", "20")
    assert {r["engine"] for r in records} == {"duckdb"}
    assert {r["phase"] for r in records} == {"cold", "warm"}
    assert all(r["agents"] for r in records if r["phase"] == "warm" and r["mode"] != "plaintext")
    warm = {r["mode"]: r for r in records if r["phase"] == "warm" and r["rows"] == 20_000}
    # the agents counted the secure part's rounds; isolated = launcher + local + secure
    assert 2 <= warm["sqlmpc"]["rounds"] <= warm["sqlmpc"]["messages"]
    iso = warm["isolated"]
    assert math.isclose(iso["seconds"], iso["launcher"] + iso["local_span"] + iso["secure_span"],
                        rel_tol=1e-9)  # --quick: one run, so the medians are that run's parts
    assert iso["seconds_rtt"] > iso["seconds"] and iso["measured"] > 0
    assert 0 < iso["secure_cpu"] < iso["measured"]  # one party's processor time, secure part
    # over the simulated WAN every message waits 10 ms: the secure part's dependent messages
    # (the division alone has some 40) take at least that many times 10 ms
    wan = warm["wan"]
    assert wan["secure_span"] > iso["secure_span"] + 30 * 0.010
    assert math.isclose(wan["seconds"], wan["launcher"] + wan["local_span"] + wan["secure_span"]
                        + 0.020, rel_tol=1e-9)
