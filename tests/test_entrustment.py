"""Entrustment (issue 13): only the deployment's analysts are served, the agent decides what runs,
and a hostile network cannot crash or stop an agent.

Slow: one deployment per module (examples/deployment/ copied, its ports moved to free ones,
keys made with `sqlmpc keys`, three agents started with mutual TLS). Each attack is replayed
against it and fails; the legitimate query still runs and equals DuckDB over the union of the
parts. Fast: the catalog's deployment keys, the request validation and option bounds.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import socket
import ssl
import time
from pathlib import Path

import pytest
from sqlmpc.compiler.catalog import Catalog
from sqlmpc.compiler.errors import CatalogError, PartyError
from sqlmpc.runtime.agent import client, protocol
from sqlmpc.runtime.deployment import (
    MAX_REQUEST_BYTES,
    Deployment,
    DeploymentError,
    check_options,
    check_query_id,
)
from sqlmpc.runtime.identity import Identity, client_context, make_test_identities
from sqlmpc.runtime.workspace import free_port as _free_port

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "deployment"
ATTACK_SQL = "SELECT * FROM bank_a.accounts"


# --- fast ---------------------------------------------------------------------------------------
def _catalog(extra: str = "", party: str = "") -> Catalog:
    return Catalog.from_toml_text(f"{extra}\n[parties.a]\n{party}\n[parties.b]\n[tables.t]\n"
                                  f"columns = {{ k = \"int\" }}\nparts = {{ a = \"a.csv\" }}\n",
                                  path="/tmp/d/c.toml")


def test_catalog_deployment_keys():
    cat = _catalog('[deployment]\nidentity = "keys/a"\nmax_connections = 4',
                   'agent = "127.0.0.1:7001"\nanalysts = ["alice"]\nport = 9001')
    assert cat.deployment.identity == Path("/tmp/d/keys/a")
    assert cat.parties["a"].agent == "127.0.0.1:7001" and cat.parties["a"].analysts == ("alice",)
    assert cat.parties["b"].analysts == ()  # none listed: its agent serves nobody
    dep = Deployment(cat)
    assert dep.limit("max_connections") == 4 and dep.limit("request_timeout") == 10.0
    for bad, where in [('agent = "nohost"', "agent"), ('analysts = "alice"', "analysts"),
                       ('analysts = ["a", "a"]', "analysts")]:
        with pytest.raises(CatalogError, match=where):
            _catalog(party=bad)
    with pytest.raises(CatalogError, match="max_connections"):
        _catalog("[deployment]\nmax_connections = -1")
    with pytest.raises(CatalogError, match="unknown key 'plan_dir'"):
        _catalog('[deployment]\nplan_dir = "/x"')


def test_agent_needs_its_peers_ports():
    import sqlmpc
    cat = _catalog()
    plan = sqlmpc.compile_sql("SELECT SUM(k) AS s FROM t", cat)
    with pytest.raises(DeploymentError, match="party a has no port"):
        Deployment(cat).mpc_addresses(plan)


def test_request_validation():
    ok = {"op": "run", "version": 2, "party": "a", "sql": "SELECT 1", "query_id": "00aa11bb",
          "digest": "0" * 64, "options": {}, "sent": 1.0}
    assert protocol.validate_request(ok, "a") == "run"
    assert protocol.validate_request({"op": "ping", "version": 2}, "a") == "ping"
    for bad, msg in [([1], "JSON object"), ("x", "JSON object"), (None, "JSON object"),
                     ({"op": "run", "version": 1}, "protocol version 2"),
                     ({"op": "stop", "version": 2}, "not accepted over the network"),
                     ({"op": "shell", "version": 2}, "unknown agent request"),
                     ({**ok, "plan_dir": "/tmp/evil"}, "'plan_dir' is not accepted"),
                     ({**ok, "addresses": ["h:1"]}, "'addresses' is not accepted"),
                     ({**ok, "ssl_dir": "/tmp"}, "'ssl_dir' is not accepted"),
                     ({**ok, "sql": ["SELECT 1"]}, "'sql' .* wrong type"),
                     ({k: v for k, v in ok.items() if k != "digest"}, "needs the field")]:
        with pytest.raises(ValueError, match=msg):
            protocol.validate_request(bad, "a")


def test_options_are_bounded():
    dep = Deployment(_catalog("[deployment]\nmax_query_seconds = 100"))
    good = check_options({"dialect": "postgres", "disable": ["push_down_predicates"],
                          "pad_inputs": "pow2", "join_bound": 1000, "timeout": 50}, dep)
    assert good["timeout"] == 50 and good["disable"] == ["push_down_predicates"]
    for bad, msg in [({"timeout": 10 ** 9}, "timeout must be"), ({"timeout": True}, "timeout"),
                     ({"connect_timeout": 5}, "not accepted"), ({"dialect": "nosuch"}, "dialect"),
                     ({"disable": ["infer_unique"]}, "may not be switched off"),
                     ({"pad_inputs": "none"}, "pad_inputs"), ({"join_bound": 10 ** 12}, "join_bound"),
                     ({"all_secure": "yes"}, "all_secure"), ([], "JSON object")]:
        with pytest.raises(DeploymentError, match=msg):
            check_options(bad, dep)
    for qid in ("00aa11bb", "0123456789abcdef"):
        assert check_query_id(qid) == qid
    for qid in ("../x", "ABCDEF12", "1234", "a" * 40, 12345678):
        with pytest.raises(DeploymentError):
            check_query_id(qid)


def test_audit_log_is_private(tmp_path):
    from sqlmpc.runtime.agent.guard import AuditLog
    log = AuditLog(tmp_path / "audit.jsonl")
    log.write({"verdict": "refused", "reason": "x"})
    log.write({"verdict": "served"})
    assert (tmp_path / "audit.jsonl").stat().st_mode & 0o777 == 0o600
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [x["verdict"] for x in lines] == ["refused", "served"] and "time" in lines[0]


def test_agent_keep_work_folders_are_private_and_hold_no_plaintext(tmp_path, capsys):
    """`sqlmpc agent --keep-work`: each query's folder is kept, 0700, and scrubbed of the
    party's programs and intermediate rows like a `sqlmpc run` folder (a query of the agent's
    own part: no MPC, no network)."""
    import os
    import stat

    from sqlmpc.runtime.agent.server import Agent
    from sqlmpc.runtime.config import compile_plan, load_catalog
    from sqlmpc.runtime.deployment import compile_switches, plan_digest
    (tmp_path / "a.csv").write_text("k\n1\n2\n")
    (tmp_path / "c.toml").write_text('[parties.a]\nanalysts = ["ana"]\n[tables.t]\n'
                                     'columns = { k = "int" }\nparts = { a = "a.csv" }\n'
                                     '[result]\nrecipients = ["a"]\n')
    sql = "SELECT SUM(k) AS s FROM t"
    plan = compile_plan(sql, load_catalog(tmp_path / "c.toml"), **compile_switches({}))
    agent = Agent("a", tmp_path / "c.toml", workdir=tmp_path / "work", keep_work=True,
                  insecure_plaintext=True, quiet=True, audit_log=tmp_path / "audit.jsonl")
    mine, theirs = socket.socketpair()
    try:
        agent.start()
        reply, _ = agent.run_query(mine, protocol.run_request(
            party="a", sql=sql, query_id="00aa11bb", digest=plan_digest(plan, "00aa11bb"),
            options={}, sent=None))
    finally:
        agent.close()
        mine.close()
        theirs.close()
    capsys.readouterr()
    assert reply["ok"] is True, reply
    (kept,) = [f for f in (tmp_path / "work").iterdir() if f.is_dir()]
    assert stat.S_IMODE(kept.stat().st_mode) == 0o700
    left = [str(f.relative_to(kept)) for f in kept.rglob("*")]
    assert all(f.endswith((".log", "stats.json", "result.csv")) for f in left), left
    assert stat.S_IMODE(os.stat(tmp_path / "work").st_mode) == 0o700


# --- slow: a running deployment ------------------------------------------------------------------
def _load_example():
    spec = importlib.util.spec_from_file_location("deployment_example", EXAMPLE / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """The example deployment in a temporary folder on free ports, with its agents running."""
    folder = tmp_path_factory.mktemp("deployment") / "d"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("keys", "*.log", "*.jsonl"))
    ports = {}
    for toml in folder.glob("*.toml"):  # every fixed port of the example -> a free one
        text = re.sub(r"(?<=[ :])74\d\d\b",
                      lambda m: str(ports.setdefault(m.group(0), _free_port())), toml.read_text())
        toml.write_text(text.replace("request_timeout = 10", "request_timeout = 3"))
    example = _load_example()
    example.make_keys(folder)
    outsider = make_test_identities(folder / "outsider", ["bank_a"], ["alice"])  # another CA
    procs = example.start_agents(folder)
    yield {"folder": folder, "example": example, "outsider": outsider,
           "agents": {p: example.agent_address(folder, p) for p in procs}}
    example.stop_agents(procs)


def _tls(folder: Path, analyst: str = "alice") -> ssl.SSLContext:
    return client_context(Identity.from_folder(folder / "keys" / "analysts" / analyst))


def _ask(address: str, payload: bytes, tls: ssl.SSLContext | None, party: str = "bank_a"
         ) -> dict | None:
    """Send raw bytes as one request line, return the first reply (None: closed, no reply)."""
    with client.connect(address, 10, tls=tls, party=party if tls else None) as s:
        s.sendall(payload + b"\n")
        s.settimeout(15)
        data = b""
        try:
            while b"\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (OSError, ssl.SSLError):
            pass
    return json.loads(data.split(b"\n")[0]) if data.strip() else None


def _run_request(sql: str, **extra) -> bytes:
    req = protocol.run_request(party="bank_a", sql=sql, query_id="00aa11bb", digest="0" * 64,
                               options={}, sent=None)
    return json.dumps({**req, **extra}).encode()


def _legitimate_query_works(deployment) -> None:
    """alice's query through the three agents equals DuckDB over the union of the parts."""
    import duckdb
    done = deployment["example"].run_query(deployment["folder"])
    assert done.returncode == 0, done.stderr
    got = sorted(tuple(line.split(",")) for line in done.stdout.strip().splitlines()[1:])
    folder = deployment["folder"] / "accounts"
    ref = duckdb.sql(
        f"SELECT branch, SUM(balance) AS total, COUNT(*) AS n FROM read_csv_auto("
        f"['{folder / 'bank_a.csv'}', '{folder / 'bank_b.csv'}']) "
        f"GROUP BY branch").fetchall()
    assert sorted((b, round(float(t), 2), int(n)) for b, t, n in got) == \
        sorted((b, round(float(t), 2), int(n)) for b, t, n in ref)


