"""Checks of a party's data files against the catalog, shared by the Spark and DuckDB engines.

Both engines read every column a local job uses in its raw form (CSV: text; Parquet: whatever
the file holds), then convert it to the catalog type. A value is *bad* when it is present but
does not convert (or, for text sources, does not look like the type: see `TEXT_PATTERNS`, which
makes the two engines agree on edge cases such as "1.0" in an int column). An empty or missing
value is a NULL, which sqlmpc does not support. The messages are the same for both engines, and
the generated Spark program embeds `MESSAGES` and `TEXT_PATTERNS` verbatim, so a party running it
by hand sees exactly what `sqlmpc run` would report.

Declared keys (catalog `primary_key` / `unique`) are checked part by part: a part with two
rows of the same key stops the job ("duplicate_key", naming both rows). Uniqueness ACROSS
parties' parts cannot be checked by any one owner: it is the declarer's promise. The compiler
uses it for the PK-FK join (compiler/passes/infer_unique.py); a broken promise gives wrong
sums, never a leak (see secure_ops.join). A part with more rows than the table's `pad_rows`
(the public bound its shares are padded to) stops the job too ("too_many_rows"), and so
does a value outside a column's declared public domain (catalog `domains`, "out_of_domain"):
the one-hot group-by (compiler/passes/use_domains.py) counts only the declared values, so an
undeclared one must stop the job rather than vanish from the result.

`preflight(job)` runs the cheap checks (the file exists and is readable, the declared columns
are in its header or Parquet schema) in Python, before an engine is started.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from sqlmpc.compiler.errors import DataError
from sqlmpc.compiler.ir.plan import LocalJob, PartInput

NULL_HINT = "NULL values are not supported; clean the data or filter them out"

# One-line messages; `{party}` etc. are filled in by `message()` (and by the Spark program).
MESSAGES: dict[str, str] = {
    "missing_file": "party {party}: data file {path} not found",
    "unreadable": "party {party}: cannot read data file {path}: {reason}",
    "empty_file": "party {party}: data file {path} is empty (a CSV file needs a header line)",
    "missing_column": "party {party}: data file {path} has no column '{column}' "
                      "(table {table} declares it; the file has: {found})",
    "bad_value": "party {party}: data file {path}, row {row}, column '{column}': "
                 "value {value} is not a valid {sql_type}",
    "null_value": "party {party}: data file {path}, row {row}, column '{column}': "
                  "empty or NULL value; " + NULL_HINT,
    "columns": "party {party}: output node {node} has {got} columns, the plan expects {want}",
    "duplicate_key": "party {party}: data file {path}, row {row}: key ({key}) = ({value}) "
                     "repeats row {first}, but table {table} declares it unique "
                     "(primary_key / unique in the catalog)",
    "too_many_rows": "party {party}: data file {path} has {rows} rows, more than "
                     "pad_rows = {bound} declared for table {table} in the catalog",
    "out_of_domain": "party {party}: data file {path}, row {row}, column '{column}': value "
                     "{value} is not one of the {count} values declared for it in "
                     "[tables.{table}.domains] of the catalog",
}

# Regular expressions (valid in both Java and RE2) that a *text* value must match, besides
# converting with TRY_CAST, to count as a value of the type. Leading/trailing blanks are allowed.
TEXT_PATTERNS: dict[str, str] = {
    "int": r"^\s*[+-]?[0-9]+\s*$",
    "decimal": r"^\s*[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)\s*$",
    "float": r"^\s*[+-]?(([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?|(?i:nan|inf|infinity))\s*$",
    "date": r"^\s*[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}\s*$",
    "bool": r"^\s*(?i:true|false|t|f|1|0)\s*$",
}


def message(kind: str, **fields: Any) -> str:
    return MESSAGES[kind].format(**fields)


def base_type(sql_type: str) -> str:
    return "decimal" if sql_type.startswith("decimal") else sql_type


def text_pattern(sql_type: str) -> str | None:
    return TEXT_PATTERNS.get(base_type(sql_type))


def spark_type(sql_type: str) -> str:
    """The Spark SQL type of a catalog type."""
    if sql_type.startswith("decimal"):
        return sql_type
    return {"int": "bigint", "float": "double", "text": "string", "date": "date",
            "bool": "boolean"}[sql_type]


def duckdb_type(sql_type: str) -> str:
    """The DuckDB type of a catalog type."""
    if sql_type.startswith("decimal"):
        return sql_type.upper()
    return {"int": "BIGINT", "float": "DOUBLE", "text": "VARCHAR", "date": "DATE",
            "bool": "BOOLEAN"}[sql_type]


def arrow_type(sql_type: str) -> pa.DataType:
    if sql_type.startswith("decimal"):
        p, s = sql_type[len("decimal("):-1].split(",")
        return pa.decimal128(int(p), int(s))
    return {"int": pa.int64(), "float": pa.float64(), "text": pa.string(), "date": pa.date32(),
            "bool": pa.bool_()}[sql_type]


def domain_values(values: list, sql_type: str) -> list:
    """A column's declared domain as values of its type (dates come as ISO text)."""
    if sql_type == "date":
        import datetime
        return [datetime.date.fromisoformat(v) for v in values]
    return list(values)


