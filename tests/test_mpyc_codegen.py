"""The generated MPC program: common secure subexpressions are computed once."""

from __future__ import annotations

import re

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