def _audit(deployment, party: str = "bank_a") -> list[dict]:
    path = deployment["folder"] / f"agent-{party}-audit.jsonl"
    assert path.stat().st_mode & 0o777 == 0o600
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.slow
def test_legitimate_query_runs_and_is_audited(deployment):
    _legitimate_query_works(deployment)
    served = [e for e in _audit(deployment) if e["verdict"] == "served"]
    assert served and served[-1]["peer"]["name"] == "alice"
    assert any(r["to"] == ["regulator"] for r in served[-1]["revealed"])


@pytest.mark.slow
def test_outsiders_are_refused(deployment):
    address = deployment["agents"]["bank_a"]
    # no certificate at all: plain TCP, then TLS without a client certificate
    assert _ask(address, _run_request(ATTACK_SQL), None) is None
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.check_hostname, bare.verify_mode = False, ssl.CERT_NONE
    data = b""
    try:
        with socket.create_connection(address.rsplit(":", 1)) as raw:
            with bare.wrap_socket(raw) as s:
                s.sendall(_run_request(ATTACK_SQL) + b"\n")
                s.settimeout(10)
                data = s.recv(65536)
    except (OSError, ssl.SSLError):
        pass  # the agent ended the handshake: no certificate
    assert data == b""
    # a certificate named alice from another CA: its handshake fails
    other = client_context(deployment["outsider"].analysts["alice"])
    with pytest.raises(PartyError, match="TLS with its agent"):
        _ask(address, _run_request(ATTACK_SQL), other)
    refused = [e for e in _audit(deployment) if e["verdict"] == "refused"]
    assert any("TLS handshake failed" in e["reason"] for e in refused)
    _legitimate_query_works(deployment)


