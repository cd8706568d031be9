"""The embedded DuckDB engine for local jobs, the shared data checks, and the Spark program text.

The helpers here (`write_data`, `sample_job`, `direct`, `rows`) are also used by the Spark tests.
"""

from __future__ import annotations

import ast
import datetime as dt
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlmpc.backends import local_engine, validate
from sqlmpc.compiler.catalog import Catalog
from sqlmpc.compiler.errors import DataError
from sqlmpc.compiler.ir.plan import LocalJob, LocalOutput, PartInput
from sqlmpc.compiler.planner import compile_query
from sqlmpc.runtime.engines.duckdb import run_local_job

YELLOW_CSV = """\
vendor,Fare,distance,pickup,passengers,comment
a,10.50,1.5,2020-01-02,1,first
b,3.25,0.5,2020-02-03,2,"with, comma"
a,7.00,2.5,2019-12-31,3,
c,12.345,4.0,2020-06-30,1,rounds to 12.35
"""

CATALOG = """\
[parties.yellow]
[parties.green]
[parties.regulator]

[tables.trips]
columns = { vendor = "text", fare = "decimal(10,2)", distance = "float", pickup = "date", passengers = "int", shared = "bool" }
parts = { yellow = "yellow/trips.csv", green = "green/trips.parquet" }

[tables.trips.trust]
vendor = "*"
"""

TRIPS = {"vendor": "text", "fare": "decimal(10,2)", "distance": "float", "pickup": "date",
         "passengers": "int", "shared": "bool"}


def write_data(root: Path) -> Path:
    """yellow/trips.csv, green/trips.parquet (timestamps, doubles) and catalog.toml under root."""
    (root / "yellow").mkdir(parents=True, exist_ok=True)
    (root / "green").mkdir(parents=True, exist_ok=True)
    lines = YELLOW_CSV.splitlines()
    shared = ["shared", "true", "false", "TRUE", "0"]
    (root / "yellow" / "trips.csv").write_text(
        "\n".join(f"{line},{s}" for line, s in zip(lines, shared)) + "\n")
    table = pa.table({
        "VENDOR": pa.array(["g", "h", "g"]),
        "fare": pa.array([1.234, 5.5, 20.0], pa.float64()),
        "distance": pa.array([3.0, 0.2, 7.5]),
        "pickup": pa.array([dt.datetime(2020, 3, 1, 10, 0), dt.datetime(2021, 1, 1),
                            dt.datetime(2019, 5, 5, 23, 59)], pa.timestamp("us")),
        "passengers": pa.array([1, 4, 2], pa.int32()),
        "shared": pa.array([True, False, True]),
        "unused": pa.array([None, None, None], pa.string()),
    })
    pq.write_table(table, root / "green" / "trips.parquet")
    (root / "catalog.toml").write_text(CATALOG)
    return root / "catalog.toml"


def output(node: int, sql: str, columns: list[tuple[str, str]]) -> LocalOutput:
    """A LocalOutput from DuckDB SQL (engine-neutral by sqlglot, as the compiler keeps it)."""
    neutral = sqlglot.transpile(sql, read="duckdb", pretty=True)[0]
    return LocalOutput(node, "share", neutral, columns)


