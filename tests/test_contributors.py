"""Contributor mode, in one process: the field and sharing, the session file, the store, the
provider's API (Starlette's test client: attacks included), the CLI contributor's checks, the
compiled analytic and the pre-shared input with its suppression (1-party MPyC)."""

from __future__ import annotations

import base64
import random
import sqlite3
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from contributors_helpers import SERVERS, make_session, write_rows
from sqlmpc.compiler.errors import SqlmpcError, UnsupportedError
from sqlmpc.contributors import field
from sqlmpc.contributors.analytic import compile_session, rewrite_categories
from sqlmpc.contributors.client import ContributeError, read_rows, sealed_submission
from sqlmpc.contributors.provider import Provider, build_app, limits
from sqlmpc.contributors.sealing import load_private_key, unseal
from sqlmpc.contributors.server import check_payload, open_boxes
from sqlmpc.contributors.session import Session, SessionError
from sqlmpc.contributors.store import Store, StoreError
from starlette.testclient import TestClient


# --- the field and the sharing ------------------------------------------------------------
def test_modulus_is_mpycs_secfxp_field() -> None:
    from mpyc.runtime import mpc
    assert mpc.SecFxp(96, 32).field.modulus == field.MODULUS


@pytest.mark.parametrize("value", [0, 1, Decimal("123456.78"), Decimal("-0.01"), 10**9])
def test_encode_share_reconstruct_round_trip(value) -> None:
    x = field.encode_number(value)
    assert x == round(Fraction(value) * 2**32) % field.MODULUS
    shares = field.share_values([x], 3, 1)
    for pair in ((0, 1), (0, 2), (1, 2)):
        assert field.reconstruct({i: shares[i][0] for i in pair}) == x
    assert abs(field.decode_number(x) - Fraction(value)) <= Fraction(1, 2**33)  # rounded once


def test_one_share_is_not_the_secret() -> None:
    x = field.encode_number(5)
    shares = field.share_values([x] * 20, 3, 1)
    assert all(s != x for row in shares for s in row)  # fails with prob ~ 60/p


# --- the session file -------------------------------------------------------------------
def test_session_loads(tmp_path) -> None:
    s = Session.load(make_session(tmp_path))
    assert s.column_names == ["gender", "job_level", "salary"]
    assert [v.name for v in s.servers] == list(SERVERS) and s.threshold == 1
    assert s.columns[0].values == ("F", "M", "X")


@pytest.mark.parametrize("edit, message", [
    (("min_contributors = 3", "min_contributors = 0"), "min_contributors"),
    (('salary = { type = "decimal(12,2)", min = 0, max = 1000000 }', 'salary = "float"'),
     "needs both min and max"),
    (('values = ["F", "M", "X"]', 'values = ["F", "f"]'), "duplicates"),
    (('recipients = ["s2"]', 'recipients = ["nobody"]'), "is not a server"),
    (('analytic = "query.sql"', 'analytic = "missing.sql"'), "cannot read"),
    (('[table]', '[table]\nowner = "x"'), "unknown key"),
])
def test_session_errors_are_one_line(tmp_path, edit, message) -> None:
    path = make_session(tmp_path)
    path.write_text(path.read_text().replace(*edit))
    with pytest.raises(SessionError, match=message) as err:
        Session.load(path)
    assert "\n" not in str(err.value)


def test_session_needs_three_servers_and_real_keys(tmp_path) -> None:
    path = make_session(tmp_path)
    text = path.read_text()
    path.write_text(text.replace('[servers.s3]\nmpc = "127.0.0.1:9702"\npublic_key = '
                                 '"keys/s3.pub"', ""))
    with pytest.raises(SessionError, match="at least 3"):
        Session.load(path)
    path.write_text(text)
    (tmp_path / "keys" / "s3.pub").write_text(base64.b64encode(b"short").decode())
    with pytest.raises(SessionError, match="32 bytes"):
        Session.load(path)