@pytest.mark.slow
def test_analyst_not_on_the_list_is_refused(deployment):
    reply = _ask(deployment["agents"]["bank_a"], _run_request(ATTACK_SQL),
                 _tls(deployment["folder"], "mallory"))
    assert reply["ok"] is False and "not served" in reply["error"] and "mallory" in reply["error"]
    last = _audit(deployment)[-1]
    assert last["verdict"] == "refused" and last["peer"]["name"] == "mallory"


@pytest.mark.slow
def test_client_plan_addresses_and_tls_files_are_refused(deployment):
    tls = _tls(deployment["folder"])
    for extra in ({"plan_dir": "/tmp/evil"}, {"addresses": ["127.0.0.1:1"] * 3},
                  {"ssl_dir": "/tmp/evil", "ssl": True}, {"pid": 2}):
        reply = _ask(deployment["agents"]["bank_a"], _run_request(ATTACK_SQL, **extra), tls)
        assert reply["ok"] is False and "is not accepted" in reply["error"], reply
    old = json.dumps({"op": "run", "version": 1, "party": "bank_a"}).encode()
    reply = _ask(deployment["agents"]["bank_a"], old, tls)
    assert "protocol version 2" in reply["error"]
    # a well-formed request for a query bank_a's policy allows, whose digest is not the
    # agent's own plan, is not run (the raw-rows query is refused by the policy first)
    allowed = "SELECT branch, COUNT(*) AS n FROM accounts GROUP BY branch"
    reply = _ask(deployment["agents"]["bank_a"], _run_request(allowed), tls)
    assert reply["ok"] is False and "differs" in reply["error"], reply
    reply = _ask(deployment["agents"]["bank_a"], _run_request(ATTACK_SQL), tls)
    assert reply["ok"] is False and "refused by bank_a's policy" in reply["error"], reply


