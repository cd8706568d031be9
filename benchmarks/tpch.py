"""The 22 TPC-H queries over a 3-party split, each timed and compared with DuckDB.

    python -m benchmarks.tpch [--scale 0.01] [--timeout 300] [--only 1,3,...] [--json FILE]

Data: sqlmpc.datasets.tpch at --scale (tpchgen-cli's rows, split by order key over shop0,
shop1, shop2; lineitem co-located with orders; customer, part/partsupp and supplier/nation/
region each held by one party), generated once into build/tpch-sf<scale>/. The query texts
are tests/fixtures/tpch/qNN.sql (TPC-H's, with its validation parameters). Each query runs
through `sqlmpc.run_sql` (every party its own process, the secure part in MPyC with 3 compute
parties) and through DuckDB in plaintext over the union of the parts (the baseline, timed in
the same run); the results must agree (the tests' tolerance; decimals compared as doubles:
inside MPC they are fixed-point numbers). Prints one line per query (seconds, secure seconds,
rows shared into MPC, DuckDB seconds, status) and a summary: how many gave DuckDB's answer
within --timeout. Exits non-zero if any query failed, disagreed or timed out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ROOT / "tests" / "fixtures" / "tpch"


def _parse_only(text: str) -> list[int]:
    try:
        chosen = [int(q) for q in text.split(",") if q.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--only takes query numbers 1-22, got {text!r}")
    bad = [q for q in chosen if not 1 <= q <= 22]
    if bad:
        raise argparse.ArgumentTypeError(f"no TPC-H query {bad[0]} (1-22)")
    return chosen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.01, help="TPC-H scale factor (1 = 1 GB)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per query")
    ap.add_argument("--only", type=_parse_only, default=list(range(1, 23)),
                    help="comma-separated query numbers (default: all 22)")
    ap.add_argument("--json", type=Path, help="write one record per query here")
    args = ap.parse_args(argv)

    import duckdb

    import sqlmpc
    from sqlmpc.datasets.tpch import generate
    from sqlmpc.runtime.engines.reference import (assert_same_result, duckdb_reference,
                                                  reference_connection)

    data = ROOT / "build" / f"tpch-sf{args.scale:g}"
    catalog = data / "catalog.toml"
    if not catalog.exists():
        print(f"generating TPC-H at scale {args.scale:g} into {data} ...", flush=True)
        catalog = generate(args.scale, data)
    records, passed = [], 0
    print(f"{'query':5} {'seconds':>8} {'secure s':>8} {'shared':>8} {'duckdb s':>8}  status",
          flush=True)
    for q in args.only:
        sql = (QUERIES / f"q{q:02d}.sql").read_text()
        stats = data / "runs" / f"q{q:02d}.stats.json"
        stats.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        status = "ok"
        try:
            df = sqlmpc.run_sql(sql, catalog, quiet=True, workdir=data / "runs" / f"q{q:02d}",
                                timeout=args.timeout, stats=stats)
            seconds = time.perf_counter() - t0
            rows, types = duckdb_reference(catalog, sql)
            types = ["DOUBLE" if t.startswith("DECIMAL") else t for t in types]
            for c, t in zip(df.columns, types):
                if t == "DOUBLE":
                    df[c] = df[c].astype(float)
            import sqlglot
            ordered = sqlglot.parse_one(sql).args.get("order") is not None
            assert_same_result(df, (rows, types), ordered)
        except sqlmpc.SqlmpcError as e:
            seconds = time.perf_counter() - t0
            status = "timeout" if "timed out" in str(e) or "timeout" in str(e) else f"error: {e}"
        except AssertionError as e:
            status = f"WRONG: {str(e).splitlines()[0]}"
        con = reference_connection(catalog)
        t1 = time.perf_counter()
        try:
            con.sql(sql).fetchall()
        except duckdb.Error:
            pass
        plain = time.perf_counter() - t1
        doc = json.loads(stats.read_text()) if stats.exists() else {}
        secure = doc.get("seconds", {}).get("secure", float("nan"))
        shared = sum(doc.get("shared_rows", {}).values()) if doc else 0
        passed += status == "ok"
        print(f"q{q:02d}  {seconds:>8.1f} {secure:>8.1f} {shared:>8} {plain:>8.3f}  {status}",
              flush=True)
        records.append({"query": q, "scale": args.scale, "seconds": round(seconds, 2),
                        "secure_seconds": secure, "shared_rows": shared,
                        "duckdb_seconds": round(plain, 4), "status": status})
    print(f"{passed} of {len(args.only)} gave DuckDB's answer within {args.timeout:g} s each "
          f"(scale {args.scale:g}, 3 parties)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))
    return 0 if passed == len(args.only) else 1


if __name__ == "__main__":
    sys.exit(main())
