"""Long-lived party agents (runtime/agent/): `sqlmpc agent` + `sqlmpc run --agents`.

These run the agents with --insecure-plaintext to test everything but the entrustment (TLS,
who may ask, hostile requests: tests/test_entrustment.py).

Fast: the --agents syntax, the agent's own compile and plan digest (it runs only what it
compiles itself, from its own catalog), MPyC reconfiguration, the numpy-version memo. Slow (real agent processes, DuckDB local engine, MPyC over TCP): two queries in a row
through the same agents give DuckDB's answers; a killed agent gives one clear line within 30 s,
no result, and the surviving agents serve the next query; an agent that is not running is
named at once; nothing is left running after the agents are stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlmpc
from sqlmpc.compiler.errors import PartyError, SqlmpcError
from sqlmpc.runtime import mpc_session
from sqlmpc.runtime.agent import client, plan_check, protocol
from sqlmpc.runtime.agent.server import Agent
from sqlmpc.runtime.artifacts import secure_program, write_artifacts
from sqlmpc.runtime.config import load_catalog
from sqlmpc.runtime.workspace import free_port

SQLMPC = [sys.executable, "-c", "import sys; from sqlmpc.runtime.cli import main; sys.exit(main())"]


# --- fast --------------------------------------------------------------------------------------
def test_parse_agents():
    assert protocol.parse_agents("a=127.0.0.1:7001, b=localhost:7002") == {
        "a": "127.0.0.1:7001", "b": "localhost:7002"}
    with pytest.raises(SqlmpcError, match="NAME=HOST:PORT"):
        protocol.parse_agents("a:7001")
    with pytest.raises(SqlmpcError, match="agent address of b must be HOST:PORT"):
        protocol.parse_agents("a=h:1,b=h")


def plain_agent(name: str, catalog: Path, tmp_path: Path, **kw) -> Agent:
    return Agent(name, catalog, insecure_plaintext=True, audit_log=tmp_path / f"{name}.audit",
                 **kw)


def test_agent_rejects_unknown_party(datasets, tmp_path):
    with pytest.raises(SqlmpcError, match="unknown party 'purple'"):
        plain_agent("purple", datasets["taxi"], tmp_path, engine="duckdb", workdir=tmp_path)


def test_agent_without_identity_needs_insecure_plaintext(datasets, tmp_path, capsys):
    with pytest.raises(SqlmpcError, match="no identity .*--insecure-plaintext"):
        Agent("yellow", datasets["taxi"], engine="duckdb", workdir=tmp_path)
    plain_agent("yellow", datasets["taxi"], tmp_path, engine="duckdb", workdir=tmp_path)
    assert "WITHOUT TLS" in capsys.readouterr().err


def test_agent_of_a_party_without_data_opens_no_spark(tmp_path):
    """A helper (a compute party holding no table) never runs a local job: its agent starts
    no JVM (and cannot be broken by a Spark set-up it does not need)."""
    cat = tmp_path / "catalog.toml"
    cat.write_text('[parties.a]\n[parties.b]\n[parties.helper]\n\n[tables.t]\n'
                   'columns = { x = "int" }\nparts = { a = "a.csv", b = "b.csv" }\n')
    holder = plain_agent("a", cat, tmp_path, engine="spark", workdir=tmp_path / "a")
    helper = plain_agent("helper", cat, tmp_path, engine="spark", workdir=tmp_path / "h")
    assert holder.holds_data() and holder.engine_label() == "Spark, local[*]"
    assert not helper.holds_data() and helper.engine_label() == "not needed (no data)"


def test_agent_compiles_the_same_plan_itself(datasets, tmp_path):
    """The client's digest (from its own compile, even a long-lived client whose node ids have
    moved on) equals the agent's; another query, option or query id does not."""
    from sqlmpc.runtime.deployment import plan_digest
    sql = "SELECT vendor, SUM(fare) AS f FROM trips GROUP BY vendor"
    ag = plain_agent("yellow", datasets["taxi"], tmp_path, engine="duckdb",
                     workdir=tmp_path / "w")
    switches = {"dialect": None, "all_secure": False, "disable": (), "pad_inputs": None,
                "join_bound": None}
    mine = ag.checker.own_plan(sql, switches)
    for before in (0, 3):
        for _ in range(before):
            sqlmpc.compile_sql("SELECT COUNT(*) FROM trips", datasets["taxi"])
        theirs = sqlmpc.compile_sql(sql, datasets["taxi"])
        assert ag.checker.check_digest(mine, "00ff00ff", plan_digest(theirs, "00ff00ff"))
        assert secure_program(theirs).text == secure_program(mine).text
    other = sqlmpc.compile_sql("SELECT vendor, fare FROM trips", datasets["taxi"])
    padded = sqlmpc.compile_sql(sql, datasets["taxi"], pad_inputs="pow2")
    for digest in (plan_digest(other, "00ff00ff"), plan_digest(padded, "00ff00ff"),
                   plan_digest(mine, "00ff00fe")):
        with pytest.raises(PartyError, match="differs from the one this agent compiles"):
            ag.checker.check_digest(mine, "00ff00ff", digest)
    # other parties' file locations may differ between the parties' catalogs
    doc = json.loads(sqlmpc.compile_sql(sql, datasets["taxi"]).to_json())
    base = plan_check.comparable(doc, "yellow")
    doc["local_jobs"]["green"]["inputs"][0]["path"] = "/elsewhere/trips.csv"
    assert plan_check.comparable(doc, "yellow") == base


