"""The DuckDB program's fixed code (backends/duckdb/jobkit.py) and the engine interface the
runtime uses (runtime/engines: open_engine, EngineSession.run / interrupt / close)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from sqlmpc.backends import local_engine
from sqlmpc.backends.duckdb import codegen, jobkit
from sqlmpc.compiler.errors import DataError, PartyError, SqlmpcError
from sqlmpc.compiler.ir.plan import LocalJob, PartInput
from sqlmpc.runtime.engines import open_engine
from test_duckdb_backend import check_sample, output, rows, sample_job, write_data


def write_program(job: LocalJob, folder: Path, engine: str = "duckdb") -> Path:
    rendered = local_engine(engine).render(job)
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / rendered.name
    program.write_text(rendered.text)
    return program


def test_run_job_gives_arrow_tables_of_the_plan_types(tmp_path):
    write_data(tmp_path)
    job = sample_job(tmp_path)
    inputs, outputs = codegen.program_values(job)
    tables = jobkit.run_job(job.party, inputs, outputs)
    assert set(tables) == {o.node for o in job.outputs}
    assert tables[2].schema.types == [pa.string(), pa.decimal128(38, 2), pa.int64(), pa.int64(),
                                      pa.float64()]
    assert tables[2].column_names == ["trips.vendor", "__agg0", "__agg1", "__agg2", "__agg3"]


def test_a_session_runs_jobs_one_after_another(tmp_path):
    write_data(tmp_path)
    job = sample_job(tmp_path)
    program = write_program(job, tmp_path / "q1")
    session = open_engine("duckdb", "yellow", {}, workdir=tmp_path, warm=True)
    try:
        assert session.name == "duckdb"
        check_sample(session.run(job, program, tmp_path / "q1"), job)
        check_sample(session.run(job, program, tmp_path / "q1"), job)
    finally:
        session.close()


def test_the_session_runs_the_program_file_as_written(tmp_path):
    """What runs is the file the runtime wrote (and an auditor may read), not a rendering of
    its own: a changed query in the file changes the result."""
    path = tmp_path / "t.csv"
    path.write_text("k\n1\n2\n")
    job = LocalJob("p", [PartInput("p_t", "t", str(path), {"k": "int"})],
                   [output(1, "SELECT k FROM p_t", [("k", "int")])])
    program = write_program(job, tmp_path)
    program.write_text(program.read_text().replace("FROM p_t", "FROM p_t WHERE k > 1"))
    session = open_engine("duckdb", "p", {}, workdir=tmp_path)
    (frame,) = session.run(job, program, tmp_path).values()
    assert rows(frame) == [(2,)]
    other = write_program(LocalJob("q", job.inputs, job.outputs), tmp_path / "q")
    with pytest.raises(PartyError, match="is not the local program of party p"):
        session.run(job, other, tmp_path)


def test_interrupt_stops_a_running_job(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("k\n" + "".join(f"{i}\n" for i in range(3000)))
    job = LocalJob("p", [PartInput("p_t", "t", str(path), {"k": "int"})],
                   [output(1, "SELECT COUNT(*) AS n FROM p_t a, p_t b, p_t c WHERE a.k + b.k "
                              "+ c.k = -1", [("n", "int")])])  # 2.7e10 rows: minutes
    program = write_program(job, tmp_path)
    session = open_engine("duckdb", "p", {}, workdir=tmp_path, warm=True)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            session.run(job, program, tmp_path)
        except BaseException as e:  # noqa: BLE001 -- handed to the test thread
            failure.append(e)

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(1.0)
    t0 = time.perf_counter()
    session.interrupt()
    worker.join(timeout=30)
    assert not worker.is_alive() and time.perf_counter() - t0 < 30
    assert len(failure) == 1 and isinstance(failure[0], PartyError)
    assert str(failure[0]) == "party p: the local job was interrupted"
    session.interrupt()  # nothing runs now: nothing happens
    session.close()


def test_unknown_engine_names_the_engines(tmp_path):
    with pytest.raises(SqlmpcError, match=r"unknown engine 'postgres' \(engines: duckdb, spark\)"):
        open_engine("postgres", "p", {}, workdir=tmp_path)


def test_missing_file_fails_before_the_engine_with_the_same_line(tmp_path):
    missing = tmp_path / "nope.csv"
    job = LocalJob("p", [PartInput("p_t", "t", str(missing), {"k": "int"})],
                   [output(1, "SELECT k FROM p_t", [("k", "int")])])
    program = write_program(job, tmp_path)
    session = open_engine("duckdb", "p", {}, workdir=tmp_path)
    with pytest.raises(DataError, match=f"^party p: data file {missing} not found$"):
        session.run(job, program, tmp_path)
    with pytest.raises(DataError, match=f"^party p: data file {missing} not found$"):
        inputs, outputs = codegen.program_values(job)
        jobkit.run_job("p", inputs, outputs)


def test_a_failing_query_is_one_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("k\n1\n")
    job = LocalJob("p", [PartInput("p_t", "t", str(path), {"k": "int"})],
                   [output(1, "SELECT k FROM p_t", [("k", "int")])])
    inputs, outputs = codegen.program_values(job)
    outputs[0]["sql"] = "SELECT nope FROM p_t"
    with pytest.raises(DataError) as info:
        jobkit.run_job("p", inputs, outputs)
    assert str(info.value).startswith("party p: output node 1 failed in DuckDB: ")
    assert "\n" not in str(info.value)
