"""The generated local job on Spark Connect, the way party agents run it (warm sessions).

Fast: the program's Parquet schema from the footer (read_schema), which spares the cluster a
schema-inference job per run. Slow: one Spark Connect server for the module; the sample job
(CSV and Parquet parts, several outputs) run through it matches DuckDB; a Parquet-only job
with a join of two views and a union (read with the footer's schema, the query in one round
trip) matches DuckDB; bad data reports the same one line as in local mode; and the query's
views never become temporary views of the session.
"""

from __future__ import annotations

import os
import shutil
import types
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlmpc.runtime.engines.duckdb import run_local_job as run_duckdb
from sqlmpc.backends.spark import render_local_job
from sqlmpc.runtime.engines.spark import run_local_job
from sqlmpc.compiler.errors import DataError
from sqlmpc.compiler.ir.plan import LocalJob, PartInput
from test_duckdb_backend import check_sample, output, rows, sample_job, write_data

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="Java is not installed")


def program_module(job: LocalJob) -> types.ModuleType:
    """The generated program, loaded as a module (not run)."""
    module = types.ModuleType("local_job_under_test")
    exec(compile(render_local_job(job), "local_job.py", "exec"), module.__dict__)
    return module


def parquet_job(root: Path) -> LocalJob:
    """Two Parquet parts of one party (ints, doubles, text, a categorical, dates): a join of the
    two views, a union and a group-by."""
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        "K": pa.array([1, 2, 3, 4, 5], pa.int64()),
        "amount": pa.array([10.5, 0.0, -3.25, 7.0, 100.0]),
        "zone": pa.array(["a", "b", "a", "c", "b"]).dictionary_encode(),
        "day": pa.array([0, 1, 2, 3, 4], pa.int32()).cast(pa.date32()),
        "small": pa.array([1, 2, 3, 4, 5], pa.int16()),
        "unused_ts": pa.array([0, 1, 2, 3, 4], pa.timestamp("ns")),
    }), root / "trips.parquet")
    pq.write_table(pa.table({"zone": ["a", "b", "c"], "borough": ["X", "Y", "X"]}),
                   root / "zones.parquet")
    trips = PartInput("p_trips", "trips", str(root / "trips.parquet"),
                      {"k": "int", "amount": "float", "zone": "text", "day": "date",
                       "small": "int"})
    zones = PartInput("p_zones", "zones", str(root / "zones.parquet"),
                      {"zone": "text", "borough": "text"})
    outputs = [
        output(1, "SELECT z.borough AS b, SUM(t.amount) AS s, COUNT(*) AS n FROM p_trips t "
                  "JOIN p_zones z ON t.zone = z.zone WHERE t.amount > 0 GROUP BY z.borough",
               [("b", "text"), ("s", "float"), ("n", "int")]),
        output(2, "SELECT k, day FROM p_trips WHERE small > 3 UNION ALL "
                  "SELECT small AS k, day FROM p_trips WHERE k = 1",
               [("k", "int"), ("day", "date")]),
    ]
    return LocalJob("p", [trips, zones], outputs)


# --- fast: the schema from the footer -------------------------------------------------------

def test_read_schema_names_only_the_catalog_columns_as_spark_infers_them(tmp_path):
    job = parquet_job(tmp_path)
    program = program_module(job)
    part = program.INPUTS[0]
    footer = program.local_parquet_schema(part)
    assert program.read_schema(footer, part) == (
        "`K` bigint, `amount` double, `zone` string, `day` date, `small` smallint")
    # a column the file lacks, or of a type left to Spark: no schema, Spark infers it
    missing = dict(part, columns=part["columns"] + [("nope", "int", "bigint", None)])
    assert program.read_schema(footer, missing) is None
    stamped = dict(part, columns=[("unused_ts", "date", "date", None)])
    assert program.read_schema(footer, stamped) is None
    # a CSV or a remote path has no footer to read here
    assert program.local_parquet_schema(dict(part, format="csv")) is None
    assert program.local_parquet_schema(dict(part, path="hdfs://x/y.parquet")) is None


def test_spark_kind_sees_text_through_dictionaries():
    program = program_module(LocalJob("p", [], []))
    assert program.spark_kind(pa.dictionary(pa.int32(), pa.string())) == "string"
    assert program.spark_kind(pa.large_string()) == "string"
    assert program.spark_kind(pa.int64()) == "int64"


