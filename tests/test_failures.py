"""Failure and bad input: a killed party, a port in use, bad data files, out-of-range values,
and sentinel values that must never leave their owner.

Every case runs the real command line (`sqlmpc run ...`) and checks: non-zero exit status, one
clear line on stderr naming what is wrong and where (no traceback), no result file, and no
process left behind (a /proc scan for processes whose command line names the run's folder).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlmpc.datasets.testdata import generate_taxi

SQLMPC = [sys.executable, "-c", "import sys; from sqlmpc.runtime.cli import main; sys.exit(main())"]


# --- helpers ---------------------------------------------------------------------------------
def write_catalog(folder: Path, parties: dict[str, dict], columns: dict[str, str],
                  rows: dict[str, list[list]], table: str = "t", extra: str = "") -> Path:
    """A one-table catalog with one CSV part per party in `rows` (parties may have no part)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = ""
    for name, opts in parties.items():
        text += f"[parties.{name}]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"')
                                                for k, v in opts.items())
    parts = {}
    for party, data in rows.items():
        path = folder / party / f"{table}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(",".join(columns) + "\n" + "".join(",".join(map(str, r)) + "\n"
                                                         for r in data))
        parts[party] = f"{party}/{table}.csv"
    text += f"\n[tables.{table}]\ncolumns = {{ " + ", ".join(
        f'{c} = "{t}"' for c, t in columns.items()) + " }\n"
    text += "parts = { " + ", ".join(f'{p} = "{f}"' for p, f in parts.items()) + " }\n" + extra
    cat = folder / "catalog.toml"
    cat.write_text(text)
    return cat


