"""Analyst SQL beyond the basics: decorrelated subqueries, INTERSECT / EXCEPT, grouping sets,
OFFSET and window functions, compared with DuckDB over the union of all parts.

The slow tests run each query with `sqlmpc.run_sql` (every party its own OS process, local
jobs in DuckDB, the secure part in MPyC) on the generated data of tests/conftest.py (taxi: 3
parties, medical: 2 hospitals and the helper, pay: 4 employers); the fast tests compile and
explain the same queries, and check the refusals of what is not supported.
"""

from __future__ import annotations

import pytest

import sqlmpc
from sqlmpc.compiler.errors import SchemaError, UnsupportedError
from sqlmpc.compiler.ir.dag import Join, SemiJoin, Union


def case(data, sql, ordered=False, id=None):
    return pytest.param(data, sql, ordered, id=id)


CASES = [
    # --- decorrelated subqueries ------------------------------------------------------------
    case("medical", """SELECT patient_id FROM diagnoses d WHERE patient_id >
                       (SELECT COUNT(*) FROM medications m WHERE m.patient_id = d.patient_id)""",
         id="correlated-count-secure-outer-join"),
    case("medical", """SELECT patient_id, (SELECT MAX(dose) FROM medications m
                                           WHERE m.patient_id = d.patient_id) AS top
                       FROM diagnoses d""", id="correlated-scalar-in-select-outer-join"),
    case("medical", """SELECT m.patient_id, m.drug, m.dose FROM medications m
                       WHERE m.dose > (SELECT AVG(m2.dose) FROM medications m2
                                       WHERE m2.drug = m.drug)""",
         id="correlated-scalar-avg-per-drug"),
    case("pay", """SELECT p.gender, p.job_level, p.salary FROM pay p
                   WHERE p.salary >= (SELECT MAX(q.salary) FROM pay q
                                      WHERE q.job_level = p.job_level AND q.gender = p.gender)
                     AND p.tenure > 1""", id="correlated-scalar-max-two-keys"),
    case("medical", """SELECT d.patient_id, d.day FROM diagnoses d
                       WHERE EXISTS (SELECT 1 FROM diagnoses d2
                                     WHERE d2.patient_id = d.patient_id AND d2.day < d.day)""",
         id="exists-earlier-diagnosis"),
    case("medical", """SELECT d.patient_id, d.code FROM diagnoses d
                       WHERE NOT EXISTS (SELECT * FROM medications m
                                         WHERE m.patient_id = d.patient_id
                                           AND m.dose <> 10)""",
         id="not-exists-non-equality"),
    case("taxi", """SELECT t.vendor, t.passengers, COUNT(*) AS n FROM trips t
                    WHERE EXISTS (SELECT 1 FROM trips u WHERE u.vendor = t.vendor
                                    AND u.passengers <> t.passengers AND u.fare > 20)
                    GROUP BY t.vendor, t.passengers""", id="exists-neq-q21-shape"),
    case("medical", """SELECT patient_id, code FROM diagnoses d
                       WHERE patient_id IN (SELECT m.patient_id FROM medications m
                                            WHERE m.dose > 20)
                         AND day > (SELECT MIN(d2.day) FROM diagnoses d2
                                    WHERE d2.code = d.code)""",
         id="in-and-correlated-scalar"),
    case("medical", """SELECT patient_id, drug,
                              (SELECT COUNT(*) FROM hosp_a.diagnoses d
                               WHERE d.patient_id = m.patient_id) AS ndiag,
                              (SELECT MAX(d.day) FROM hosp_a.diagnoses d
                               WHERE d.patient_id = m.patient_id) AS last
                       FROM hosp_a.medications m""", id="correlated-select-list-local"),
    case("medical", """SELECT patient_id, code FROM hosp_b.diagnoses d
                       WHERE (SELECT COUNT(*) FROM hosp_b.medications m
                              WHERE m.patient_id = d.patient_id) = 0
                          OR 50 < (SELECT SUM(m.dose) FROM hosp_b.medications m
                                   WHERE m.patient_id = d.patient_id)""",
         id="correlated-count-and-or-local"),
    case("medical", """SELECT patient_id FROM diagnoses d
                       WHERE NOT EXISTS (SELECT 1 FROM medications m
                                         WHERE m.dose > 1000 AND m.patient_id < d.patient_id)""",
         id="not-exists-non-equality-without-keys-empty"),
    # SQL's three-valued OR inside MPC: TRUE OR NULL is TRUE (q.mn is NULL: no rows)
    case("medical", """SELECT d.patient_id FROM diagnoses d,
                         (SELECT MIN(patient_id) AS mn FROM medications WHERE dose > 1000) q
                       WHERE q.mn IS NULL OR q.mn < d.patient_id""",
         id="mpc-or-with-null-is-three-valued"),
    # --- INTERSECT / EXCEPT -----------------------------------------------------------------
    case("medical", """SELECT patient_id FROM hosp_a.diagnoses
                       INTERSECT SELECT patient_id FROM hosp_b.diagnoses""",
         id="intersect-psi-two-hospitals"),
    case("medical", """SELECT patient_id FROM hosp_a.medications
                       EXCEPT SELECT patient_id FROM hosp_b.medications""",
         id="except-two-hospitals"),
    case("taxi", """SELECT vendor, passengers FROM yellow.trips
                    INTERSECT SELECT vendor, passengers FROM green.trips
                    INTERSECT SELECT vendor, passengers FROM blue.trips""",
         id="intersect-three-parties-two-columns"),
    case("pay", """SELECT job_level, gender FROM emp1.pay
                   EXCEPT SELECT job_level, gender FROM emp2.pay ORDER BY 1, 2""",
         ordered=True, id="except-ordered-four-parties"),
    case("medical", """SELECT patient_id FROM hosp_a.diagnoses
                       INTERSECT SELECT patient_id FROM hosp_a.medications""",
         id="intersect-local-one-party"),
    # --- GROUPING SETS / ROLLUP / CUBE, OFFSET ----------------------------------------------
    case("taxi", """SELECT vendor, passengers, COUNT(*) AS n, SUM(fare) AS s FROM trips
                    GROUP BY ROLLUP (vendor, passengers)""", id="rollup-two-keys"),
    case("pay", """SELECT gender, job_level, COUNT(*) AS n, AVG(salary) AS a FROM pay
                   GROUP BY CUBE (gender, job_level)""", id="cube-two-keys"),
    case("medical", """SELECT code, drug, COUNT(*) AS n FROM diagnoses d
                       JOIN medications m ON d.patient_id = m.patient_id
                       GROUP BY GROUPING SETS ((code), (drug), ())""",
         id="grouping-sets-after-join"),
    case("taxi", """SELECT vendor, fare, pickup FROM trips
                    ORDER BY fare DESC, pickup, vendor, distance LIMIT 4 OFFSET 3""",
         ordered=True, id="order-limit-offset"),
    case("pay", """SELECT job_level, SUM(salary) AS s FROM pay GROUP BY job_level
                   ORDER BY job_level LIMIT 2 OFFSET 1""", ordered=True,
         id="group-limit-offset"),
    # --- window functions over one party's rows (its local job) ------------------------------
    case("taxi", """SELECT vendor, pickup, fare,
                           SUM(fare) OVER (PARTITION BY vendor ORDER BY pickup, fare
                                           ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS s3,
                           LAG(fare) OVER (PARTITION BY vendor ORDER BY pickup, fare) AS prev,
                           LEAD(fare, 2, 0) OVER (ORDER BY pickup, fare) AS next2,
                           RANK() OVER (ORDER BY passengers) AS r,
                           DENSE_RANK() OVER (ORDER BY passengers DESC) AS d,
                           AVG(distance) OVER (PARTITION BY vendor) AS a,
                           COUNT(*) OVER () AS n, MIN(fare) OVER (PARTITION BY passengers) AS lo
                    FROM green.trips""", id="windows-one-party"),
    case("medical", """SELECT patient_id, drug, dose FROM
                         (SELECT patient_id, drug, dose,
                                 ROW_NUMBER() OVER (PARTITION BY drug ORDER BY dose DESC,
                                                    patient_id) AS rn
                          FROM hosp_a.medications) q
                       WHERE rn <= 2""", id="windows-top-n-per-group"),
    case("taxi", """SELECT passengers, COUNT(*) AS n, SUM(fare) AS s FROM
                      (SELECT passengers, fare, ROW_NUMBER() OVER (PARTITION BY vendor
                                                                   ORDER BY fare DESC, pickup) AS rn
                       FROM yellow.trips) q
                    WHERE rn <= 4 GROUP BY passengers""",
         id="windows-local-then-mpc-aggregate"),
    case("pay", """SELECT job_level, SUM(salary) AS s,
                          RANK() OVER (ORDER BY SUM(salary) DESC) AS r
                   FROM emp2.pay GROUP BY job_level""", id="windows-over-groups"),
    # --- ranking windows over several parties' rows (in MPC) --------------------------------
    case("taxi", """SELECT * FROM
                      (SELECT vendor, fare, pickup,
                              ROW_NUMBER() OVER (PARTITION BY vendor
                                                 ORDER BY fare DESC, pickup) AS rn,
                              RANK() OVER (ORDER BY passengers) AS r,
                              DENSE_RANK() OVER (PARTITION BY vendor
                                                 ORDER BY passengers DESC) AS d
                       FROM trips) q
                    WHERE rn <= 3""", id="mpc-windows-top-n-three-parties"),
    case("medical", """SELECT patient_id, day, code FROM
                         (SELECT patient_id, day, code,
                                 ROW_NUMBER() OVER (PARTITION BY patient_id
                                                    ORDER BY day, code) AS k
                          FROM diagnoses) q
                       WHERE k = 1""", id="mpc-windows-first-diagnosis-two-hospitals"),
    # one ordering per query: identical rows (the data has some) tie, and two windows that
    # each tell them apart could pair their values either way
    case("medical", """SELECT patient_id, day, code,
                              LAG(day) OVER (PARTITION BY patient_id ORDER BY day, code) AS pd,
                              LAG(code) OVER (PARTITION BY patient_id ORDER BY day, code) AS pc,
                              LAG(patient_id, 2, -1) OVER (PARTITION BY patient_id
                                                           ORDER BY day, code) AS p2
                       FROM diagnoses""", id="mpc-windows-lag-text-date-default"),
    case("taxi", """SELECT vendor, pickup, fare,
                           SUM(fare) OVER (PARTITION BY vendor ORDER BY pickup) AS running,
                           COUNT(*) OVER (PARTITION BY vendor) AS n,
                           AVG(distance) OVER (PARTITION BY vendor) AS a,
                           MIN(fare) OVER (PARTITION BY vendor ORDER BY pickup) AS lo,
                           MAX(pickup) OVER (PARTITION BY passengers) AS last,
                           SUM(passengers) OVER (PARTITION BY vendor ORDER BY pickup, fare,
                                                 distance ROWS BETWEEN UNBOUNDED PRECEDING
                                                 AND CURRENT ROW) AS rp
                    FROM trips WHERE passengers > 2""", id="mpc-windows-sum-count-avg-min-max"),
    case("taxi", """SELECT vendor, fare, pickup,
                           LEAD(fare) OVER (PARTITION BY vendor ORDER BY pickup, fare,
                                                                 distance) AS next_fare
                    FROM trips WHERE passengers > 2""", id="mpc-windows-lead-three-parties"),
    # --- MEDIAN / PERCENTILE over one party's rows, then combined ----------------------------
    case("taxi", """SELECT vendor, MEDIAN(fare) AS m, COUNT(*) AS n,
                           PERCENTILE_CONT(0.25) WITHIN GROUP (ORDER BY distance) AS p25,
                           PERCENTILE_DISC(0.75) WITHIN GROUP (ORDER BY passengers) AS p75
                    FROM yellow.trips GROUP BY vendor""", id="median-percentiles-one-party"),
    case("pay", """SELECT job_level, MEDIAN(salary) AS m FROM emp1.pay GROUP BY job_level
                   HAVING MEDIAN(salary) > 1000 ORDER BY job_level""", ordered=True,
         id="median-having-order"),
    case("taxi", """SELECT MEDIAN(fare) AS m, COUNT(*) AS n,
                           PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY distance) AS p90,
                           PERCENTILE_DISC(0.25) WITHIN GROUP (ORDER BY passengers) AS p25
                    FROM trips""", id="mpc-median-percentiles-three-parties"),
    case("pay", """SELECT MEDIAN(salary) AS m FROM pay WHERE job_level > 1""",
         id="mpc-median-four-parties"),
]