def sample_job(root: Path) -> LocalJob:
    """One party reading a CSV and a Parquet part, with filter, aggregate, distinct, union."""
    csv = PartInput("yellow_trips", "trips", str(root / "yellow" / "trips.csv"), dict(TRIPS))
    par = PartInput("yellow_more", "trips", str(root / "green" / "trips.parquet"),
                    {k: v for k, v in TRIPS.items() if k != "shared"})
    outputs = [
        output(1, 'SELECT vendor AS "trips.vendor", fare AS "trips.fare", pickup AS "trips.pickup" '
                  "FROM yellow_trips WHERE pickup >= DATE '2020-01-01' AND fare > 5 AND shared",
               [("trips.vendor", "text"), ("trips.fare", "decimal(10,2)"),
                ("trips.pickup", "date")]),
        output(2, 'SELECT vendor AS "trips.vendor", SUM(fare) AS "__agg0", COUNT(*) AS "__agg1", '
                  'SUM(passengers) AS "__agg2", SUM(distance) AS "__agg3" FROM yellow_trips '
                  "GROUP BY vendor",
               [("trips.vendor", "text"), ("__agg0", "decimal(38,2)"), ("__agg1", "int"),
                ("__agg2", "int"), ("__agg3", "float")]),
        output(3, "SELECT DISTINCT vendor FROM yellow_trips", [("vendor", "text")]),
        output(4, "SELECT vendor, fare, pickup FROM yellow_trips UNION ALL "
                  "SELECT vendor, fare, pickup FROM yellow_more",
               [("vendor", "text"), ("fare", "decimal(10,2)"), ("pickup", "date")]),
        output(5, "SELECT MIN(pickup) AS lo, MAX(pickup) AS hi, SUM(fare * 2) AS twice, "
                  "COUNT(*) AS n FROM yellow_more WHERE passengers > 1",
               [("lo", "date"), ("hi", "date"), ("twice", "decimal(38,2)"), ("n", "int")]),
    ]
    return LocalJob("yellow", [csv, par], outputs)


def direct(job: LocalJob) -> dict[int, list[tuple]]:
    """The outputs computed by DuckDB directly on the files, with plain casts (the reference)."""
    con = duckdb.connect()
    for part in job.inputs:
        if part.path.endswith(".csv"):
            src = f"read_csv('{part.path}', header = true, all_varchar = true)"
        else:
            src = f"read_parquet('{part.path}')"
        cols = ", ".join(f'CAST("{c}" AS {validate.duckdb_type(t)}) AS "{c}"'
                         for c, t in part.columns.items())
        con.execute(f"CREATE VIEW {part.view} AS SELECT {cols} FROM {src}")
    return {o.node: con.execute(o.sql_in("duckdb")).fetchall() for o in job.outputs}


def rows(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(v.item() if hasattr(v, "item") else v for v in r)
            for r in frame.itertuples(index=False)]


def same_rows(got: list[tuple], want: list[tuple]) -> bool:
    def norm(r: tuple) -> tuple:
        return tuple(round(v, 9) if isinstance(v, float) else v for v in r)
    return sorted(map(norm, got), key=repr) == sorted(map(norm, want), key=repr)


def check_types(frame: pd.DataFrame, columns: list[tuple[str, str]]) -> None:
    assert list(frame.columns) == [n for n, _ in columns]
    for (name, sql_type) in columns:
        values = list(frame[name])
        kind = {"int": int, "float": float, "text": str, "date": dt.date, "bool": bool}.get(
            sql_type, Decimal)
        if sql_type == "int":
            assert frame[name].dtype == "int64", name
        if sql_type == "float":
            assert frame[name].dtype == "float64", name
        assert all(isinstance(v.item() if hasattr(v, "item") else v, kind) for v in values), name


def check_sample(results: dict[int, pd.DataFrame], job: LocalJob) -> None:
    want = direct(job)
    assert set(results) == {o.node for o in job.outputs}
    for o in job.outputs:
        check_types(results[o.node], o.columns)
        assert same_rows(rows(results[o.node]), want[o.node]), o.node
    # spot checks of the values themselves
    assert rows(results[1]) == [("a", Decimal("10.50"), dt.date(2020, 1, 2))]
    assert ("c", Decimal("12.35"), 1, 1, 4.0) in rows(results[2])
    assert sorted(rows(results[3])) == [("a",), ("b",), ("c",)]
    assert len(results[4]) == 7
    assert rows(results[5]) == [(dt.date(2019, 5, 5), dt.date(2021, 1, 1), Decimal("51.00"), 2)]


# --- results ------------------------------------------------------------------------------------

def test_sample_job_matches_direct_duckdb(tmp_path: Path) -> None:
    write_data(tmp_path)
    job = sample_job(tmp_path)
    check_sample(run_local_job(job), job)


