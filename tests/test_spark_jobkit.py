"""The Spark program's fixed code (backends/spark/jobkit.py), imported and tested as a module.

Fast: no Spark is started. The Parquet footer's schema (read_schema, which spares the cluster a
schema-inference job per run), what a footer proves (no NULLs, a declared domain), the footer
read again when its file changes (a party agent runs many queries), and the rendered program's
literals being exactly the values the runtime runs (program_values).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlmpc.backends.spark import codegen, jobkit
from sqlmpc.compiler.ir.plan import LocalJob, PartInput
from test_duckdb_backend import output, sample_job, write_data


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


def literal_assignments(text: str) -> dict:
    """The program's top-level NAME = literal assignments, read without running it."""
    found = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = ast.literal_eval(node.value)
    return found


def test_the_program_literals_are_the_values_the_runtime_runs(tmp_path):
    write_data(tmp_path)
    for job in (sample_job(tmp_path), parquet_job(tmp_path / "pq")):
        inputs, outputs = codegen.program_values(job)
        found = literal_assignments(codegen.render_local_job(job))
        for out in found["OUTPUTS"]:  # a query is shown on lines of its own
            assert out["sql"].startswith("\n") and out["sql"].endswith("\n")
            out["sql"] = out["sql"][1:-1]
        assert found == {"PARTY": job.party, "INPUTS": inputs, "OUTPUTS": outputs}


def test_read_schema_names_only_the_catalog_columns_as_spark_infers_them(tmp_path):
    (part, _), _ = codegen.program_values(parquet_job(tmp_path))
    footer = jobkit.local_parquet_schema(part)
    assert jobkit.read_schema(footer, part) == (
        "`K` bigint, `amount` double, `zone` string, `day` date, `small` smallint")
    # a column the file lacks, or of a type left to Spark: no schema, Spark infers it
    missing = dict(part, columns=[*part["columns"], ("nope", "int", "bigint", None)])
    assert jobkit.read_schema(footer, missing) is None
    stamped = dict(part, columns=[("unused_ts", "date", "date", None)])
    assert jobkit.read_schema(footer, stamped) is None
    # a CSV or a remote path has no footer to read here
    assert jobkit.local_parquet_schema(dict(part, format="csv")) is None
    assert jobkit.local_parquet_schema(dict(part, path="hdfs://x/y.parquet")) is None
    assert jobkit.nanosecond_columns(part) == {"unused_ts"}


def test_spark_kind_sees_text_through_dictionaries():
    assert jobkit.spark_kind(pa.dictionary(pa.int32(), pa.string())) == "string"
    assert jobkit.spark_kind(pa.large_string()) == "string"
    assert jobkit.spark_kind(pa.int64()) == "int64"


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
    part = {"format": "parquet", "path": str(path)}
    proves = jobkit.footer_proves_domain
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
    assert jobkit.local_parquet_metadata(part).num_rows == 8


def test_footer_is_clean_only_for_always_converting_types_without_nulls(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"i": pa.array([1, 2], pa.int32()), "f": [1.5, 2.5],
                             "n": pa.array([1, None], pa.int64()), "s": ["a", "b"]}), path)
    part = {"format": "parquet", "path": str(path)}
    assert jobkit.footer_is_clean(part, [("i", "bigint"), ("f", "double")])
    assert not jobkit.footer_is_clean(part, [("n", "bigint")])  # a NULL: scanned
    assert not jobkit.footer_is_clean(part, [("s", "string")])  # text: scanned
    assert not jobkit.footer_is_clean(part, [("i", "decimal(10,2)")])
    assert not jobkit.footer_is_clean(dict(part, format="csv"), [("i", "bigint")])


def test_a_changed_file_has_its_footer_read_again(tmp_path):
    """A party agent runs many queries in one process: the footer of a file replaced between
    them is read again, not taken from the first query."""
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"v": [1, 2, 3]}), path)
    part = {"format": "parquet", "path": str(path)}
    assert jobkit.local_parquet_metadata(part).num_rows == 3
    pq.write_table(pa.table({"v": [1, 2, 3, 4, 5]}), path)
    os.utime(path, ns=(1, 10 ** 18))  # a new mtime even on a coarse clock
    assert jobkit.local_parquet_metadata(part).num_rows == 5


def test_program_alone_reports_bad_arguments_and_a_missing_file_in_one_line(tmp_path):
    """The rendered program runs standalone (sqlmpc installed): a missing file is exit 3 and
    one line, before Spark starts."""
    missing = tmp_path / "nope.csv"
    job = LocalJob("acme", [PartInput("acme_t", "t", str(missing), {"k": "int"})],
                   [output(7, "SELECT k FROM acme_t", [("k", "int")])])
    program = tmp_path / "job.py"
    program.write_text(codegen.render_local_job(job))
    proc = subprocess.run([sys.executable, str(program), "--out", str(tmp_path / "out")],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    assert proc.stderr.strip() == (f"sqlmpc-local-job-error: party acme: data file {missing} "
                                   f"not found")
    proc = subprocess.run([sys.executable, str(program), "--master", "local[1]", "--remote",
                           "sc://x"], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr


@pytest.mark.parametrize("master", [None, "local[2]"])
def test_arguments(master):
    argv = ["--out", "d"] + (["--master", master] if master else [])
    args = jobkit.parse_args("p", argv)
    assert (args.out, args.master, args.remote) == ("d", master, None)
    assert jobkit.parse_args("p", []).out == "sqlmpc_out_p"
