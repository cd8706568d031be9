"""Joins in any syntax, co-location, outer joins, and SQL functions run by the local engines.

Fast tests compile (the plan's shape, the refusals and their positions); the slow ones run
`sqlmpc` with every party as its own process and compare with DuckDB over the union of the
parts (tests/fixtures/tiny: trips split over yellow and green, zones at the regulator;
catalog_colocated.toml: orders and items of two shops, co-located on the order key).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlmpc
from sqlmpc.compiler.catalog import Catalog
from sqlmpc.compiler.errors import CatalogError, SchemaError, UnsupportedError
from sqlmpc.compiler.frontend import lower_sql
from sqlmpc.compiler.ir.dag import SECURE, Join, SemiJoin, Union
from sqlmpc.compiler.planner import compile_query

TINY = Path(__file__).parent / "fixtures" / "tiny"
TAXI = TINY / "catalog.toml"
SHOPS = TINY / "catalog_colocated.toml"


@pytest.fixture(scope="module")
def taxi() -> Catalog:
    return Catalog.load(TAXI)


@pytest.fixture(scope="module")
def shops() -> Catalog:
    return Catalog.load(SHOPS)


def joins(plan) -> list[tuple[Join, str]]:
    dag = plan.dag
    return [(dag.op(n), dag.attr(n, "placement")) for n in dag.topo()
            if isinstance(dag.op(n), Join)]


# --- inner joins in any syntax ------------------------------------------------------------------
def test_comma_join_of_three_tables_is_a_chain_of_equi_joins(taxi):
    """The former crash (KeyError on an edge) and no cross product."""
    plan = compile_query("SELECT a.vendor, z.borough FROM trips a, trips b, zones z "
                         "WHERE a.zone = b.zone AND b.zone = z.zone AND a.fare > 5 "
                         "AND b.fare > 7", taxi)
    assert [op.left_keys != () for op, _ in joins(plan)] == [True, True]


def test_four_way_join_over_three_parties_compiles(taxi):
    plan = compile_query("SELECT y.vendor, COUNT(*) AS n FROM yellow.trips y "
                         "JOIN green.trips g ON y.zone = g.zone JOIN zones z ON g.zone = z.zone "
                         "JOIN yellow.trips y2 ON y2.passengers = y.passengers "
                         "GROUP BY y.vendor", taxi)
    assert len(joins(plan)) == 3 and all(op.left_keys for op, _ in joins(plan))


def test_join_written_only_in_an_or_uses_its_common_key(taxi):
    """TPC-H Q19's shape: the key in every disjunct is the join key; each side gets the OR of
    its own tests as a filter, and the OR stays above the join."""
    dag = compile_query("SELECT t.vendor FROM trips t, zones z WHERE "
                        "(t.zone = z.zone AND t.fare > 5 AND z.borough = 'Q') OR "
                        "(z.zone = t.zone AND t.fare > 9 AND z.borough = 'B')", taxi).dag
    (join,) = [dag.op(n) for n in dag.g if isinstance(dag.op(n), Join)]
    assert join.left_keys == ("t.zone",) and join.right_keys == ("z.zone",)
    local = {dag.attr(n, "placement"): dag.op(n).text for n in dag.g
             if type(dag.op(n)).__name__ == "Filter"}
    assert "t.fare" in local["local:yellow"] and "z." not in local["local:yellow"]
    assert "z.borough" in local["local:regulator"] and "t." not in local["local:regulator"]
    assert "OR" in local[SECURE]


def test_join_on_without_an_equality_is_refused(taxi):
    with pytest.raises(UnsupportedError, match="join without an equality"):
        lower_sql("SELECT t.vendor FROM trips t JOIN zones z ON t.zone < z.zone", taxi)


def test_join_key_types_must_match(taxi):
    with pytest.raises(SchemaError, match="join key types differ"):
        lower_sql("SELECT t.vendor FROM trips t, zones z WHERE t.vendor = z.zone", taxi)


# --- local SQL functions ------------------------------------------------------------------------
@pytest.mark.parametrize("sql", [
    "SELECT vendor, SUM(fare) AS s FROM trips WHERE vendor LIKE 'Y%' GROUP BY vendor",
    "SELECT SUM(fare) AS s FROM trips WHERE pickup >= DATE '2024-03-01' - INTERVAL '90' DAY",
    "SELECT EXTRACT(YEAR FROM pickup) AS y, COUNT(*) AS n FROM trips "
    "GROUP BY EXTRACT(YEAR FROM pickup)",
    "SELECT UPPER(vendor) || '-' || SUBSTRING(vendor, 1, 1) AS v FROM trips",
    "SELECT COUNT(*) FILTER (WHERE fare > 10) AS n FROM trips",
    "SELECT SUM(CASE WHEN vendor ILIKE 'y%' THEN fare ELSE 0 END) AS s FROM trips",
], ids=["like", "interval", "extract-group", "string-functions", "filter", "case-ilike"])
def test_local_functions_compile(taxi, sql):
    compile_query(sql, taxi)


def test_like_above_a_join_is_computed_at_its_side(taxi):
    plan = compile_query("SELECT SUM(CASE WHEN t.vendor LIKE 'Y%' THEN t.fare ELSE 0 END) AS s "
                         "FROM trips t JOIN zones z ON t.zone = z.zone", taxi)
    secure_text = " ".join(plan.dag.op(n).text for n in plan.dag.topo()
                           if plan.dag.attr(n, "placement") == SECURE
                           and hasattr(plan.dag.op(n), "text"))
    assert "LIKE" not in secure_text
    assert any("LIKE" in o.sql for job in plan.local_jobs.values() for o in job.outputs)


def test_function_on_rows_of_several_parties_is_refused_with_its_position(taxi):
    sql = "SELECT vendor, COUNT(*) AS n FROM trips\nGROUP BY vendor HAVING vendor LIKE '%Y%'"
    with pytest.raises(UnsupportedError) as info:
        compile_query(sql, taxi)
    assert "LIKE '%Y%' on trips.vendor, whose rows come from green, yellow: not available " \
           "inside MPC (inside MPC only LIKE 'abc' and LIKE 'abc%' (a prefix) are available); " \
           "it would run locally" in str(info.value)
    assert info.value.line == 2


def test_unknown_function_needs_a_cast(taxi):
    with pytest.raises(UnsupportedError, match="cannot tell the type of NO_SUCH"):
        lower_sql("SELECT NO_SUCH(vendor) AS x FROM trips", taxi)
    lower_sql("SELECT CAST(NO_SUCH(vendor) AS INT) AS x FROM yellow.trips", taxi)


def test_whole_days_are_added_inside_mpc_months_through_the_calendar(taxi):
    def secure_texts(sql):
        plan = compile_query(sql, taxi)
        return [plan.dag.op(n).text for n in plan.dag.topo()
                if plan.dag.attr(n, "placement") == SECURE and hasattr(plan.dag.op(n), "text")]
    secure = secure_texts("SELECT MAX(pickup) + INTERVAL '2' WEEK AS d FROM trips")
    assert any("+ 14" in t for t in secure) and not any("INTERVAL" in t for t in secure)
    secure = secure_texts("SELECT MAX(pickup) - INTERVAL '1' YEAR AS d FROM trips")
    assert any('ADD_MONTHS("__agg0", -12)' in t for t in secure)


def test_decimal_product_has_the_sum_of_the_scales(taxi):
    dag = lower_sql("SELECT fare * fare AS f2 FROM trips", taxi)
    assert dag.schema(dag.root)[0].sql_type == "decimal(38,4)"


# --- co-location --------------------------------------------------------------------------------
def test_colocated_join_group_and_exists_run_at_each_party(shops):
    plan = compile_query(
        "SELECT o.okey, SUM(i.price) AS total FROM orders o JOIN items i ON o.okey = i.okey "
        "WHERE EXISTS (SELECT 1 FROM items j WHERE j.okey = o.okey AND j.price > 10) "
        "GROUP BY o.okey", shops)
    dag = plan.dag
    local = [dag.op(n) for n in dag.topo() if dag.attr(n, "placement", "").startswith("local")]
    assert sum(isinstance(op, Join) for op in local) == 2
    assert sum(isinstance(op, SemiJoin) for op in local) == 2
    assert not any(isinstance(dag.op(n), (Join, SemiJoin)) for n in dag.topo()
                   if dag.attr(n, "placement") == SECURE)


def test_join_on_another_key_is_not_split(shops):
    plan = compile_query("SELECT o.status, COUNT(*) AS n FROM orders o JOIN items i "
                         "ON o.cust = i.line GROUP BY o.status", shops)
    assert [p for _, p in joins(plan)] == [SECURE]


@pytest.mark.parametrize("spec,message", [
    ('{ with = "nope", on = { okey = "okey" } }', "is not another declared table"),
    ('{ with = "orders", on = { zz = "okey" } }', "must pair a column of items"),
    ('{ with = "orders" }', "must be { with"),
    ('{ with = "customers", on = { okey = "cust" } }', "parts at the same parties"),
])
def test_bad_colocation_is_a_catalog_error(tmp_path, spec, message):
    text = SHOPS.read_text().replace('colocated = { with = "orders", on = { okey = "okey" } }',
                                     f"colocated = {spec}")
    (tmp_path / "catalog.toml").write_text(text)
    with pytest.raises(CatalogError, match=message):
        Catalog.load(tmp_path / "catalog.toml")


# --- outer joins ----------------------------------------------------------------------------------
def test_outer_join_at_one_party_is_local(taxi):
    plan = compile_query("SELECT a.vendor, b.fare FROM yellow.trips a LEFT JOIN yellow.trips b "
                         "ON a.zone = b.zone AND b.fare > 10", taxi)
    ((op, placement),) = joins(plan)
    assert op.kind == "left" and placement == "local:yellow"


def test_outer_join_of_colocated_tables_is_a_union_of_local_joins(shops):
    plan = compile_query("SELECT o.okey, i.price FROM orders o FULL JOIN items i "
                         "ON o.okey = i.okey", shops)
    assert [(op.kind, p) for op, p in joins(plan)] == [("full", "local:east"),
                                                       ("full", "local:west")]
    assert any(isinstance(plan.dag.op(n), Union) for n in plan.dag.topo())


def test_outer_join_across_parties_is_an_inner_join_plus_the_unmatched_rows(taxi):
    plan = compile_query("SELECT t.vendor, z.borough FROM trips t FULL JOIN zones z "
                         "ON t.zone = z.zone", taxi)
    dag = plan.dag
    secure = [dag.op(n) for n in dag.topo() if dag.attr(n, "placement") == SECURE]
    assert [op.kind for op in secure if isinstance(op, Join)] == ["inner"]
    assert [op.anti for op in secure if isinstance(op, SemiJoin)] == [True, True]
    assert sum(isinstance(op, Union) for op in secure) >= 1


def test_outer_join_condition_on_the_preserved_side_is_refused(taxi):
    with pytest.raises(UnsupportedError, match="a condition of LEFT JOIN"):
        lower_sql("SELECT a.vendor FROM yellow.trips a LEFT JOIN yellow.trips b "
                  "ON a.zone = b.zone AND a.fare > 10", taxi)


# --- slow: run and compare with DuckDB ----------------------------------------------------------
RUNS = [
    (TAXI, "SELECT a.vendor, z.borough, COUNT(*) AS n FROM trips a, trips b, zones z "
           "WHERE a.zone = b.zone AND b.zone = z.zone AND a.fare > 5 GROUP BY a.vendor, z.borough"),
    (TAXI, "SELECT SUM(CASE WHEN t.vendor LIKE 'Y%' THEN t.fare ELSE 0 END) AS y, "
           "COUNT(*) FILTER (WHERE t.fare > 10) AS big FROM trips t JOIN zones z "
           "ON t.zone = z.zone WHERE z.borough <> 'Queens'"),
    (TAXI, "SELECT EXTRACT(MONTH FROM pickup) AS m, SUM(fare) AS s FROM trips "
           "WHERE pickup < DATE '2024-03-31' + INTERVAL '1' DAY GROUP BY EXTRACT(MONTH FROM pickup)"),
    (TAXI, "SELECT t.vendor, z.borough FROM trips t, zones z WHERE "
           "(t.zone = z.zone AND t.fare > 20) OR (z.zone = t.zone AND z.borough = 'Queens')"),
    (TAXI, "SELECT a.vendor, a.fare, b.fare AS other FROM yellow.trips a "
           "LEFT JOIN yellow.trips b ON a.zone = b.zone AND b.fare > 30"),
    (SHOPS, "SELECT o.status, SUM(i.price) AS total, COUNT(*) AS n FROM orders o, items i "
            "WHERE o.okey = i.okey AND i.sku LIKE 'PROMO%' GROUP BY o.status"),
    (SHOPS, "SELECT c.segment, SUM(i.price) AS total FROM customers c, orders o, items i "
            "WHERE c.cust = o.cust AND i.okey = o.okey GROUP BY c.segment"),
    (SHOPS, "SELECT o.okey FROM orders o WHERE NOT EXISTS "
            "(SELECT 1 FROM items i WHERE i.okey = o.okey AND i.price > 5)"),
    (TAXI, "SELECT t.vendor, z.borough, t.pickup + INTERVAL '2' DAY AS d FROM trips t "
           "JOIN zones z ON t.zone = z.zone WHERE t.pickup + INTERVAL '30' DAY > DATE '2024-02-01'"),
    (TAXI, "SELECT MAX(pickup) + INTERVAL '1' WEEK AS d, MIN(pickup) - INTERVAL '3' DAY AS e "
           "FROM trips"),
    (TAXI, "SELECT t.vendor, t.fare, z.borough FROM trips t LEFT JOIN zones z "
           "ON t.zone = z.zone AND z.borough <> 'Queens'"),
    (TAXI, "SELECT z.borough, COUNT(t.fare) AS n, SUM(t.fare) AS s FROM trips t "
           "RIGHT JOIN zones z ON t.zone = z.zone AND t.fare > 20 GROUP BY z.borough"),
    (SHOPS, "SELECT c.name, o.okey FROM customers c FULL JOIN "
            "(SELECT okey, cust FROM orders WHERE status = 'open') o ON c.cust = o.cust"),
    (SHOPS, "SELECT o.okey, COUNT(i.line) AS n FROM orders o LEFT JOIN items i "
            "ON o.okey = i.okey AND i.price > 9 GROUP BY o.okey"),
    (SHOPS, "SELECT o.cust, COUNT(*) AS n FROM orders o WHERE o.okey IN "
            "(SELECT okey FROM items GROUP BY okey HAVING SUM(price) > 10) GROUP BY o.cust"),
]


@pytest.mark.slow
@pytest.mark.parametrize("catalog,sql", RUNS, ids=[f"run{i}" for i in range(len(RUNS))])
def test_run_matches_duckdb(catalog, sql, reference, same_result, tmp_path):
    result = sqlmpc.run_sql(sql, catalog, quiet=True, workdir=tmp_path)
    rows, types = reference(catalog, sql)
    # DuckDB makes DATE + INTERVAL a timestamp; SQL (and sqlmpc) keep a date
    types = ["DATE" if t.startswith("TIMESTAMP") else t for t in types]
    same_result(result, (rows, types), ordered=False)
