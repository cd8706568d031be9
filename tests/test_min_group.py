"""Owners' min_group, enforced where groups are aggregated (compiler/passes/
suppress_small_groups.py): sqlmpc's result equals DuckDB over the union of the parts with an
owner column and, per owner O with min_group k,
``HAVING COUNT(*) FILTER (WHERE owner = O) = 0 OR COUNT(*) FILTER (WHERE owner = O) >= k``."""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import sqlmpc

CATALOG = """
[parties.bank_a]
[parties.bank_b]
[parties.bank_c]
[parties.regulator]

[tables.accounts]
columns = { branch = "text", kind = "int", amount = "decimal(12,2)" }
parts = { bank_a = "a.csv", bank_b = "b.csv", bank_c = "c.csv" }

[policy.bank_a]
recipients = ["regulator"]
min_group = 5
[policy.bank_a.columns]
"accounts.branch" = "public"
"accounts.kind" = "public"
"accounts.amount" = "aggregate"

[policy.bank_b]
recipients = ["regulator"]
min_group = 3
[policy.bank_b.columns]
"accounts.branch" = "public"
"accounts.kind" = "public"
"accounts.amount" = "aggregate"

[result]
recipients = ["regulator"]
"""
LIMITS = {"bank_a": 5, "bank_b": 3}
BRANCHES = ["north", "south", "east", "west", "harbour", "airport"]


def _data(folder: Path, seed: int) -> dict[str, list[tuple]]:
    """Each bank's rows, with branches where a bank holds 1 to k - 1 rows (suppressed), none,
    exactly k (kept) or many."""
    rng = random.Random(seed)
    sizes = {"bank_a": {"north": 12, "south": 5, "east": 4, "west": 1, "harbour": 0,
                        "airport": 7},
             "bank_b": {"north": 3, "south": 2, "east": 0, "west": 9, "harbour": 4,
                        "airport": 1},
             "bank_c": {"north": 2, "south": 1, "east": 6, "west": 0, "harbour": 1,
                        "airport": 3}}
    rows = {}
    for bank, per_branch in sizes.items():
        rows[bank] = [(b, rng.randint(1, 3), rng.randint(100, 999999) / 100)
                      for b, n in per_branch.items() for _ in range(n)]
        rng.shuffle(rows[bank])
        name = {"bank_a": "a", "bank_b": "b", "bank_c": "c"}[bank]
        pd.DataFrame(rows[bank], columns=["branch", "kind", "amount"]).to_csv(
            folder / f"{name}.csv", index=False)
    (folder / "catalog.toml").write_text(CATALOG)
    return rows


def _expected(rows: dict[str, list[tuple]], sql: str) -> pd.DataFrame:
    """DuckDB over the union, the suppression written as the issue states it."""
    con = duckdb.connect()
    union = pd.DataFrame([(*r, bank) for bank, rs in rows.items() for r in rs],
                         columns=["branch", "kind", "amount", "owner"])
    con.register("accounts_raw", union)
    con.execute("CREATE TABLE accounts AS SELECT branch, kind, "
                "CAST(amount AS DECIMAL(12,2)) AS amount, owner FROM accounts_raw")
    having = " AND ".join(f"(COUNT(*) FILTER (WHERE owner = '{o}') = 0 OR "
                          f"COUNT(*) FILTER (WHERE owner = '{o}') >= {k})"
                          for o, k in LIMITS.items())
    return con.execute(sql.format(having=having)).df()


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got = got.sort_values(list(got.columns[:1])).reset_index(drop=True)
    want = want.sort_values(list(want.columns[:1])).reset_index(drop=True)
    assert list(got.iloc[:, 0]) == list(want.iloc[:, 0])
    for c in range(1, want.shape[1]):
        assert [round(float(x), 2) for x in got.iloc[:, c]] == \
            [round(float(x), 2) for x in want.iloc[:, c]]


@pytest.mark.slow
@pytest.mark.parametrize("sql, reference", [
    ("SELECT branch, SUM(amount) AS total, COUNT(*) AS n FROM accounts GROUP BY branch",
     "SELECT branch, SUM(amount) AS total, COUNT(*) AS n FROM accounts GROUP BY branch "
     "HAVING {having}"),
    ("SELECT branch, AVG(amount) AS a FROM accounts WHERE kind < 3 GROUP BY branch",
     "SELECT branch, AVG(amount) AS a FROM accounts WHERE kind < 3 GROUP BY branch "
     "HAVING {having}"),
], ids=["sum-count", "avg-where"])
def test_suppression_matches_duckdb(tmp_path, sql, reference):
    rows = _data(tmp_path, seed=3)
    got = sqlmpc.run_sql(sql, tmp_path / "catalog.toml", timeout=240)
    want = _expected(rows, reference)
    assert 0 < len(want) < len(BRANCHES)  # some groups suppressed, some kept
    _same(got, want)


@pytest.mark.slow
def test_a_suppressed_total_returns_no_row(tmp_path):
    """One group without GROUP BY: bank_a holds 4 rows (< 5) of kind 3 in all: no row at all."""
    rows = _data(tmp_path, seed=5)
    n_a = sum(1 for r in rows["bank_a"] if r[1] == 3)
    n_b = sum(1 for r in rows["bank_b"] if r[1] == 3)
    got = sqlmpc.run_sql("SELECT SUM(amount) AS s FROM accounts WHERE kind = 3",
                         tmp_path / "catalog.toml", timeout=240)
    want = _expected(rows, "SELECT SUM(amount) AS s FROM accounts WHERE kind = 3 "
                           "HAVING {having}")
    assert len(got) == len(want) == (1 if (n_a in (0,) or n_a >= 5) and
                                     (n_b == 0 or n_b >= 3) else 0)
    if len(want):
        _same(got.assign(k=0)[["k", "s"]], want.assign(k=0)[["k", "s"]])


def test_the_picture_marks_each_owners_policy_and_the_suppression(tmp_path):
    _data(tmp_path, seed=3)
    dot = sqlmpc.explain_sql("SELECT branch, SUM(amount) AS s FROM accounts GROUP BY branch",
                             tmp_path / "catalog.toml", fmt="dot")
    assert "bank_a's policy allows:\\naccounts.amount in aggregates (aggregate)" in dot
    assert "bank_c: no policy" in dot
    assert "min_group: small groups dropped here" in dot