def run_cli(tmp: Path, sql: str, catalog: Path, *args: str, timeout: float = 180,
            out: Path | None = None, workdir: Path | None = None) -> subprocess.CompletedProcess:
    q = tmp / "query.sql"
    q.write_text(sql)
    cmd = SQLMPC + ["run", str(q), "--catalog", str(catalog), "--engine", "duckdb", "--quiet",
                    *args]
    if out is not None:
        cmd += ["--out", str(out)]
    if workdir is not None:
        cmd += ["--workdir", str(workdir)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one line a failed run prints (asserts there is exactly one and no traceback)."""
    assert proc.returncode != 0, f"expected failure, got success: {proc.stdout}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{proc.stderr}"
    return lines[0]


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """(pid, command line) of live processes whose command line contains `text`."""
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append((int(entry.name), cmd))
    return found


def wait_no_processes(text: str, seconds: float = 10) -> list[tuple[int, str]]:
    deadline = time.time() + seconds
    while True:
        left = processes_mentioning(text)
        if not left or time.time() > deadline:
            return left
        time.sleep(0.2)


# --- a party killed mid-run --------------------------------------------------------------------
# a cross join filtered by a secret comparison: 150 x 150 comparisons, ~40 s in MPC (an
# equi-join is no longer slow enough to be killed in the middle)
KILL_SQL = "SELECT COUNT(*) AS n FROM p1.t a CROSS JOIN p2.t b WHERE a.k < b.v"


def _start_long_run(tmp_path: Path):
    """Start `sqlmpc run` on a query whose secure part takes ~20 s; wait until p2 is in it."""
    rows = {p: [[(i * 7 + j) % 500, i] for i in range(150)] for j, p in
            enumerate(["p1", "p2", "p3"])}
    cat = write_catalog(tmp_path / "data", {"p1": {}, "p2": {}, "p3": {}},
                        {"k": "int", "v": "int"}, rows)
    workdir = tmp_path / "run"
    out = tmp_path / "result.csv"
    q = tmp_path / "query.sql"
    q.write_text(KILL_SQL)
    cmd = SQLMPC + ["run", str(q), "--catalog", str(cat), "--engine", "duckdb",
                    "--out", str(out), "--workdir", str(workdir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    secure = threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if "p2: secure job" in line:
                secure.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert secure.wait(120), "party p2 never reached the secure job:\n" + "\n".join(lines)
    time.sleep(3.0)  # well inside the secure join
    assert proc.poll() is None, "the run finished before it could be interrupted"
    return proc, reader, lines, workdir, out


def _error_lines(lines: list[str]) -> list[str]:
    return [ln for ln in lines if ln.strip() and not ln.startswith(
        ("sqlmpc: p1:", "sqlmpc: p2:", "sqlmpc: p3:"))]


@pytest.mark.slow
def test_killed_party_stops_the_run(tmp_path):
    proc, reader, lines, workdir, out = _start_long_run(tmp_path)
    try:
        victims = [pid for pid, cmd in processes_mentioning(str(workdir))
                   if "sqlmpc.runtime.party" in cmd and "p2.spec.json" in cmd]
        assert len(victims) == 1, processes_mentioning(str(workdir))
        killed_at = time.time()
        os.kill(victims[0], signal.SIGKILL)
        code = proc.wait(timeout=30)
        elapsed = time.time() - killed_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    assert code != 0
    assert elapsed < 30
    errors = _error_lines(lines)
    assert len(errors) == 1, "\n".join(lines)
    assert "p2" in errors[0] and ("died" in errors[0] or "lost" in errors[0]), errors[0]
    assert not any("Traceback" in ln for ln in lines), "\n".join(lines)
    assert not out.exists()
    assert wait_no_processes(str(workdir)) == []


@pytest.mark.slow
def test_launcher_terminated_stops_every_party(tmp_path):
    """SIGTERM to `sqlmpc run` (e.g. from `timeout`) must not leave the parties running."""
    proc, reader, lines, workdir, out = _start_long_run(tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    assert code != 0
    errors = _error_lines(lines)
    assert len(errors) == 1 and "SIGTERM" in errors[0], "\n".join(lines)
    assert not out.exists()
    assert wait_no_processes(str(workdir)) == []


# --- port in use (found before any party starts: fast) ---------------------------------------------
def test_port_in_use(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cat = write_catalog(tmp_path / "data",
                            {"p1": {}, "p2": {"host": "127.0.0.1", "port": port}, "p3": {}},
                            {"k": "int"}, {"p1": [[1]], "p2": [[2]], "p3": [[3]]})
        out = tmp_path / "out.csv"
        proc = run_cli(tmp_path, "SELECT SUM(k) AS s FROM t", cat, out=out,
                       workdir=tmp_path / "run")
        line = error_line(proc)
    assert "p2" in line and str(port) in line and "in use" in line, line
    assert not out.exists()
    assert wait_no_processes(str(tmp_path / "run")) == []



def test_free_ports_lie_below_the_ephemeral_range_and_differ():
    from sqlmpc.runtime.workspace import ephemeral_ports, free_port
    low, _ = ephemeral_ports()
    taken: set[int] = set()
    for _ in range(50):
        port = free_port(avoid=taken)
        assert port not in taken and port < low
        taken.add(port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))  # free indeed (this socket frees it again)


@pytest.mark.slow
def test_a_free_port_taken_before_its_party_listens_starts_the_run_again(tmp_path,
                                                                          monkeypatch):
    """The race of a chosen free port: another program binds it between the choice and the
    party's listen. The party fails to bind; `run` starts again on other free ports."""
    import sqlmpc
    from sqlmpc.runtime import launcher
    real = launcher.party_addresses
    chosen: list[list[str]] = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as thief:
        thief.bind(("127.0.0.1", 0))
        thief.listen()
        stolen = thief.getsockname()[1]

        def addresses(plan, catalog, base_port=None):
            out = real(plan, catalog, base_port)
            if not chosen:  # the first run's party 1 finds its port taken
                out[1] = f"127.0.0.1:{stolen}"
            chosen.append(out)
            return out

        monkeypatch.setattr(launcher, "party_addresses", addresses)
        monkeypatch.setattr(launcher, "check_ports", lambda *a, **k: None)  # it lost the race
        cat = write_catalog(tmp_path / "data", {"p1": {}, "p2": {}, "p3": {}}, {"k": "int"},
                            {"p1": [[1]], "p2": [[2]], "p3": [[3]]})
        result = sqlmpc.run_sql("SELECT SUM(k) AS s FROM t", cat, quiet=True)
    assert len(chosen) == 2 and f"127.0.0.1:{stolen}" not in chosen[1]
    assert result["s"].tolist() == [6]


@pytest.mark.slow
def test_a_catalog_port_taken_late_is_not_retried(tmp_path, monkeypatch):
    """A port the catalog fixes is the owner's choice: its loss is an error, not a retry."""
    import sqlmpc
    from sqlmpc.compiler.errors import PartyError
    from sqlmpc.runtime import launcher
    from sqlmpc.runtime.workspace import free_port
    calls = []
    real = launcher.party_addresses
    monkeypatch.setattr(launcher, "party_addresses",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(launcher, "check_ports", lambda *a, **k: None)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as thief:
        thief.bind(("127.0.0.1", free_port()))
        thief.listen()
        port = thief.getsockname()[1]
        cat = write_catalog(tmp_path / "data",
                            {"p1": {}, "p2": {"host": "127.0.0.1", "port": port}, "p3": {}},
                            {"k": "int"}, {"p1": [[1]], "p2": [[2]], "p3": [[3]]})
        with pytest.raises(PartyError, match="address already in use"):
            sqlmpc.run_sql("SELECT SUM(k) AS s FROM t", cat, quiet=True)
    assert len(calls) == 1

# --- bad data files ------------------------------------------------------------------------------
@pytest.fixture
def taxi(tmp_path) -> Path:
    return generate_taxi(tmp_path / "taxi")


@pytest.mark.slow
def test_missing_data_file(tmp_path, taxi):
    missing = taxi.parent / "green" / "trips.csv"
    missing.unlink()
    out = tmp_path / "out.csv"
    proc = run_cli(tmp_path, "SELECT vendor, SUM(fare) AS s FROM trips GROUP BY vendor", taxi,
                   out=out, workdir=tmp_path / "run")
    line = error_line(proc)
    assert "green" in line and str(missing) in line and "not found" in line, line
    assert not out.exists()
    assert wait_no_processes(str(tmp_path / "run")) == []


@pytest.mark.slow
def test_temporary_run_folder_is_removed_after_success_and_failure(tmp_path, taxi):
    """Without --workdir the run folder (plans, logs, the parties' working files) lives in the
    temp folder only while the run lasts; a given --workdir is kept."""
    temp = tmp_path / "temp"
    temp.mkdir()
    env = dict(os.environ, TMPDIR=str(temp))
    q = tmp_path / "query.sql"
    q.write_text("SELECT vendor, SUM(fare) AS s FROM trips GROUP BY vendor")
    cmd = SQLMPC + ["run", str(q), "--catalog", str(taxi), "--engine", "duckdb", "--quiet"]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "vendor,s" in ok.stdout
    assert list(temp.iterdir()) == []
    (taxi.parent / "green" / "trips.csv").unlink()
    failed = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert "green" in error_line(failed)
    assert list(temp.iterdir()) == []
    kept = run_cli(tmp_path, "SELECT COUNT(*) AS n FROM trips", taxi, workdir=tmp_path / "run")
    assert "green" in error_line(kept)
    assert (tmp_path / "run" / "plan" / "plan.json").exists()


@pytest.mark.slow
def test_column_type_mismatch(tmp_path, taxi):
    part = taxi.parent / "blue" / "trips.csv"
    lines = part.read_text().splitlines()
    cells = lines[3].split(",")
    cells[4] = "two"  # passengers is an int column
    lines[3] = ",".join(cells)
    part.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.csv"
    proc = run_cli(tmp_path, "SELECT SUM(passengers) AS p FROM trips", taxi, out=out,
                   workdir=tmp_path / "run")
    line = error_line(proc)
    assert "blue" in line and "row 3" in line and "passengers" in line and "two" in line, line
    assert not out.exists()


@pytest.mark.slow
def test_missing_column_in_file(tmp_path, taxi):
    part = taxi.parent / "yellow" / "trips.csv"
    text = part.read_text().replace("distance", "dist", 1)
    part.write_text(text)
    proc = run_cli(tmp_path, "SELECT AVG(distance) AS d FROM trips", taxi,
                   workdir=tmp_path / "run")
    line = error_line(proc)
    assert "yellow" in line and "distance" in line, line


@pytest.mark.slow
def test_value_out_of_range_for_secure_type(tmp_path):
    """10^19 fits decimal(20,0) but not the secure type (|x| < 2^63): an error, never a wrap."""
    cat = write_catalog(tmp_path / "data", {"a": {}, "b": {}},
                        {"x": "int", "d": "decimal(20,0)"},
                        {"a": [[9223372036854775807, 10**19], [1, 1]], "b": [[5, 2]]})
    out = tmp_path / "out.csv"
    proc = run_cli(tmp_path, "SELECT MAX(d) AS m FROM t", cat, out=out, workdir=tmp_path / "run")
    line = error_line(proc)
    assert "party a" in line or line.startswith("sqlmpc: error: a:"), line
    assert "out of range" in line, line
    assert not out.exists()


@pytest.mark.slow
def test_int64_max_is_shared_exactly(tmp_path):
    """2^63-1 is the largest int: it must enter MPC and come back unchanged."""
    cat = write_catalog(tmp_path / "data", {"a": {}, "b": {}}, {"x": "int"},
                        {"a": [[9223372036854775807], [1]], "b": [[5]]})
    proc = run_cli(tmp_path, "SELECT MAX(x) AS m FROM t", cat, out=tmp_path / "out.csv")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.csv").read_text().split() == ["m", "9223372036854775807"]


@pytest.mark.slow
def test_secure_sum_overflowing_int64(tmp_path):
    """A secure SUM beyond the int range must fail with a clear line (not wrap, not crash)."""
    cat = write_catalog(tmp_path / "data", {"a": {}, "b": {}}, {"x": "int"},
                        {"a": [[9223372036854775807]], "b": [[5]]})
    out = tmp_path / "out.csv"
    proc = run_cli(tmp_path, "SELECT SUM(x) AS s FROM t", cat, out=out)
    line = error_line(proc)
    assert "overflow: SUM(x) does not fit the secure type's range" in line, line
    assert "9223372036854775807" not in proc.stderr and "5" not in line.split("range")[0]
    assert not out.exists()


# --- sentinels: raw rows never leave their owner ---------------------------------------------------
SENTINEL_TEXT = "SNTL1"
SENTINEL_INT = 987654321987
SENTINEL_FARE = "4321.97"  # a fare that is shared only inside blue's partial sum


@pytest.mark.slow
@pytest.mark.parametrize("all_secure", [False, True], ids=["default", "all-secure"])
def test_sentinels_stay_with_their_owner(tmp_path, all_secure):
    from sqlmpc.backends.mpyc.lib import encoding
    cat = generate_taxi(tmp_path / "taxi")
    part = cat.parent / "blue" / "trips.csv"
    text = part.read_text()
    text += f"{SENTINEL_TEXT},12.34,1.5,2024-03-05,{SENTINEL_INT}\n"   # filtered out
    text += f"DDS,{SENTINEL_FARE},2.5,2024-03-07,2\n"                 # aggregated away
    part.write_text(text)
    workdir = tmp_path / "run"
    out = tmp_path / "out.csv"
    sql = "SELECT vendor, SUM(fare) AS s, COUNT(*) AS n FROM trips WHERE passengers < 100 " \
          "GROUP BY vendor"
    proc = run_cli(tmp_path, sql, cat, *(["--all-secure"] if all_secure else []), out=out,
                   workdir=workdir)
    assert proc.returncode == 0, proc.stderr
    encoded = str(encoding.encode_column([SENTINEL_TEXT], "text")[0])
    needles = [SENTINEL_TEXT, str(SENTINEL_INT), encoded, SENTINEL_FARE,
               SENTINEL_FARE.replace(".", "")]
    files = [out] + [p for p in workdir.rglob("*") if p.is_file()]
    own = workdir / "blue"
    checked = 0
    for f in files:
        if own in f.parents or f.name.startswith("blue."):
            continue  # blue's own folder and its spec may hold its own values
        data = f.read_bytes().decode(errors="replace")
        checked += 1
        for needle in needles:
            assert needle not in data, f"{needle!r} (a value of blue's) appears in {f}"
    assert checked >= 3
    for needle in needles:
        assert needle not in proc.stdout + proc.stderr
    # the aggregate includes the fare (the result is right), but not the raw row
    import pandas as pd
    res = pd.read_csv(out)
    assert SENTINEL_TEXT not in set(res["vendor"])
    assert wait_no_processes(str(workdir)) == []
