"""Bad data never gives a silent wrong answer, on any engine: one line naming the file, the row
(its data row, and for a CSV row's shape its line in the file) and the column; never a
traceback, never a row read shifted, padded or cut.

DuckDB runs every case (fast). Spark runs them all in one warm local session, in a process of
its own (one JVM start for the lot), and must say exactly what DuckDB says.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlmpc.backends import validate
from sqlmpc.compiler.errors import DataError
from sqlmpc.compiler.ir.plan import LocalJob, PartInput
from sqlmpc.runtime.engines.duckdb import run_local_job
from test_duckdb_backend import output, rows

HEADER = "vendor,fare,distance,pickup,passengers,comment\n"
GOOD = "a,10.50,1.5,2020-01-02,1,first\n"
COLUMNS = {"vendor": "text", "fare": "decimal(10,2)", "distance": "float", "pickup": "date",
           "passengers": "int", "comment": "text"}

# (name, file text, the columns the job reads, the message after "party acme: data file F, ")
CASES = [
    # a decimal comma makes 7 fields under a 6-field header: every later field shifts by one,
    # and the fare would read 12 instead of 12.50 -- even a job reading only vendor and fare
    ("decimal_comma", HEADER + GOOD + "b,12,50,0.5,2020-02-03,2,x\n", ["vendor", "fare"],
     ("row 2 (line 3): 7 fields where the header has 6 columns; after the last column 'comment' "
     "comes 'x' (a value with an unquoted comma, such as a decimal comma, splits in two: quote "
     "it or fix the row)")),
    ("too_few_fields", HEADER + GOOD + GOOD + "c,7.00,2.5\n", ["vendor"],
     ("row 3 (line 4): 3 fields where the header has 6 columns, so column 'pickup' has no value "
     "(a missing separator, or one too many before it, shifts the fields: fix the row)")),
    # blank lines are not rows, but they are lines
    ("blank_lines", HEADER + GOOD + "\n\n" + "d,1.00,1,2020-01-01,1\n", ["fare"],
     ("row 2 (line 5): 5 fields where the header has 6 columns, so column 'comment' has no value "
     "(a missing separator, or one too many before it, shifts the fields: fix the row)")),
    ("quoted_decimal_comma", HEADER + GOOD + 'b,"12,50",0.5,2020-02-03,2,x\n', ["fare"],
     "row 2, column 'fare': value '12,50' is not a valid decimal(10,2)"),
    ("bad_number", HEADER + GOOD + GOOD + "c,7.00,2.5.1,2020-01-01,1,x\n", ["distance"],
     "row 3, column 'distance': value '2.5.1' is not a valid float"),
    ("bad_int", HEADER + "#1,7.00,2.5,2020-01-01,1e3,x\n", ["vendor", "passengers"],
     "row 1, column 'passengers': value '1e3' is not a valid int"),
    ("bad_date", HEADER + GOOD + "c,7.00,2.5,2020-13-01,1,x\n", ["pickup"],
     "row 2, column 'pickup': value '2020-13-01' is not a valid date"),
    ("empty_value", HEADER + GOOD + "c,,2.5,2020-01-01,1,x\n", ["fare", "distance"],
     "row 2, column 'fare': empty or NULL value; " + validate.NULL_HINT),
    ("blank_value", HEADER + GOOD + "c,7.00,2.5,2020-01-01,1,   \n", ["comment"],
     "row 2, column 'comment': empty or NULL value; " + validate.NULL_HINT),
]


def case_job(root: Path, name: str, text: str, read: list[str]) -> LocalJob:
    path = root / f"{name}.csv"
    path.write_text(text)
    columns = {c: COLUMNS[c] for c in read}
    return LocalJob("acme", [PartInput("acme_t", "t", str(path), columns,
                                       declared=list(COLUMNS))],
                    [output(1, f"SELECT {', '.join(read)} FROM acme_t", list(columns.items()))])


def expected(job: LocalJob, tail: str) -> str:
    return f"party acme: data file {job.inputs[0].path}, {tail}"


@pytest.mark.parametrize(("name", "text", "read", "tail"), CASES, ids=[c[0] for c in CASES])
def test_duckdb_stops_bad_data_with_one_line(tmp_path, name, text, read, tail) -> None:
    job = case_job(tmp_path, name, text, read)
    with pytest.raises(DataError) as info:
        run_local_job(job, workdir=tmp_path / "work")
    assert str(info.value) == expected(job, tail)


def test_duckdb_reads_good_rows_as_written(tmp_path) -> None:
    """The strict reader takes what a CSV may hold: quotes, doubled quotes, quoted commas and
    line breaks, a byte-order mark, CRLF line ends, blank lines, a '#' that is no comment."""
    text = ('\ufeffvendor,fare,comment\r\n"a, inc.",1.50,"say ""hi"""\r\n\r\n'
            '#b,2,"two\r\nlines"\r\n')
    path = tmp_path / "t.csv"
    path.write_text(text, encoding="utf-8", newline="")
    job = LocalJob("acme", [PartInput("acme_t", "t", str(path),
                                      {"vendor": "text", "fare": "decimal(10,2)",
                                       "comment": "text"})],
                   [output(1, "SELECT vendor, fare, comment FROM acme_t",
                           [("vendor", "text"), ("fare", "decimal(10,2)"),
                            ("comment", "text")])])
    (frame,) = run_local_job(job).values()
    assert [(v, str(f), c) for v, f, c in rows(frame)] == [
        ("a, inc.", "1.50", 'say "hi"'), ("#b", "2.00", "two\r\nlines")]