# --- the store ------------------------------------------------------------------------------
def test_store_keeps_history_and_serves_the_latest(tmp_path) -> None:
    store = Store(tmp_path / "p.db", "pay-test")
    a, b = store.new_codes(2)
    with pytest.raises(StoreError, match="setup, not open"):
        store.submit(a, 1, {"provider": "x", "s2": "y", "s3": "z"})
    store.move("open")
    r1 = store.submit(a, 2, {"provider": "a1", "s2": "a2", "s3": "a3"})
    r2 = store.submit(a, 3, {"provider": "b1", "s2": "b2", "s3": "b3"})
    store.submit(b, 1, {"provider": "c1", "s2": "c2", "s3": "c3"})
    assert r1.replaces is None and r2.replaces == r1.submission
    assert store.latest_boxes("s2") == [{"code_index": 0, "box": "b2"},
                                        {"code_index": 1, "box": "c2"}]
    assert store.counts() == {"contributors": 2, "submissions": 3}
    assert store.db.execute("SELECT COUNT(*) FROM boxes").fetchone()[0] == 9  # history kept
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.move("closed")
    with pytest.raises(StoreError, match="cannot become open"):
        store.move("open")


def test_store_submission_is_all_or_nothing(tmp_path) -> None:
    store = Store(tmp_path / "p.db", "pay-test")
    (code,) = store.new_codes(1)
    store.move("open")
    store.submit(code, 1, {"provider": "a1", "s2": "a2", "s3": "a3"})
    with pytest.raises(sqlite3.IntegrityError):  # a failure after the first rows are written
        store.submit(code, 1, {"provider": "b1", "s2": "b2", "s3": None})
    assert store.counts()["submissions"] == 1
    assert [b["box"] for b in store.latest_boxes("s2")] == ["a2"]


def test_store_refuses_another_sessions_file(tmp_path) -> None:
    Store(tmp_path / "p.db", "pay-test").close()
    with pytest.raises(SqlmpcError, match="belongs to session"):
        Store(tmp_path / "p.db", "other")


# --- the provider's API -------------------------------------------------------------------
@pytest.fixture
def api(tmp_path):
    session = Session.load(make_session(tmp_path / "s"))
    store = Store(tmp_path / "p.db", session.name)
    provider = Provider(session, store, "analyst-secret")
    client = TestClient(build_app(provider))
    client.session_obj, client.store, client.folder = session, store, tmp_path / "s"
    return client


def _analyst(client, action, body=None, token="analyst-secret"):
    headers = {"Authorization": f"Bearer {token}"}
    if action == "status":
        return client.get("/api/analyst/status", headers=headers)
    return client.post(f"/api/analyst/{action}", json=body or {}, headers=headers)


def _body(client, code, rows=None):
    info = client.get("/api/session").json()
    path = client.folder / "rows.csv"
    write_rows(path, random.Random(1), rows or 4)
    return sealed_submission(info, code, read_rows(path, info))


def test_api_flow_and_status_counts_only(api) -> None:
    info = api.get("/api/session").json()
    assert info["status"] == "setup" and info["field"]["modulus"] == str(field.MODULUS)
    assert [c["name"] for c in info["table"]["columns"]] == ["gender", "job_level", "salary"]
    (code,) = _analyst(api, "codes", {"count": 1}).json()["codes"]
    assert _analyst(api, "open").json() == {"status": "open"}
    r1 = api.post("/api/submit", json=_body(api, code)).json()["receipt"]
    r2 = api.post("/api/submit", json=_body(api, code)).json()["receipt"]
    assert r2["replaces"] == r1["submission"] and r2["submitted_at"].endswith("Z")
    assert _analyst(api, "status").json() == {"status": "open", "contributors": 1,
                                              "submissions": 2}


