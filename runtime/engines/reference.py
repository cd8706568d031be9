"""A plaintext reference: DuckDB over the union of all parties' parts, and result comparison.

The differential tests and `benchmarks/query_families.py` check sqlmpc against it: the same SQL
run in the clear on one machine that sees every part (the insecure computation). It is no
party's engine (a party reads only its own parts): it lives with the engines because it runs
DuckDB, which the backends only render for.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pandas as pd

from ...compiler.catalog import Catalog

FLOAT_REL_TOL = 1e-6   # secure fixed point (32 fractional bits) vs DuckDB doubles
FLOAT_ABS_TOL = 1e-6   # for values near zero


def duck_type(sql_type: str) -> str:
    if sql_type.startswith("decimal"):
        return sql_type.upper()
    return {"int": "BIGINT", "float": "DOUBLE", "text": "VARCHAR", "date": "DATE",
            "bool": "BOOLEAN"}[sql_type]


def reference_connection(catalog_path: str | Path):
    """A DuckDB connection with one view per logical table (UNION ALL of its parts, typed as in
    the catalog) and one `party.table` view per part."""
    import duckdb
    cat = Catalog.load(catalog_path)
    con = duckdb.connect(":memory:")
    for party in cat.parties:
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{party}"')
    for tname, table in cat.tables.items():
        cols = {c: duck_type(col.sql_type) for c, col in table.columns.items()}
        spec = "{" + ", ".join(f"'{c}': '{t}'" for c, t in cols.items()) + "}"
        selects = []
        for party, path in table.parts.items():
            src = f"read_csv('{path}', header = true, columns = {spec}, auto_detect = false)"
            if str(path).endswith(".parquet"):
                casts = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in cols.items())
                src = f"(SELECT {casts} FROM read_parquet('{path}'))"
            con.execute(f'CREATE VIEW "{party}"."{tname}" AS SELECT * FROM {src}')
            selects.append(f'SELECT * FROM "{party}"."{tname}"')
        con.execute(f'CREATE VIEW main."{tname}" AS ' + " UNION ALL ".join(selects))
    return con


def duckdb_reference(catalog_path: str | Path, sql: str) -> tuple[list[tuple], list[str]]:
    """(rows, DuckDB type names) of `sql` run in plaintext over the union of all parts."""
    con = reference_connection(catalog_path)
    try:
        rel = con.sql(sql)
        types = [str(t) for t in rel.types]
        return rel.fetchall(), types
    finally:
        con.close()


# --- comparing a sqlmpc result with the reference ------------------------------------------
def normalize(value, type_name: str):
    """A comparable value: Decimal at the reference scale, int, float, str, bool or date str."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None  # pd.NA: a NULL of a nullable integer column (Int64)
    t = type_name.upper()
    if t.startswith("DECIMAL"):
        scale = int(t[t.index(",") + 1:t.index(")")])
        q = Decimal(1).scaleb(-scale)
        return Decimal(str(value)).quantize(q, rounding=ROUND_HALF_EVEN)
    if t in ("BIGINT", "INTEGER", "HUGEINT", "SMALLINT", "TINYINT", "UBIGINT"):
        if isinstance(value, float):
            assert value == int(value), f"expected an integer, got {value!r}"
        return int(value)
    if t in ("DOUBLE", "FLOAT"):
        return float(value)
    if t == "BOOLEAN":
        if isinstance(value, str):
            return value.strip().lower() in ("true", "t", "1")
        return bool(value)
    if t == "DATE":
        if isinstance(value, (dt.date, dt.datetime, pd.Timestamp)):
            return str(value)[:10]
        return str(value)[:10]
    return str(value)


def _same(a, b, type_name: str) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if type_name.upper() in ("DOUBLE", "FLOAT"):
        return math.isclose(a, b, rel_tol=FLOAT_REL_TOL, abs_tol=FLOAT_ABS_TOL)
    return a == b


def _sort_key(row):
    return tuple((0, "") if v is None else (1, round(v, 4) if isinstance(v, float) else v)
                 for v in row)


def assert_same_result(result: pd.DataFrame, reference: tuple[list[tuple], list[str]],
                       ordered: bool) -> None:
    """Compare a sqlmpc result with the DuckDB reference: integers and decimals (at their scale)
    exactly, floats within FLOAT_REL_TOL relative (FLOAT_ABS_TOL absolute near zero); unordered
    results as sorted row lists."""
    ref_rows, types = reference
    assert len(result.columns) == len(types), \
        f"column count {len(result.columns)} != {len(types)}: {list(result.columns)}"
    got = [tuple(normalize(v, t) for v, t in zip(row, types))
           for row in result.itertuples(index=False, name=None)]
    want = [tuple(normalize(v, t) for v, t in zip(row, types)) for row in ref_rows]
    assert len(got) == len(want), f"{len(got)} rows, expected {len(want)}:\n{got}\n{want}"
    if not ordered:
        got, want = sorted(got, key=_sort_key), sorted(want, key=_sort_key)
    for i, (g, w) in enumerate(zip(got, want)):
        ok = all(_same(a, b, t) for a, b, t in zip(g, w, types))
        assert ok, f"row {i} differs: got {g}, expected {w}\nall got: {got}\nall want: {want}"
