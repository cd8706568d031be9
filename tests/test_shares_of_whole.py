"""A share of a whole, x / SUM(x) with no x negative, lies in [0, 1]: the bounds prove it (no
secure overflow check, nothing opened), and only where the plan shows it (analyses/signs.py,
analyses/wholes.py). The proven programs give DuckDB's answer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlglot import exp

import sqlmpc
from sqlmpc.compiler.analyses.bounds import unproven_operations
from sqlmpc.compiler.analyses.signs import nonnegative
from sqlmpc.compiler.analyses.wholes import parts
from sqlmpc.compiler.ir.dag import Aggregate, Filter

LIMIT = 1 << 63
ROOT = Path(__file__).resolve().parents[1]

CATALOG = """
[parties.a]
[parties.b]
[parties.c]

[tables.sales]
columns = {{ g = "int", v = "decimal(14,4)", w = "float", u = "int" }}
parts = {{ a = "sa.csv", b = "sb.csv", c = "sc.csv" }}
{ranges}
[result]
recipients = ["a"]
"""

ROWS = {"sa": [(1, "10.50", 2.0, 1), (2, "3.25", -1.5, 0), (1, "0.00", 0.5, 4)],
        "sb": [(2, "7.75", 3.0, 2), (3, "120.00", 1.0, 1)],
        "sc": [(3, "0.25", -2.0, 5), (4, "0.00", 0.0, 0)]}


#: large enough that the quotients' ordinary bounds (a part's bound over the whole's grain, 0.0001)
#: do not prove them
RANGES = "[tables.sales.ranges]\nv = [0, 10000000]\n"


def _catalog(tmp_path: Path, ranges: str = RANGES,
             rows: dict | None = None) -> Path:
    (tmp_path / "catalog.toml").write_text(CATALOG.format(ranges=ranges))
    for name, part in (rows or ROWS).items():
        (tmp_path / f"{name}.csv").write_text(
            "g,v,w,u\n" + "".join(",".join(map(str, r)) + "\n" for r in part))
    return tmp_path / "catalog.toml"


def _checked(sql: str, catalog: Path) -> set[str]:
    return {u.what for found in unproven_operations(sqlmpc.compile_sql(sql, catalog).dag,
                                                    LIMIT).values() for u in found}


SHARE = """WITH r AS (SELECT g, SUM(v) AS rev FROM sales GROUP BY g),
t AS (SELECT SUM(rev) AS total FROM r)
SELECT g, {share} AS share FROM r CROSS JOIN t"""

HHI = """WITH r AS (SELECT g, SUM({x}) AS rev FROM sales {where} GROUP BY g),
t AS (SELECT SUM(rev) AS total FROM {whole}),
s AS (SELECT 100.0 * rev / total AS share FROM r CROSS JOIN t)
SELECT SUM(share * share) AS hhi FROM s"""


# --- signs ----------------------------------------------------------------------------------

def test_a_declared_range_or_a_filter_makes_a_column_nonnegative(tmp_path):
    cat = _catalog(tmp_path)
    dag = sqlmpc.compile_sql("SELECT g, SUM(v) AS a, SUM(w) AS b FROM sales WHERE w >= 0 "
                             "GROUP BY g", cat).dag
    signs = nonnegative(dag)
    filt = next(n for n in dag.topo() if isinstance(dag.op(n), Filter))
    assert {"sales.v", "sales.w"} <= signs[filt]          # the range; the filter's w >= 0
    assert "sales.u" not in signs.get(filt, set()) and "sales.g" not in signs[filt]
    agg = next(n for n in dag.topo() if isinstance(dag.op(n), Aggregate))
    assert {a.name for a in dag.op(agg).aggs} <= signs[agg]
    # without the filter w can be negative, and so can its sum
    dag = sqlmpc.compile_sql("SELECT g, SUM(w) AS b FROM sales GROUP BY g", cat).dag
    signs = nonnegative(dag)
    agg = next(n for n in dag.topo() if isinstance(dag.op(n), Aggregate))
    assert not ({a.name for a in dag.op(agg).aggs} & signs[agg])


@pytest.mark.parametrize("expression, nonneg", [
    ("v * 2 + u / 3", False), ("v * 2 + 1.5", True), ("v - 1", False), ("-v", False),
    ("ABS(w)", True), ("POWER(w, 2)", True), ("POWER(w, 3)", False), ("w > 1", True),
    ("CASE WHEN w > 0 THEN v ELSE 0 END", True), ("COALESCE(v, w)", False),
    ("NULLIF(v, 0)", True), ("CAST(v AS DOUBLE)", True)])
def test_signs_of_expressions(expression, nonneg):
    from sqlglot import parse_one

    from sqlmpc.compiler.analyses.signs import nonnegative_expression
    assert nonnegative_expression(parse_one(expression), {"v"}) is nonneg


# --- which shares are proven ------------------------------------------------------------------

SHARES = ["100.0 * rev / total", "rev / total", "rev / NULLIF(total, 0)",
          "(rev * 2) / total * 50", "CAST(rev AS DOUBLE) / total"]


def test_a_share_of_the_total_needs_no_check(tmp_path, monkeypatch):
    cat = _catalog(tmp_path)
    for share in SHARES:
        assert _checked(SHARE.format(share=share), cat) == set(), share
    assert _checked(HHI.format(x="v", where="", whole="r"), cat) == set()
    explain = sqlmpc.explain_sql(HHI.format(x="v", where="", whole="r"), cat)
    assert "overflows" not in explain
    # without the rule, the ordinary bounds leave each of these checked
    from sqlmpc.compiler.analyses import bounds
    monkeypatch.setattr(bounds, "parts", lambda dag: {})
    for share in SHARES:
        assert _checked(SHARE.format(share=share), cat), share
    assert _checked(HHI.format(x="v", where="", whole="r"), cat)


def test_the_part_is_found_through_the_plan(tmp_path):
    dag = sqlmpc.compile_sql(SHARE.format(share="rev / total"), _catalog(tmp_path)).dag
    found = parts(dag)
    assert found, "no whole found"
    assert all(len(p) == 1 for by in found.values() for p in by.values())


@pytest.mark.parametrize("x, where, whole, why", [
    ("w", "", "r", "w can be negative: a part can exceed the total"),
    ("v", "", "r WHERE rev > 5", "the total is over fewer rows than the parts"),
    ("v", "", "(SELECT * FROM r LIMIT 2) AS l", "the total is over fewer rows than the parts"),
])
def test_what_is_not_a_share_stays_checked(tmp_path, x, where, whole, why):
    cat = _catalog(tmp_path, ranges=RANGES + "w = [-10000000, 10000000]\n")
    checked = _checked(HHI.format(x=x, where=where, whole=whole), cat)
    assert "100.0 * r.rev / t.total" in checked, why


def test_a_filter_makes_the_parts_nonnegative(tmp_path):
    cat = _catalog(tmp_path, ranges="[tables.sales.ranges]\nw = [-10000000, 10000000]\n")
    assert _checked(HHI.format(x="w", where="WHERE w > 0", whole="r"), cat) == set()
    assert _checked(HHI.format(x="w", where="WHERE w > -1", whole="r"), cat) != set()


@pytest.mark.parametrize("share", ["(rev - 1) / total", "rev / (total - 1)", "total / rev",
                                   "u_sum / total"])
def test_other_quotients_stay_checked(tmp_path, share):
    cat = _catalog(tmp_path, ranges=RANGES + "u = [0, 10000000]\n")
    sql = ("WITH r AS (SELECT g, SUM(v) AS rev, SUM(u) AS u_sum FROM sales GROUP BY g), "
           "t AS (SELECT SUM(rev) AS total FROM r) "
           f"SELECT g, {share} AS share FROM r CROSS JOIN t")
    assert _checked(sql, cat), share


def test_the_taxi_hhi_needs_no_check():
    folder = ROOT / "examples" / "taxi"
    sql = (folder / "query.sql").read_text()
    for catalog in ("catalog_company.toml", "catalog_platform.toml"):
        assert "overflows" not in sqlmpc.explain_sql(sql, folder / catalog), catalog


# --- the proven programs compute DuckDB's answer ------------------------------------------------

@pytest.mark.slow
def test_shares_and_their_hhi_match_duckdb(tmp_path, reference, same_result):
    cat = _catalog(tmp_path)
    for sql in (SHARE.format(share="100.0 * rev / total"), HHI.format(x="v", where="",
                                                                      whole="r")):
        result = sqlmpc.run_sql(sql, cat, quiet=True)
        same_result(result, reference(cat, sql), ordered=False)


@pytest.mark.slow
def test_a_zero_total_gives_null_shares(tmp_path, reference, same_result):
    zeros = {"sa": [(1, "0.00", 0.0, 0)], "sb": [(2, "0.00", 0.0, 0)],
             "sc": [(3, "0.00", 0.0, 0)]}
    cat = _catalog(tmp_path, rows=zeros)
    sql = SHARE.format(share="100.0 * rev / total")
    result = sqlmpc.run_sql(sql, cat, quiet=True)
    assert result["share"].isna().all()
    same_result(result, reference(cat, sql), ordered=False)


# --- the rows that do not count divide 0 ---------------------------------------------------------

FILTERED = """WITH r AS (SELECT g, SUM(v) AS rev FROM sales GROUP BY g),
f AS (SELECT g, rev FROM r WHERE rev < 20),
t AS (SELECT SUM(rev) AS total FROM f)
SELECT g, 100.0 * rev / total AS share FROM f CROSS JOIN t"""


def test_a_share_proven_on_the_counted_rows_divides_0_on_the_others(tmp_path):
    """A row the secure filter drops keeps its value, which the total did not add up: its
    quotient could leave the type's range, and a quotient out of range must never reach the
    division. The program zeroes the dividend there first; a quotient the ordinary bounds
    prove for every row needs no such step."""
    from sqlmpc.backends.mpyc.codegen import render_secure_job
    src = render_secure_job(sqlmpc.compile_sql(FILTERED, _catalog(tmp_path)))
    assert re.search(r"ops\.div_zero\(ops\.where\(t\d+\.valid, \(100\.0 \* "
                     r"t\d+\.columns\['f\.rev'\]\), 0\), t\d+\.columns\['t\.total'\]\)", src), src
    small = tmp_path / "small"
    small.mkdir()
    plain = render_secure_job(sqlmpc.compile_sql(
        FILTERED, _catalog(small, ranges="[tables.sales.ranges]\nv = [0, 10]\n")))
    assert "ops.div_zero(" in plain and "ops.where(" not in plain


@pytest.mark.slow
def test_a_filtered_share_matches_duckdb(tmp_path, reference, same_result):
    cat = _catalog(tmp_path)  # group 3 (120.25) is dropped by rev < 20, its value kept
    result = sqlmpc.run_sql(FILTERED, cat, quiet=True)
    assert len(result) == 3
    same_result(result, reference(cat, FILTERED), ordered=False)


def test_a_nullable_dividend_counts_only_where_it_has_a_value():
    """The rows that count: valid, and the dividend not NULL (its stored value is not one the
    whole added up)."""
    from sqlglot import parse_one

    from sqlmpc.backends.mpyc.expressions import Expr
    ex = Expr(lambda c: f"t.columns[{c!r}]", {"a": "float", "b": "float"}, secure=True,
              table="t", nullable=frozenset({"a"}), proven=lambda e: True,
              counted_only=lambda e: isinstance(e, exp.Div))
    assert ex.code(parse_one("a / b")) == (
        "ops.div_zero(ops.where(ops.and_(t.valid, ops.not_(t.columns['a~null'])), "
        "t.columns['a'], 0), t.columns['b'])[0]")
    ex.counted_only = lambda e: False
    assert ex.code(parse_one("a / b")) == "ops.div_zero(t.columns['a'], t.columns['b'])[0]"
    assert ex.code(parse_one("a / 4")) == "ops.div(t.columns['a'], 4)"  # never 0: no flag