def test_configure_mpc_sets_parties_and_fresh_keys():
    from mpyc.runtime import mpc
    saved = (mpc.pid, mpc.parties, mpc.options.M, mpc.options.index, mpc.options.no_async,
             mpc.options.threshold, mpc.threshold, mpc._program_counter)
    try:
        mpc_session.configure_mpc(mpc, 1, ["127.0.0.1:5001", "127.0.0.1:5002", "localhost:5003"],
                                False)
        assert mpc.pid == 1 and [(p.host, p.port) for p in mpc.parties] == [
            ("127.0.0.1", 5001), ("127.0.0.1", 5002), ("127.0.0.1", 5003)]
        assert mpc.threshold == 1 and not mpc.options.no_async
        assert mpc._program_counter == [0, 0]
        keys = dict(mpc._prss_keys)
        mpc_session.configure_mpc(mpc, 1, ["127.0.0.1:5001", "127.0.0.1:5002", "127.0.0.1:5003"],
                                False)
        assert keys and mpc._prss_keys != keys  # every query draws new PRSS keys
    finally:
        (mpc.pid, mpc.parties, mpc.options.M, mpc.options.index, mpc.options.no_async,
         mpc.options.threshold, threshold, mpc._program_counter) = saved
        mpc.threshold = threshold


def test_memoised_numpy_version_gives_the_same_answers():
    import numpy as np
    mpc_session.memoise_numpy_version()
    real = np.lib.NumpyVersion.__mro__[1]  # numpy's own class under the memo
    assert getattr(np.lib.NumpyVersion, "_sqlmpc_memo", False) and not hasattr(real,
                                                                               "_sqlmpc_memo")
    for v, other in [(np.__version__, "2.0.0b1"), ("1.20.0", "1.24.0"), ("2.1.3", "2.1.3"),
                     ("2.1.3", "2.1.4")]:
        for _ in range(2):  # computed, then remembered
            memo, ref = np.lib.NumpyVersion(v), real(v)
            assert (memo >= other, memo < other, memo == other) == \
                (ref >= other, ref < other, ref == other)
    assert np.lib.NumpyVersion("1.9.0") is np.lib.NumpyVersion("1.9.0")


# --- slow: real agent processes ----------------------------------------------------------------
def with_ports(catalog: Path, tag: str) -> Path:
    """A copy of `catalog` (next to it: its relative parts still resolve) in which every party
    has a free MPyC port on 127.0.0.1 (an agent takes its peers' addresses only from its own
    catalog)."""
    import re
    text = re.sub(r"^\[parties\.(\w+)\]\s*$",
                  lambda m: f"{m.group(0)}\nhost = \"127.0.0.1\"\nport = {free_port()}",
                  Path(catalog).read_text(), flags=re.M)
    out = Path(catalog).with_name(f"catalog-ports-{tag}.toml")
    out.write_text(text)
    return out


