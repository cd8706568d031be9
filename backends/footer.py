"""What a local Parquet file's footer proves about its data, so that a local job's checks
need not scan it: shared by the engines' jobkits (backends/duckdb, backends/spark).

A job checks every column it reads against the catalog (type, no empty value, declared
domain and range, pad_rows). A Parquet footer holds, per row group and column, the number of
NULLs and the smallest and largest value; for integer and floating-point columns that is
enough to prove a check passes, and the data are then read once, by the query, not twice.
Whatever the footer cannot prove (text, dates, decimals, missing statistics, a CSV, a remote
URL) is scanned as before, and only a scan ever words a problem. Footers are read once per
version of a file (its path, modification time and size).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

Part = dict[str, Any]

__all__ = ["ALWAYS_CONVERTS", "footer_is_clean", "footer_proves_domain",
           "footer_proves_range", "footer_rows", "is_local_file", "local_parquet_metadata",
           "read_footer"]

# Parquet (Arrow) types whose every non-NULL value converts to the engine's type unchanged
# (Spark's and DuckDB's names of the catalog's int and float).
ALWAYS_CONVERTS = {
    "bigint": {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"},
    "double": {"halffloat", "float", "double"},
}


def is_local_file(part: Part) -> bool:
    return "://" not in part["path"] and os.path.isfile(part["path"])


def read_footer(path: str):
    """A local Parquet file's footer (pyarrow FileMetaData), read once per version of the
    file however many checks and runs look at it. Raises what pyarrow raises for a bad
    file."""
    stat = os.stat(path)
    return _footer(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _footer(path: str, mtime_ns: int, size: int):
    import pyarrow.parquet as pq

    return pq.read_metadata(path)


def local_parquet_metadata(part: Part):
    """The footer (pyarrow FileMetaData) of a local Parquet file; None for anything else or an
    unreadable footer (then the engine reads the file and reports what is wrong)."""
    if part["format"] != "parquet" or not is_local_file(part):
        return None
    try:
        return read_footer(part["path"])
    except Exception:  # noqa: BLE001 -- the engine reads the file and says what is wrong
        return None


def footer_rows(part: Part) -> int | None:
    """The number of rows a local Parquet file's footer records; None when unknown."""
    meta = local_parquet_metadata(part)
    return None if meta is None else int(meta.num_rows)


def _row_group_bounds(part: Part, source: str, physical: tuple[str, ...]):
    """[(min, max)] per row group of column `source` when every row group has statistics and
    the column's physical type is one of `physical` (plain numbers only); else None."""
    meta = local_parquet_metadata(part)
    if meta is None:
        return None
    try:
        leaves = [meta.schema.column(i).path for i in range(meta.num_columns)]
        index = leaves.index(source)
        column = meta.schema.column(index)  # numbers only: not dates, decimals, times
        if column.physical_type not in physical or \
                column.logical_type.type not in ("NONE", "INT"):
            return None
        out = []
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(index).statistics
            if stats is None or not stats.has_min_max:
                return None
            out.append((stats.min, stats.max))
        return out
    except Exception:  # noqa: BLE001 -- duplicate or nested names, odd statistics: scan
        return None


def footer_proves_domain(part: Part, source: str, values: list) -> bool:
    """True when a local Parquet file's row-group statistics prove that every value of the
    integer column `source` is one of `values`: each row group's [min, max] holds declared
    values only (1..5 declared, a row group of 2..4). A gap in the domain inside a row group's
    range, text, missing statistics: False, and the data are scanned."""
    if not values or not all(type(v) is int for v in values):
        return False
    groups = _row_group_bounds(part, source, ("INT32", "INT64"))
    if groups is None:
        return False
    declared = set(values)
    for lo, hi in groups:
        lo, hi = int(lo), int(hi)
        if hi - lo >= len(declared) or any(v not in declared for v in range(lo, hi + 1)):
            return False
    return True


def footer_proves_range(part: Part, source: str, lo: float, hi: float) -> bool:
    """True when a local Parquet file's row-group statistics prove that every value of the
    integer column `source` lies in [lo, hi]. Floating-point columns are always scanned: a
    footer's min and max leave NaN out, and a NaN is outside every range."""
    groups = _row_group_bounds(part, source, ("INT32", "INT64"))
    if groups is None:
        return False
    return all(lo <= int(g_lo) and int(g_hi) <= hi for g_lo, g_hi in groups)


def footer_is_clean(part: Part, columns: list[tuple[str, str]]) -> bool:
    """True when a local Parquet file's footer alone proves that every checked (column, engine
    type) holds values of that type and no NULL: its Parquet type always converts (integers
    to bigint, floats to double) and row-group statistics count no NULLs. Anything else
    (text, dates, decimals, missing statistics, a CSV, a folder or remote URL) is checked by
    scanning the data."""
    if part["format"] != "parquet" or not is_local_file(part):
        return False
    try:
        meta = read_footer(part["path"])
        schema = meta.schema.to_arrow_schema()
        leaves = [meta.schema.column(i).path for i in range(meta.num_columns)]
        for source, engine_type in columns:
            if str(schema.field(source).type) not in ALWAYS_CONVERTS.get(engine_type.lower(), ()):
                return False
            index = leaves.index(source)
            for g in range(meta.num_row_groups):
                stats = meta.row_group(g).column(index).statistics
                if stats is None or not stats.has_null_count or stats.null_count != 0:
                    return False
    except Exception:  # noqa: BLE001 -- unreadable footer, duplicate or nested names: scan
        return False
    return True
