"""The SQL front end: which operators each supported construct lowers to, type inference, and the
exact text and position of the errors for what it rejects."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlglot import exp

from sqlmpc.compiler.catalog import Catalog
from sqlmpc.compiler.ir.dag import Aggregate, Filter, Join, Project, Scan
from sqlmpc.compiler.errors import ParseError, SchemaError, SqlError, UnsupportedError
from sqlmpc.compiler.frontend import lower_sql
from sqlmpc.compiler.frontend.context import ALLOWED_EXPRESSIONS
from sqlmpc.compiler.frontend.typecheck import TYPE_RULES
from sqlmpc.compiler.ir.render import canonical_order, render_dag

TINY = Path(__file__).parent / "fixtures" / "tiny" / "catalog.toml"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(TINY)


def ops(sql: str, catalog: Catalog) -> list[str]:
    """The operator names of the lowered plan, inputs first (canonical order)."""
    dag = lower_sql(sql, catalog)
    return [type(dag.op(n)).__name__ for n in canonical_order(dag)]


def result_types(sql: str, catalog: Catalog) -> dict[str, str]:
    dag = lower_sql(sql, catalog)
    return {f.name: f.sql_type for f in dag.schema(dag.root)}


# --- lowering: the operators of each supported construct ---------------------------------------
UNION_OF_PARTS = ["Scan", "Scan", "Union"]
LOWERING = {
    "one party's part (party.table)":
        ("SELECT vendor FROM yellow.trips", ["Scan", "Project", "Output"]),
    "a logical table is the union of its parts":
        ("SELECT vendor FROM trips", UNION_OF_PARTS + ["Project", "Output"]),
    "WHERE":
        ("SELECT vendor FROM yellow.trips WHERE fare > 1 AND NOT vendor = 'x'",
         ["Scan", "Filter", "Project", "Output"]),
    "row expressions: arithmetic, CASE, CAST, IN, BETWEEN, IS NULL, OR":
        ("SELECT fare * 2 - 1, CASE WHEN fare > 1 THEN 1 ELSE 0 END, CAST(zone AS FLOAT), "
         "zone IN (1, 2), fare BETWEEN 1 AND 2, vendor IS NULL OR zone <> 1 FROM yellow.trips",
         ["Scan", "Project", "Output"]),
    "inner equi-join on two keys":
        ("SELECT t.vendor FROM yellow.trips t JOIN zones z ON t.zone = z.zone "
         "AND t.passengers = z.zone", ["Scan", "Scan", "Join", "Project", "Output"]),
    "a non-equality join condition becomes a filter above the join":
        ("SELECT t.vendor FROM yellow.trips t JOIN zones z ON t.zone = z.zone AND t.fare > z.zone",
         ["Scan", "Scan", "Join", "Filter", "Project", "Output"]),
    "GROUP BY two keys with HAVING":
        ("SELECT vendor, zone, SUM(fare) FROM yellow.trips GROUP BY vendor, zone "
         "HAVING COUNT(*) > 1",
         ["Scan", "Project", "Aggregate", "Filter", "Project", "Output"]),
    "DISTINCT, ORDER BY two keys and LIMIT":
        ("SELECT DISTINCT vendor, zone FROM yellow.trips ORDER BY vendor DESC, zone LIMIT 3",
         ["Scan", "Project", "Distinct", "Sort", "Limit", "Output"]),
    "ORDER BY a column not selected: sorted, then dropped":
        ("SELECT vendor FROM yellow.trips ORDER BY fare",
         ["Scan", "Project", "Sort", "Project", "Output"]),
    "UNION ALL":
        ("SELECT vendor FROM yellow.trips UNION ALL SELECT vendor FROM green.trips",
         ["Scan", "Project", "Scan", "Project", "Union", "Output"]),
    "UNION (distinct)":
        ("SELECT vendor FROM yellow.trips UNION SELECT vendor FROM green.trips",
         ["Scan", "Project", "Scan", "Project", "Union", "Distinct", "Output"]),
    "a subquery in FROM renames its columns":
        ("SELECT s.v FROM (SELECT vendor AS v FROM yellow.trips) s",
         ["Scan", "Project", "Project", "Project", "Output"]),
    "WITH (a CTE)":
        ("WITH c AS (SELECT vendor FROM yellow.trips) SELECT vendor FROM c",
         ["Scan", "Project", "Project", "Project", "Output"]),
    "a scalar subquery is a cross join with its one row":
        ("SELECT fare / (SELECT SUM(fare) FROM yellow.trips) FROM yellow.trips",
         ["Scan", "Scan", "Project", "Aggregate", "Project", "Project", "Join", "Project",
          "Output"]),
}


@pytest.mark.parametrize("sql,expected", LOWERING.values(), ids=list(LOWERING))
def test_lowering(sql, expected, catalog):
    assert ops(sql, catalog) == expected


def test_the_same_scalar_subquery_twice_is_computed_once(catalog):
    """x / (SELECT SUM ...) * x / (SELECT SUM ...): one subquery, one join (the HHI's shares
    squared); one that may give another value each time stays two."""
    total = "(SELECT SUM(fare) FROM yellow.trips)"
    dag = lower_sql(f"SELECT SUM((fare / {total}) * (fare / {total})) FROM yellow.trips",
                    catalog)
    assert sum(isinstance(dag.op(n), Join) for n in dag.g) == 1
    assert sum(isinstance(dag.op(n), Aggregate) for n in dag.g) == 2  # the subquery, the SUM
    rand = "(SELECT SUM(fare * CAST(RANDOM() AS DOUBLE)) FROM yellow.trips)"
    dag = lower_sql(f"SELECT fare / {rand} + fare / {rand} FROM yellow.trips", catalog)
    assert sum(isinstance(dag.op(n), Join) for n in dag.g) == 2


def test_a_cte_used_twice_is_lowered_once(catalog):
    dag = lower_sql("WITH c AS (SELECT vendor, fare FROM yellow.trips) "
                    "SELECT a.vendor FROM c a JOIN c b ON a.vendor = b.vendor", catalog)
    assert sum(isinstance(dag.op(n), Scan) for n in dag.g) == 1


def test_every_aggregate_function(catalog):
    dag = lower_sql("SELECT COUNT(DISTINCT vendor), COUNT(*), COUNT(fare), MIN(pickup), "
                    "MAX(fare), STDDEV(fare), STDDEV_POP(fare), VARIANCE(distance), "
                    "VAR_POP(distance), AVG(passengers), SUM(fare) FROM trips", catalog)
    (agg,) = [dag.op(n) for n in dag.g if isinstance(dag.op(n), Aggregate)]
    assert [a.func for a in agg.aggs] == [
        "count_distinct", "count_star", "count", "min", "max", "stddev_samp", "stddev_pop",
        "var_samp", "var_pop", "avg", "sum"]
    assert agg.keys == ()


def test_join_keys_are_oriented_left_to_right(catalog):
    dag = lower_sql("SELECT t.vendor FROM yellow.trips t JOIN zones z ON z.zone = t.zone",
                    catalog)
    (join,) = [dag.op(n) for n in dag.g if isinstance(dag.op(n), Join)]
    assert (join.left_keys, join.right_keys) == (("t.zone",), ("z.zone",))


def test_same_column_name_from_two_aliases_stays_apart(catalog):
    """A self-join: both sides' columns keep their own alias."""
    dag = lower_sql("SELECT a.fare, b.fare FROM yellow.trips a JOIN green.trips b "
                    "ON a.vendor = b.vendor", catalog)
    assert dag.names(dag.root) == ["fare", "fare_1"]