@pytest.mark.parametrize("case, status", [
    ("unknown code", 403), ("revoked code", 403), ("closed session", 409),
    ("malformed JSON", 400), ("not an object", 400), ("oversize body", 413),
    ("wrong server set", 400), ("rows out of range", 400), ("not base64", 400),
    ("oversize body without a length", 413),
])
def test_api_attacks_get_one_line_and_store_nothing(api, case, status) -> None:
    (code,) = _analyst(api, "codes", {"count": 1}).json()["codes"]
    _analyst(api, "open")
    body = _body(api, code)
    kwargs = {"json": body}
    if case == "unknown code":
        body["code"] = "no-such-code"
    elif case == "revoked code":
        _analyst(api, "revoke", {"code": code})
    elif case == "closed session":
        _analyst(api, "close")
    elif case == "malformed JSON":
        kwargs = {"content": b"{not json", "headers": {"Content-Type": "application/json"}}
    elif case == "not an object":
        kwargs = {"json": [1, 2]}
    elif case == "oversize body":
        kwargs = {"content": b"x" * (limits(api.session_obj)[1] + 1)}
    elif case == "oversize body without a length":  # chunked: counted while it streams
        kwargs = {"content": iter([b"x" * 65536] * (limits(api.session_obj)[1] // 65536 + 2))}
    elif case == "wrong server set":
        body["shares"]["intruder"] = body["shares"].pop("s3")
    elif case == "rows out of range":
        body["rows"] = api.session_obj.max_rows + 1
    elif case == "not base64":
        body["shares"]["s2"] = "%%%"
    r = api.post("/api/submit", **kwargs)
    assert r.status_code == status
    assert set(r.json()) == {"error"} and "\n" not in r.json()["error"]
    assert api.store.counts()["submissions"] == 0


def test_api_analyst_endpoints_need_the_token(api) -> None:
    assert _analyst(api, "open", token="wrong").status_code == 401
    assert api.get("/api/analyst/status").status_code == 401
    assert _analyst(api, "codes", {"count": "many"}).status_code == 400


def test_server_fetch_needs_its_key_and_a_closed_session(api) -> None:
    (code,) = _analyst(api, "codes", {"count": 1}).json()["codes"]
    _analyst(api, "open")
    api.post("/api/submit", json=_body(api, code))
    assert api.get("/api/server/s2/shares").status_code == 401
    key = load_private_key(api.folder / "keys" / "s2.key")
    answer = unseal(api.post("/api/server/s2/challenge").json()["challenge"], key).decode()
    auth = {"Authorization": f"Bearer {answer}"}
    assert api.get("/api/server/s2/shares", headers=auth).status_code == 409
    _analyst(api, "close")
    answer = unseal(api.post("/api/server/s2/challenge").json()["challenge"], key).decode()
    other = api.get("/api/server/s3/shares", headers={"Authorization": f"Bearer {answer}"})
    assert other.status_code == 401  # an answer is for one server only, used once
    answer = unseal(api.post("/api/server/s2/challenge").json()["challenge"], key).decode()
    boxes = api.get("/api/server/s2/shares", headers={"Authorization": f"Bearer {answer}"})
    assert [b["code_index"] for b in boxes.json()] == [0]
    dropped = []
    mine = open_boxes(api.session_obj, boxes.json(), key, log=dropped.append)
    assert [c[:2] for c in mine["contributors"]] == [[0, 4]] and len(mine["shares"]) == 4
    # a provider serving one submission under a second index gets it dropped, not counted twice
    twice = boxes.json() + [{"code_index": 1, "box": boxes.json()[0]["box"]},
                            {"code_index": 2, "box": "bm90IGEgYm94"}]
    mine = open_boxes(api.session_obj, twice, key, log=dropped.append)
    assert [c[:2] for c in mine["contributors"]] == [[0, 4]]
    assert len(dropped) == 2 and all("#1" in d or "#2" in d for d in dropped)
    assert api.get("/api/server/nobody/shares").status_code == 404


# --- the CLI contributor's local checks -------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("gender,job_level,salary\nQ,L1,10\n", "'Q' is not one of F, M, X"),
    ("gender,job_level,salary\nF,L1,-5\n", "outside"),
    ("gender,job_level,salary\nF,L1,1.234\n", "more than 2 decimals"),
    ("gender,job_level,salary\nF,L1,abc\n", "not a number"),
    ("gender,job_level,salary\nF,,10\n", "empty cell"),
    ("gender,salary\nF,10\n", "missing job_level"),
    ("gender,job_level,salary\n", "no rows"),
])
def test_contributor_checks_before_sending(tmp_path, text, message) -> None:
    session = Session.load(make_session(tmp_path))
    info = {"table": {"columns": [c.describe() for c in session.columns]}, "max_rows": 50}
    (tmp_path / "d.csv").write_text(text)
    with pytest.raises(ContributeError, match=message):
        read_rows(tmp_path / "d.csv", info)


def test_payload_checks_at_the_server(tmp_path) -> None:
    session = Session.load(make_session(tmp_path))
    good = {"session": "pay-test", "code": "c", "columns": session.column_names, "rows": 1,
            "shares": [["1"], ["2"], ["3"]]}
    assert check_payload(session, good) == 1
    for bad in ({**good, "session": "other"}, {**good, "rows": 2},
                {**good, "shares": [["1"], ["2"], [str(field.MODULUS)]]},
                {**good, "shares": [["1"], ["2"], ["-3"]]}, {**good, "columns": ["x"]}):
        with pytest.raises(ValueError):
            check_payload(session, bad)


# --- the analytic -----------------------------------------------------------------------------
def test_analytic_compiles_to_preshared_program(tmp_path) -> None:
    from sqlmpc.runtime.artifacts import secure_program
    plan = compile_session(Session.load(make_session(tmp_path)))
    text = secure_program(plan).text
    assert "ops.preshared_input(" in text and "ops.aggregate_contributed(" in text
    assert "share_input(" not in text


@pytest.mark.parametrize("query, message", [
    ("SELECT gender, salary FROM payroll", "one aggregate"),
    ("SELECT salary, COUNT(*) FROM payroll GROUP BY salary", "only categorical"),
])
def test_analytic_that_would_open_rows_is_refused(tmp_path, query, message) -> None:
    with pytest.raises(UnsupportedError, match=message):
        compile_session(Session.load(make_session(tmp_path, query=query)))


@pytest.mark.parametrize("select, in_clear", [
    # the spread's sum of squares follows from it, the count and the total: all in the clear
    ("COUNT(*) AS n, SUM(salary) AS t, AVG(salary) AS a, STDDEV_POP(salary) AS sd", True),
    ("SUM(salary) AS t, COUNT(salary) AS n, VAR_POP(salary) AS v", True),
    # the parts are not all determined by the result: the divisions stay in MPC
    ("STDDEV_POP(salary) AS sd", False),
    ("COUNT(*) AS n, AVG(salary) AS a", False),
    ("SUM(salary) AS t, AVG(salary) AS a", False),
    (("COUNT(*) AS n, SUM(salary) AS t, AVG(salary) AS a FROM payroll GROUP BY gender "
      "HAVING COUNT(*) > 2 --"), False),
])
def test_analytic_is_finished_in_the_clear_only_when_the_result_determines_it(
        tmp_path, select, in_clear) -> None:
    """The projection over the cells moves after the reveal only when the revealed parts
    (sums, counts, sums of squares) are a function of the analytic's result."""
    from sqlmpc.runtime.artifacts import secure_program
    query = f"SELECT gender, {select} FROM payroll GROUP BY gender"
    text = secure_program(compile_session(Session.load(make_session(tmp_path, query=query)))).text
    secure_part = text[text.index("await mpc.start()"):text.index("await mpc.shutdown()")]
    assert ("ops.div(" in secure_part or "checked_div(" in secure_part) != in_clear
    revealed = next(line for line in text.splitlines() if "the valid rows of" in line)
    assert ("__sumsq" in revealed) == (in_clear and "_POP(" in select)


def test_categorical_literals_become_indexes(tmp_path) -> None:
    session = Session.load(make_session(tmp_path))
    sql = rewrite_categories(session, "SELECT COUNT(*) FROM payroll WHERE gender = 'm' "
                                      "AND job_level IN ('L1', 'L3')")
    assert "gender = 1" in sql and "IN (0, 2)" in sql
    with pytest.raises(SqlmpcError, match="not a value of gender"):
        rewrite_categories(session, "SELECT COUNT(*) FROM payroll WHERE gender = 'Q'")


# --- the pre-shared input and the suppression (1 party: the shares are the values) ----------
def test_preshared_aggregate_suppresses_cells_of_few_contributors() -> None:
    from mpc_helpers import run
    from mpyc.runtime import mpc
    from sqlmpc.backends.mpyc import ops
    secfxp = mpc.SecFxp(96, 32)
    rows = {3: [(0, 1, 100.5), (1, 2, 50)], 5: [(0, 1, 10), (0, 0, 7), (1, 2, 3)],
            8: [(0, 1, 1)]}
    listed = [[c, len(r)] for c, r in rows.items()]
    shares = np.array([[field.encode_number(Fraction(v)) for v in row]
                       for c in rows for row in rows[c]], dtype=object)

    async def body():
        t, owners = await ops.preshared_input(secfxp, {"contributors": listed,
                                                        "shares": shares},
                                              ["g", "e", "s"], [True, True, False])
        assert list(owners) == [0, 0, 1, 1, 1, 2]
        out = []
        for extra in ([], [("mx", "max", "s")]):  # SUM/COUNT only; with MAX (the H path)
            g = await ops.aggregate_contributed(t, owners, ["g", "e"], [2, 3],
                                                [("n", "count", None), ("s", "sum", "s")]
                                                + extra, 2)
            out.append({c: list(await mpc.output(x)) for c, x in
                        [("g", g.columns["g"]), ("e", g.columns["e"]), ("n", g.columns["n"]),
                         ("s", g.columns["s"]), ("valid", g.valid)]})
        return out

    for got in run(body):
        # cells (g, e) in order (0,0) (0,1) (0,2) (1,0) (1,1) (1,2)
        assert got["g"] == [0, 0, 0, 1, 1, 1] and got["e"] == [0, 1, 2, 0, 1, 2]
        assert got["n"] == [1, 3, 0, 0, 0, 2]
        assert got["s"] == [7, 111.5, 0, 0, 0, 53]
        assert got["valid"] == [0, 1, 0, 0, 0, 1]  # (0,0) has 1 contributor: suppressed


async def _raw_ints(x) -> list[int]:
    """The scaled integers of a secfxp array in a 1-party run (the shares are the values)."""
    from mpyc.runtime import mpc
    p = field.MODULUS
    return [v - p if v > p // 2 else v for v in (int(a) for a in (await mpc.gather(x)).value)]


@pytest.mark.parametrize("bound_factor, with_max", [(1, False), (2, False), (1, True)])
def test_deferred_products_are_exact_at_the_range_extremes(bound_factor, with_max) -> None:
    """SUM(s * s) and SUM(s * r), mixed signs, |s|, |r| at a declared maximum M chosen so
    that the proof n M^2 < 2^63 (n = 5 rows) barely holds and one cell's sum of squares is
    about 0.6 * 2^63: summed untruncated and truncated once per cell, the result is the
    exact sum of the encoded values' products to one unit of 2^-32 (checked with Python
    integers). With a declared bound too large for the proof (5 * bound >= 2^63), or with
    a MAX (the one-hot path), the products are truncated row by row instead (each within
    one unit)."""
    from mpc_helpers import run
    from mpyc.runtime import mpc
    from sqlmpc.backends.mpyc import ops
    from sqlmpc.backends.mpyc.lib.preshared import deferred_fits
    secfxp = mpc.SecFxp(96, 32)
    top = Decimal("1358000000.99")  # M: 5 rows, 5 M^2 = 9.2208e18 < 2^63 = 9.2234e18
    values = [(top, -top), (-top, -top), (top - Decimal("0.98"), top), (Decimal("-0.01"), top)]
    rows = {0: [(1, 0) + v for v in values[:2]], 1: [(1, 0) + values[2]],
            2: [(1, 0) + values[3], (0, 0, Decimal(0), Decimal(0))]}
    listed = [[c, len(r)] for c, r in rows.items()]
    shares = np.array([[field.encode_number(v) for v in row] for c in rows for row in rows[c]],
                      dtype=object)
    bound = str((top * top).to_integral_value(rounding="ROUND_CEILING") * bound_factor)
    products = {"sq": ("s", "s", bound), "sr": ("s", "r", bound)}
    deferred = bound_factor == 1 and not with_max

    async def body():
        t, owners = await ops.preshared_input(secfxp, {"contributors": listed, "shares": shares},
                                              ["g", "e", "s", "r"], [True, True, False, False])
        assert deferred_fits(t, products) == (bound_factor == 1)
        g = await ops.aggregate_contributed(
            t, owners, ["g", "e"], [2, 1], [("n", "count", None), ("s", "sum", "s"),
                                             ("sq", "sum", "sq"), ("sr", "sum", "sr")]
            + ([("mx", "max", "s")] if with_max else []), 3, products=products, filtered=False)
        return {c: await _raw_ints(g.columns[c]) for c in ("n", "s", "sq", "sr")} | \
            {"valid": await _raw_ints(g.valid)}

    got = run(body)
    scaled = [(field.encode_number(s), field.encode_number(r)) for s, r in values]
    scaled = [(a if a < field.MODULUS // 2 else a - field.MODULUS,
               b if b < field.MODULUS // 2 else b - field.MODULUS) for a, b in scaled]
    one = 1 << 32
    assert got["n"] == [one, 4 * one] and got["valid"] == [0, one]  # (0, 0): 1 contributor
    assert got["s"][1] == sum(a for a, _ in scaled)
    for name, exact in (("sq", Fraction(sum(a * a for a, _ in scaled), one)),
                        ("sr", Fraction(sum(a * b for a, b in scaled), one))):
        slack = 1 if deferred else 4  # one truncation per cell, or one per row
        assert abs(got[name][1] - exact) <= slack, name
    assert got["sq"][1] > 0.59 * 2 ** 63 * one  # three rows of M^2: most of the range


@pytest.mark.parametrize("sizes, filtered, k", [
    ([2, 3], True, 2), ([4], False, 2), ([2, 3], False, 1), ([17, 2], True, 2),
    ([16, 20], False, 2)])
def test_factorized_group_by_matches_python(sizes, filtered, k) -> None:
    """Counts, sums, deferred squares and suppression of aggregate_contributed against plain
    Python, for the layouts it chooses between: powers of the combined key, one key, the
    one-hot product beyond POWERS_MAX cells ([17, 2]), and per-contributor moments too large
    for the small field ([16, 20]: the last key's one-hot matrix instead)."""
    from mpc_helpers import run
    from mpyc.runtime import mpc
    from sqlmpc.backends.mpyc import ops
    secfxp = mpc.SecFxp(96, 32)
    rng = random.Random(sum(sizes) * 10 + k)
    rows = {c: [tuple(rng.randrange(d) for d in sizes) +
                (Decimal(rng.randrange(-10**6, 10**6)) / 100, rng.randrange(2))
                for _ in range(rng.randint(1, 6))] for c in range(7)}
    listed = [[c, len(r)] for c, r in rows.items()]
    shares = np.array([[field.encode_number(v) for v in row] for c in rows for row in rows[c]],
                      dtype=object)
    names = [f"k{i}" for i in range(len(sizes))]

    async def body():
        t, owners = await ops.preshared_input(secfxp, {"contributors": listed, "shares": shares},
                                              names + ["s", "keep"],
                                              [True] * len(sizes) + [False, True])
        if filtered:
            t = ops.filter_rows(t, t.columns["keep"])
        g = await ops.aggregate_contributed(
            t, owners, names, sizes, [("n", "count", None), ("s", "sum", "s"),
                                      ("sq", "sum", "sq")], k,
            products={"sq": ("s", "s", "100000000")}, filtered=filtered)
        return {c: [float(v) for v in await mpc.output(x)] for c, x in
                [("n", g.columns["n"]), ("s", g.columns["s"]), ("sq", g.columns["sq"]),
                 ("valid", g.valid)]}

    got = run(body)
    cells = list(np.ndindex(*sizes))
    want = {c: [0.0] * len(cells) for c in ("n", "s", "sq")}
    owners_in = [set() for _ in cells]
    for c, rs in rows.items():
        for *key, s, keep in rs:
            if filtered and not keep:
                continue
            i = cells.index(tuple(key))
            want["n"][i] += 1
            want["s"][i] += float(s)
            want["sq"][i] += float(s) ** 2
            owners_in[i].add(c)
    assert got["n"] == want["n"]
    assert got["s"] == pytest.approx(want["s"], abs=1e-6)
    assert got["sq"] == pytest.approx(want["sq"], abs=1e-3)
    assert got["valid"] == [1.0 if len(o) >= k else 0.0 for o in owners_in]


# --- the command line -------------------------------------------------------------------------
def test_cli_keys_codes_and_server_checks(tmp_path, capsys) -> None:
    from sqlmpc.runtime.cli import main
    session = make_session(tmp_path / "s")
    assert main(["server-keys", "s2", "--out", str(tmp_path / "s" / "keys")]) == 1
    assert "not overwritten" in capsys.readouterr().err  # a key is never replaced
    assert main(["codes", str(session), "--count", "3", "--db", str(tmp_path / "p.db")]) == 0
    codes = capsys.readouterr().out.split()
    assert len(set(codes)) == 3
    assert (tmp_path / "s" / "keys" / "s2.key").stat().st_mode & 0o777 == 0o600
    wrong = ["server", "s2", str(session), "--key", str(tmp_path / "s" / "keys" / "s3.key"),
             "--provider", "http://127.0.0.1:9", "--out", str(tmp_path / "r.csv")]
    assert main(wrong) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not the key of server s2" in err[0]
    (tmp_path / "s" / "keys" / "s3.key").chmod(0o644)
    assert main(wrong[:3] + ["--key", str(tmp_path / "s" / "keys" / "s3.key"),
                             "--provider", "x"]) == 1
    assert "readable by others" in capsys.readouterr().err


def test_the_example_session_compiles_and_explains(tmp_path) -> None:
    import shutil

    from sqlmpc.contributors.explain import explain_session
    from sqlmpc.contributors.sealing import make_server_keys
    example = Path(__file__).resolve().parents[1] / "examples" / "pay_equity_contributors"
    folder = tmp_path / "example"
    shutil.copytree(example, folder, ignore=shutil.ignore_patterns("keys", "run"))
    for name in SERVERS:
        make_server_keys(name, folder / "keys")
    text = explain_session(str(folder / "session.toml"))
    assert "75 cells" in text and "fewer than 3 contributors is suppressed" in text
    assert "to the recipients (s2)" in text
    assert len(list((folder / "employers").glob("*.csv"))) == 8


def test_bounded_zero_test_is_exact() -> None:
    from mpc_helpers import run
    from mpyc.runtime import mpc
    from sqlmpc.backends.mpyc.lib import smallfield as sf
    from sqlmpc.backends.mpyc.lib.suppress import is_zero_bounded, to_small
    secfxp = mpc.SecFxp(96, 32)

    async def body():
        out = {}
        for bound in (1, 2, 7, 49, 64, 1000):
            x = secfxp.array(np.arange(bound + 1, dtype=np.int64), integral=True)
            small = await to_small(x, bound.bit_length())
            out[bound] = (await sf.open_(small)).tolist(), \
                (await sf.open_(await is_zero_bounded(small, bound))).tolist()
        return out

    for bound, (moved, got) in run(body).items():
        assert moved == list(range(bound + 1)), bound
        assert got == [1] + [0] * bound, bound


def test_at_least_k_counts_across_the_wrap() -> None:
    """[count >= k] from small-field shares, counts near 0, k and P (1 party: S = count)."""
    from mpc_helpers import run
    from mpyc.runtime import mpc
    from sqlmpc.backends.mpyc.lib import smallfield as sf
    from sqlmpc.backends.mpyc.lib.suppress import at_least
    secfxp = mpc.SecFxp(96, 32)
    counts = np.array([0, 1, 2, 3, 4, 1000, sf.P - 1], dtype=np.int64)

    async def body():
        return [int(v) for v in await mpc.output(await at_least(counts, 3, secfxp.array))]

    assert run(body) == [0, 0, 0, 1, 1, 1, 1]


def test_global_aggregate_is_one_cell_suppressed_below_k() -> None:
    from mpc_helpers import run
    from mpyc.runtime import mpc
    from sqlmpc.backends.mpyc import ops
    secfxp = mpc.SecFxp(96, 32)
    listed = [[0, 2], [4, 1], [9, 3]]
    shares = np.array([[field.encode_number(v)] for v in (5, 6, 7, 8, 9, 10)], dtype=object)

    async def body():
        t, owners = await ops.preshared_input(secfxp, {"contributors": listed,
                                                        "shares": shares}, ["v"], [True])
        got = []
        for k in (3, 4):
            g = await ops.aggregate_contributed(t, owners, [], [],
                                                [("s", "sum", "v"), ("n", "count", None)], k)
            got.append([list(await mpc.output(x)) for x in (g.columns["s"], g.valid)])
        return got

    assert run(body) == [[[45], [1]], [[45], [0]]]  # 3 contributors: shown at k=3, not at 4


def test_only_the_pages_files_are_served(api):
    """The page and its vendored libraries, nothing else of contributors/web/."""
    assert api.get("/static/app.js").status_code == 200
    assert api.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    for path in ("/static/package.json", "/static/package-lock.json", "/static/build-vendor.mjs",
                 "/static/node_modules/xlsx/package.json", "/static/../provider.py",
                 "/static/%2e%2e/provider.py", "/static/vendor/../../session.py"):
        assert api.get(path).status_code == 404, path
