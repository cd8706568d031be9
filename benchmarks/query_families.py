"""End-to-end query families at scale: every party holds --rows rows per table.

    python -m benchmarks.query_families [--rows 2000] [--timeout 300] [--only NAME,...]
                                        [--engine duckdb|spark] [--json FILE]

The data sets are the differential tests' (sqlmpc.datasets.testdata: taxi with 3 companies,
medical with 2 hospitals + a helper, pay equity with 4 employers, one empty) grown to --rows
rows per party and table. Each query runs through `sqlmpc.run_sql` (every party its own
process, the secure part in MPyC with 3 compute parties) and through DuckDB in plaintext over
the union of all parts; the results must agree (tests' tolerance). Prints a table (query,
seconds, secure seconds, shared rows, status) and writes --json records
{query, rows, seconds, status}. A query that exceeds --timeout is reported as "timeout", and
the script exits non-zero if any query failed or disagreed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

QUERIES: dict[str, tuple[str, str, bool]] = {
    # name: (data set, SQL, ordered)
    "taxi-group-having": ("taxi", """SELECT vendor, SUM(fare) AS s, COUNT(*) AS n, AVG(distance) AS a
        FROM trips WHERE fare > 0 GROUP BY vendor HAVING COUNT(*) > 10""", False),
    "taxi-hhi": ("taxi", """WITH revenue AS (SELECT vendor, SUM(fare) AS rev FROM trips
        WHERE fare > 0 GROUP BY vendor)
        SELECT SUM((100.0 * rev / (SELECT SUM(rev) FROM revenue))
                 * (100.0 * rev / (SELECT SUM(rev) FROM revenue))) AS hhi FROM revenue""", False),
    "taxi-distinct-order-limit": ("taxi", """SELECT DISTINCT passengers, vendor FROM trips
        WHERE distance > 2 ORDER BY passengers DESC, vendor LIMIT 5""", True),
    "taxi-secret-group-by": ("taxi", """SELECT passengers, COUNT(*) AS n, MAX(fare) AS hi
        FROM trips GROUP BY passengers""", False),
    "medical-count-distinct": ("medical", """SELECT code, COUNT(DISTINCT patient_id) AS patients
        FROM diagnoses GROUP BY code""", False),
    "medical-cohort-join": ("medical", """SELECT COUNT(*) AS n FROM
        (SELECT DISTINCT patient_id FROM diagnoses WHERE code = 'I21') d
        JOIN (SELECT DISTINCT patient_id FROM medications WHERE drug = 'aspirin') m
        ON d.patient_id = m.patient_id""", False),
    "medical-long-text-group": ("medical", """SELECT drug, COUNT(*) AS n, SUM(dose) AS total
        FROM medications GROUP BY drug""", False),
    "pay-gender-gap": ("pay", """SELECT job_level,
        AVG(CASE WHEN gender = 'F' THEN salary END) AS f,
        AVG(CASE WHEN gender = 'M' THEN salary END) AS m, COUNT(*) AS n
        FROM pay GROUP BY job_level ORDER BY job_level""", True),
    "pay-stddev": ("pay", """SELECT ethnicity, STDDEV_SAMP(salary) AS sd, COUNT(*) AS n
        FROM pay GROUP BY ethnicity""", False),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2000, help="rows per party and table")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per query")
    ap.add_argument("--only", default="", help="comma-separated query names")
    ap.add_argument("--engine", default="duckdb", choices=("duckdb", "spark"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    import sqlmpc
    from sqlmpc.datasets.testdata import generate_all
    from sqlmpc.runtime.engines.reference import assert_same_result, duckdb_reference

    names = [n for n in args.only.split(",") if n] or list(QUERIES)
    unknown = [n for n in names if n not in QUERIES]
    if unknown:
        print(f"unknown query {unknown[0]!r}; choose from {', '.join(QUERIES)}", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="sqlmpc-families-"))
    catalogs = generate_all(root / "data", rows=args.rows)
    records, failed = [], 0
    print(f"{'query':28} {'rows/party':>10} {'seconds':>8} {'secure s':>8} {'shared':>7}  status",
          flush=True)
    for name in names:
        data, sql, ordered = QUERIES[name]
        stats = root / f"{name}.stats.json"
        t0 = time.perf_counter()
        status = "ok"
        try:
            df = sqlmpc.run_sql(sql, catalogs[data], engine=args.engine, quiet=True,
                                workdir=root / name, timeout=args.timeout, stats=stats)
            assert_same_result(df, duckdb_reference(catalogs[data], sql), ordered)
        except sqlmpc.SqlmpcError as e:
            status = "timeout" if "timed out" in str(e) or "timeout" in str(e) else f"error: {e}"
        except AssertionError as e:
            status = f"WRONG: {str(e).splitlines()[0]}"
        seconds = time.perf_counter() - t0
        doc = json.loads(stats.read_text()) if stats.exists() else {}
        secure = doc.get("seconds", {}).get("secure", float("nan"))
        shared = sum(doc.get("shared_rows", {}).values()) if doc else 0
        failed += status != "ok"
        print(f"{name:28} {args.rows:>10} {seconds:>8.1f} {secure:>8.1f} {shared:>7}  {status}",
              flush=True)
        records.append({"query": name, "rows": args.rows, "seconds": round(seconds, 2),
                        "secure_seconds": secure, "shared_rows": shared, "status": status})
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