@pytest.mark.slow
def test_owners_own_policy_refuses_over_the_network(deployment):
    """alice's catalog (analyst.toml) has no policy, so her client compiles the query and asks;
    bank_a's agent compiles from its own copy, whose [policy.bank_a] forbids returning
    balances row by row: it refuses, says why, and audits it. The legitimate query still runs."""
    folder = deployment["folder"]
    (folder / "rows.sql").write_text("SELECT branch, balance FROM accounts")
    done = deployment["example"].sqlmpc("run", "rows.sql", "--catalog", "analyst.toml",
                                        "--quiet", folder=folder, capture_output=True)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "refused by bank_a's policy: accounts.balance may leave only inside aggregates" \
        in done.stderr
    assert "1000," not in done.stdout  # no row of anyone's
    refused = [e for e in _audit(deployment) if e["verdict"] == "refused"]
    assert refused and "accounts.balance" in refused[-1]["reason"]
    _legitimate_query_works(deployment)


@pytest.mark.slow
def test_stop_over_the_network_is_refused(deployment):
    tls = _tls(deployment["folder"])
    reply = _ask(deployment["agents"]["bank_a"], b'{"op": "stop", "version": 2}', tls)
    assert reply["ok"] is False and "SIGTERM" in reply["error"]
    assert client.ping(deployment["agents"]["bank_a"], tls=tls)["ok"]


@pytest.mark.slow
def test_non_object_json_gets_one_line_and_the_agent_lives(deployment):
    tls = _tls(deployment["folder"])
    for payload in (b"[1, 2]", b'"run"', b"null", b"{not json", b"42"):
        reply = _ask(deployment["agents"]["bank_a"], payload, tls)
        assert reply["ok"] is False and "\n" not in reply["error"], payload
    assert client.ping(deployment["agents"]["bank_a"], tls=tls)["ok"]