def test_footer_proves_a_domain_only_from_integer_row_group_ranges(tmp_path):
    path = tmp_path / "d.parquet"
    table = pa.table({
        "v": pa.array([1, 2, 2, 3, 5, 5, 4, 4], pa.int32()),  # row groups 1..2, 2..3, 4..5, 4..4
        "big": pa.array([1, 2, 2, 3, 5, 5, 4, 4], pa.int64()),
        "dec": pa.array([Decimal(v) for v in "12235544"], pa.decimal128(5, 1)),
        "day": pa.array([1, 2, 2, 3, 5, 5, 4, 4], pa.int32()).cast(pa.date32()),
        "txt": pa.array(list("abbceedd")),
    })
    pq.write_table(table, path, row_group_size=2)
    program = program_module(LocalJob("p", [], []))
    part = {"format": "parquet", "path": str(path)}
    proves = program.footer_proves_domain
    assert proves(part, "v", [1, 2, 3, 4, 5]) and proves(part, "big", [5, 4, 3, 2, 1, 0])
    assert not proves(part, "v", [1, 2, 3, 5])  # 4..4 and 4..5 hold an undeclared 4
    assert proves(part, "v", [1, 2, 3, 4, 5, 9])
    assert not proves(part, "v", [1, 2, 4, 5, 6])  # 2..3: 3 is not declared
    assert not proves(part, "dec", [1, 2, 3, 4, 5])  # decimals, dates, text: scanned
    assert not proves(part, "day", [1, 2, 3, 4, 5])
    assert not proves(part, "txt", ["a", "b", "c", "d", "e"])
    assert not proves(part, "v", [1.0, 2.0, 3.0, 4.0, 5.0]) and not proves(part, "v", [])
    assert not proves(dict(part, format="csv"), "v", [1, 2, 3, 4, 5])
    assert not proves(part, "nope", [1, 2, 3, 4, 5])
    assert program.local_parquet_metadata(part).num_rows == 8


# --- slow: a Spark Connect server ----------------------------------------------------------------

@pytest.fixture(autouse=True)
def local_mode_afterwards():
    """A Connect session marks the process as a Connect client (environment variables); the
    later tests start local-mode Spark, here and in subprocesses."""
    from sqlmpc.runtime.engines.spark import CONNECT_MODE_VARIABLES, restore_environment
    saved = {k: os.environ.get(k) for k in CONNECT_MODE_VARIABLES}
    yield
    restore_environment(saved)


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory):
    pytest.importorskip("grpc", reason="Spark Connect's client needs grpcio (pip install "
                                       "'.[connect]')")
    from benchmarks.taxi_hhi import ConnectServers, Processes
    procs = Processes()
    servers = ConnectServers(procs, ["test"], tmp_path_factory.mktemp("connect"))
    try:
        servers.start(timeout=300)
        yield servers.url("test")
    finally:
        servers.stop()


@pytest.mark.slow
@needs_java
def test_connect_runs_match_duckdb(connect_url, tmp_path):
    write_data(tmp_path)
    sample = sample_job(tmp_path)
    results = run_local_job(sample, workdir=tmp_path / "w1", remote=connect_url, timeout=600)
    # the in-process run leaves the caller in local mode (pyspark would mark it Connect-only)
    assert "SPARK_CONNECT_MODE_ENABLED" not in os.environ
    check_sample(results, sample)
    embedded = run_duckdb(sample)
    for node, frame in results.items():
        assert sorted(rows(frame), key=repr) == sorted(rows(embedded[node]), key=repr)
        assert list(frame.dtypes) == list(embedded[node].dtypes)

    job = parquet_job(tmp_path / "pq")
    results = run_local_job(job, workdir=tmp_path / "w2", remote=connect_url, timeout=600)
    embedded = run_duckdb(job)
    assert set(results) == {1, 2}
    for node, frame in results.items():
        assert len(frame) > 0
        assert sorted(rows(frame), key=repr) == sorted(rows(embedded[node]), key=repr)
        assert list(frame.dtypes) == list(embedded[node].dtypes)


