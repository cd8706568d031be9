"""The DuckDB program's fixed code (backends/duckdb/jobkit.py) and the engine interface the
runtime uses (runtime/engines: open_engine, EngineSession.run / interrupt / close)."""

from __future__ import annotations

import ast
import threading
import time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
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


def test_a_warm_sessions_jobs_share_a_database_but_see_nothing_of_each_other(tmp_path):
    """Warm, every job connects to one open database; its views are temporary, so they vanish
    with its connection: the next job (same view names, other data) reads its own files."""
    first, second = tmp_path / "one", tmp_path / "two"
    write_data(first)
    write_data(second)
    (second / "yellow" / "trips.csv").write_text(
        (first / "yellow" / "trips.csv").read_text().replace("10.50", "11.50"))
    session = open_engine("duckdb", "yellow", {}, workdir=tmp_path / "w", warm=True)
    try:
        job1, job2 = sample_job(first), sample_job(second)
        check_sample(session.run(job1, write_program(job1, tmp_path / "q1"), tmp_path / "q1"),
                     job1)
        views = "SELECT count(*) FROM duckdb_views() WHERE NOT internal"
        assert session._db.execute(views).fetchone() == (0,)
        got = session.run(job2, write_program(job2, tmp_path / "q2"), tmp_path / "q2")
        assert rows(got[1])[0][1] == Decimal("11.50")  # its own file, not the first job's view
        assert session._db.execute(views).fetchone() == (0,)
    finally:
        session.close()
    assert not (tmp_path / "w" / "duckdb-spill").exists()


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


# --- reading files in place ---------------------------------------------------------------------
def tables_and_views(con) -> tuple[set[str], set[str]]:
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    views = {r[0] for r in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    return tables, views


def test_good_files_are_read_in_place_without_a_copy(tmp_path):
    """A file with nothing wrong is checked by one scan and queried where it lies: no table
    holds a copy of it, and the outputs are those of the checked copy."""
    write_data(tmp_path)
    job = sample_job(tmp_path)
    inputs, outputs = codegen.program_values(job)
    con = jobkit.connect()
    try:
        for index, part in enumerate(inputs):
            assert jobkit.load_in_place(con, job.party, part, index)
        tables, views = tables_and_views(con)
        assert not any(t.startswith("__raw_") for t in tables), tables
        assert views == {"yellow_trips", "yellow_more"}
        in_place = {o["node"]: jobkit.output_table(con, job.party, o) for o in outputs}
    finally:
        con.close()
    con = jobkit.connect()
    try:
        for index, part in enumerate(inputs):
            jobkit.load_copy(con, job.party, part, index)
        copied = {o["node"]: jobkit.output_table(con, job.party, o) for o in outputs}
    finally:
        con.close()
    for node, table in copied.items():
        assert in_place[node].schema == table.schema
        assert sorted(in_place[node].to_pylist(), key=repr) == \
            sorted(table.to_pylist(), key=repr), node


BAD_FILES = {  # (file text, extra PartInput fields): each one problem load_copy() names
    "too_many_fields": ("k,v\n1,2\n3,4,5\n", {}),
    "too_few_fields": ("k,v\n1,2\n3\n", {}),
    "stray_quote": ('k,v\n1,"2\n', {}),
    "empty_value": ("k,v\n1,2\n,4\n", {}),
    "blank_value": ("k,v\n1,2\n  ,4\n", {}),
    "bad_value": ("k,v\n1,2\nx,4\n", {}),
    "not_an_int": ("k,v\n1,2\n1.5,4\n", {}),
    "out_of_domain": ("k,v\n1,2\n7,4\n", {"domains": {"k": [1, 2, 3]}}),
    "too_many_rows": ("k,v\n1,2\n2,4\n3,6\n", {"max_rows": 2}),
    "duplicate_key": ("k,v\n1,2\n2,4\n1,6\n", {"unique": [["k"]]}),
    "duplicate_composite_key": ("k,v\n1,2\n1,4\n1,2\n", {"unique": [["k", "v"]]}),
    "missing_column": ("k,w\n1,2\n", {}),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_any_problem_leaves_the_file_to_the_checked_copy(tmp_path, case):
    """The in-place scan never passes a file the checked copy refuses: on each problem it
    declines (no view), and load_part then stops with the copy's one line."""
    text, extra = BAD_FILES[case]
    path = tmp_path / "t.csv"
    path.write_text(text)
    job = LocalJob("p", [PartInput("p_t", "t", str(path), {"k": "int", "v": "int"}, **extra)],
                   [output(1, "SELECT k FROM p_t", [("k", "int")])])
    inputs, _ = codegen.program_values(job)
    con = jobkit.connect()
    try:
        assert not jobkit.load_in_place(con, "p", inputs[0], 0)
        assert tables_and_views(con)[1] == set()
        with pytest.raises(DataError) as info:
            jobkit.load_part(con, "p", inputs[0], 0)
    finally:
        con.close()
    assert str(info.value).startswith("party p: ") and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_a_parquet_problem_leaves_the_file_to_the_checked_copy(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"k": pa.array([1, None, 3], pa.int64())}), path)
    job = LocalJob("p", [PartInput("p_t", "t", str(path), {"k": "int"})],
                   [output(1, "SELECT k FROM p_t", [("k", "int")])])
    inputs, outputs = codegen.program_values(job)
    con = jobkit.connect()
    try:
        assert not jobkit.load_in_place(con, "p", inputs[0], 0)
    finally:
        con.close()
    with pytest.raises(DataError, match=f"^party p: data file {path}, row 2, column 'k': empty"):
        jobkit.run_job("p", inputs, outputs)


# --- the program's SQL literals -------------------------------------------------------------------
@pytest.mark.parametrize("sql, opening", [
    ('SELECT "a" FROM t', '"""\n'),
    ("SELECT 'x' AS \"y\"", '"""\n'),
    ('SELECT \'"""\' AS "a"', "'''\n"),
    ("SELECT 'a\\b' FROM t WHERE x = '\\'", 'r"""\n'),
    ('SELECT "a\\"', 'r"""\n'),
    ("SELECT '''\"\"\"' AS a", None),
    ("SELECT 'a\rb'", None),
    ("SELECT 'a\u2028b'", None),
])
def test_sql_is_a_block_whenever_that_is_exact(sql, opening):
    """A block is newline + sql + newline; where no block is exact, a plain literal (None)."""
    from sqlmpc.backends.local_program import py_sql

    literal = py_sql(sql)
    if opening is None:
        assert literal == repr(sql)
    else:
        assert literal.startswith(opening)
    want = sql if opening is None else f"\n{sql}\n"
    assert ast.literal_eval(literal) == want  # as Python reads it in the program file


def test_the_program_literals_are_the_values_the_runtime_runs(tmp_path):
    """DuckDB's SQL quotes identifiers with double quotes: it is still shown as a block."""
    write_data(tmp_path)
    job = sample_job(tmp_path)
    inputs, outputs = codegen.program_values(job)
    text = codegen.render_local_job(job)
    found = {node.targets[0].id: ast.literal_eval(node.value)
             for node in ast.parse(text).body
             if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}
    for out in found["OUTPUTS"]:  # a query is shown on lines of its own
        assert out["sql"].startswith("\n") and out["sql"].endswith("\n")
        out["sql"] = out["sql"][1:-1]
    assert found == {"PARTY": job.party, "INPUTS": inputs, "OUTPUTS": outputs}
    assert text.count('"sql": """\n') == len(outputs)
