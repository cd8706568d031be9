"""The generated MPC program: common secure subexpressions are computed once."""

from __future__ import annotations

import re

import pytest

from pathlib import Path

from sqlmpc.backends.mpyc.codegen import render_secure_job
from sqlmpc.compiler.catalog import Catalog
from sqlmpc.compiler.planner import compile_query

TINY = Path(__file__).parent / "fixtures" / "tiny" / "catalog.toml"

DIVISION = re.compile(r"ops\.(?:checked_)?div(?:_zero)?\(")  # checked when not proven to fit
SHARES_SQUARED = """
WITH r AS (SELECT vendor, SUM(fare) AS rev FROM trips GROUP BY vendor),
     t AS (SELECT SUM(rev) AS tot FROM r),
     s AS (SELECT 100.0 * rev / tot AS share FROM r CROSS JOIN t)
SELECT SUM(share * share) AS hhi FROM s
"""


def compiled(sql: str) -> str:
    return render_secure_job(compile_query(sql, Catalog.load(TINY)))


def test_a_repeated_division_is_computed_once():
    program = compiled(SHARES_SQUARED)
    assert len(DIVISION.findall(program)) == 1, program
    # its zero divisor (the NULL flag of x / 0) comes from the division itself, and the
    # square's NULL flag is its operand's, once (an OR is a secure product)
    assert "ops.eq(" not in program and re.search(r"_c\d+_\d+\[1\]", program), program
    assert program.count("ops.null_or(") == 1, program


def test_a_single_call_stays_inline():
    program = compiled("SELECT SUM(fare) * SUM(distance) AS r, SUM(fare) AS s FROM trips")
    assert program.count("ops.checked_mul(") == 1
    assert not re.search(r" = ops\.checked_mul\(", program)  # not hoisted into a variable


def test_a_quotient_and_its_zero_flag_come_from_one_division():
    """x / y and x / y's NULL flag (y = 0): one division, in a projection and in a filter."""
    for sql in ("SELECT SUM(fare) / SUM(distance) AS r, SUM(fare) AS s FROM trips",
                "SELECT vendor FROM trips GROUP BY vendor HAVING SUM(fare) / SUM(distance) > 2"):
        program = compiled(sql)
        assert len(DIVISION.findall(program)) == 1 and "ops.eq(" not in program, program
        (var,) = re.findall(r"(_c\d+_\d+) = ops\.checked_div_zero\(", program)
        assert f"{var}[0]" in program and f"{var}[1]" in program


def test_a_division_asked_only_whether_it_is_null_is_not_computed():
    """x / y IS NULL needs y's zero test, not the quotient: no division runs."""
    program = compiled("SELECT vendor, COUNT(*) AS n FROM trips GROUP BY vendor "
                       "HAVING SUM(fare) / SUM(distance) IS NULL")
    assert not DIVISION.findall(program) and program.count("ops.eq(") == 1, program


@pytest.mark.slow
def test_a_product_of_sums_grouped_by_public_keys_runs(tmp_path):
    """GROUP BY a key public in the clear, then a secure step over the groups that passes the
    key on: the key's values per group are known in the clear (lib/public_keys.py)."""
    import duckdb

    import sqlmpc

    sql = "SELECT vendor, SUM(fare) * SUM(fare) AS sq FROM trips GROUP BY vendor"
    program = render_secure_job(compile_query(sql, Catalog.load(TINY)))
    assert "ops.public_group_keys(" in program
    got = sqlmpc.run_sql(sql, TINY, workdir=tmp_path)
    parts = [str(TINY.parent / p / "trips.csv") for p in ("yellow", "green")]
    want = duckdb.sql(f"SELECT vendor, SUM(fare) * SUM(fare) FROM read_csv({parts}) "
                      f"GROUP BY vendor ORDER BY vendor").fetchall()
    assert sorted((v, round(float(s), 4)) for v, s in zip(got["vendor"], got["sq"])) == \
        [(v, round(float(s), 4)) for v, s in want]


@pytest.mark.slow
def test_a_zero_divisor_gives_null_from_the_divisions_own_flag(tmp_path):
    """Groups whose secret divisor is 0 come out NULL, the others as DuckDB divides (DuckDB's
    double x / 0 is inf, so the reference says NULLIF; sqlmpc's x / 0 is NULL as in SQL's
    other engines)."""
    import duckdb

    import sqlmpc

    far = "SUM(CASE WHEN distance > 5 THEN fare ELSE 0 END)"
    sql = f"SELECT vendor, SUM(fare) / {far} AS r FROM trips GROUP BY vendor"
    assert "div_zero(" in compiled(sql) and "ops.eq(" not in compiled(sql)
    got = sqlmpc.run_sql(sql, TINY, workdir=tmp_path)
    parts = [str(TINY.parent / p / "trips.csv") for p in ("yellow", "green")]
    want = duckdb.sql(f"SELECT vendor, SUM(fare) / NULLIF({far}, 0) FROM read_csv({parts}) "
                      f"GROUP BY vendor ORDER BY vendor").fetchall()
    assert any(r is None for _, r in want) and any(r is not None for _, r in want)
    rows = sorted(zip(got["vendor"], got["r"]))
    assert [v for v, _ in rows] == [v for v, _ in want]
    for (_, r), (_, w) in zip(rows, want):
        assert (w is None and pd_isna(r)) or (w is not None and abs(float(r) - float(w)) < 1e-6)


def pd_isna(value) -> bool:
    import pandas as pd
    return bool(pd.isna(value))