class Agents:
    """`sqlmpc agent --insecure-plaintext` processes for some parties of a catalog (a copy with
    MPyC ports), on free localhost ports; stopped by SIGTERM as an operator would."""

    def __init__(self, catalog: Path, names: list[str], root: Path,
                 engine: str | None = "duckdb") -> None:
        self.catalog = with_ports(catalog, root.name)
        self.root = root
        self.engine = engine
        self.procs: dict[str, subprocess.Popen] = {}
        self.addresses: dict[str, str] = {}
        for name in names:
            self.start(name)
        for name in names:
            client.wait_ready(self.addresses[name], timeout=120, proc=self.procs[name])

    def start(self, name: str) -> None:
        addr = f"127.0.0.1:{free_port()}"
        log = open(self.root / f"agent-{name}.log", "a")
        self.procs[name] = subprocess.Popen(
            SQLMPC + ["agent", name, "--catalog", str(self.catalog), "--listen", addr,
                      "--workdir", str(self.root / f"agent-{name}"), "--insecure-plaintext",
                      "--audit-log", str(self.root / f"agent-{name}.audit")]
            + (["--engine", self.engine] if self.engine else []),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.addresses[name] = addr

    @property
    def spec(self) -> str:
        return ",".join(f"{n}={a}" for n, a in self.addresses.items())

    def run(self, sql: str, **kw):
        return sqlmpc.run_sql(sql, self.catalog, agents=self.addresses, insecure_plaintext=True,
                              **kw)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def taxi_agents(datasets, tmp_path):
    agents = Agents(datasets["taxi"], ["yellow", "green", "blue"], tmp_path)
    yield agents
    agents.stop()


def processes_under(folder: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(folder) in cmd and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_two_queries_through_the_same_agents(datasets, taxi_agents, reference, same_result,
                                             tmp_path):
    catalog = datasets["taxi"]
    pids = {n: client.ping(a)["pid"] for n, a in taxi_agents.addresses.items()}
    queries = [("SELECT vendor, SUM(fare) AS f, COUNT(*) AS n FROM trips GROUP BY vendor", False),
               ("SELECT COUNT(*) AS n, SUM(passengers) AS p FROM trips WHERE distance > 2", False)]
    for i, (sql, ordered) in enumerate(queries):
        stats = tmp_path / f"stats{i}.json"
        result = taxi_agents.run(sql, stats=stats, workdir=tmp_path / f"run{i}")
        same_result(result, reference(catalog, sql), ordered)
        doc = json.loads(stats.read_text())
        assert set(doc["parties"]) == {"yellow", "green", "blue"}
        assert doc["seconds"]["secure"] > 0
        for party in doc["parties"].values():  # processor time: never more than the wall's
            assert 0 < party["seconds"]["secure_cpu"] <= party["seconds"]["secure"] + 0.01
    for name, addr in taxi_agents.addresses.items():
        info = client.ping(addr)
        assert info["pid"] == pids[name] and info["queries"] == 2  # the same processes
    taxi_agents.stop()
    assert all(p.returncode == 0 for p in taxi_agents.procs.values())
    assert not processes_under(tmp_path)
    assert not any((tmp_path / f"agent-{n}").exists() and any((tmp_path / f"agent-{n}").iterdir())
                   for n in taxi_agents.addresses), "per-query files left behind"


@pytest.mark.slow
def test_agent_not_running_is_named(datasets, tmp_path):
    q = tmp_path / "q.sql"
    q.write_text("SELECT COUNT(*) AS n FROM trips")
    port = free_port()  # nobody listens here
    agents = f"yellow=127.0.0.1:{port},green=127.0.0.1:{port},blue=127.0.0.1:{port}"
    out = tmp_path / "r.csv"
    proc = subprocess.run(SQLMPC + ["run", str(q), "--catalog", str(datasets["taxi"]),
                                    "--agents", agents, "--out", str(out), "--quiet",
                                    "--insecure-plaintext"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[0].startswith("sqlmpc: warning: talking to the agents WITHOUT TLS")
    assert lines[1:] == [f"sqlmpc: error: party yellow: cannot reach its agent at "
                         f"127.0.0.1:{port} (Connection refused); is `sqlmpc agent yellow` "
                         f"running?"]
    assert not out.exists()
    proc = subprocess.run(SQLMPC + ["run", str(q), "--catalog", str(datasets["taxi"]),
                                    "--agents", f"yellow=127.0.0.1:{port}", "--quiet"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "party green: no agent given" in proc.stderr


# 150 x 150 pairs, each a secure comparison (~40 s on 2 cores): no key trick shortens a
# non-equi join, so the query is still running when the agent is killed
KILL_SQL = "SELECT COUNT(*) AS n FROM p1.t a CROSS JOIN p2.t b WHERE a.k < b.v"


def _kill_catalog(folder: Path) -> Path:
    folder.mkdir(parents=True)
    text = "[parties.p1]\n[parties.p2]\n[parties.p3]\n\n[tables.t]\n"
    text += 'columns = { k = "int", v = "int" }\nparts = { '
    parts = []
    for j, p in enumerate(["p1", "p2", "p3"]):
        (folder / p).mkdir()
        rows = "".join(f"{(i * 7 + j) % 500},{i}\n" for i in range(150))
        (folder / p / "t.csv").write_text("k,v\n" + rows)
        parts.append(f'{p} = "{p}/t.csv"')
    (folder / "catalog.toml").write_text(text + ", ".join(parts) + " }\n")
    return folder / "catalog.toml"


@pytest.mark.slow
def test_killed_agent_gives_one_clear_line_and_the_others_serve_on(tmp_path):
    catalog = _kill_catalog(tmp_path / "data")
    agents = Agents(catalog, ["p1", "p2", "p3"], tmp_path)
    try:
        q = tmp_path / "q.sql"
        q.write_text(KILL_SQL)
        out = tmp_path / "result.csv"
        run = subprocess.Popen(SQLMPC + ["run", str(q), "--catalog", str(catalog), "--agents",
                                         agents.spec, "--out", str(out),
                                         "--insecure-plaintext"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        secure = threading.Event()

        def read():
            for line in run.stderr:
                lines.append(line.rstrip("\n"))
                if "p2: secure job" in line:
                    secure.set()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert secure.wait(120), "p2 never reached the secure job:\n" + "\n".join(lines)
        time.sleep(2.0)  # inside the secure part
        assert run.poll() is None, "the run finished before the agent could be killed"
        killed = time.monotonic()
        os.kill(agents.procs["p2"].pid, signal.SIGKILL)
        run.wait(timeout=30)
        assert time.monotonic() - killed < 30
        reader.join(timeout=5)
        assert run.returncode == 1
        errors = [ln for ln in lines if ln.strip() and not ln.startswith(
            ("sqlmpc: p1:", "sqlmpc: p2:", "sqlmpc: p3:", "sqlmpc: warning:"))]
        assert len(errors) == 1 and "Traceback" not in "\n".join(lines), lines
        assert errors[0].startswith("sqlmpc: error: party p2: its agent at ")
        assert "stopped or died during the query" in errors[0]
        assert not out.exists()
        # the survivors cancelled their part and are free again
        deadline = time.monotonic() + 30
        while any(client.ping(agents.addresses[n])["busy"] for n in ("p1", "p3")):
            assert time.monotonic() < deadline, "a surviving agent stayed busy"
            time.sleep(0.2)
        # p2 comes back; the same p1 and p3 processes run the next query
        agents.procs["p2"].wait()
        agents.start("p2")
        client.wait_ready(agents.addresses["p2"], timeout=120, proc=agents.procs["p2"])
        sql = "SELECT COUNT(*) AS n, SUM(v) AS s FROM t WHERE k < 100"
        result = agents.run(sql, timeout=120)
        from conftest import duckdb_reference
        ref, _ = duckdb_reference(catalog, sql)
        assert [tuple(int(x) for x in r) for r in result.itertuples(index=False)] == ref
        for n in ("p1", "p3"):
            assert client.ping(agents.addresses[n])["queries"] == 2
    finally:
        agents.stop()
    assert not processes_under(tmp_path)


def _group_cpu_seconds(pgid: int) -> float:
    """CPU seconds used so far by the processes of a process group (an agent and its JVM)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@pytest.mark.slow
@pytest.mark.skipif(__import__("shutil").which("java") is None, reason="Spark needs Java")
def test_stopped_run_interrupts_the_running_spark_job(tmp_path):
    """A run stopped while a party's Spark job still works (here a local cross join of 300,000
    x 300,000 rows, minutes of work) frees that party's agent and cluster at once: its Spark
    jobs are interrupted, and the next query runs."""
    data = tmp_path / "data"
    (data / "p1").mkdir(parents=True)
    (data / "p1" / "t.csv").write_text("k\n" + "".join(f"{i % 1000}\n" for i in range(300_000)))
    (data / "catalog.toml").write_text('[parties.p1]\n[parties.p2]\n[parties.p3]\n\n'
                                       '[tables.t]\ncolumns = { k = "int" }\n'
                                       'parts = { p1 = "p1/t.csv" }\n')
    catalog = data / "catalog.toml"
    agents = Agents(catalog, ["p1", "p2", "p3"], tmp_path, engine="spark")
    try:
        q = tmp_path / "q.sql"
        q.write_text("SELECT COUNT(*) AS n FROM t a CROSS JOIN t b WHERE a.k * 7 + b.k * 3 = 5")
        run = subprocess.Popen(SQLMPC + ["run", str(q), "--catalog", str(catalog), "--agents",
                                         agents.spec, "--insecure-plaintext"],
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
        started = threading.Event()

        def read():
            for line in run.stderr:
                if "p1: local job: running" in line:
                    started.set()
        threading.Thread(target=read, daemon=True).start()
        assert started.wait(120), "p1's local job never started"
        time.sleep(3.0)  # its Spark job is under way
        assert client.ping(agents.addresses["p1"])["busy"]
        os.killpg(run.pid, signal.SIGKILL)  # the client is gone: its sockets close
        run.wait()
        deadline = time.monotonic() + 30
        while client.ping(agents.addresses["p1"])["busy"]:
            assert time.monotonic() < deadline, "p1's agent stayed busy with the stopped job"
            time.sleep(0.2)
        assert "interrupting its local job" in (tmp_path / "agent-p1.log").read_text()
        time.sleep(2.0)  # an interrupted job winds down; a running one keeps both cores busy
        before = _group_cpu_seconds(agents.procs["p1"].pid)
        time.sleep(3.0)
        assert _group_cpu_seconds(agents.procs["p1"].pid) - before < 1.5, "Spark still works"
        sql = "SELECT COUNT(*) AS n FROM t WHERE k < 100"
        result = agents.run(sql, timeout=120)
        assert [int(x) for x in result.iloc[0]] == [30_000]
    finally:
        agents.stop()
    assert not processes_under(tmp_path)


@pytest.mark.slow
def test_bad_data_at_one_party_is_reported_and_the_agents_serve_on(datasets, tmp_path,
                                                                     reference, same_result):
    """MPyC connects while the local jobs run; a party whose data is bad still gets its own
    one-line error to the client (not a peer's "lost the connection"), and every agent takes
    the next query."""
    import shutil
    data = tmp_path / "taxi"
    shutil.copytree(datasets["taxi"].parent, data)
    catalog = data / "catalog.toml"
    agents = Agents(catalog, ["yellow", "green", "blue"], tmp_path)
    try:
        good = (data / "green" / "trips.csv").read_text()
        lines = good.splitlines()
        header = lines[0].split(",")
        row = lines[3].split(",")
        row[header.index("fare")] = "12,5x".replace(",", "")  # not a decimal
        (data / "green" / "trips.csv").write_text("\n".join(lines[:3] + [",".join(row)]
                                                            + lines[4:]) + "\n")
        sql = "SELECT vendor, SUM(fare) AS f FROM trips GROUP BY vendor"
        with pytest.raises(sqlmpc.SqlmpcError) as info:
            agents.run(sql, workdir=tmp_path / "bad")
        message = str(info.value)
        assert "green" in message and "trips.csv" in message and "fare" in message, message
        assert "\n" not in message
        (data / "green" / "trips.csv").write_text(good)
        result = agents.run(sql, workdir=tmp_path / "ok")
        same_result(result, reference(catalog, sql), False)
    finally:
        agents.stop()


def test_encode_shares_counts_rows_and_names_a_bad_value(datasets):
    """The input encoding the party process and the agent share (runtime/party_run.py)."""
    import pandas as pd
    from sqlmpc.backends.mpyc.lib.encoding import EncodingError
    from sqlmpc.runtime.party_run import encode_shares
    plan = sqlmpc.compile_sql("SELECT vendor, SUM(fare) AS f FROM trips GROUP BY vendor",
                              datasets["taxi"])
    job = plan.local_jobs["yellow"]
    (out,) = [o for o in job.outputs if o.kind == "share"]
    names = [c for c, _ in out.columns]
    good = pd.DataFrame([["a", 1.5], ["b", 2.0]], columns=names)
    inputs, rows = encode_shares(job, {out.node: good})
    assert rows == 2 and set(inputs) == {out.node}
    bad = pd.DataFrame([["a\0b", 1.5]], columns=names)
    with pytest.raises(EncodingError, match="NUL"):
        encode_shares(job, {out.node: bad})


def test_programs_are_rendered_once_per_plan_and_job(datasets):
    """An agent's recurring query (the same kept plan) renders its programs once; another
    plan or another engine renders its own."""
    from sqlmpc.runtime.artifacts import local_program
    sql = "SELECT vendor, SUM(fare) AS f FROM trips GROUP BY vendor"
    plan = sqlmpc.compile_sql(sql, datasets["taxi"])
    job = plan.local_jobs["yellow"]
    assert secure_program(plan) is secure_program(plan)
    assert local_program(job, "duckdb") is local_program(job, "duckdb")
    assert local_program(job, "spark") is not local_program(job, "duckdb")
    assert "backends.spark import jobkit" in local_program(job, "spark").text
    other = sqlmpc.compile_sql(sql + " HAVING SUM(fare) > 0", datasets["taxi"])
    assert secure_program(other).text != secure_program(plan).text
    assert local_program(other.local_jobs["yellow"], "duckdb") is not \
        local_program(job, "duckdb")


def test_a_plan_is_serialised_once_for_its_digests(datasets, monkeypatch):
    """The digest of a kept plan (an agent's recurring query) reuses its serialised document;
    the query id still changes it, and it is the sha256 of (query id, comparable plan)."""
    import hashlib

    from sqlmpc.runtime import deployment
    plan = sqlmpc.compile_sql("SELECT vendor, SUM(fare) AS f FROM trips GROUP BY vendor",
                              datasets["taxi"])
    first = deployment.plan_digest(plan, "00ff00ff")
    text = json.dumps(["00ff00ff", deployment.comparable_doc(plan)], sort_keys=True,
                      separators=(",", ":"))
    assert first == hashlib.sha256(text.encode()).hexdigest()
    monkeypatch.setattr(deployment, "comparable_doc", lambda p: pytest.fail("serialised again"))
    assert deployment.plan_digest(plan, "00ff00ff") == first
    assert deployment.plan_digest(plan, '00ff"00fe') != first


def test_a_query_is_profiled_on_request_and_a_bad_profile_folder_is_one_line(tmp_path,
                                                                             monkeypatch):
    """SQLMPC_PROFILE=DIR: the query's profile goes to DIR; a folder that cannot be made
    costs the query nothing and is one line in the agent's log."""
    from sqlmpc.runtime.agent import server
    lines: list[str] = []
    monkeypatch.setenv("SQLMPC_PROFILE", str(tmp_path / "prof"))
    assert server._profiled(lambda: 42, "yellow-q00001", lines.append) == 42
    assert (tmp_path / "prof" / "yellow-q00001.prof").stat().st_size > 0 and not lines
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("SQLMPC_PROFILE", str(tmp_path / "file" / "prof"))
    assert server._profiled(lambda: 7, "yellow-q00002", lines.append) == 7
    assert len(lines) == 1 and "cannot write its profile" in lines[0]
