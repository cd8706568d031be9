"""Differential tests: sqlmpc's multi-party result == DuckDB over the union of all parts.

Every query runs through `sqlmpc.run_sql` (every party its own OS process, local jobs in DuckDB,
the secure part in MPyC) and through plain DuckDB over one view per logical table (UNION ALL of
its parts, typed as in the catalog) plus `party.table` views. Integers and decimals (rounded to
their scale) are compared exactly; floats within 1e-6 relative (1e-6 absolute near zero), the
precision of the secure fixed-point type (32 fractional bits) after a few operations. Results
without ORDER BY are compared as sorted row lists.

Data: sqlmpc.datasets.testdata (taxi: 3 companies; medical: 2 hospitals + the helper the
compiler adds; pay: 4 employers, one with an empty part). All small: every row that enters MPC
costs time.
"""

from __future__ import annotations

import pytest

import sqlmpc

def case(data, sql, ordered=False, marks=(), id=None):
    return pytest.param(data, sql, ordered, marks=marks, id=id)


CASES = [
    # --- taxi: 3 companies ------------------------------------------------------------------
    case("taxi", """SELECT vendor, fare, passengers FROM trips
                    WHERE (passengers >= 4 AND fare > 10) OR (vendor = 'VTS' AND NOT distance < 3)""",
         id="taxi-filter-and-or-not"),
    case("taxi", """SELECT vendor, distance, pickup FROM trips
                    WHERE vendor IN ('CMT', 'VTS') AND distance BETWEEN 1 AND 2.5""",
         id="taxi-in-between"),
    case("taxi", """SELECT COUNT(*) AS n, SUM(passengers) AS p FROM trips
                    WHERE vendor IS NOT NULL AND NOT (fare IS NULL) AND passengers > 3""",
         id="taxi-is-null"),
    case("taxi", """SELECT CASE WHEN distance < 1 THEN 'short' WHEN distance < 3 THEN 'mid'
                           ELSE 'long' END AS bucket, COUNT(*) AS n, SUM(fare) AS s
                    FROM trips GROUP BY 1""", id="taxi-case-group"),
    case("taxi", """SELECT SUM(CAST(passengers AS double) * 1.5) AS p,
                           SUM(CAST(distance AS decimal(10,2))) AS d FROM trips""",
         id="taxi-cast"),
    case("taxi", """SELECT COUNT(*) AS n, SUM(fare) AS s FROM trips
                    WHERE pickup >= DATE '2024-03-10' AND pickup < CAST('2024-03-20' AS DATE)""",
         id="taxi-date-range"),
    case("taxi", """SELECT vendor, fare * 2 - 1 AS f2, distance / 2 AS half, passengers + 10 AS p
                    FROM trips WHERE passengers = 6""", id="taxi-arithmetic"),
    case("taxi", """SELECT vendor, SUM(fare) AS s, COUNT(*) AS n, AVG(distance) AS a,
                           MIN(fare) AS lo, MAX(fare) AS hi
                    FROM trips GROUP BY vendor""", id="taxi-group-one-key"),
    case("taxi", """SELECT vendor, passengers, COUNT(*) AS n, SUM(fare) AS s
                    FROM trips WHERE fare > 9 GROUP BY vendor, passengers""",
         id="taxi-group-two-keys"),
    case("taxi", """SELECT vendor, SUM(fare) AS s FROM trips GROUP BY vendor
                    HAVING COUNT(*) > 12""", id="taxi-having"),
    case("taxi", """SELECT COUNT(DISTINCT vendor) AS v, COUNT(DISTINCT passengers) AS p,
                           COUNT(passengers) AS c FROM trips""", id="taxi-count-distinct"),
    case("taxi", "SELECT STDDEV(fare) AS sd, VARIANCE(distance) AS var FROM trips",
         id="taxi-stddev-variance"),
    case("taxi", "SELECT DISTINCT vendor, passengers FROM trips WHERE passengers <= 2",
         id="taxi-distinct"),
    case("taxi", """SELECT vendor, fare, pickup FROM trips WHERE passengers >= 4
                    ORDER BY fare DESC, pickup, vendor LIMIT 5""", ordered=True,
         id="taxi-order-limit"),
    case("taxi", """SELECT vendor, fare FROM yellow.trips WHERE fare > 15
                    UNION ALL SELECT vendor, fare FROM blue.trips WHERE fare < 0""",
         id="taxi-union-all-party-tables"),
    case("taxi", """SELECT vendor, MAX(s) AS best_day FROM
                      (SELECT vendor, pickup, SUM(fare) AS s FROM trips
                       WHERE pickup < DATE '2024-03-08' GROUP BY vendor, pickup) q
                    GROUP BY vendor""", id="taxi-subquery-from"),
    case("taxi", """WITH big AS (SELECT * FROM trips WHERE fare > 8)
                    SELECT passengers, COUNT(*) AS n FROM big GROUP BY passengers""",
         id="taxi-cte"),
    case("taxi", "SELECT COUNT(*) AS n FROM trips WHERE fare > (SELECT AVG(fare) FROM trips)",
         id="taxi-scalar-subquery"),
    case("taxi", "SELECT SUM(fare) AS s, COUNT(*) AS n, MAX(pickup) AS last FROM green.trips",
         id="taxi-party-table-local"),
    case("taxi", """WITH rev AS (SELECT vendor, SUM(fare) AS r FROM trips GROUP BY vendor),
                         tot AS (SELECT SUM(fare) AS t FROM trips)
                    SELECT SUM((r / t) * (r / t)) * 10000 AS hhi FROM rev, tot""",
         id="taxi-hhi"),
    # --- medical: 2 hospitals (+ helper) ------------------------------------------------------
    case("medical", """SELECT code, COUNT(*) AS n, COUNT(DISTINCT patient_id) AS patients
                       FROM diagnoses WHERE day < DATE '2023-05-01' GROUP BY code""",
         id="med-count-distinct-group"),
    case("medical", """SELECT COUNT(*) AS n FROM diagnoses
                       WHERE day BETWEEN DATE '2023-03-01' AND DATE '2023-06-30'
                         AND code <> 'I10'""", id="med-date-between"),
    case("medical", """SELECT m.drug, COUNT(*) AS n FROM diagnoses d
                       JOIN medications m ON d.patient_id = m.patient_id
                       WHERE d.code = 'E11' GROUP BY m.drug""", id="med-join-group"),
    case("medical", """SELECT COUNT(DISTINCT d.patient_id) AS patients FROM diagnoses d
                       JOIN medications m ON d.patient_id = m.patient_id
                       WHERE m.drug = 'aspirin' AND d.code IN ('I21', 'I10')""",
         id="med-join-cohort"),
    case("medical", """SELECT drug, AVG(dose) AS a, MIN(dose) AS lo, MAX(dose) AS hi,
                              SUM(dose) AS s FROM medications GROUP BY drug""",
         id="med-dose-stats"),
    case("medical", """SELECT patient_id, code FROM hosp_a.diagnoses WHERE code = 'C50'
                       UNION ALL
                       SELECT patient_id, code FROM hosp_b.diagnoses WHERE code = 'C50'""",
         id="med-union-all"),
    case("medical", """SELECT drug, SUM(dose) AS s FROM medications GROUP BY drug
                       HAVING SUM(dose) > (SELECT AVG(dose) FROM medications) * 3""",
         id="med-having-scalar-subquery"),
    case("medical", "SELECT DISTINCT patient_id FROM medications WHERE dose > 25",
         id="med-distinct"),
    case("medical", """SELECT patient_id, COUNT(*) AS n FROM diagnoses GROUP BY patient_id
                       ORDER BY n DESC, patient_id LIMIT 3""", ordered=True,
         id="med-order-limit"),
    # --- pay equity: 4 employers, one empty ---------------------------------------------------
    case("pay", """SELECT gender, ethnicity, job_level, COUNT(*) AS n, SUM(salary) AS total,
                          AVG(salary) AS mean
                   FROM pay GROUP BY gender, ethnicity, job_level""", id="pay-cells-three-keys"),
    case("pay", """SELECT gender, job_level, AVG(salary) AS mean FROM pay
                   GROUP BY gender, job_level HAVING COUNT(*) >= 3""", id="pay-having-min-cell"),
    case("pay", """SELECT gender, STDDEV(salary) AS sd, VARIANCE(tenure) AS vt
                   FROM pay GROUP BY gender""", id="pay-stddev-group"),
    case("pay", """SELECT job_level, COUNT(*) AS n FROM pay WHERE full_time AND tenure > 5
                   GROUP BY job_level ORDER BY job_level""", ordered=True,
         id="pay-bool-filter-order"),
    case("pay", """SELECT SUM(CASE WHEN gender = 'F' THEN salary ELSE 0 END) AS f,
                          SUM(CASE WHEN gender = 'M' THEN salary ELSE 0 END) AS m
                   FROM pay WHERE NOT full_time""", id="pay-case-sum-not"),
    case("pay", """SELECT job_level, gender, MAX(salary) AS top FROM pay
                   GROUP BY job_level, gender ORDER BY job_level DESC, gender LIMIT 4""",
         ordered=True, id="pay-group-order-limit"),
    case("pay", """SELECT MIN(tenure) AS lo, MAX(tenure) AS hi, COUNT(*) AS n FROM pay
                   WHERE job_level IN (1, 3)""", id="pay-minmax-in"),
    case("pay", """SELECT job_level, AVG(salary) / AVG(tenure + 1) AS ratio FROM pay
                   GROUP BY job_level""", id="pay-secret-division"),
    case("pay", """SELECT job_level, COUNT(DISTINCT ethnicity) AS groups FROM pay
                   GROUP BY job_level""", id="pay-count-distinct-group"),
    case("pay", "SELECT COUNT(*) AS n FROM emp4.pay", id="pay-empty-party"),
    # --- long texts and NULLs ----------------------------------------------------------------
    case("taxi", """SELECT CASE WHEN distance < 1 THEN 'short trip' ELSE 'long trip' END AS kind,
                           COUNT(*) AS n FROM trips GROUP BY 1""", id="taxi-long-text-key"),
    case("taxi", "SELECT SUM(fare) AS s, MAX(fare) AS m, COUNT(*) AS n FROM trips WHERE fare > 1e5",
         id="taxi-aggregates-of-no-rows"),
    case("taxi", """SELECT AVG(fare) AS a, COALESCE(SUM(fare), 0) AS s0, STDDEV_SAMP(fare) AS sd
                    FROM trips WHERE fare > 1e5""", id="taxi-avg-coalesce-of-no-rows"),
    case("pay", "SELECT SUM(salary) AS s, COUNT(*) AS n FROM emp4.pay",
         id="pay-sum-of-empty-part"),
    case("pay", "SELECT SUM(salary) AS s, MIN(tenure) AS t, COUNT(*) AS n FROM pay",
         id="pay-sum-with-an-empty-part"),
    case("medical", """SELECT drug, COUNT(*) AS n, STDDEV_SAMP(dose) AS sd FROM medications
                       WHERE dose > 30 GROUP BY drug""", id="medical-long-text-group-stddev-one-row"),
    case("medical", """SELECT m.drug, d.code, COUNT(*) AS n FROM diagnoses d
                       JOIN medications m ON d.patient_id = m.patient_id
                       WHERE m.drug <> 'insulin glargine' GROUP BY m.drug, d.code""",
         id="medical-long-text-join-filter"),
    case("medical", """SELECT drug, dose FROM medications
                       WHERE drug > 'atorvastatin' AND drug < 'insulin glargine!'
                       ORDER BY drug DESC, dose""", ordered=True,
         id="medical-long-text-order-compare"),
    case("medical", """SELECT DISTINCT CASE WHEN dose > 20 THEN drug ELSE 'low dose of anything'
                       END AS what FROM medications""", id="medical-long-text-case-distinct"),
    case("pay", """SELECT job_level, AVG(CASE WHEN gender = 'F' THEN salary END) AS f,
                          COUNT(CASE WHEN gender = 'M' THEN 1 END) AS m,
                          MAX(CASE WHEN full_time THEN tenure END) AS t
                   FROM pay GROUP BY job_level""", id="pay-case-without-else"),
    # x / 0: NULL in sqlmpc (as in Spark and sqlite; DuckDB gives inf/NaN for doubles), so the
    # query says NULLIF to be the same SQL everywhere
    case("pay", """SELECT gender, SUM(salary) / NULLIF(SUM(CASE WHEN tenure > 100 THEN 1 ELSE 0 END), 0)
                          AS per_veteran FROM pay GROUP BY gender""", id="pay-nullif-divisor"),
    case("pay", """SELECT gender, salary - 50000 AS above FROM pay
                   WHERE salary < 50000 OR tenure > 19""", id="pay-negative-projection"),
]