@pytest.mark.slow
@pytest.mark.parametrize("data, sql, ordered", CASES)
def test_matches_duckdb(datasets, reference, same_result, data, sql, ordered, tmp_path):
    catalog = datasets[data]
    result = sqlmpc.run_sql(sql, catalog, engine="duckdb", quiet=True, workdir=tmp_path)
    same_result(result, reference(catalog, sql), ordered)


@pytest.mark.parametrize("data, sql, ordered", CASES)
def test_compiles_and_explains(datasets, data, sql, ordered):
    """Every query compiles and explains (fast: no parties)."""
    sqlmpc.compile_sql(sql, datasets[data])
    assert "What is revealed" in sqlmpc.explain_sql(sql, datasets[data])


def query(case_id):
    """The SQL of the case of CASES with this id."""
    return next(c.values[1] for c in CASES if c.id == case_id)


def _ops(sql, catalog):
    dag = sqlmpc.compile_sql(sql, catalog).dag
    return [dag.op(n) for n in dag.g]


def test_correlated_scalar_becomes_a_join_with_grouped_rows(datasets):
    ops = _ops(query("correlated-scalar-avg-per-drug"), datasets["medical"])
    joins = [op for op in ops if isinstance(op, Join)]
    assert len(joins) == 1 and len(joins[0].left_keys) == 1
    assert not any(isinstance(op, SemiJoin) for op in ops)


