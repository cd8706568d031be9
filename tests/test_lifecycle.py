"""The one per-party lifecycle (runtime/party_run.py) and the one MPyC session
(runtime/mpc_session.py) that party processes, `sqlmpc party` and party agents share.

Fast: specs and plans as files, the one-line error format, MPyC in this process (one party:
no network; two parties: the connect watchdog), the sequence on a stand-in engine (a result,
an engine error, a stop while the local job runs, a helper never opening an engine), and the
party process entry point's one-line failure. Slow: the sequence on the real DuckDB engine.
"""

from __future__ import annotations

import io
import json
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlmpc
from sqlmpc.compiler.errors import DataError, PartyError
from sqlmpc.runtime import party_run
from sqlmpc.runtime.config import load_catalog, party_engine
from sqlmpc.runtime.mpc_session import Cancelled, MpcSession
from sqlmpc.runtime.party_run import PartyPlan, PartyRun, PartySpec
from sqlmpc.runtime.report import StderrReporter, failure_line, named, one_line
from sqlmpc.runtime.workspace import prepare

# a secure program in the shape the secure backend renders: `async main(inputs)`
SUM_PROGRAM = '''
import pandas as pd
from mpyc.runtime import mpc

from sqlmpc.runtime.mpc_session import protocol_marks


async def main(inputs):
    await mpc.start()
    protocol_marks()["connected"] = __import__("time").perf_counter()
    secint = mpc.SecInt(64)
    total = await mpc.output(mpc.sum([secint(v) for v in inputs.get("xs", [0])]))
    await mpc.shutdown()
    return pd.DataFrame({"s": [int(total)]})
'''


class Lines:
    """A reporter that keeps what it is told."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def progress(self, message: str) -> None:
        self.lines.append(message)

    def failure(self, message: str) -> None:
        self.lines.append(f"error: {message}")


# --- one-line errors and reporters ---------------------------------------------------------------
def test_one_line_and_named():
    assert one_line("\n  first\nsecond\n") == "first"
    assert one_line("") == "failed"
    assert named("p1", "party p1: bad") == named("p1", "p1: bad") == named("p1", "bad") == \
        "party p1: bad"
    assert failure_line("p1", DataError("p1: file x.csv: row 3, column fare: not a decimal")) \
        == "party p1: file x.csv: row 3, column fare: not a decimal"
    assert failure_line("p1", KeyError("k")) == "party p1: KeyError: 'k'"
    assert failure_line("p1", RuntimeError("boom\n  at java.lang...")) == \
        "party p1: RuntimeError: boom"


def test_stderr_reporter_prefixes():
    out = io.StringIO()
    StderrReporter("p1", stream=out).progress("local job: done")
    StderrReporter("p1", stream=out).failure("party p1: bad")
    StderrReporter("p1", progress_prefix=None, error_prefix="sqlmpc: error:",
                   stream=out).progress("quiet")
    assert out.getvalue().splitlines() == ["sqlmpc-progress: p1: local job: done",
                                           "sqlmpc-error: party p1: bad"]


# --- specs and plans -----------------------------------------------------------------------------
def test_party_spec_round_trip(tmp_path):
    spec = PartySpec(party="p1", pid=1, addresses=["127.0.0.1:1", "127.0.0.1:2"],
                     plan_dir=tmp_path / "plan", workdir=tmp_path / "p1", engine="spark",
                     engine_options={"spark_master": "local[2]"},
                     identity_dir=str(tmp_path / "p1" / "identity"), connect_timeout=5.0,
                     spawned=12.5, plan_digest="ab" * 32)
    assert PartySpec.from_json(spec.to_json()) == spec
    with pytest.raises(PartyError, match="not a party specification"):
        PartySpec.from_json('{"party": "p1"}')
    with pytest.raises(PartyError, match="not a party specification"):
        PartySpec.from_json("{")


def test_party_plan_from_the_compiled_folder(datasets, tmp_path):
    catalog = load_catalog(datasets["taxi"])
    plan = sqlmpc.compile_sql("SELECT vendor, SUM(fare) AS f FROM trips GROUP BY vendor",
                              catalog)
    plan_dir = prepare(plan, tmp_path, catalog)
    mine = PartyPlan.from_folder(plan_dir, "yellow")
    assert mine.job == plan.local_jobs["yellow"]
    assert mine.needs_mpc and mine.compute_parties == plan.compute_parties
    assert mine.secure_program == plan_dir / "secure_job.py" and mine.secure_program.exists()
    assert mine.result_columns == [tuple(c) for c in plan.result_columns]
    rendered = PartyPlan.from_plan(plan, "yellow", tmp_path / "own")
    assert rendered.secure_program.read_text() == mine.secure_program.read_text()
    with pytest.raises(PartyError, match="cannot read the plan"):
        PartyPlan.from_folder(tmp_path / "nowhere", "yellow")


def test_party_engine_per_party(tmp_path):
    """Each party's engine comes from the plan; --spark-master reaches only Spark parties and
    a party's own setting wins; a party without a local job has no engine."""
    (tmp_path / "catalog.toml").write_text(
        '[parties.a]\nengine = "spark"\nspark_master = "local[2]"\n[parties.b]\n'
        '[parties.c]\nengine = "spark"\n[parties.d]\n\n'
        '[tables.t]\ncolumns = { x = "int" }\n'
        'parts = { a = "a.csv", b = "b.csv", c = "c.csv" }\n')
    catalog = load_catalog(tmp_path / "catalog.toml")
    plan = sqlmpc.compile_sql("SELECT SUM(x) AS s FROM t", catalog)
    defaults = {"spark_master": "local[1]"}
    assert party_engine(plan, catalog, "a", defaults) == ("spark", {"spark_master": "local[2]"})
    assert party_engine(plan, catalog, "b", defaults) == ("duckdb", {})
    assert party_engine(plan, catalog, "c", defaults) == ("spark", {"spark_master": "local[1]"})
    assert party_engine(plan, catalog, "d", defaults) == (None, {})
    every = sqlmpc.compile_sql("SELECT SUM(x) AS s FROM t", catalog, engine="duckdb")
    assert party_engine(every, catalog, "a", defaults) == ("duckdb", {})