def test_compiled_partial_aggregate_per_party(tmp_path: Path) -> None:
    cat = Catalog.load(write_data(tmp_path))
    plan = compile_query("SELECT vendor, SUM(fare) FROM trips WHERE distance > 1 GROUP BY vendor",
                         cat)
    got = {party: run_local_job(job) for party, job in plan.local_jobs.items()}
    assert set(got) == {"yellow", "green"}
    (yellow,) = got["yellow"].values()
    (green,) = got["green"].values()
    assert sorted(rows(yellow)) == [("a", Decimal("17.50")), ("c", Decimal("12.35"))]
    assert sorted(rows(green)) == [("g", Decimal("21.23"))]
    for party, job in plan.local_jobs.items():
        want = direct(job)
        for node, frame in got[party].items():
            assert same_rows(rows(frame), want[node])


def test_compiled_distinct_and_date_filter(tmp_path: Path) -> None:
    cat = Catalog.load(write_data(tmp_path))
    plan = compile_query("SELECT DISTINCT vendor FROM yellow.trips", cat)
    (frame,) = run_local_job(plan.local_jobs["yellow"]).values()
    assert sorted(rows(frame)) == [("a",), ("b",), ("c",)]
    plan = compile_query("SELECT * FROM green.trips WHERE pickup > DATE '2020-01-01'", cat)
    (frame,) = run_local_job(plan.local_jobs["green"]).values()
    assert sorted(r[0] for r in rows(frame)) == ["g", "h"]
    assert set(frame["pickup"]) == {dt.date(2020, 3, 1), dt.date(2021, 1, 1)}


# --- bad data -----------------------------------------------------------------------------------

def one_csv_job(path: Path, columns: dict[str, str] | None = None) -> LocalJob:
    columns = columns or {"k": "int", "d": "date", "v": "decimal(10,2)", "t": "text"}
    cols = ", ".join(columns)
    return LocalJob("acme", [PartInput("acme_t", "t", str(path), columns)],
                    [output(7, f"SELECT {cols} FROM acme_t", list(columns.items()))])


def error_of(job: LocalJob, tmp_path: Path) -> str:
    with pytest.raises(DataError) as info:
        run_local_job(job, workdir=tmp_path / "work")
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


BAD_CASES = [
    # (file text, expected fragments of the message)
    ("k,d,v,t\n1,2020-01-01,1.5,x\n2,2020-01-02,2.5,y\nabc,2020-01-03,3,z\n",
     ["row 3", "column 'k'", "'abc'", "not a valid int"]),
    ("k,d,v,t\n1,2020-01-01,1.5,x\n2,2020-02-30,2.5,y\n",
     ["row 2", "column 'd'", "'2020-02-30'", "not a valid date"]),
    ("k,d,v,t\n1,01/02/2020,1.5,x\n", ["row 1", "column 'd'", "'01/02/2020'"]),
    ("k,d,v,t\n1.0,2020-01-01,1.5,x\n", ["row 1", "column 'k'", "'1.0'"]),
    ("k,d,v,t\n1,2020-01-01,1.5,x\n2,2020-01-01,,y\n",
     ["row 2", "column 'v'", "NULL values are not supported; clean the data or filter them out"]),
    ("k,d,v,t\n1,2020-01-01,1.5,x\n2,2020-01-01,2\n",
     ["row 2 (line 3)", "3 fields where the header has 4 columns", "column 't' has no value"]),
    ("k,d,v,t\n1,2020-01-01,123456789012,x\n", ["row 1", "column 'v'", "decimal(10,2)"]),
    ("k,d,t\n1,2020-01-01,x\n", ["has no column 'v'", "table t", "the file has: k, d, t"]),
    ("", ["is empty"]),
]


