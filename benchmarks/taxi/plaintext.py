"""The insecure baseline: the query's very SQL over the union of every party's file, on the
same engine as the parties (one Spark job, or one embedded DuckDB connection).

    python -m benchmarks.taxi.plaintext CATALOG [--engine spark|duckdb] [--remote sc://...]

runs it once in its own process (the cold phase) and prints {"hhi": ...} as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import ENGINES, QUERY
from .data import catalog_files
from .servers import SPARK_CONF


def spark_inputs(catalog: Path, sql: str, folder: Path) -> list[dict]:
    """What sqlmpc's generated Spark local job for `sql` reads (its first party's INPUTS: the
    columns the query needs, their types), so the plaintext job reads the files the same way
    (schema from the Parquet footer, the query in one Spark Connect round trip)."""
    import importlib.util

    import sqlmpc
    from sqlmpc.backends import local_engine

    plan = sqlmpc.compile_sql(sql, catalog, engine="spark")
    job = next(iter(plan.local_jobs.values()))
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / "plaintext_reader.py"
    program.write_text(local_engine("spark").render(job).text)
    spec = importlib.util.spec_from_file_location("taxi_hhi_plaintext_reader", program)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines the job's data; runs nothing (no __main__)
    return module.INPUTS


def spark_hhi(spark, files: list[str], sql: str, inputs: list[dict]) -> float:
    """The insecure computation on Spark: the same SQL over the union of every party's file,
    read with the functions of the parties' own jobs (sqlmpc.backends.spark.jobkit)."""
    from sqlmpc.backends.spark import jobkit

    part = dict(inputs[0], path=files[0])  # the columns the query reads
    footer = jobkit.local_parquet_schema(part)
    schema = footer and jobkit.read_schema(footer, part)
    trips = (spark.read.schema(schema) if schema else spark.read).parquet(*files)
    rows = jobkit.query_frame(spark, sql, {"trips": trips}).collect()
    return float(rows[0][0])


def duckdb_hhi(con, files: list[str], sql: str) -> float:
    """The insecure computation on DuckDB: the same SQL over a view of every party's file."""
    quoted = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    con.execute(f"CREATE OR REPLACE TEMP VIEW trips AS SELECT * FROM read_parquet([{quoted}])")
    return float(con.execute(sql).fetchone()[0])


def spark_session(remote: str | None):
    """A Spark Connect session on `remote`, else a local[*] Spark like the parties' own."""
    from pyspark.sql import SparkSession
    builder = SparkSession.builder
    if remote:
        return builder.remote(remote).getOrCreate()
    builder = builder.master("local[*]").appName("taxi_hhi plaintext")
    for k, v in SPARK_CONF.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def plaintext_job(catalog: Path, engine: str, remote: str | None = None) -> float:
    """The cold plaintext run: start the engine, compute the HHI, stop the engine."""
    sql = QUERY.read_text()
    files = catalog_files(catalog)
    if engine == "duckdb":
        import duckdb
        with duckdb.connect() as con:
            return duckdb_hhi(con, files, sql)
    spark = spark_session(remote)
    try:
        inputs = spark_inputs(catalog, sql, Path.cwd())  # the run's folder
        return spark_hhi(spark, files, sql, inputs)
    finally:
        spark.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.taxi.plaintext",
                                description="The taxi HHI in plaintext over every party's file.")
    p.add_argument("catalog", type=Path)
    p.add_argument("--engine", choices=ENGINES, default="spark")
    p.add_argument("--remote", default=None, help="a Spark Connect server (sc://HOST:PORT)")
    args = p.parse_args(argv)
    print(json.dumps({"hhi": plaintext_job(args.catalog, args.engine, args.remote)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