@pytest.mark.slow
@needs_java
def test_connect_bad_data_is_one_line(connect_url, tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"k": [1, 2, 3], "d": ["2020-01-01", "2020-01-02", "2020-01-03"],
                             "v": [1.0, None, 3.0], "t": ["a", "b", "c"]}), path)
    job = LocalJob("acme", [PartInput("acme_t", "t", str(path),
                                      {"k": "int", "v": "float", "t": "text"})],
                   [output(7, "SELECT k, v, t FROM acme_t", [("k", "int"), ("v", "float"),
                                                             ("t", "text")])])
    with pytest.raises(DataError) as info:
        run_local_job(job, workdir=tmp_path / "work", remote=connect_url, timeout=600)
    assert str(info.value) == (f"party acme: data file {path}, row 2, column 'v': empty or NULL "
                               f"value; NULL values are not supported; clean the data or filter "
                               f"them out")


@pytest.mark.slow
@needs_java
def test_connect_query_does_not_register_views(connect_url, tmp_path):
    from pyspark.sql import SparkSession
    job = parquet_job(tmp_path)
    program = program_module(job)
    spark = SparkSession.builder.remote(connect_url).create()
    try:
        views = {part["view"]: program.load_part(spark, part) for part in program.INPUTS}
        frame = program.query_frame(spark, "SELECT COUNT(*) AS n FROM p_trips t JOIN p_zones z "
                                           "ON t.zone = z.zone", views)
        table = program.fetch_arrow(spark, frame)
        assert table.to_pylist() == [{"n": 5}]
        assert not spark.catalog.tableExists("p_trips")  # the views rode inside the plan
    finally:
        spark.stop()


@pytest.mark.slow
@needs_java
def test_connect_domain_check_on_parquet(connect_url, tmp_path):
    """The footer proves the domain (no scan) and the one-hot columns are right; a value outside
    it is found by the scan and reported with its row."""
    def job(values: list[int], name: str) -> LocalJob:
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"v": pa.array(values, pa.int64()),
                                 "x": pa.array([1.5] * len(values))}), path, row_group_size=3)
        part = PartInput("p_t", "t", str(path), {"v": "int", "x": "float"})
        part.domains = {"v": [1, 2, 3]}
        return LocalJob("p", [part], [output(1, "SELECT v, SUM(x) AS s FROM p_t GROUP BY v",
                                             [("v", "int"), ("s", "float")])])
    good = job([1, 2, 3, 3, 2, 1, 1], "good")
    (frame,) = run_local_job(good, workdir=tmp_path / "w1", remote=connect_url,
                             timeout=600).values()
    assert sorted(rows(frame)) == [(1, 4.5), (2, 3.0), (3, 3.0)]
    bad = job([1, 2, 3, 3, 2, 1, 1, 7], "bad")
    with pytest.raises(DataError) as info:
        run_local_job(bad, workdir=tmp_path / "w2", remote=connect_url, timeout=600)
    assert str(info.value) == (f"party p: data file {tmp_path / 'bad.parquet'}, row 8, column "
                               f"'v': value '7' is not one of the 3 values declared for it in "
                               f"[tables.t.domains] of the catalog")


@pytest.mark.slow
@needs_java
def test_lost_connect_server_fails_a_job_within_seconds(tmp_path):
    """pyspark retries a failed Connect call for at least 10 minutes by default; the local job
    bounds that, so a party whose Spark Connect server dies mid-query fails in seconds."""
    import argparse
    import time

    pytest.importorskip("grpc")
    from benchmarks.taxi_hhi import ConnectServers, Processes
    program = program_module(parquet_job(tmp_path / "pq"))
    servers = ConnectServers(Processes(), ["doomed"], tmp_path / "connect")
    try:
        servers.start(timeout=300)
        spark = program.start_spark(argparse.Namespace(remote=servers.url("doomed"),
                                                       master=None))
        assert [p.max_retries for p in spark.client.get_retry_policies()] == [
            program.CONNECT_RETRIES]
        assert spark.sql("SELECT 1 AS x").collect()[0].x == 1
    finally:
        servers.stop()
    t0 = time.perf_counter()
    with pytest.raises(Exception):
        spark.sql("SELECT 2 AS x").collect()
    assert time.perf_counter() - t0 < 60