def test_rendered_plan_of_a_grouped_query(catalog):
    dag = lower_sql("SELECT vendor, SUM(fare) AS s FROM yellow.trips WHERE fare > 0 "
                    "GROUP BY vendor", catalog)
    assert render_dag(dag) == "\n".join([
        "#0 Scan yellow.trips AS trips cols=(vendor, fare, distance, pickup, passengers, zone)",
        "#1 Filter trips.fare > 0 <- #0",
        "#2 Project exprs=(trips.distance, trips.pickup, trips.passengers, trips.zone, "
        "trips.vendor, trips.fare) <- #1",
        "#3 Aggregate keys=(trips.vendor) aggs=(sum(trips.fare) AS __agg0) <- #2",
        "#4 Project exprs=(trips.vendor AS vendor, __agg0 AS s) <- #3",
        "#5 Output to=(regulator) <- #4",
    ])


# --- type inference --------------------------------------------------------------------------
TYPES = [
    ("SUM(fare)", "decimal(38,2)"),
    ("AVG(fare)", "float"),
    ("AVG(passengers)", "float"),
    ("COUNT(*)", "int"),
    ("COUNT(DISTINCT vendor)", "int"),
    ("SUM(passengers)", "int"),
    ("SUM(distance)", "float"),
    ("MIN(pickup)", "date"),
    ("MAX(fare)", "decimal(10,2)"),
    ("STDDEV(fare)", "float"),
    ("VARIANCE(passengers)", "float"),
    ("SUM(fare) * 2", "decimal(38,2)"),
    ("SUM(fare) / 2", "float"),
    ("SUM(fare) + 0.125", "decimal(38,3)"),
    ("SUM(passengers) + 1", "int"),
    ("SUM(passengers) + 1.5e0", "float"),
    ("CAST(SUM(fare) AS INT)", "int"),
    ("CAST(SUM(passengers) AS DECIMAL(12, 3))", "decimal(12,3)"),
    ("MAX(pickup) + 1", "date"),
    ("CASE WHEN SUM(fare) > 1 THEN 1 ELSE 2.5 END", "decimal(38,1)"),
    ("SUM(fare) > 1", "bool"),
    ("COALESCE(MAX(passengers), 0)", "int"),
]


