"""The Spark backend: the generated program run by the runner (slow: each run starts a JVM).

Spark starts once for the results (one job with several outputs) and once per bad-data case
that needs Spark's own checks; missing files, missing columns and unreachable clusters fail
before Spark starts and are fast.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlmpc.backends.spark import render_local_job
from sqlmpc.compiler.errors import DataError, PartyError
from sqlmpc.compiler.ir.plan import PartInput
from sqlmpc.runtime.engines.duckdb import run_local_job as run_duckdb
from sqlmpc.runtime.engines.spark import run_local_job
from test_duckdb_backend import check_sample, one_csv_job, output, rows, sample_job, write_data

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="Java is not installed")


@pytest.fixture(scope="module")
def spark_run(tmp_path_factory: pytest.TempPathFactory):
    """The sample job plus a header-only CSV, run once with local Spark."""
    root = tmp_path_factory.mktemp("spark")
    write_data(root)
    job = sample_job(root)
    (root / "empty.csv").write_text("k,name\n")
    job.inputs.append(PartInput("yellow_empty", "e", str(root / "empty.csv"), {"k": "int"}))
    job.outputs.append(output(6, "SELECT k, k + 1 AS k1 FROM yellow_empty",
                              [("k", "int"), ("k1", "int")]))
    start = time.monotonic()
    results = run_local_job(job, workdir=root / "work", timeout=600)
    return job, results, time.monotonic() - start, root


@pytest.mark.slow
@needs_java
def test_spark_results_match_duckdb(spark_run) -> None:
    job, results, seconds, root = spark_run
    print(f"local Spark job: {seconds:.1f} s")
    job.outputs = [o for o in job.outputs if o.node != 6]
    empty = results.pop(6)
    assert len(empty) == 0 and list(empty.columns) == ["k", "k1"]
    check_sample(results, job)
    embedded = run_duckdb(job)
    for node, frame in results.items():
        assert sorted(rows(frame), key=repr) == sorted(rows(embedded[node]), key=repr)
        assert list(frame.dtypes) == list(embedded[node].dtypes)
    assert (root / "work" / "local_job_yellow.py").exists()


@pytest.mark.slow
@needs_java
def test_spark_bad_date_in_csv(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("k,d,v,t\n1,2020-01-01,1.5,x\n2,2020-01-02,2.5,y\n3,2020-13-01,3,z\n")
    with pytest.raises(DataError) as info:
        run_local_job(one_csv_job(path), workdir=tmp_path / "work", timeout=600)
    assert str(info.value) == (f"party acme: data file {path}, row 3, column 'd': value "
                               f"'2020-13-01' is not a valid date")


@pytest.mark.slow
@needs_java
def test_spark_null_in_parquet(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"k": [1, 2, 3], "d": ["2020-01-01", "2020-01-02", "2020-01-03"],
                             "v": [1.0, None, 3.0], "t": ["a", "b", "c"]}), path)
    with pytest.raises(DataError) as info:
        run_local_job(one_csv_job(path), workdir=tmp_path / "work", timeout=600)
    assert str(info.value) == (f"party acme: data file {path}, row 2, column 'v': empty or NULL "
                               f"value; NULL values are not supported; clean the data or filter "
                               f"them out")


# --- fast: failures before Spark starts ---------------------------------------------------------

def test_missing_file_and_column_fail_before_spark(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=f"^party acme: data file {missing} not found$"):
        run_local_job(one_csv_job(missing), workdir=tmp_path / "work")
    path = tmp_path / "t.csv"
    path.write_text("k,d,t\n1,2020-01-01,x\n")
    with pytest.raises(DataError, match="has no column 'v'"):
        run_local_job(one_csv_job(path), workdir=tmp_path / "work")


def test_program_alone_reports_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    program = tmp_path / "job.py"
    program.write_text(render_local_job(one_csv_job(missing)))
    proc = subprocess.run([sys.executable, str(program), "--out", str(tmp_path / "out")],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert proc.stderr.strip() == f"sqlmpc-local-job-error: party acme: data file {missing} " \
                                  f"not found"


def test_unreachable_master_is_a_party_error(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("k,d,v,t\n1,2020-01-01,1.5,x\n")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PartyError, match=f"^party acme: cannot reach Spark at "
                                         f"spark://127.0.0.1:{port}: "):
        run_local_job(one_csv_job(path), workdir=tmp_path / "work",
                      master=f"spark://127.0.0.1:{port}", timeout=120)


def test_master_and_remote_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(PartyError, match="not both"):
        run_local_job(one_csv_job(tmp_path / "t.csv"), workdir=tmp_path,
                      master="local[1]", remote="sc://localhost:15002")


@pytest.mark.slow
@needs_java
def test_a_caller_in_connect_mode_still_runs_its_parties_as_planned(tmp_path, monkeypatch,
                                                                    datasets, reference,
                                                                    same_result) -> None:
    """pyspark marks a process Connect-only once it opened a Spark Connect session
    (environment variables); a run started from such a process (a notebook, a benchmark)
    still gives every party the Spark its plan says: here local mode."""
    import sqlmpc
    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")
    monkeypatch.setenv("SPARK_REMOTE", "sc://127.0.0.1:1")  # nobody listens there
    sql = "SELECT vendor, SUM(fare) AS f FROM trips GROUP BY vendor"
    result = sqlmpc.run_sql(sql, datasets["taxi"], engine="spark", timeout=600,
                            workdir=tmp_path / "run")
    same_result(result, reference(datasets["taxi"], sql), False)