@pytest.mark.slow
def test_huge_request_line_is_refused_without_buffering(deployment):
    tls = _tls(deployment["folder"])
    with client.connect(deployment["agents"]["bank_a"], 10, tls=tls, party="bank_a") as s:
        sent = 0
        chunk = b"x" * 65536
        try:
            while sent < 2 * MAX_REQUEST_BYTES:
                s.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the agent stopped reading and closed
        s.settimeout(10)
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
    if data:
        assert b"longer than" in data
    last = _audit(deployment)[-1]
    assert last["verdict"] == "refused" and "longer than" in last["reason"]
    assert client.ping(deployment["agents"]["bank_a"], tls=tls)["ok"]


@pytest.mark.slow
def test_two_hundred_idle_connections(deployment):
    host, port = deployment["agents"]["bank_a"].rsplit(":", 1)
    idle = []
    for _ in range(200):
        try:
            idle.append(socket.create_connection((host, int(port)), timeout=5))
        except OSError:
            pass
    try:
        # a real query while they are open: each new connection takes an idle one's slot
        _legitimate_query_works(deployment)
        time.sleep(4)  # > request_timeout: whatever is still open is dropped
        closed = 0
        for s in idle:
            s.settimeout(2)
            try:
                closed += s.recv(1) == b""
            except (ConnectionResetError, BrokenPipeError):
                closed += 1
            except OSError:
                pass
        assert closed == len(idle)
    finally:
        for s in idle:
            s.close()
    assert client.ping(deployment["agents"]["bank_a"], tls=_tls(deployment["folder"]))["ok"]


@pytest.mark.slow
def test_a_different_query_or_option_for_one_party_is_caught_by_the_parties(deployment):
    """A dishonest analyst sends bank_b the query with --pad-inputs pow2 and bank_a and the
    regulator without, each request with the right digest for what that agent is asked: the
    digests each agent checks with the client all match, but the parties compare theirs
    with each other before any share, and every one stops with one line naming a party that
    runs another plan; the agents stay up and the audit records the failure."""
    import secrets

    from sqlmpc.runtime.config import compile_plan, load_catalog
    from sqlmpc.runtime.deployment import compile_switches, plan_digest
    folder = deployment["folder"]
    catalog = load_catalog(folder / "analyst.toml")
    sql = (folder / "query.sql").read_text()
    query_id = secrets.token_hex(8)
    run = client.AgentRun(deployment["agents"], quiet=True, tls=_tls(folder))
    finals: dict[str, dict] = {}
    progress: dict[str, list[str]] = {}
    try:
        for name in ("bank_a", "bank_b", "regulator"):
            options = {"pad_inputs": "pow2" if name == "bank_b" else None}
            plan = compile_plan(sql, catalog, **compile_switches(options))
            run.send(name, protocol.run_request(party=name, sql=sql, query_id=query_id,
                                                digest=plan_digest(plan, query_id),
                                                options=options, sent=None))
        deadline = time.monotonic() + 120
        while len(finals) < 3 and time.monotonic() < deadline:
            name, message = run.events.get(timeout=max(deadline - time.monotonic(), 0.1))
            if message is None:
                finals.setdefault(name, {"ok": None, "error": "closed"})
            elif "progress" in message:
                progress.setdefault(name, []).append(message["progress"])
            else:
                finals[name] = message
    finally:
        run.close()
    line = ("runs a different plan (its catalog, options or query differ); stopped before any "
            "data was shared")
    assert set(finals) == {"bank_a", "bank_b", "regulator"}, finals
    for name, reply in finals.items():
        assert reply["ok"] is False and reply["error"].startswith(f"party {name}: party "), reply
        assert reply["error"].endswith(line) and "\n" not in reply["error"], reply
        assert not any("secure job: done" in p for p in progress.get(name, [])), progress
    assert finals["bank_a"]["error"] == f"party bank_a: party bank_b {line}"
    assert finals["regulator"]["error"] == f"party regulator: party bank_b {line}"
    for name in ("bank_a", "bank_b"):
        last = _audit(deployment, name)[-1]
        assert last["verdict"] == "failed" and last["reason"].endswith(line), last
    _legitimate_query_works(deployment)  # the agents serve the next, honest query
