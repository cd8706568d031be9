"""The generated MPC program: common secure subexpressions are computed once."""

from __future__ import annotations

import re

import pytest

from pathlib import Path

from sqlmpc.backends.mpyc.codegen import render_secure_job
from sqlmpc.compiler.catalog import Catalog
from sqlmpc.compiler.planner import compile_query

TINY = Path(__file__).parent / "fixtures" / "tiny" / "catalog.toml"

DIVISION = re.compile(r"ops\.(?:checked_)?div\(")  # checked when not proven to fit
SHARES_SQUARED = """
WITH r AS (SELECT vendor, SUM(fare) AS rev FROM trips GROUP BY vendor),
     t AS (SELECT SUM(rev) AS tot FROM r),
     s AS (SELECT 100.0 * rev / tot AS share FROM r CROSS JOIN t)
SELECT SUM(share * share) AS hhi FROM s
"""


def test_a_repeated_division_is_computed_once():
    program = render_secure_job(compile_query(SHARES_SQUARED, Catalog.load(TINY)))
    assert len(DIVISION.findall(program)) == 1, program
    # and so is the test for its zero divisor (the NULL flag of x / 0)
    assert program.count("ops.eq(") == 1, program


def test_a_single_call_stays_inline():
    program = render_secure_job(compile_query(
        "SELECT SUM(fare) / SUM(distance) AS r, SUM(fare) AS s FROM trips", Catalog.load(TINY)))
    assert len(DIVISION.findall(program)) == 1
    assert not re.search(r" = ops\.(checked_)?div\(", program)  # not hoisted into a variable


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
