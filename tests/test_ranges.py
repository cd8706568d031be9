"""Declared public ranges ([tables.NAME.ranges] column = [lo, hi]): each owner's local job checks
its values lie in them, and the bounds analysis proves secure arithmetic fits from them, so the
MPC program checks no product or sum for overflow that the ranges bound."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlmpc.compiler.analyses.bounds import unproven_operations
from sqlmpc.compiler.catalog import Catalog
from sqlmpc.compiler.errors import CatalogError, DataError
from sqlmpc.compiler.planner import compile_query

LIMIT = 1 << 63
BASE = """\
[parties.a]
[parties.b]
[parties.c]
[tables.sales]
columns = {{ region = "text", qty = "int", price = "decimal(15,2)", rate = "float" }}
parts = {{ a = "a.csv", b = "b.csv" }}
{ranges}
[result]
recipients = ["c"]
"""
RANGES = "[tables.sales.ranges]\nqty = [1, 50]\nprice = [0, 100000.00]\nrate = [-1, 1]\n"
# HAVING computes on the sum inside MPC, so it needs the bound (a sum only revealed does not)
PRODUCT = ("SELECT region, SUM(qty * price * (1 - rate)) AS revenue FROM sales GROUP BY region "
           "HAVING SUM(qty * price * (1 - rate)) > 0")


def _catalog(tmp_path: Path, ranges: str = RANGES, rows: dict | None = None) -> Catalog:
    for party, data in (rows or {"a": [("x", 3, "10.50", 0.5)], "b": [("y", 5, "2", 0.25)]}
                        ).items():
        (tmp_path / f"{party}.csv").write_text(
            "region,qty,price,rate\n" + "".join(f"{r},{q},{p},{t}\n" for r, q, p, t in data))
    path = tmp_path / "catalog.toml"
    path.write_text(BASE.format(ranges=ranges))
    return Catalog.load(path)


def test_ranges_are_read_exactly(tmp_path):
    from decimal import Decimal
    table = _catalog(tmp_path).tables["sales"]
    assert table.ranges == {"qty": (Decimal(1), Decimal(50)),
                            "price": (Decimal(0), Decimal("100000.0")),
                            "rate": (Decimal(-1), Decimal(1))}


def test_a_declared_range_proves_the_products_fit(tmp_path):
    """decimal(15,2) allows |price| < 10^13: qty * price overflows by type, not by range."""
    without = compile_query(PRODUCT, _catalog(tmp_path, ranges=""))
    assert unproven_operations(without.dag, LIMIT)
    with_ranges = compile_query(PRODUCT, _catalog(tmp_path))
    assert not unproven_operations(with_ranges.dag, LIMIT)


def test_a_range_on_one_factor_is_not_enough(tmp_path):
    plan = compile_query(PRODUCT, _catalog(tmp_path, ranges="[tables.sales.ranges]\n"
                                                             "qty = [1, 50]\n"))
    assert unproven_operations(plan.dag, LIMIT)


RANGE_ERRORS = {
    "not a list": ("qty = 5", "[tables.sales.ranges] qty", "must be [lo, hi], two numbers, got 5"),
    "three numbers": ("qty = [1, 2, 3]", "[tables.sales.ranges] qty",
                      "must be [lo, hi], two numbers, got [1, 2, 3]"),
    "reversed": ("qty = [5, 1]", "[tables.sales.ranges] qty",
                 "must be [lo, hi] with lo <= hi, got [5, 1]"),
    "fraction for an int": ("qty = [0, 1.5]", "[tables.sales.ranges] qty",
                            "an int column's range takes integers, got [0, 1.5]"),
    "text column": ('region = [0, 1]', "[tables.sales.ranges] region",
                    "a range bounds a number column (int, decimal, float), not a text"),
    "unknown column": ("amount = [0, 1]", "[tables.sales.ranges]", "unknown column 'amount'"),
    "infinite": ("rate = [0, inf]", "[tables.sales.ranges] rate",
                 "must be [lo, hi] with lo <= hi, got [0, inf]"),
}


@pytest.mark.parametrize("spec, where, problem", RANGE_ERRORS.values(), ids=list(RANGE_ERRORS))
def test_range_errors(tmp_path, spec, where, problem):
    with pytest.raises(CatalogError) as info:
        _catalog(tmp_path, ranges=f"[tables.sales.ranges]\n{spec}\n")
    assert str(info.value) == f"catalog error: {tmp_path / 'catalog.toml'}: {where}: {problem}"


def test_a_value_outside_the_range_stops_its_owner_with_one_line(tmp_path):
    from sqlmpc.runtime.engines.duckdb import run_local_job
    cat = _catalog(tmp_path, rows={"a": [("x", 3, "10.50", 0.5), ("x", 60, "1", 0.1)],
                                   "b": [("y", 5, "100000.00", -1.0)]})
    plan = compile_query(PRODUCT, cat)
    with pytest.raises(DataError) as e:
        run_local_job(plan.local_jobs["a"])
    assert str(e.value) == (f"party a: data file {tmp_path / 'a.csv'}, row 2, column 'qty': "
                            f"value '60' is outside the range [1, 50] declared for it in "
                            f"[tables.sales.ranges] of the catalog")
    run_local_job(plan.local_jobs["b"])  # the range's ends are inside it


def test_a_decimal_just_outside_is_caught(tmp_path):
    from sqlmpc.runtime.engines.duckdb import run_local_job
    cat = _catalog(tmp_path, rows={"a": [("x", 3, "100000.01", 0.5)], "b": []})
    with pytest.raises(DataError, match=r"column 'price': value '100000.01' is outside the "
                                        r"range \[0, 100000.0\]"):
        run_local_job(compile_query(PRODUCT, cat).local_jobs["a"])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java")
def test_spark_reports_the_same_out_of_range_value(tmp_path):
    from sqlmpc.runtime.engines.duckdb import run_local_job as run_duckdb
    from sqlmpc.runtime.engines.spark import run_local_job as run_spark
    cat = _catalog(tmp_path, rows={"a": [("x", 3, "10.50", 0.5), ("x", 4, "1", 1.5)],
                                   "b": [("y", 5, "2", 0.25)]})
    plan = compile_query(PRODUCT, cat)
    messages = []
    for run_job in (run_duckdb, lambda job: run_spark(job, workdir=tmp_path / "w", timeout=600)):
        with pytest.raises(DataError) as e:
            run_job(plan.local_jobs["a"])
        messages.append(str(e.value))
    assert messages[0] == messages[1] == (
        f"party a: data file {tmp_path / 'a.csv'}, row 2, column 'rate': value '1.5' is "
        f"outside the range [-1, 1] declared for it in [tables.sales.ranges] of the catalog")


# --- a file that passed its checks is not scanned again until it changes ----------------------

def _age(path: Path, seconds: float = 60) -> None:
    """Make the file look written `seconds` ago (files written just now are always scanned)."""
    import os
    import time
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_a_file_that_passed_is_not_scanned_again_until_it_changes(tmp_path, monkeypatch):
    from sqlmpc.backends import validate
    from sqlmpc.backends.duckdb import jobkit
    from sqlmpc.runtime.engines.duckdb import run_local_job
    monkeypatch.setattr(validate, "_PASSED", {})
    cat = _catalog(tmp_path)
    _age(tmp_path / "a.csv")
    job = compile_query(PRODUCT, cat).local_jobs["a"]
    first = run_local_job(job)
    assert len(validate._PASSED) == 1
    # proof that it is not scanned: a bad value written with the same size and time stamp
    # (what a build tool would miss too) is not seen
    import os
    stamp = os.stat(tmp_path / "a.csv").st_mtime_ns
    (tmp_path / "a.csv").write_text("region,qty,price,rate\nx,3,10.50,1.5\n")  # rate 0.5 -> 1.5
    os.utime(tmp_path / "a.csv", ns=(stamp, stamp))
    second = run_local_job(job)
    assert [f.shape for f in first.values()] == [f.shape for f in second.values()]
    # a changed file (a value out of range) is scanned again: its time stamp changed
    (tmp_path / "a.csv").write_text("region,qty,price,rate\nx,60,10.50,0.5\n")
    with pytest.raises(DataError, match="value '60' is outside the range"):
        run_local_job(job)
    _age(tmp_path / "a.csv")
    with pytest.raises(DataError, match="value '60' is outside the range"):  # failed: again
        run_local_job(job)
    assert len(validate._PASSED) == 1


def test_other_checks_scan_a_file_that_passed_again(tmp_path, monkeypatch):
    from sqlmpc.backends import validate
    from sqlmpc.runtime.engines.duckdb import run_local_job
    monkeypatch.setattr(validate, "_PASSED", {})
    rows = {"a": [("x", 30, "10.50", 0.5)], "b": []}
    run_local_job(compile_query(PRODUCT, _catalog(tmp_path, rows=rows)).local_jobs["a"])
    _age(tmp_path / "a.csv")
    wide = compile_query(PRODUCT, _catalog(tmp_path, rows=rows)).local_jobs["a"]
    _age(tmp_path / "a.csv")
    run_local_job(wide)
    assert len(validate._PASSED) == 1
    # a new catalog with a narrower range: the same version of the file (same bytes, same
    # time stamp) is checked against it
    import os
    stamp = os.stat(tmp_path / "a.csv").st_mtime_ns
    narrow = compile_query(PRODUCT, _catalog(tmp_path, rows=rows, ranges=RANGES.replace(
        "qty = [1, 50]", "qty = [1, 20]"))).local_jobs["a"]
    os.utime(tmp_path / "a.csv", ns=(stamp, stamp))
    with pytest.raises(DataError, match="value '30' is outside the range"):
        run_local_job(narrow)


def test_a_folder_or_remote_part_is_never_remembered(tmp_path):
    from sqlmpc.backends import validate
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "p1.parquet").write_bytes(b"x")
    _age(folder)
    _age(folder / "p1.parquet")
    assert validate.file_version({"path": str(folder), "view": "v"}) is None
    assert validate.file_version({"path": "s3://bucket/t.parquet", "view": "v"}) is None
    assert validate.file_version({"path": str(folder / "p1.parquet"), "view": "v"}) is not None
    assert validate.file_version({"path": str(tmp_path / "missing.csv"), "view": "v"}) is None