@pytest.mark.parametrize("expr,expected", TYPES, ids=[e for e, _ in TYPES])
def test_type_inference(expr, expected, catalog):
    assert result_types(f"SELECT {expr} AS x FROM trips", catalog) == {"x": expected}


def test_date_literal_compared_with_a_date_column_is_cast(catalog):
    dag = lower_sql("SELECT vendor FROM trips WHERE pickup BETWEEN '2024-01-01' AND "
                    "'2024-01-31' OR pickup IN ('2024-02-01')", catalog)
    (f,) = [dag.op(n) for n in dag.g if isinstance(dag.op(n), Filter)]
    assert f.text.count("CAST('2024-") == 3


def test_date_shaped_text_compared_with_text_stays_text(catalog):
    dag = lower_sql("SELECT vendor FROM trips WHERE vendor = '2024-01-01'", catalog)
    (f,) = [dag.op(n) for n in dag.g if isinstance(dag.op(n), Filter)]
    assert "CAST" not in f.text


def test_union_of_int_and_decimal_is_decimal(catalog):
    types = result_types("SELECT passengers AS x FROM yellow.trips UNION ALL "
                         "SELECT fare FROM green.trips", catalog)
    assert types == {"x": "decimal(38,2)"}


def test_group_by_expression_is_computed_before_the_aggregate(catalog):
    dag = lower_sql("SELECT fare > 10 AS big, COUNT(*) FROM trips GROUP BY fare > 10", catalog)
    (agg,) = [n for n in dag.g if isinstance(dag.op(n), Aggregate)]
    (src,) = dag.inputs(agg)
    assert isinstance(dag.op(src), Project)
    assert dag.types(agg)[dag.op(agg).keys[0]] == "bool"


