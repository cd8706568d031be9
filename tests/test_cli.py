"""A newcomer's first minutes: `import sqlmpc` is light, `python -m sqlmpc` and `--version`
work, every engine is a choice of --engine, and `run --out` writes Parquet or CSV by suffix.

Fast, except the one end-to-end `sqlmpc run --out R.parquet` (slow: a party process).
"""

from __future__ import annotations

import subprocess
import sys
from io import StringIO

import pandas as pd
import pytest
import sqlmpc
from sqlmpc.runtime import cli
from sqlmpc.runtime.workspace import write_result

HEAVY = ("pandas", "sqlglot", "mpyc", "pyspark", "duckdb", "numpy", "pyarrow")


def test_import_sqlmpc_loads_nothing_heavy():
    """`import sqlmpc` must be instant: the API is loaded on first use (PEP 562)."""
    code = ("import sys, sqlmpc; print(sqlmpc.__version__); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    version, loaded = proc.stdout.splitlines()
    assert version == sqlmpc.__version__
    assert loaded == "", f"import sqlmpc loaded {loaded}"


def test_lazy_names_are_the_real_ones():
    from sqlmpc.compiler.errors import SqlmpcError
    from sqlmpc.runtime import api
    assert sqlmpc.SqlmpcError is SqlmpcError
    assert (sqlmpc.compile_sql, sqlmpc.explain_sql, sqlmpc.run_sql) == \
        (api.compile_sql, api.explain_sql, api.run_sql)
    assert {"compile_sql", "explain_sql", "run_sql", "SqlmpcError"} <= set(dir(sqlmpc))
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        sqlmpc.nonsense  # noqa: B018


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"sqlmpc {sqlmpc.__version__}"


def test_python_m_sqlmpc(datasets):
    """`python -m sqlmpc` is the `sqlmpc` command (here: --version and explain)."""
    proc = subprocess.run([sys.executable, "-m", "sqlmpc", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"sqlmpc {sqlmpc.__version__}"
    query = datasets["taxi"].parent / "q_cli.sql"
    query.write_text("SELECT vendor, SUM(fare) AS f FROM trips GROUP BY vendor")
    proc = subprocess.run([sys.executable, "-m", "sqlmpc", "explain", str(query), "--catalog",
                           str(datasets["taxi"])], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "yellow" in proc.stdout and "DuckDB" in proc.stdout


def test_python_m_agent_is_sqlmpc_agent():
    proc = subprocess.run([sys.executable, "-m", "sqlmpc.runtime.agent", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage: sqlmpc agent" in proc.stdout and "--listen" in proc.stdout


def test_engine_choices_are_the_registered_engines():
    from sqlmpc.backends import LOCAL_ENGINES
    parser = cli.build_parser()
    for command in ("run", "party", "agent", "compile", "explain"):
        sub = parser._subparsers._group_actions[0].choices[command]
        (engine,) = [a for a in sub._actions if a.dest == "engine"]
        assert tuple(engine.choices) == tuple(LOCAL_ENGINES), command
        assert engine.default is None  # the catalog's choice, else the default engine


def test_unknown_engine_is_one_line(tmp_path, capsys, datasets):
    query = tmp_path / "q.sql"
    query.write_text("SELECT COUNT(*) AS n FROM trips")
    with pytest.raises(SystemExit) as info:
        cli.main(["run", str(query), "--catalog", str(datasets["taxi"]), "--engine", "oracle"])
    assert info.value.code == 2
    assert "invalid choice: 'oracle'" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".PARQUET"])
def test_write_result_by_suffix(tmp_path, suffix):
    frame = pd.DataFrame({"vendor": ["a", "b"], "n": [1, 2], "f": [1.5, None]})
    path = write_result(frame, tmp_path / "sub" / f"result{suffix}")
    if suffix.lower() == ".parquet":
        assert path.read_bytes()[:4] == b"PAR1"
        back = pd.read_parquet(path)
    else:
        assert path.read_text().splitlines()[0] == "vendor,n,f"
        back = pd.read_csv(path)
    pd.testing.assert_frame_equal(back, frame)


def test_write_result_to_an_unwritable_place_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(sqlmpc.SqlmpcError, match="cannot write the result to"):
        write_result(pd.DataFrame({"n": [1]}), blocker / "r.csv")


@pytest.mark.slow
def test_run_out_parquet(datasets, tmp_path, reference, same_result):
    """`sqlmpc run ... --out R.parquet` writes the result as Parquet (a secure query: every
    party its own process)."""
    sql = "SELECT vendor, COUNT(*) AS n, SUM(fare) AS f FROM trips GROUP BY vendor"
    query = tmp_path / "q.sql"
    query.write_text(sql)
    out = tmp_path / "r.parquet"
    proc = subprocess.run([sys.executable, "-m", "sqlmpc", "run", str(query), "--catalog",
                           str(datasets["taxi"]), "--out", str(out), "--timeout", "300"],
                          capture_output=True, text=True, timeout=360)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:4] == b"PAR1"
    result = pd.read_parquet(out)
    assert f"wrote {len(result)} row(s) to {out}" in proc.stderr
    same_result(result, reference(datasets["taxi"], sql), False)


@pytest.mark.slow
def test_sqlmpc_party_one_process_per_party(datasets, tmp_path, reference, same_result):
    """`sqlmpc party NAME` on each party's "machine" (here: three processes, the ports from the
    catalog): every recipient prints the result, or writes it with --out (Parquet here)."""
    import shutil

    from sqlmpc.runtime.workspace import free_port
    folder = tmp_path / "taxi"
    shutil.copytree(datasets["taxi"].parent, folder)
    catalog = folder / "catalog.toml"
    text = catalog.read_text()
    for name in ("yellow", "green", "blue"):
        text = text.replace(f"[parties.{name}]\n",
                            f'[parties.{name}]\nhost = "127.0.0.1"\nport = {free_port()}\n')
    catalog.write_text(text)
    sql = "SELECT vendor, SUM(fare) AS f, COUNT(*) AS n FROM trips GROUP BY vendor"
    query = tmp_path / "q.sql"
    query.write_text(sql)
    out = tmp_path / "yellow.parquet"
    procs = {name: subprocess.Popen(
        [sys.executable, "-m", "sqlmpc", "party", name, str(query), "--catalog", str(catalog),
         "--quiet"] + (["--out", str(out)] if name == "yellow" else []),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("yellow", "green", "blue")}
    outputs = {name: p.communicate(timeout=300) for name, p in procs.items()}
    for name, p in procs.items():
        assert p.returncode == 0, (name, outputs[name][1])
        assert outputs[name][1] == "", (name, outputs[name][1])  # --quiet: nothing on stderr
    want = reference(catalog, sql)
    same_result(pd.read_parquet(out), want, False)
    assert outputs["yellow"][0] == ""
    for name in ("green", "blue"):
        same_result(pd.read_csv(StringIO(outputs[name][0]), dtype={"vendor": str}), want, False)


def test_keys_makes_every_party_and_analyst(datasets, tmp_path, capsys):
    from sqlmpc.runtime.identity import Identity
    assert cli.main(["keys", str(tmp_path / "k"), "--catalog", str(datasets["taxi"]),
                     "--analyst", "alice"]) == 0
    out = capsys.readouterr().out
    for name in ("yellow", "green", "blue"):
        ident = Identity.from_folder(tmp_path / "k" / name / "identity")
        assert (ident.role, ident.name) == ("party", name) and f"party {name}:" in out
        assert (ident.key.stat().st_mode & 0o777) == 0o600
    assert Identity.from_folder(tmp_path / "k" / "analysts" / "alice").role == "analyst"


def test_agent_and_run_without_identity_are_one_line(datasets, tmp_path, capsys):
    assert cli.main(["agent", "yellow", "--catalog", str(datasets["taxi"])]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no identity" in err[0] and "--insecure-plaintext" in err[0]
    q = tmp_path / "q.sql"
    q.write_text("SELECT COUNT(*) AS n FROM trips")
    assert cli.main(["run", str(q), "--catalog", str(datasets["taxi"]),
                     "--agents", "yellow=127.0.0.1:1,green=127.0.0.1:1,blue=127.0.0.1:1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no analyst identity" in err[0]