@pytest.mark.slow
@pytest.mark.parametrize("data, sql, ordered", CASES)
def test_matches_duckdb(datasets, reference, same_result, data, sql, ordered, tmp_path):
    catalog = datasets[data]
    result = sqlmpc.run_sql(sql, catalog, engine="duckdb", quiet=True, workdir=tmp_path)
    same_result(result, reference(catalog, sql), ordered)


# The same query with everything in MPC (--all-secure) gives the same result: these queries are
# also in CASES (the default plan == DuckDB there), so comparing the all-secure run with the same
# DuckDB reference compares the two plans. Smallest data, cheap secure parts.
ALL_SECURE_IDS = ["med-date-between", "med-dose-stats", "med-distinct", "med-union-all",
                  "med-order-limit", "pay-minmax-in", "pay-case-without-else",
                  "medical-long-text-case-distinct", "taxi-avg-coalesce-of-no-rows"]
ALL_SECURE = [p for p in CASES if p.id in ALL_SECURE_IDS]
assert len(ALL_SECURE) == len(ALL_SECURE_IDS)


@pytest.mark.slow
@pytest.mark.parametrize("data, sql, ordered", ALL_SECURE)
def test_all_secure_same_result(datasets, reference, same_result, data, sql, ordered, tmp_path):
    catalog = datasets[data]
    plan = sqlmpc.compile_sql(sql, catalog, all_secure=True)
    assert plan.needs_mpc
    secure = sqlmpc.run_sql(sql, catalog, engine="duckdb", all_secure=True, workdir=tmp_path)
    same_result(secure, reference(catalog, sql), ordered)


