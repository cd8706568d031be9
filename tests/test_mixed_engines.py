"""A mixed deployment end to end: each party runs its local job on the engine its own catalog
section names (one party on Spark in local mode, two on embedded DuckDB), through
`sqlmpc run` (party processes) and through party agents; the result is DuckDB's in plaintext
over the union of every party's parts.

Slow (a Spark JVM for one party, MPyC over TCP between three); skipped without Java.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlmpc

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java")]

SQLMPC = [sys.executable, "-m", "sqlmpc"]
SQL = ("SELECT vendor, COUNT(*) AS n, SUM(fare) AS f, AVG(distance) AS d FROM trips "
       "WHERE passengers > 1 GROUP BY vendor")


@pytest.fixture
def mixed_catalog(datasets, tmp_path) -> Path:
    """The taxi data set with yellow on Spark (local[2]); green and blue name no engine."""
    folder = tmp_path / "taxi"
    shutil.copytree(datasets["taxi"].parent, folder)
    catalog = folder / "catalog.toml"
    text = catalog.read_text().replace(
        "[parties.yellow]\n", '[parties.yellow]\nengine = "spark"\nspark_master = "local[2]"\n',
        1)
    catalog.write_text(text)
    return catalog


def test_mixed_engines_through_sqlmpc_run(mixed_catalog, tmp_path, reference, same_result):
    plan = sqlmpc.compile_sql(SQL, mixed_catalog)
    assert plan.engines == {"yellow": "spark", "green": "duckdb", "blue": "duckdb"}
    explained = sqlmpc.explain_sql(SQL, mixed_catalog)
    assert "Spark, local[2]" in explained and "DuckDB, embedded" in explained
    query = tmp_path / "q.sql"
    query.write_text(SQL)
    out, stats, workdir = tmp_path / "r.csv", tmp_path / "stats.json", tmp_path / "run"
    proc = subprocess.run(SQLMPC + ["run", str(query), "--catalog", str(mixed_catalog), "--out",
                                    str(out), "--stats", str(stats), "--workdir", str(workdir),
                                    "--timeout", "600"],
                          capture_output=True, text=True, timeout=660)
    assert proc.returncode == 0, proc.stderr
    assert "yellow: local job: running on spark" in proc.stderr
    assert "green: local job: running on duckdb" in proc.stderr
    assert "blue: local job: running on duckdb" in proc.stderr
    same_result(pd.read_csv(out, keep_default_na=False, na_values=[""], dtype={"vendor": str}),
                reference(mixed_catalog, SQL), False)
    # each party ran the program its own engine's backend rendered, as `compile` writes it (the
    # party folders keep only logs, stats and results once the run ends)
    for party, engine in plan.engines.items():
        program = (workdir / "plan" / party / "local_job.py").read_text()
        assert f"from sqlmpc.backends.{engine} import jobkit" in program, party
        assert not (workdir / party / f"local_job_{party}.py").exists()
    assert set(json.loads(stats.read_text())["parties"]) == {"yellow", "green", "blue"}


def test_mixed_engines_through_agents(mixed_catalog, tmp_path, reference, same_result):
    """Each agent opens the engine of its own catalog section (yellow a warm Spark session)."""
    from test_agent import Agents
    agents = Agents(mixed_catalog, ["yellow", "green", "blue"], tmp_path, engine=None)
    try:
        result = agents.run(SQL, timeout=600, workdir=tmp_path / "run")
        same_result(result, reference(mixed_catalog, SQL), False)
    finally:
        agents.stop()
    log = (tmp_path / "agent-yellow.log").read_text()
    assert "engine Spark, local[2]" in log, log
    assert "engine DuckDB, embedded" in (tmp_path / "agent-green.log").read_text()
