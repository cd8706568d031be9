"""Shared helpers of the contributor-mode tests: a session folder with fresh server keys,
random contributors' CSV files, and DuckDB's answer over the latest submissions."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import duckdb
from sqlmpc.contributors.sealing import make_server_keys

SERVERS = ("provider", "s2", "s3")
QUERY = """SELECT gender, job_level, COUNT(*) AS headcount, SUM(salary) AS total_pay,
       AVG(salary) AS avg_pay
FROM payroll
WHERE salary > 0
GROUP BY gender, job_level
ORDER BY gender, job_level
"""


def make_session(folder: Path, *, k: int = 3, query: str = QUERY, ports=(0, 0, 0),
                 max_rows: int = 50, extra: str = "") -> Path:
    """A session folder (session.toml, query.sql, keys/) for three servers; its file."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in SERVERS:
        if not (folder / "keys" / f"{name}.key").exists():
            make_server_keys(name, folder / "keys")
    (folder / "query.sql").write_text(query)
    servers = "\n".join(f'[servers.{n}]\nmpc = "127.0.0.1:{p or 9700 + i}"\n'
                        f'public_key = "keys/{n}.pub"' for i, (n, p) in
                        enumerate(zip(SERVERS, ports)))
    text = f"""[session]
name = "pay-test"
min_contributors = {k}
analytic = "query.sql"
max_rows = {max_rows}
{extra}
[table]
name = "payroll"
[table.columns]
gender = {{ type = "text", values = ["F", "M", "X"] }}
job_level = {{ type = "text", values = ["L1", "L2", "L3"] }}
salary = {{ type = "decimal(12,2)", min = 0, max = 1000000 }}

{servers}

[result]
recipients = ["s2"]
"""
    (folder / "session.toml").write_text(text)
    return folder / "session.toml"


def write_rows(path: Path, rng: random.Random, rows: int, rare: int = 0) -> list[tuple]:
    """A contributor's CSV of `rows` random rows (gender F or M) plus `rare` rows of the
    rare cell (X, L3); the rows."""
    data = [(rng.choice("FM"), rng.choice(["L1", "L2", "L3"]),
             f"{rng.uniform(20000, 200000):.2f}") for _ in range(rows)]
    data += [("X", "L3", f"{rng.uniform(20000, 200000):.2f}") for _ in range(rare)]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["gender", "job_level", "salary"])
        w.writerows(data)
    return data


def expected(latest: dict[int, list[tuple]], k: int, query: str = QUERY):
    """DuckDB's result of `query` over the latest rows of each contributor, with cells of
    fewer than k contributors dropped (the same suppression as in MPC)."""
    con = duckdb.connect()
    con.execute("CREATE TABLE rows (contributor INT, gender TEXT, job_level TEXT, "
                "salary DECIMAL(12,2))")
    con.executemany("INSERT INTO rows VALUES (?, ?, ?, ?)",
                    [(c, *r) for c, rs in latest.items() for r in rs])
    con.execute("CREATE VIEW payroll AS SELECT * FROM rows WHERE (gender, job_level) IN "
                f"(SELECT gender, job_level FROM rows WHERE salary > 0 GROUP BY ALL "
                f"HAVING COUNT(DISTINCT contributor) >= {k})")
    return con.execute(query).df()