def test_not_exists_with_non_equality_is_an_anti_join_plus_a_filtered_join(datasets):
    ops = _ops(query("not-exists-non-equality"), datasets["medical"])
    assert any(isinstance(op, SemiJoin) and op.anti for op in ops)
    assert any(isinstance(op, Union) for op in ops)


def test_intersect_is_a_null_safe_semi_join(datasets):
    ops = _ops(query("intersect-psi-two-hospitals"), datasets["medical"])
    semis = [op for op in ops if isinstance(op, SemiJoin)]
    assert len(semis) == 1 and semis[0].null_safe and not semis[0].anti
    plan = sqlmpc.compile_sql(query("intersect-local-one-party"), datasets["medical"])
    (out,) = plan.local_jobs["hosp_a"].outputs  # one hospital's rows: its local job does it
    assert "IS NOT DISTINCT FROM" in out.sql_in("duckdb")
    assert "<=>" in out.sql_in("spark") or "IS NOT DISTINCT FROM" in out.sql_in("spark")


def test_offset_reaches_the_local_query(datasets):
    plan = sqlmpc.compile_sql("SELECT vendor, fare FROM yellow.trips ORDER BY fare, vendor "
                              "LIMIT 2 OFFSET 5", datasets["taxi"])
    assert "OFFSET 5" in plan.local_jobs["yellow"].outputs[0].sql_in("duckdb").upper()