def file_format(path: str) -> str:
    return "parquet" if path.lower().endswith(".parquet") else "csv"


def show_value(value: Any) -> str:
    """A bad value as shown in a message: quoted, shortened."""
    text = str(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return repr(text)


def match_columns(party: str, part: PartInput, found: list[str]) -> dict[str, str]:
    """Declared column -> the file's column of the same name (case-insensitive, blanks ignored)."""
    by_key: dict[str, str] = {}
    for name in found:
        by_key.setdefault(name.strip().lower(), name)
    matched = {}
    for column in part.columns:
        if column.lower() not in by_key:
            raise DataError(message("missing_column", party=party, path=part.path, column=column,
                                    table=part.table, found=", ".join(found) or "(no columns)"))
        matched[column] = by_key[column.lower()]
    return matched


def _is_remote(path: str) -> bool:
    return "://" in path


def read_header(party: str, part: PartInput) -> list[str]:
    """The column names of a data file (CSV header line or Parquet schema)."""
    path = Path(part.path)
    if not path.exists():
        raise DataError(message("missing_file", party=party, path=part.path))
    try:
        if file_format(part.path) == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
            header = next(csv.reader(f), None)
    except (OSError, pa.ArrowException, csv.Error) as e:
        raise DataError(message("unreadable", party=party, path=part.path,
                                reason=_first_line(e))) from None
    if header is None:
        raise DataError(message("empty_file", party=party, path=part.path))
    return header


def preflight(job: LocalJob) -> None:
    """Cheap checks before an engine starts: files exist and are readable, columns are there."""
    for part in job.inputs:
        if _is_remote(part.path):
            continue  # hdfs://, s3a://: only the engine can look
        header = read_header(job.party, part)
        match_columns(job.party, part, header)
        # a file lacking a declared column does not match the catalog, even if unread
        found = {h.strip().lower() for h in header}
        for column in part.declared:
            if column.lower() not in found:
                raise DataError(message("missing_column", party=job.party, path=part.path,
                                        column=column, table=part.table,
                                        found=", ".join(header) or "(no columns)"))


def to_frame(table: pa.Table, columns: list[tuple[str, str]]) -> pd.DataFrame:
    """An engine's Arrow result as a DataFrame with the plan's column names and plain types.

    int -> int64, float -> float64, decimal -> object of decimal.Decimal, date -> object of
    datetime.date, text -> object of str, bool -> bool (nullable columns fall back to pandas'
    usual float64/object).
    """
    if table.num_columns != len(columns):
        raise DataError(f"an output has {table.num_columns} columns, the plan expects "
                        f"{len(columns)}")
    arrays = []
    for array, (_, sql_type) in zip(table.columns, columns):
        want = arrow_type(sql_type)
        if array.type != want:
            array = array.cast(want)
        arrays.append(array)
    table = pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(columns))])
    frame = table.to_pandas(date_as_object=True)
    frame.columns = [name for name, _ in columns]
    return frame


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


__all__ = [
    "MESSAGES",
    "NULL_HINT",
    "TEXT_PATTERNS",
    "arrow_type",
    "domain_values",
    "duckdb_type",
    "file_format",
    "match_columns",
    "message",
    "preflight",
    "read_header",
    "show_value",
    "spark_type",
    "text_pattern",
    "to_frame",
]
