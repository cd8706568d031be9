"""Which columns may be NULL (compiler/nullability.py), and the NULL flags generated programs use."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlmpc.backends.mpyc.codegen import render_secure_job
from sqlmpc.compiler.catalog import Catalog
from sqlmpc.compiler.analyses.nullability import Nullability, expression_nullable
from sqlmpc.compiler.planner import compile_query
from sqlmpc.compiler.frontend import parse_sql

TINY = Path(__file__).parent / "fixtures" / "tiny" / "catalog.toml"


@pytest.fixture(scope="module")
def tiny() -> Catalog:
    return Catalog.load(TINY)


def _result_nullable(sql: str, catalog: Catalog) -> set[str]:
    plan = compile_query(sql, catalog)
    dag = plan.dag
    (top,) = dag.inputs(dag.root)
    names = dict(zip(dag.names(top), (n for n, _ in plan.result_columns)))
    return {names[c] for c in Nullability(dag)(top)}


@pytest.mark.parametrize("sql, nullable", [
    ("SELECT SUM(fare) AS s, COUNT(*) AS n, MAX(pickup) AS m FROM trips", {"s", "m"}),
    ("SELECT vendor, SUM(fare) AS s, COUNT(*) AS n FROM trips GROUP BY vendor", set()),
    ("SELECT AVG(fare) AS a, STDDEV_SAMP(distance) AS sd FROM trips", {"a", "sd"}),
    ("SELECT vendor, AVG(fare) AS a, VAR_SAMP(fare) AS v FROM trips GROUP BY vendor", {"a", "v"}),
    ("SELECT COALESCE(SUM(fare), 0) AS s FROM trips", set()),
    ("SELECT vendor, SUM(CASE WHEN fare > 0 THEN fare ELSE 0 END) AS s FROM trips "
     "GROUP BY vendor", set()),
    ("SELECT vendor, SUM(CASE WHEN fare > 0 THEN fare END) AS s FROM trips GROUP BY vendor",
     {"s"}),
    ("SELECT fare / distance AS r, fare / 2 AS h FROM trips", {"r"}),
])
def test_result_columns_that_may_be_null(tiny, sql, nullable):
    assert _result_nullable(sql, tiny) == nullable


def test_expression_rules():
    e = parse_sql("SELECT CASE WHEN a > 1 THEN b END, COALESCE(a, b), a IS NULL, a / NULLIF(b, 0), "
                  "a / 0.5")
    exprs = e.expressions
    assert expression_nullable(exprs[0], set())            # CASE without ELSE
    assert not expression_nullable(exprs[1], {"a"})        # COALESCE with a non-null fallback
    assert expression_nullable(exprs[1], {"a", "b"})
    assert not expression_nullable(exprs[2], {"a"})        # IS NULL is never NULL
    assert expression_nullable(exprs[3], set())            # NULLIF may be NULL ...
    assert not expression_nullable(exprs[4], set())        # ... a nonzero literal divisor not


def test_generated_program_mentions_null_flags_only_where_needed(tiny):
    plain = render_secure_job(compile_query(
        "SELECT vendor, SUM(fare) AS s FROM trips GROUP BY vendor", tiny))
    assert "~null" not in plain
    empty = render_secure_job(compile_query(
        "SELECT AVG(fare) AS a FROM trips WHERE fare > 100", tiny))
    assert "~null" in empty  # AVG over no rows is NULL: a flag from sum / NULLIF(count, 0)


def test_share_of_a_nullable_partial_aggregate_is_declared(tiny):
    plan = compile_query("SELECT SUM(fare) AS s FROM trips WHERE fare > 100", tiny)
    shares = [o for job in plan.local_jobs.values() for o in job.outputs if o.kind == "share"]
    assert shares and all(o.nullable for o in shares)  # a party's part may have no such trips
