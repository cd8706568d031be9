"""The generated local job on Spark Connect, the way party agents run it (warm sessions).

Fast: an unreachable server fails at once. Slow: one Spark Connect server for the module; the
sample job
(CSV and Parquet parts, several outputs) run through it matches DuckDB; a Parquet-only job
with a join of two views and a union (read with the footer's schema, the query in one round
trip) matches DuckDB; bad data reports the same one line as in local mode; and the query's
views never become temporary views of the session; a warm session (runtime/engines) runs
jobs one after another and reopens a session the server lost.
"""

from __future__ import annotations

import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlmpc.backends.spark import codegen, jobkit
from sqlmpc.compiler.errors import DataError, PartyError
from sqlmpc.compiler.ir.plan import LocalJob, PartInput
from sqlmpc.runtime.engines import open_engine
from sqlmpc.runtime.engines.duckdb import run_local_job as run_duckdb
from sqlmpc.runtime.engines.spark import run_local_job
from test_duckdb_backend import check_sample, output, rows, sample_job, write_data
from test_spark_jobkit import parquet_job

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="Java is not installed")


# --- slow: a Spark Connect server ----------------------------------------------------------------

@pytest.fixture(autouse=True)
def local_mode_afterwards():
    """A Connect session marks the process as a Connect client (environment variables); the
    later tests start local-mode Spark, here and in subprocesses."""
    from sqlmpc.runtime.engines.session import CONNECT_MODE_VARIABLES, restore_environment
    saved = {k: os.environ.get(k) for k in CONNECT_MODE_VARIABLES}
    yield
    restore_environment(saved)


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory):
    pytest.importorskip("grpc", reason="Spark Connect's client needs grpcio (pip install "
                                       "'.[connect]')")
    from benchmarks.taxi.processes import Processes
    from benchmarks.taxi.servers import ConnectServers
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
    inputs, _ = codegen.program_values(parquet_job(tmp_path))
    spark = SparkSession.builder.remote(connect_url).create()
    try:
        views = {part["view"]: jobkit.load_part(spark, "p", part) for part in inputs}
        frame = jobkit.query_frame(spark, "SELECT COUNT(*) AS n FROM p_trips t JOIN p_zones z "
                                          "ON t.zone = z.zone", views)
        table = jobkit.fetch_arrow(spark, frame)
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
    import time

    pytest.importorskip("grpc")
    from benchmarks.taxi.processes import Processes
    from benchmarks.taxi.servers import ConnectServers
    servers = ConnectServers(Processes(), ["doomed"], tmp_path / "connect")
    try:
        servers.start(timeout=300)
        spark = jobkit.start_spark("p", remote=servers.url("doomed"))
        assert [p.max_retries for p in spark.client.get_retry_policies()] == [
            jobkit.CONNECT_RETRIES]
        assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
        assert spark.sql("SELECT 1 AS x").collect()[0].x == 1
    finally:
        servers.stop()
    t0 = time.perf_counter()
    try:
        with pytest.raises(Exception, match="RETRIES_EXCEEDED|UNAVAILABLE|onnect"):
            spark.sql("SELECT 2 AS x").collect()
        assert time.perf_counter() - t0 < 60
    finally:
        jobkit.stop_quietly(spark)  # pyspark would keep it as the process's active session


@pytest.mark.slow
@needs_java
def test_warm_session_runs_jobs_and_reopens_a_lost_session(connect_url, tmp_path):
    """A party agent's warm Spark Connect session: jobs run in it, one after another; a
    session the server lost is opened again and the job retried once; bad data is one line."""
    job = parquet_job(tmp_path / "pq")
    program = tmp_path / "local_job_p.py"
    program.write_text(codegen.render_local_job(job))
    session = open_engine("spark", "p", {"spark_master": connect_url}, workdir=tmp_path,
                          warm=True)
    try:
        first = session.run(job, program, tmp_path / "q1")
        embedded = run_duckdb(job)
        for node, frame in first.items():
            assert sorted(rows(frame), key=repr) == sorted(rows(embedded[node]), key=repr)
        lost = session.spark
        lost.client.release_session()  # the server forgets it (as after a restart)
        again = session.run(job, program, tmp_path / "q2")
        assert session.spark is not lost
        assert {n: rows(f) for n, f in again.items()} == {n: rows(f) for n, f in first.items()}
        bad = tmp_path / "bad.parquet"
        pq.write_table(pa.table({"k": [1, None]}), bad)
        bad_job = LocalJob("p", [PartInput("p_t", "t", str(bad), {"k": "int"})],
                           [output(1, "SELECT k FROM p_t", [("k", "int")])])
        bad_program = tmp_path / "bad_job.py"
        bad_program.write_text(codegen.render_local_job(bad_job))
        with pytest.raises(DataError, match=r"row 2, column 'k': empty or NULL value"):
            session.run(bad_job, bad_program, tmp_path / "q3")
        session.interrupt()  # nothing runs: nothing to stop
    finally:
        session.close()
    assert session.spark is None


def test_unreachable_connect_server_is_a_party_error_at_once(tmp_path):
    import socket
    import time

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(PartyError, match=f"^party p: cannot reach Spark at sc://127.0.0.1:{port}"):
        open_engine("spark", "p", {"spark_master": f"sc://127.0.0.1:{port}"},
                    workdir=tmp_path, warm=True)
    assert time.perf_counter() - t0 < 10