@pytest.mark.parametrize(("text", "fragments"), BAD_CASES)
def test_bad_csv(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    message = error_of(one_csv_job(path), tmp_path)
    assert message.startswith(f"party acme: data file {path}")
    for fragment in fragments:
        assert fragment in message, message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    assert error_of(one_csv_job(path), tmp_path) == f"party acme: data file {path} not found"


def test_header_only_is_zero_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("K,D,V,T,extra\n")
    job = one_csv_job(path)
    (frame,) = run_local_job(job).values()
    assert len(frame) == 0
    assert list(frame.columns) == ["k", "d", "v", "t"]


def test_bad_parquet(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"k": ["1", "2", "x3"], "d": pa.array([dt.date(2020, 1, 1)] * 3),
                             "v": [1.0, 2.0, 3.0], "t": ["a", "b", "c"]}), path)
    message = error_of(one_csv_job(path), tmp_path)
    assert message == (f"party acme: data file {path}, row 3, column 'k': value 'x3' is not a "
                       f"valid int")
    pq.write_table(pa.table({"k": [1, 2], "d": pa.array([dt.date(2020, 1, 1), None]),
                             "v": [1.0, 2.0], "t": ["a", "b"]}), path)
    message = error_of(one_csv_job(path), tmp_path)
    assert "row 2, column 'd'" in message and "NULL values are not supported" in message


def test_only_columns_read_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("k,junk\n1,\n2,not a number\n")
    (frame,) = run_local_job(one_csv_job(path, {"k": "int"})).values()
    assert rows(frame) == [(1,), (2,)]


# --- the programs' text (no engine needed) ------------------------------------------------------

ENGINE_TYPES = {"spark": ("decimal(10,2)", "bigint", "string"),
                "duckdb": ("DECIMAL(10,2)", "BIGINT", "VARCHAR")}


@pytest.mark.parametrize("engine", ["spark", "duckdb"])
def test_rendered_program(tmp_path: Path, engine: str) -> None:
    """The program is the job's data and one call into the engine's jobkit: short, valid
    Python, every path, view, column type, check and query visible to its auditor."""
    write_data(tmp_path)
    job = sample_job(tmp_path)
    rendered = local_engine(engine).render(job)
    text = rendered.text
    ast.parse(text)
    assert rendered.name == "local_job_yellow.py"
    assert text.startswith('#!/usr/bin/env python3\nr"""Local job of party \'yellow\'')
    assert "Nothing leaves this machine except the files this program writes to --out" in text
    assert f"sqlmpc.backends.{engine}.jobkit" in text
    assert text.rstrip().endswith('if __name__ == "__main__":\n'
                                  '    sys.exit(jobkit.main(PARTY, INPUTS, OUTPUTS))')
    assert "def " not in text  # no code of its own: the fixed code is jobkit's
    for part in job.inputs:
        assert f'"path": {part.path!r},' in text
        assert part.view in text
    decimal, bigint, string = ENGINE_TYPES[engine]
    for key_line in [
        "PARTY = 'yellow'",
        (f"('fare', 'decimal(10,2)', '{decimal}', "
         'r"^\\s*[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)\\s*$"),'),
        f"('passengers', 'int', '{bigint}', r\"^\\s*[+-]?[0-9]+\\s*$\"),",
        f"('trips.vendor', 'text', '{string}'),",
        '"sql": """\nSELECT',
        "sqlmpc-local-job-error: <what and where>",
    ]:
        assert key_line in text, key_line
    for o in job.outputs:
        assert f'"node": {o.node},' in text
        assert o.sql_in(engine) in text
    template = (Path(__file__).parents[1] / "backends" / engine / "templates" / "local_job.py.j2")
    assert len(template.read_text().splitlines()) <= 100


@pytest.mark.parametrize("engine", ["spark", "duckdb"])
def test_rendered_program_of_compiled_plan(tmp_path: Path, engine: str) -> None:
    cat = Catalog.load(write_data(tmp_path))
    plan = compile_query("SELECT vendor, SUM(fare) FROM trips GROUP BY vendor", cat)
    quoted = "`trips.vendor`" if engine == "spark" else '"trips.vendor"'
    for party, job in plan.local_jobs.items():
        text = local_engine(engine).render(job).text
        ast.parse(text)
        assert f"PARTY = {party!r}" in text
        assert quoted in text