# --- MPyC in this process ------------------------------------------------------------------------
def _program(folder: Path):
    path = folder / "secure_job.py"
    path.write_text(SUM_PROGRAM)
    return party_run.load_program(path)


def test_mpc_session_runs_queries_one_after_another(tmp_path):
    """One party (no network): the program runs to its end, twice in one process."""
    module = _program(tmp_path)
    for xs, total in (([1, 2, 3], 6), ([40, 2], 42)):
        session = MpcSession(["solo"], 0, ["127.0.0.1:0"])
        try:
            frame = session.run_program(module.main, {"xs": xs})
        finally:
            session.close()
        assert frame["s"].tolist() == [total]
        assert session.connected_at is not None


def test_mpc_session_connect_timeout_is_one_clear_line(tmp_path):
    """The one connect watchdog: a peer that never comes ends the query within the timeout,
    naming the peer."""
    module = _program(tmp_path)
    from sqlmpc.runtime.workspace import free_port
    session = MpcSession(["me", "absent"], 0,
                         ["127.0.0.1:1", f"127.0.0.1:{free_port()}"], connect_timeout=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(Cancelled, match=r"^could not connect to absent within 1 s$"):
            session.run_program(module.main, {"xs": [1]})
    finally:
        session.close()
    assert time.monotonic() - started < 10


def test_mpc_session_stopped_before_it_runs(tmp_path):
    module = _program(tmp_path)
    session = MpcSession(["solo"], 0, ["127.0.0.1:0"])
    session.stop("the client closed the connection")
    try:
        with pytest.raises(Cancelled, match="the client closed the connection"):
            session.run_program(module.main, {"xs": [1]})
    finally:
        session.close()


# --- the sequence on a stand-in engine -----------------------------------------------------------
class StandInEngine:
    """An engine session that returns fixed frames (or raises, or blocks until interrupted)."""

    def __init__(self, frames=None, error: Exception | None = None, block: bool = False):
        self.frames = frames
        self.error = error
        self.block = threading.Event() if block else None
        self.running = threading.Event()
        self.interrupts = 0
        self.closed = False
        self.programs: list = []

    def run(self, job, program, folder):
        self.programs.append(program)
        self.running.set()
        if self.block is not None:
            self.block.wait(30)
            raise DataError(f"party {job.party}: interrupted")
        if self.error:
            raise self.error
        return self.frames

    def interrupt(self):
        self.interrupts += 1
        if self.block is not None:
            self.block.set()

    def close(self):
        self.closed = True


def _one_party_plan(tmp_path, sql="SELECT COUNT(*) AS n, SUM(x) AS s FROM a.t"):
    """Owners a and b, c without data; a alone receives results (a query of a's own part
    then needs no MPC)."""
    (tmp_path / "a.csv").write_text("x\n1\n2\n")
    (tmp_path / "catalog.toml").write_text(
        '[parties.a]\n[parties.b]\n[parties.c]\n\n[tables.t]\ncolumns = { x = "int" }\n'
        'parts = { a = "a.csv", b = "a.csv" }\n\n[result]\nrecipients = ["a"]\n')
    catalog = load_catalog(tmp_path / "catalog.toml")
    plan = sqlmpc.compile_sql(sql, catalog)
    return plan, catalog, prepare(plan, tmp_path / "run", catalog)


def _spec(tmp_path, plan_dir, party="a", **kw) -> PartySpec:
    return PartySpec(party=party, pid=0, addresses=[], plan_dir=plan_dir,
                     workdir=tmp_path / "run" / party, engine="duckdb", **kw)


def test_sequence_without_mpc_returns_the_local_result(tmp_path):
    plan, _, plan_dir = _one_party_plan(tmp_path)
    assert not plan.needs_mpc
    (node,) = [o.node for o in plan.local_jobs["a"].outputs]
    engine = StandInEngine({node: pd.DataFrame({"c0": [2], "c1": [3]})})
    lines = Lines()
    outcome = PartyRun(_spec(tmp_path, plan_dir), PartyPlan.from_folder(plan_dir, "a"), lines,
                       engine=engine).execute()
    assert outcome.ok and outcome.result.to_dict("list") == {"n": [2], "s": [3]}
    assert lines.lines == ["local job: running on duckdb (1 data file(s))", "local job: done"]
    assert engine.programs[0].read_text() == \
        (plan_dir / "a" / "local_job.py").read_text()  # the audited program is what runs
    assert not engine.closed  # a session given to the run stays open (an agent's warm one)
    assert set(outcome.stats["seconds"]) >= {"local", "local_job", "secure", "total"}
    outcome.write(tmp_path / "out")
    assert (tmp_path / "out" / "result.csv").read_text().split() == ["n,s", "2,3"]
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["party"] == "a"


def test_engine_error_is_one_line_naming_the_party(tmp_path):
    _, _, plan_dir = _one_party_plan(tmp_path)
    engine = StandInEngine(error=DataError("a: file a.csv: row 2, column x: 'q' is not an int"))
    outcome = PartyRun(_spec(tmp_path, plan_dir), PartyPlan.from_folder(plan_dir, "a"), Lines(),
                       engine=engine).execute()
    assert outcome.error == "party a: file a.csv: row 2, column x: 'q' is not an int"
    assert outcome.result is None


def test_stop_interrupts_the_running_local_job(tmp_path):
    _, _, plan_dir = _one_party_plan(tmp_path)
    engine = StandInEngine(block=True)
    run = PartyRun(_spec(tmp_path, plan_dir), PartyPlan.from_folder(plan_dir, "a"), Lines(),
                   engine=engine)
    stopper = threading.Thread(target=lambda: (engine.running.wait(10),
                                               run.stop("the client went away")))
    stopper.start()
    outcome = run.execute()
    stopper.join(10)
    assert engine.interrupts >= 1
    assert outcome.error == "party a: the client went away; stopped without a result"
    assert not run.job_running and not run.interrupt_job()  # nothing left to interrupt


def test_a_helper_never_opens_an_engine(tmp_path, datasets, monkeypatch):
    """The helper of a two-owner query has no local job: it goes straight to MPC (here it
    finds nobody to connect to, which ends in one line)."""
    from sqlmpc.runtime import engines
    monkeypatch.setattr(engines, "open_engine", lambda *a, **k: pytest.fail("engine opened"),
                        raising=False)
    plan, catalog, plan_dir = _one_party_plan(tmp_path, "SELECT SUM(x) AS s FROM t")
    assert plan.needs_mpc and "c" in plan.compute_parties and "c" not in plan.local_jobs
    from sqlmpc.runtime.workspace import free_port
    addresses = [f"127.0.0.1:{free_port()}" for _ in plan.compute_parties]
    pid = plan.compute_parties.index("c")
    engine_name, _ = party_engine(plan, catalog, "c")
    spec = PartySpec(party="c", pid=pid, addresses=addresses, plan_dir=plan_dir,
                     workdir=tmp_path / "run" / "c", engine=engine_name, connect_timeout=1.0)
    lines = Lines()
    outcome = PartyRun(spec, PartyPlan.from_folder(plan_dir, "c"), lines).execute()
    assert engine_name is None
    assert outcome.error.startswith("party c: could not connect to ")
    assert outcome.error.endswith("within 1 s; stopped without a result")
    assert not any("local job" in ln for ln in lines.lines)


# --- the party process entry point ---------------------------------------------------------------
def test_party_process_with_a_bad_spec_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sqlmpc.runtime.party",
                           str(tmp_path / "missing.spec.json")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("sqlmpc-error: cannot read the party "
                                                   "specification"), proc.stderr


# --- the real engine -----------------------------------------------------------------------------
@pytest.mark.slow
def test_sequence_on_duckdb(tmp_path, reference, same_result):
    sql = "SELECT COUNT(*) AS n, SUM(x) AS s FROM a.t"
    _, _, plan_dir = _one_party_plan(tmp_path, sql)
    outcome = PartyRun(_spec(tmp_path, plan_dir), PartyPlan.from_folder(plan_dir, "a"),
                       Lines()).execute()
    assert outcome.ok, outcome.error
    same_result(outcome.result, reference(tmp_path / "catalog.toml", sql), False)


@pytest.mark.slow
def test_ssl_run(datasets, tmp_path, reference, same_result):
    """--ssl: MPyC's channels with mutual TLS, throwaway identities in the run folder; when
    the run ends, the kept --workdir holds no key and no party's plaintext files."""
    sql = "SELECT vendor, SUM(fare) AS f FROM trips GROUP BY vendor"
    run = tmp_path / "run"
    result = sqlmpc.run_sql(sql, datasets["taxi"], ssl=True, workdir=run, timeout=300)
    same_result(result, reference(datasets["taxi"], sql), False)
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    assert not [p for p in run.rglob("*.key")]
    for party in ("yellow", "green", "blue"):
        assert stat.S_IMODE((run / party).stat().st_mode) == 0o700
        left = {p.name for p in (run / party).iterdir()}
        assert left <= {"stats.json", "result.csv"}, (party, left)


def test_throwaway_identities_keep_each_key_in_its_party_folder(datasets, tmp_path):
    from sqlmpc.runtime.identity import Identity
    from sqlmpc.runtime.workspace import throwaway_identities
    plan = sqlmpc.compile_sql("SELECT SUM(fare) AS f FROM trips", datasets["taxi"])
    folders = throwaway_identities(plan, tmp_path, True)
    assert set(folders) == set(plan.compute_parties)
    for party, folder in folders.items():
        assert Path(folder) == tmp_path / party / "identity"
        assert Identity.from_folder(folder).name == party
        assert [k.name for k in Path(folder).glob("*.key")] == [f"{party}.key"]
        assert stat.S_IMODE((Path(folder) / f"{party}.key").stat().st_mode) == 0o600
    keys = sorted(str(k.relative_to(tmp_path)) for k in tmp_path.rglob("*.key"))
    assert keys == sorted(f"{p}/identity/{p}.key" for p in folders)  # the CA's key is gone
    assert throwaway_identities(plan, tmp_path / "x", False) == {}


@pytest.mark.parametrize("pad,announced", [(None, 3), ("pow2", 4), (10, 10)])
def test_shared_rows_statistic_never_tells_what_padding_hides(pad, announced):
    """--stats and an agent's statistics report a padded share's padded size (what the other
    parties learn, as explain says), not the party's real row count."""
    from sqlmpc.compiler.ir.plan import LocalJob, LocalOutput
    out = LocalOutput(node=1, kind="share", sql="SELECT 1", columns=[("x", "int")], pad=pad)
    inputs, rows = party_run.encode_shares(LocalJob("a", [], [out]),
                                           {1: pd.DataFrame({"x": [5, 6, 7]})})
    assert rows == announced and set(inputs) == {1}
    assert party_run.announced_rows(0, "pow2") == 1 and party_run.announced_rows(5, "pow2") == 8


# --- private folders and what a run leaves behind ---------------------------------------------
def test_run_folders_are_private_and_scrubbed_to_stats_logs_and_result(tmp_path):
    from sqlmpc.runtime.workspace import private_folder, run_folder, scrub_party_folder
    with run_folder(tmp_path / "given") as root:
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
    with run_folder(None) as root:
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
    party = private_folder(tmp_path / "given" / "a")
    assert stat.S_IMODE(party.stat().st_mode) == 0o700
    for name in ("stats.json", "result.csv", "engine.log", "job.py", "out_3.parquet",
                 "rows.csv"):
        (party / name).write_text("x")
    (party / "identity").mkdir()
    (party / "identity" / "a.key").write_text("k")
    (party / "spark-warehouse" / "t").mkdir(parents=True)
    (party / "spark-warehouse" / "t" / "part-0.parquet").write_text("p")
    scrub_party_folder(party)
    assert sorted(p.name for p in party.iterdir()) == ["engine.log", "result.csv", "stats.json"]
    scrub_party_folder(tmp_path / "missing")  # nothing to do, no error


def test_party_identity_comes_from_the_flag_or_catalog_and_plaintext_only_when_safe(
        tmp_path, capsys):
    from types import SimpleNamespace

    from sqlmpc.compiler.errors import SqlmpcError
    from sqlmpc.runtime.party import PLAINTEXT_WARNING, party_identity
    here = ["127.0.0.1:5001", "127.0.0.1:5002"]
    away = ["127.0.0.1:5001", "10.0.0.7:5002"]
    no_catalog_identity = SimpleNamespace(deployment=SimpleNamespace(identity=None))
    in_catalog = SimpleNamespace(deployment=SimpleNamespace(identity=tmp_path / "cat_id"))

    def args(**kw):
        return SimpleNamespace(**{"ssl": False, "identity": None, "insecure_plaintext": False,
                                  **kw})
    assert party_identity(in_catalog, args(), away) == str((tmp_path / "cat_id").resolve())
    assert party_identity(in_catalog, args(identity=tmp_path / "flag"), away) == \
        str((tmp_path / "flag").resolve())
    assert party_identity(no_catalog_identity, args(), here) is None  # loopback only
    with pytest.raises(SqlmpcError, match="--ssl needs this party's identity"):
        party_identity(no_catalog_identity, args(ssl=True), here)
    with pytest.raises(SqlmpcError, match="pass --insecure-plaintext"):
        party_identity(no_catalog_identity, args(), away)
    capsys.readouterr()
    assert party_identity(object(), args(insecure_plaintext=True), away) is None
    assert capsys.readouterr().err.strip() == PLAINTEXT_WARNING


# --- the parties agree on the plan with each other --------------------------------------------
def test_the_plan_digest_ignores_where_parties_keep_files_but_not_options(datasets, tmp_path):
    """What `sqlmpc run` and `sqlmpc party` hand their parties: equal for the same query and
    options from catalogs that differ only in paths and engines, different for other options
    (e.g. padding) or another query."""
    import shutil

    from sqlmpc.runtime.deployment import plan_digest
    sql = "SELECT vendor, SUM(fare) AS f FROM trips GROUP BY vendor"
    other = tmp_path / "elsewhere"
    shutil.copytree(datasets["taxi"].parent, other)
    moved = other / "catalog.toml"
    moved.write_text(moved.read_text().replace("[parties.yellow]\n",
                                               '[parties.yellow]\nengine = "spark"\n'))
    base = plan_digest(sqlmpc.compile_sql(sql, datasets["taxi"]))
    assert len(base) == 64 and int(base, 16) >= 0
    assert plan_digest(sqlmpc.compile_sql(sql, moved)) == base
    assert plan_digest(sqlmpc.compile_sql(sql, datasets["taxi"], pad_inputs="pow2")) != base
    assert plan_digest(sqlmpc.compile_sql(sql.replace("SUM", "MAX"), datasets["taxi"])) != base
    assert plan_digest(sqlmpc.compile_sql(sql, datasets["taxi"]), "00aa11bb") != base


def _deployed_taxi(datasets, tmp_path) -> tuple[Path, Path]:
    """The taxi catalog with every party's MPyC port in it, and a query file."""
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
    query = tmp_path / "q.sql"
    query.write_text("SELECT vendor, SUM(fare) AS f, COUNT(*) AS n FROM trips GROUP BY vendor")
    return catalog, query


@pytest.mark.slow
def test_sqlmpc_party_with_other_options_stops_every_party_before_sharing(datasets, tmp_path):
    """Three `sqlmpc party` processes, blue asked with --pad-inputs pow2 (as a dishonest
    analyst might ask one party): every party stops with one line naming a party that runs a
    different plan, before its secure program ran (no "secure job: done"), and no result."""
    catalog, query = _deployed_taxi(datasets, tmp_path)
    procs = {name: subprocess.Popen(
        [sys.executable, "-m", "sqlmpc", "party", name, str(query), "--catalog", str(catalog)]
        + (["--pad-inputs", "pow2"] if name == "blue" else []),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("yellow", "green", "blue")}
    outputs = {name: p.communicate(timeout=300) for name, p in procs.items()}
    line = ("runs a different plan (its catalog, options or query differ); stopped before any "
            "data was shared")
    for name, p in procs.items():
        out, err = outputs[name]
        assert p.returncode == 1, (name, err)
        assert out == "", (name, out)  # no result printed
        errors = [ln for ln in err.splitlines() if ln.startswith("sqlmpc: error:")]
        assert len(errors) == 1 and errors[0].endswith(line), (name, err)
        assert "secure job: done" not in err and "Traceback" not in err, (name, err)
    for name in ("yellow", "green"):
        assert outputs[name][1].count(f"sqlmpc: error: party {name}: party blue {line}") == 1
    assert "party blue: party yellow " + line in outputs["blue"][1]
