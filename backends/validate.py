"""Checks of a party's data files against the catalog, shared by every local engine.

Every engine reads each column a local job uses in its raw form (CSV: text; Parquet: whatever
the file holds), then converts it to the catalog type. A value is *bad* when it is present but
does not convert (or, for text sources, does not look like the type: see `TEXT_PATTERNS`, which
makes the engines agree on edge cases such as "1.0" in an int column). An empty or missing
value is a NULL, which sqlmpc does not support. A CSV row with more or fewer fields than the
header is refused whatever columns the job reads: a decimal comma (`12,50`) or a missing comma
shifts every later field, and reading the row anyway would give a wrong answer without a
word. The messages are the same for every engine; the generated programs import them from
here (through their engine's jobkit), so a party running its program by hand sees exactly what
`sqlmpc run` would report.

Rows are counted as *data rows*: row 1 is the first record after the header (blank lines are
not rows). A message about a CSV row's shape also gives its line in the file (the header is
line 1) when the file is local and the row lies within its first `LOCATE_BYTES` bytes.

Declared keys (catalog `primary_key` / `unique`) are checked part by part: a part with two
rows of the same key stops the job ("duplicate_key", naming both rows). Uniqueness ACROSS
parties' parts cannot be checked by any one owner: it is the declarer's promise. The compiler
uses it for the PK-FK join (compiler/passes/infer_unique.py); a broken promise gives wrong
sums, never a leak (see secure_ops.join). A part with more rows than the table's `pad_rows`
(the public bound its shares are padded to) stops the job too ("too_many_rows"), and so
does a value outside a column's declared public domain (catalog `domains`, "out_of_domain"):
the one-hot group-by (compiler/passes/use_domains.py) counts only the declared values, so an
undeclared one must stop the job rather than vanish from the result. So does a value outside a
column's declared public range (catalog `ranges`, "out_of_range"): the compiler proves from
it that secure arithmetic fits the secure type and checks nothing more inside MPC.

A long-lived party (an agent) remembers which files passed which checks (`file_version`,
`passed`, `remember_passed`): a file whose path, inode, size and modification time are those
it had when every check passed is not scanned again for the same checks, as a build tool
trusts a file's time stamp. A changed file, or other checks (a new catalog), are scanned as
before; so are a file that failed, a file modified in the last two seconds (`RECENT_NS`) and
a folder of files, every time. A one-shot party process starts with nothing remembered.

`preflight(job)` runs the cheap checks (the file exists and is readable, the declared columns
are in its header or Parquet schema) in Python, before an engine is started.

A generated program reports a problem as one line on stderr, `ERROR_PREFIX` + the message, and
exits with `EXIT_DATA` (bad data, a failed query) or `EXIT_START` (the engine could not start
or be reached).
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlmpc.compiler.errors import DataError

if TYPE_CHECKING:  # the generated programs import this module: nothing heavy at run time
    import pandas as pd
    from sqlmpc.compiler.ir.plan import LocalJob, PartInput

NULL_HINT = "NULL values are not supported; clean the data or filter them out"

# One-line messages; `{party}` etc. are filled in by `message()`. `{where}` is a row and,
# when known, its line: "row 3 (line 4)" (see where()).
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
    "too_many_fields": "party {party}: data file {path}, {where}: {found} where the header "
                       "has {expected} columns; after the last column '{column}' comes {value} "
                       "(a value with an unquoted comma, such as a decimal comma, splits in two: "
                       "quote it or fix the row)",
    "too_few_fields": "party {party}: data file {path}, {where}: {found} where the header "
                      "has {expected} columns, so column '{column}' has no value (a missing "
                      "separator, or one too many before it, shifts the fields: fix the row)",
    "malformed_row": "party {party}: data file {path}, {where}: not a well-formed CSV row "
                     "({reason})",
    "columns": "party {party}: output node {node} has {got} columns, the plan expects {want}",
    "duplicate_key": "party {party}: data file {path}, row {row}: key ({key}) = ({value}) "
                     "repeats row {first}, but table {table} declares it unique "
                     "(primary_key / unique in the catalog)",
    "too_many_rows": "party {party}: data file {path} has {rows} rows, more than "
                     "pad_rows = {bound} declared for table {table} in the catalog",
    "out_of_domain": "party {party}: data file {path}, row {row}, column '{column}': value "
                     "{value} is not one of the {count} values declared for it in "
                     "[tables.{table}.domains] of the catalog",
    "out_of_range": "party {party}: data file {path}, row {row}, column '{column}': value "
                    "{value} is outside the range [{lo}, {hi}] declared for it in "
                    "[tables.{table}.ranges] of the catalog",
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

ERROR_PREFIX = "sqlmpc-local-job-error: "
EXIT_DATA = 3   # bad data, a failed query
EXIT_START = 4  # the engine did not start, its cluster or server cannot be reached
#: how far into a local CSV file a row's line (or a line's row) is looked up for a message
LOCATE_BYTES = 256 << 20


#: files (with the checks they passed) this process remembers: at most this many
PASSED_FILES = 256
#: a file modified less than this long ago is scanned every time (file systems keep times
#: in ticks of a few milliseconds: a quick rewrite of the same size could keep its time)
RECENT_NS = 2_000_000_000
_PASSED: dict[tuple, None] = {}


def file_version(part: dict) -> tuple | None:
    """What identifies this version of a part's file together with the checks its job runs
    (every field of the part but the view's name); None for a remote or missing file and for
    a folder of files (a file in it can change without changing the folder's time stamp)."""
    path = part["path"]
    if is_remote(path) or not os.path.isfile(path):
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    if time.time_ns() - st.st_mtime_ns < RECENT_NS:  # maybe still being written: always scan
        return None
    checks = json.dumps({k: v for k, v in part.items() if k != "view"}, sort_keys=True,
                        default=str)
    return (os.path.abspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, checks)


def passed(version: tuple | None) -> bool:
    """Did this version of the file pass these checks in this process before?"""
    return version is not None and version in _PASSED


def remember_passed(version: tuple | None) -> None:
    """This version of the file passed every check (`version` taken before they ran, so a
    change during the scan is scanned again next time)."""
    if version is None:
        return
    if version not in _PASSED and len(_PASSED) >= PASSED_FILES:
        _PASSED.pop(next(iter(_PASSED)))
    _PASSED[version] = None


def message(kind: str, **fields: Any) -> str:
    return MESSAGES[kind].format(**fields)


def fail(text: str, status: int) -> int:
    """Report a program's failure as its one stderr line; returns the exit status."""
    print(ERROR_PREFIX + " ".join(text.split()), file=sys.stderr, flush=True)
    return status


def one_line(exc: BaseException) -> str:
    """The first informative line of an engine's exception: no Java stack trace."""
    lines = [line.strip() for line in str(exc).strip().splitlines()]
    lines = [line.lstrip(": ").strip() for line in lines
             if line and not line.startswith("An error occurred while calling")]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."


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


def range_values(bounds: list[str], sql_type: str) -> tuple[Any, Any]:
    """A column's declared range [lo, hi] (exact decimal text) as values its engine compares
    with: ints for an int column, Decimals for a decimal, floats for a float."""
    from decimal import Decimal
    kind = base_type(sql_type)
    lo, hi = (Decimal(b) for b in bounds)
    if kind == "int":
        return int(lo), int(hi)
    if kind == "float":
        return float(lo), float(hi)
    return lo, hi


def file_format(path: str) -> str:
    return "parquet" if path.lower().endswith(".parquet") else "csv"


def show_value(value: Any) -> str:
    """A bad value as shown in a message: quoted, shortened."""
    text = str(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return repr(text)


def is_remote(path: str) -> bool:
    return "://" in path


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


# --- CSV files: the header, and where a row is ------------------------------------------------
def _open_csv(path: str):
    # utf-8-sig: a byte-order mark is not part of the first column's name
    return open(path, newline="", encoding="utf-8-sig", errors="replace")


class _TooFar(Exception):
    """A look-up went past LOCATE_BYTES."""


def _lines(f) -> Any:
    """The lines of an open file, up to about LOCATE_BYTES characters."""
    read = 0
    for text in f:
        read += len(text)
        if read > LOCATE_BYTES:
            raise _TooFar
        yield text


def _records(lines) -> Any:
    """(record, first line, last line) of each non-blank CSV record (header included)."""
    reader = csv.reader(lines)
    while True:
        first = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        if len(record) > 1 or (record and record[0].strip()):
            yield record, first, reader.line_num


def csv_header(party: str, path: str) -> list[str]:
    """The column names in a local CSV file's header (its first non-blank line)."""
    try:
        with _open_csv(path) as f:
            header = next((record for record, _, _ in _records(f)), None)
    except FileNotFoundError:
        raise DataError(message("missing_file", party=party, path=path)) from None
    except (OSError, csv.Error) as e:
        raise DataError(message("unreadable", party=party, path=path,
                                reason=_first_line(e))) from None
    if header is None:
        raise DataError(message("empty_file", party=party, path=path))
    return header


def where(row: int | None, line: int | None) -> str:
    """How a message names a CSV row: "row 3 (line 4)", "row 3" or "line 4"."""
    if row is not None and line is not None:
        return f"row {row} (line {line})"
    return f"row {row}" if row is not None else f"line {line}"


def line_of_row(path: str, row: int, *, quoted_newlines: bool = True) -> int | None:
    """The line where data row `row` of a local CSV file starts; None when it is not found
    within LOCATE_BYTES. `quoted_newlines=False` counts as an engine that reads one record
    per line does (Spark without multiLine): every non-blank line after the header is a row."""
    if is_remote(path) or row < 1:
        return None
    try:
        with _open_csv(path) as f:
            if quoted_newlines:
                for index, (_, first, _) in enumerate(_records(_lines(f))):
                    if index == row:
                        return first
                return None
            seen = -1  # the header is no row
            for number, text in enumerate(_lines(f), start=1):
                if text.strip():
                    seen += 1
                    if seen == row:
                        return number
    except (_TooFar, OSError, csv.Error):
        return None
    return None


def row_of_line(path: str, line: int) -> int | None:
    """The data row of the CSV record that holds `line` of a local file; None for the header,
    a blank line, or a file that cannot be read that far within LOCATE_BYTES."""
    if is_remote(path):
        return None
    try:
        with _open_csv(path) as f:
            for index, (_, first, last) in enumerate(_records(_lines(f))):
                if first > line:
                    return None
                if line <= last:
                    return index or None
    except (_TooFar, OSError, csv.Error):
        return None
    return None


def row_shape_problem(party: str, path: str, header: list[str], text: str, *,
                      row: int | None, line: int | None, reason: str = "") -> str:
    """The message for a CSV row whose fields do not fit the header: `text` is the row as
    read; row or line (or both) say where it is."""
    try:
        fields = next(csv.reader([text.strip("\r\n")]), [])
    except csv.Error:
        fields = []
    at = where(row, line)
    found = f"{len(fields)} field" + ("s" if len(fields) != 1 else "")
    if len(fields) > len(header):
        return message("too_many_fields", party=party, path=path, where=at, found=found,
                       expected=len(header), column=header[-1],
                       value=show_value(fields[len(header)]))
    if 0 < len(fields) < len(header):
        return message("too_few_fields", party=party, path=path, where=at, found=found,
                       expected=len(header), column=header[len(fields)])
    return message("malformed_row", party=party, path=path, where=at,
                   reason=reason or f"read as {show_value(text.strip())}")


def read_header(party: str, part: PartInput) -> list[str]:
    """The column names of a data file (CSV header line or Parquet schema)."""
    path = Path(part.path)
    if not path.exists():
        raise DataError(message("missing_file", party=party, path=part.path))
    if file_format(part.path) == "csv":
        return csv_header(party, part.path)
    try:
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    except (OSError, pa.ArrowException) as e:
        raise DataError(message("unreadable", party=party, path=part.path,
                                reason=_first_line(e))) from None


def preflight(job: LocalJob) -> None:
    """Cheap checks before an engine starts: files exist and are readable, columns are there."""
    for part in job.inputs:
        if is_remote(part.path):
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
    "ERROR_PREFIX",
    "EXIT_DATA",
    "EXIT_START",
    "MESSAGES",
    "NULL_HINT",
    "TEXT_PATTERNS",
    "arrow_type",
    "csv_header",
    "domain_values",
    "range_values",
    "duckdb_type",
    "fail",
    "file_format",
    "line_of_row",
    "match_columns",
    "message",
    "one_line",
    "preflight",
    "read_header",
    "row_of_line",
    "row_shape_problem",
    "show_value",
    "spark_type",
    "text_pattern",
    "to_frame",
    "where",
]