# Spark local mode (each party's job starts a JVM: ~10 s or more); 2 data owners keep it cheap.
SPARK = [
    case("medical", "SELECT drug, SUM(dose) AS s, COUNT(*) AS n FROM medications GROUP BY drug",
         id="med-group-sum"),
    case("medical", """SELECT code, COUNT(*) AS n FROM diagnoses
                       WHERE day >= DATE '2023-04-01' AND patient_id BETWEEN 105 AND 125
                       GROUP BY code""", id="med-date-filter-group"),
]


@pytest.mark.slow
@pytest.mark.parametrize("data, sql, ordered", SPARK)
def test_spark_engine(datasets, reference, same_result, data, sql, ordered, tmp_path):
    catalog = datasets[data]
    result = sqlmpc.run_sql(sql, catalog, engine="spark", workdir=tmp_path, timeout=300)
    same_result(result, reference(catalog, sql), ordered)


# --- fast checks of the harness itself (no parties) ---------------------------------------------
def test_generators_are_deterministic(tmp_path):
    from sqlmpc.datasets.testdata import generate_all
    a, b = generate_all(tmp_path / "a"), generate_all(tmp_path / "b")
    for name in a:
        files_a = sorted(p.relative_to(a[name].parent) for p in a[name].parent.rglob("*.csv"))
        files_b = sorted(p.relative_to(b[name].parent) for p in b[name].parent.rglob("*.csv"))
        assert files_a == files_b
        for f in files_a:
            assert (a[name].parent / f).read_bytes() == (b[name].parent / f).read_bytes()