def test_duckdb_program_alone_stops_bad_data_with_exit_3(tmp_path) -> None:
    """The rendered DuckDB program, run by hand, says the same line and exits 3; good data
    gives DIR/<node>.parquet."""
    from sqlmpc.backends import local_engine

    name, text, read, tail = CASES[0]
    job = case_job(tmp_path, name, text, read)
    program = tmp_path / "job.py"
    program.write_text(local_engine("duckdb").render(job).text)
    proc = subprocess.run([sys.executable, str(program), "--out", str(tmp_path / "out")],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    assert proc.stderr.strip() == validate.ERROR_PREFIX + expected(job, tail)
    good = case_job(tmp_path, "good", HEADER + GOOD, ["vendor", "fare"])
    program.write_text(local_engine("duckdb").render(good).text)
    proc = subprocess.run([sys.executable, str(program), "--out", str(tmp_path / "out")],
                          check=True, capture_output=True, text=True, timeout=120)
    table = pq.read_table(tmp_path / "out" / "1.parquet")
    assert table.column_names == ["vendor", "fare"] and table.num_rows == 1


def test_row_and_line_lookups(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('h1,h2\n\na,1\n"b\nc",2\n   \nd,3\n')
    assert [validate.line_of_row(str(path), r) for r in (1, 2, 3, 4)] == [3, 4, 7, None]
    assert [validate.row_of_line(str(path), n) for n in (1, 2, 3, 4, 5, 6, 7)] == [
        None, None, 1, 2, 2, None, 3]
    # one record per line (Spark's reader): the quoted line break starts a new row
    assert [validate.line_of_row(str(path), r, quoted_newlines=False)
            for r in (1, 2, 3, 4)] == [3, 4, 5, 7]
    assert validate.csv_header("p", str(path)) == ["h1", "h2"]
    assert validate.line_of_row("hdfs://x/t.csv", 1) is None


def test_parquet_nulls_are_refused(tmp_path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"fare": [1.5, None, 2.0]}), path)
    job = LocalJob("acme", [PartInput("acme_t", "t", str(path), {"fare": "float"})],
                   [output(1, "SELECT fare FROM acme_t", [("fare", "float")])])
    with pytest.raises(DataError, match=r"row 2, column 'fare': empty or NULL value"):
        run_local_job(job)


SPARK_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from sqlmpc.backends import local_engine
    from sqlmpc.compiler.errors import DataError
    from sqlmpc.compiler.ir.plan import LocalJob, LocalOutput, PartInput
    from sqlmpc.runtime.engines import open_engine

    jobs = json.loads(sys.argv[1])
    root = Path(sys.argv[2])
    root.mkdir(parents=True, exist_ok=True)
    session = open_engine("spark", "acme", {"spark_master": "local[1]"}, workdir=root,
                          warm=True)
    said = {}
    try:
        for name, doc in jobs.items():
            job = LocalJob("acme", [PartInput(**p) for p in doc["inputs"]],
                           [LocalOutput(**{**o, "columns": [tuple(c) for c in o["columns"]]})
                            for o in doc["outputs"]])
            program = root / f"{name}.py"
            program.write_text(local_engine("spark").render(job).text)
            try:
                session.run(job, program, root / name)
                said[name] = None
            except DataError as e:
                said[name] = str(e)
    finally:
        session.close()
    print(json.dumps(said))
""")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java")
def test_spark_says_what_duckdb_says(tmp_path) -> None:
    """Every case on Spark (one warm local session): the same one line as DuckDB."""
    from dataclasses import asdict

    jobs = {name: case_job(tmp_path, name, text, read) for name, text, read, _ in CASES}
    good = case_job(tmp_path, "good", HEADER + GOOD + GOOD, ["vendor", "fare"])
    jobs["good"] = good
    docs = {name: asdict(job) for name, job in jobs.items()}
    proc = subprocess.run([sys.executable, "-c", SPARK_SCRIPT, json.dumps(docs),
                           str(tmp_path / "spark")], check=False, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, _, _, tail in CASES:
        assert said[name] == expected(jobs[name], tail), name
    assert said["good"] is None