REFUSED = [
    ("SELECT patient_id FROM diagnoses INTERSECT ALL SELECT patient_id FROM medications",
     UnsupportedError, "INTERSECT ALL"),
    ("SELECT patient_id FROM diagnoses EXCEPT SELECT patient_id, drug FROM medications",
     SchemaError, "EXCEPT of 1 and 2 columns"),
    ("SELECT patient_id FROM diagnoses EXCEPT SELECT drug FROM medications",
     SchemaError, "EXCEPT column"),
    ("SELECT patient_id FROM diagnoses d WHERE day > (SELECT COUNT(*) FROM medications m "
     "WHERE m.patient_id = d.patient_id)", SchemaError, "cannot compare date with int"),
    ("SELECT patient_id FROM diagnoses d WHERE EXISTS (SELECT 1 FROM medications m WHERE "
     "m.patient_id < d.patient_id AND m.dose > d.patient_id)", UnsupportedError,
     "a second correlation condition"),
    ("SELECT patient_id FROM diagnoses d WHERE patient_id NOT IN (SELECT m.patient_id FROM "
     "medications m WHERE m.dose <> d.patient_id)", UnsupportedError, "NOT IN with a "
                                                                     "correlation"),
    ("SELECT code, GROUPING(code) FROM diagnoses GROUP BY ROLLUP (code)", UnsupportedError,
     "GROUPING()"),
    ("SELECT patient_id FROM diagnoses OFFSET 2", UnsupportedError, "OFFSET without LIMIT"),
    ("SELECT patient_id, NTILE(3) OVER (ORDER BY day) FROM diagnoses", UnsupportedError,
     "window function NTILE over rows of several parties: not available inside MPC yet"),
    ("SELECT patient_id, SUM(patient_id) OVER (ORDER BY day ROWS BETWEEN 1 PRECEDING AND "
     "CURRENT ROW) FROM diagnoses", UnsupportedError,
     "the frame of an aggregate OVER is the default or from UNBOUNDED PRECEDING"),
    ("SELECT patient_id, LAG(day, 20) OVER (ORDER BY day) FROM diagnoses", UnsupportedError,
     "the LAG / LEAD offset is a whole number from 1 to 16"),
    ("SELECT patient_id, LAG(code, 1, 'none') OVER (ORDER BY day) FROM diagnoses",
     UnsupportedError, "the LAG / LEAD default is a number"),
    ("SELECT patient_id, ROW_NUMBER() OVER (ORDER BY day ROWS BETWEEN 1 PRECEDING AND "
     "CURRENT ROW) FROM diagnoses", UnsupportedError, "a window frame is not available"),
    ("SELECT patient_id, RANK() OVER (ORDER BY patient_id + 1) FROM diagnoses",
     UnsupportedError, "the PARTITION BY and ORDER BY keys must be columns"),
    ("SELECT patient_id FROM diagnoses HAVING SUM(patient_id) OVER () > 1", UnsupportedError,
     "window function in HAVING"),
    ("SELECT NTH_VALUE(day, 2) OVER (ORDER BY day) FROM hosp_a.diagnoses", UnsupportedError,
     "window function NTH_VALUE"),
    ("SELECT patient_id, PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY code) FROM diagnoses "
     "GROUP BY patient_id", UnsupportedError, "PERCENTILE_DISC over rows of several parties"),
    ("SELECT PERCENTILE_CONT(2) WITHIN GROUP (ORDER BY dose) FROM hosp_a.medications",
     UnsupportedError, "PERCENTILE_CONT fraction other than a number between 0 and 1"),
    ("SELECT patient_id, MAX(code) OVER (PARTITION BY day) FROM diagnoses", UnsupportedError,
     "inside MPC MIN / MAX OVER, MEDIAN and PERCENTILE of a number or date"),
    ("SELECT drug, MEDIAN(dose) FROM hosp_a.medications GROUP BY ROLLUP (drug)",
     UnsupportedError, "MEDIAN / PERCENTILE with GROUPING SETS"),
]


@pytest.mark.parametrize("sql, cls, message", REFUSED)
def test_refusals_name_the_construct_and_position(datasets, sql, cls, message):
    with pytest.raises(cls) as info:
        sqlmpc.compile_sql(sql, datasets["medical"])
    text = str(info.value)
    assert message in text and "line 1, col " in text and "\n" not in text