# --- errors: exact message, line and column, caret line --------------------------------------
ERRORS = [
    # (sql, error class, message, detail lines)
    ("SELECT vendor,\n       nope\nFROM trips", SchemaError,
     "SQL schema error at line 2, col 8: Column 'nope' could not be resolved",
     "         nope\n         ^"),
    ("SELECT vendor, SUM(vendor) FROM trips GROUP BY vendor", SchemaError,
     "SQL schema error at line 1, col 16: SUM of text (needs a number)", None),
    ("SELECT vendor FROM trips\nWHERE fare > 'abc'", SchemaError,
     "SQL schema error at line 2, col 7: cannot compare decimal(10,2) with text: "
     "\"trips.fare\" > 'abc'", "  WHERE fare > 'abc'\n        ^"),
    ("SELECT vendor FROM trips\n  WHERE ROW_NUMBER() OVER (ORDER BY fare) < 3", UnsupportedError,
     "unsupported at line 2, col 9: window function in WHERE (filter on it in an outer query)",
     None),
    ("SELECT t.vendor FROM trips t\nFULL JOIN zones z ON t.zone = z.zone AND z.borough = 'Q'",
     UnsupportedError, "unsupported at line 2, col 42: a condition of FULL JOIN ... ON other "
     "than key equalities and tests of the joined side's own columns", None),
    ("SELECT vendor FROM tripz", SchemaError,
     "SQL schema error at line 1, col 20: unknown table 'tripz' (catalog tables: trips, zones)",
     "  SELECT vendor FROM tripz\n                     ^"),
    ("SELECT vendor FROM blue.trips", SchemaError,
     "SQL schema error at line 1, col 20: unknown party 'blue' in 'blue.trips'", None),
    ("SELECT vendor FROM regulator.trips", SchemaError,
     "SQL schema error at line 1, col 20: party 'regulator' holds no part of table 'trips'",
     None),
    ("SELECT vendor, fare FROM trips GROUP BY vendor", SchemaError,
     "SQL schema error at line 1, col 16: column trips.fare must appear in GROUP BY or be used "
     "in an aggregate function", None),
    ("SELECT vendor FROM trips WHERE fare > 1 OR fare IN (SELECT fare FROM trips)",
     UnsupportedError, "unsupported at line 1, col 44: IN (subquery) here: only as a condition "
     "of WHERE on its own or joined to others by AND", None),
    ("SELECT vendor FROM trips OFFSET 1", UnsupportedError,
     "unsupported at line 1, col 33: OFFSET without LIMIT (add LIMIT n)", None),
    ("SELECT vendor FROM trips\n  WHERE fare > 1 AND NO_SUCH(vendor) = 'Y1'", UnsupportedError,
     "unsupported at line 2, col 22: cannot tell the type of NO_SUCH(\"trips.vendor\") in "
     "WHERE; CAST it to a type",
     "    WHERE fare > 1 AND NO_SUCH(vendor) = 'Y1'\n                       ^"),
    ("SELECT vendor FROM trips WHERE fare", SchemaError,
     "SQL schema error at line 1, col 32: WHERE condition is decimal(10,2), not a boolean", None),
    ("SELECT t.vendor FROM trips t JOIN zones z ON t.zone < z.zone", UnsupportedError,
     "unsupported at line 1, col 46: join without an equality between the two sides (only "
     "equi-joins)", None),
    ("SELECT vendor FROM trips HAVING fare > 1", SchemaError,
     "SQL schema error at line 1, col 33: HAVING without GROUP BY or aggregates", None),
    ("SELECT vendor FROM trips WHERE pickup > 3", SchemaError,
     "SQL schema error at line 1, col 32: cannot compare date with int: \"trips.pickup\" > 3",
     None),
    ("SELECT 1 FROM trips; SELECT 2 FROM trips", UnsupportedError,
     "unsupported at line 1, col 29: 2 statements found; sqlmpc compiles exactly one query",
     None),
    ("SELECT CAST(fare AS BLOB) FROM trips", UnsupportedError,
     "unsupported at line 1, col 13: CAST to VARBINARY", None),
    ("", ParseError, "SQL parse error: empty SQL: no statement found", None),
]


@pytest.mark.parametrize("sql,cls,message,detail", ERRORS,
                         ids=[f"e{i}" for i in range(len(ERRORS))])
def test_error_message_and_position(sql, cls, message, detail, catalog):
    with pytest.raises(SqlError) as info:
        lower_sql(sql, catalog)
    err = info.value
    assert type(err) is cls
    assert str(err) == message
    if detail is not None:
        assert err.detail() == detail
    if err.line is not None:  # the caret sits under the reported column
        caret = err.detail().splitlines()[1]
        assert caret.index("^") - 2 == err.col - 1


def test_delete_is_rejected_as_not_a_query(catalog):
    with pytest.raises(UnsupportedError, match="DELETE statement: sqlmpc compiles queries "
                                               r"\(SELECT\) only"):
        lower_sql("DELETE FROM trips", catalog)


def test_parse_error_has_a_position(catalog):
    with pytest.raises(ParseError) as info:
        lower_sql("SELECT vendor FROM trips WHERE", catalog)
    assert (info.value.line, info.value.col) == (1, 26)
    assert str(info.value).startswith("SQL parse error at line 1, col 26: ")


def test_order_by_position_out_of_range_has_a_position(catalog):
    with pytest.raises(SchemaError) as info:
        lower_sql("SELECT vendor FROM trips ORDER BY 3", catalog)
    assert info.value.line == 1


# --- the type rules cover what the front end lets through -------------------------------------
STRUCTURAL = (exp.Identifier, exp.Star, exp.Distinct, exp.Tuple, exp.DataType, exp.DataTypeParam)


def test_every_allowed_value_construct_has_a_type_rule():
    """A construct row expressions may contain has a type rule (else it would pass the
    construct check and then fail type inference as 'unsupported')."""
    untyped = [cls.__name__ for cls in ALLOWED_EXPRESSIONS
               if cls not in STRUCTURAL and cls not in TYPE_RULES]
    assert untyped == []


def test_a_subclass_is_typed_by_its_base_class_rule(catalog):
    """sqlglot's TryCast is a Cast: the type rules look a node's classes up most specific first,
    so it is typed like CAST."""
    assert result_types("SELECT TRY_CAST(zone AS FLOAT) AS f FROM yellow.trips", catalog) == {
        "f": "float"}