def test_reference_views(datasets, reference):
    rows, types = reference(datasets["pay"], "SELECT COUNT(*) FROM pay")
    parts = [reference(datasets["pay"], f"SELECT COUNT(*) FROM {p}.pay")[0][0][0]
             for p in ("emp1", "emp2", "emp3", "emp4")]
    assert rows[0][0] == sum(parts) and parts[3] == 0  # emp4's part is empty
    _, types = reference(datasets["taxi"], "SELECT fare, distance, pickup FROM trips")
    assert types == ["DECIMAL(10,2)", "DOUBLE", "DATE"]


@pytest.mark.parametrize("data, sql, ordered",
                         [pytest.param(*c.values, id=c.id) for c in CASES])
def test_compiles(datasets, data, sql, ordered):
    """Every differential query compiles (fast: catches frontend regressions without parties)."""
    sqlmpc.compile_sql(sql, datasets[data])


MANY_TO_MANY = """SELECT d.code, m.drug, COUNT(*) AS n FROM diagnoses d
                  JOIN medications m ON d.patient_id = m.patient_id GROUP BY d.code, m.drug"""


@pytest.mark.slow
def test_join_bound_pads_the_many_to_many_join(datasets, reference, same_result, tmp_path):
    """--join-bound: the join's output is padded to the bound (only "M <= bound" is opened);
    the result is the same, and a bound below M stops the run with one clear error."""
    catalog = datasets["medical"]
    explained = sqlmpc.explain_sql(MANY_TO_MANY, catalog, join_bound=500)
    assert "whether the join on (patient_id) has at most 500 rows" in explained
    assert "the number of joined rows M" not in explained
    result = sqlmpc.run_sql(MANY_TO_MANY, catalog, engine="duckdb", join_bound=500,
                            workdir=tmp_path / "fits")
    same_result(result, reference(catalog, MANY_TO_MANY), False)
    with pytest.raises(sqlmpc.SqlmpcError, match="more joined rows than the bound"):
        sqlmpc.run_sql(MANY_TO_MANY, catalog, engine="duckdb", join_bound=5,
                       workdir=tmp_path / "too-small")
