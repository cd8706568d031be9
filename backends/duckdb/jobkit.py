"""The fixed code of every generated DuckDB local job: read, check, query, output.

A rendered program (templates/local_job.py.j2) holds only its job's data, PARTY, INPUTS and
OUTPUTS (the queries in DuckDB's SQL), and hands them to main():

    sys.exit(jobkit.main(PARTY, INPUTS, OUTPUTS))   # python local_job_X.py --out DIR

The runtime runs the same values in its own process (DuckDB is embedded):

    tables = run_job(PARTY, INPUTS, OUTPUTS)        # {node: pyarrow.Table}

Each data file is checked against the catalog types with the rules and messages of
backends/validate.py and exposed as a view with the catalog's column names and types. The
file is read in place: one aggregate scan over it (of the columns the job reads) counts every
kind of problem at once, and when it finds none the view reads the file directly, so the
queries scan the file and nothing is copied. Only when that scan finds a problem (or cannot
run) is the file loaded in its raw form (CSV: every field as text; Parquet: as stored) into a
table whose file order names the first problem's row and column. A CSV is parsed strictly:
RFC 4180 quoting, the header's field count on every row (a row with more or fewer fields is
stopped, never padded or cut), no comment lines, nothing sniffed. The file must not change
while the job runs (it is read more than once). A problem is a DataError with a one-line
message; main() prints it after validate.ERROR_PREFIX and exits with validate.EXIT_DATA.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import pyarrow as pa
from sqlmpc.compiler.errors import DataError, PartyError

from .. import validate
from ..validate import EXIT_DATA, EXIT_START, fail

Part = dict[str, Any]  # one entry of a program's INPUTS
Output = dict[str, Any]  # one entry of a program's OUTPUTS


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def message(kind: str, party: str, **fields: Any) -> DataError:
    return DataError(validate.message(kind, party=party, **fields))


def connect(temp_dir: str | None = None):
    """An in-memory DuckDB connection as every local job uses it."""
    try:
        import duckdb
    except ImportError:
        raise PartyError(f"duckdb is not installed for {sys.executable}") from None
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    if temp_dir is not None:
        os.makedirs(temp_dir, exist_ok=True)
        con.execute(f"SET temp_directory = {literal(str(temp_dir))}")
    return con


def open_database(spill_dir: str):
    """The database a warm session keeps open for its jobs (see cursor()); DuckDB creates
    `spill_dir` only when a job spills to disk."""
    con = connect()
    con.execute(f"SET temp_directory = {literal(str(spill_dir))}")
    return con


def cursor(db):
    """A job's own connection to an open database `db` (see connect()): a job creates only
    temporary views and tables, which are this connection's alone and vanish when it closes,
    so jobs that share the database see nothing of each other."""
    con = db.cursor()
    con.execute("SET TimeZone = 'UTC'")
    return con


def run_job(party: str, inputs: list[Part], outputs: list[Output], *, con=None,
            temp_dir: str | None = None) -> dict[int, pa.Table]:
    """The job: {node: its rows, with the plan's names and types}. `con` (closed by its
    owner) lets the caller interrupt it; else a connection of its own, spilling to
    `temp_dir`. DataError names the first problem."""
    import duckdb

    own = con is None
    if own:
        con = connect(temp_dir)
    try:
        for index, part in enumerate(inputs):
            load_part(con, party, part, index)
        return {out["node"]: output_table(con, party, out) for out in outputs}
    except duckdb.Error as e:  # a check's own query failed (or was interrupted): one line
        raise DataError(f"party {party}: the local job failed in DuckDB: {first_line(e)}") \
            from None
    finally:
        if own:
            con.close()


# --- reading and checking a data file ---------------------------------------------------------
def read_source(con, party: str, part: Part, index: int,
                rejects: str | None = "__rejects") -> tuple[str, list[str] | None]:
    """The table function that reads the file, and a CSV's header (None for Parquet). A CSV's
    fields are columns c0, c1... in file order; rows that do not parse go to the table
    `<rejects>_<index>` (see check_rejects()), or, with rejects=None, stop the read with an
    error (a file already checked)."""
    path = part["path"]
    if part["format"] == "parquet":
        return f"read_parquet({literal(path)})", None
    if validate.is_remote(path):
        header = [row[0] for row in con.execute(
            f"DESCRIBE SELECT * FROM read_csv({literal(path)}, header = true, "
            f"all_varchar = true, delim = ',', quote = '\"', escape = '\"')").fetchall()]
    else:
        header = validate.csv_header(party, path)
    columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(header)))
    stored = ("" if rejects is None else
              f", store_rejects = true, ignore_errors = true, "
              f"rejects_table = '{rejects}_{index}', rejects_scan = '{rejects}_scan_{index}'")
    return (f"read_csv({literal(path)}, header = true, auto_detect = false, "
            f"columns = {{{columns}}}, delim = ',', quote = '\"', escape = '\"', "
            f"strict_mode = true, null_padding = false{stored})"), header


def load_part(con, party: str, part: Part, index: int = 0) -> None:
    """Check one data file and expose the typed view `<view>`: over the file itself when one
    scan finds nothing wrong (load_in_place), else over a checked copy (load_copy), which
    names the first problem."""
    path = part["path"]
    if "://" not in path and not os.path.exists(path):
        raise message("missing_file", party, path=path)
    if not load_in_place(con, party, part, index):
        load_copy(con, party, part, index)


def load_in_place(con, party: str, part: Part, index: int) -> bool:
    """One aggregate scan over the file counts every problem load_copy() looks for (rows
    DuckDB rejects, empty and bad values, values outside a domain or range, rows beyond pad_rows,
    repeated keys); when there are none, `<view>` reads the file directly and True. False
    when a count is not zero or the scan fails: load_copy() then says what and where,
    exactly as it always has (so this fast path never words a problem itself). A version of
    the file that passed the same checks in this process before is not scanned again
    (validate.passed)."""
    import duckdb

    version = validate.file_version(part)  # taken before the scan: a change rescans
    source, header = read_source(con, party, part, index, rejects="__check_rejects")
    try:
        names, kinds, source_of = file_columns(con, source, header)
        typed, flags, casts = column_checks(party, part, names, kinds, source_of)
        counts, params = problem_counts(part, flags, casts)
    except duckdb.InterruptException:
        raise
    except (duckdb.Error, DataError):
        return False
    if validate.passed(version):  # this version of the file passed these checks before
        checked, _ = read_source(con, party, part, index, rejects=None)
        con.execute(f"CREATE TEMP VIEW {ident(part['view'])} AS SELECT {', '.join(typed)} "
                    f"FROM {checked}")
        return True
    try:
        # fetchall(): the rejects table is written when the result is consumed, not before
        (found,) = con.execute(f"SELECT {', '.join(counts)} FROM {source}", params).fetchall()
        if header is not None:
            found += con.execute(f"SELECT count(*) FROM __check_rejects_{index}").fetchone()
    except duckdb.InterruptException:
        raise
    except duckdb.Error:
        return False
    if any(found):
        return False
    validate.remember_passed(version)
    checked, _ = read_source(con, party, part, index, rejects=None)
    con.execute(f"CREATE TEMP VIEW {ident(part['view'])} AS SELECT {', '.join(typed)} "
                f"FROM {checked}")
    return True


def problem_counts(part: Part, flags: list[tuple],
                   casts: dict[str, str]) -> tuple[list[str], list[Any]]:
    """The aggregates of load_in_place()'s scan, each zero on a good file, and their query
    parameters (the domains' values)."""
    types = {c[0]: c[1] for c in part["columns"]}
    counts = [f"count_if({n} OR {b})" for _, _, _, n, b in flags]
    params: list[Any] = []
    for column, values in part["domains"].items():
        counts.append(f"count_if(NOT list_contains(?, {casts[column]}))")
        params.append(validate.domain_values(values, types[column]))
    for column, bounds in part.get("ranges", {}).items():
        counts.append(f"count_if(NOT ({casts[column]} BETWEEN ? AND ?))")
        params += validate.range_values(bounds, types[column])
    if part["max_rows"] is not None:
        counts.append(f"count(*) > {int(part['max_rows'])}")
    for key in part["unique"]:
        counts.append(f"count(*) - count(DISTINCT row({', '.join(casts[c] for c in key)}))")
    # an aggregate even when nothing is checked: a CSV is still parsed, its rejects counted
    return counts or ["count(*) < 0"], params


def file_columns(con, source: str, header: list[str] | None
                 ) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """(names in the file, {source column: its DuckDB type}, {name: source column}): a CSV's
    header names the text columns c0, c1...; a Parquet file's are its own (its footer)."""
    if header is not None:
        return (header, {f"c{i}": "VARCHAR" for i in range(len(header))},
                {name: f"c{i}" for i, name in enumerate(header)})
    desc = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    names = [row[0] for row in desc]
    return names, {row[0]: str(row[1]).upper() for row in desc}, {n: n for n in names}


def column_checks(party: str, part: Part, names: list[str], kinds: dict[str, str],
                  source_of: dict[str, str]
                  ) -> tuple[list[str], list[tuple], dict[str, str]]:
    """For each column the job reads: its typed select item, its check flags (column, type,
    source, empty, bad) and its cast. A missing column is a DataError."""
    path = part["path"]
    by_key: dict[str, str] = {}
    for name in names:
        by_key.setdefault(name.strip().lower(), source_of[name])
    typed, flags, casts = [], [], {}
    for column, sql_type, duck_type, pattern in part["columns"]:
        if column.lower() not in by_key:
            raise message("missing_column", party, path=path, column=column,
                          table=part["table"], found=", ".join(names) or "(no columns)")
        src = ident(by_key[column.lower()])
        is_text = kinds[by_key[column.lower()]] == "VARCHAR"
        cast = f"TRY_CAST({src} AS {duck_type})"
        casts[column] = cast
        typed.append(f"{cast} AS {ident(column)}")
        null = f"{src} IS NULL" + (f" OR trim({src}) = ''" if is_text else "")
        bad = f"{cast} IS NULL"
        if is_text and pattern:
            bad += f" OR NOT regexp_matches({src}, {literal(pattern)})"
        flags.append((column, sql_type, src, f"({null})", f"({bad})"))
    return typed, flags, casts


def load_copy(con, party: str, part: Part, index: int = 0) -> None:
    """Load one data file as `__raw_<view>`, check it row by row in file order (the first
    problem names its row and column), and expose the typed view `<view>` over the copy."""
    import duckdb

    path = part["path"]
    raw = ident(f"__raw_{part['view']}")
    source, header = read_source(con, party, part, index)
    try:
        # a table keeps the file's row order; its rowid is the 0-based data row
        con.execute(f"CREATE TEMP TABLE {raw} AS SELECT * FROM {source}")
        names, kinds, source_of = file_columns(con, f"{raw}", header)
    except duckdb.IOException as e:
        if "://" not in path and not os.path.exists(path):
            raise message("missing_file", party, path=path) from None
        raise message("unreadable", party, path=path, reason=first_line(e)) from None
    except duckdb.Error as e:
        raise message("unreadable", party, path=path, reason=first_line(e)) from None
    if header is not None:
        check_rejects(con, party, path, header, index)
    typed, flags, casts = column_checks(party, part, names, kinds, source_of)
    check_values(con, party, path, raw, flags)
    check_keys_and_size(con, party, part, raw, casts)
    con.execute(f"CREATE TEMP VIEW {ident(part['view'])} AS SELECT {', '.join(typed)} FROM {raw}")


def check_rejects(con, party: str, path: str, header: list[str], index: int) -> None:
    """Stop at the first CSV row DuckDB could not take as it stands (too many or too few
    fields, a stray quote, bad UTF-8): the row is named by its line and data row."""
    first = con.execute(f"SELECT line, csv_line, error_message FROM __rejects_{index} "
                        f"ORDER BY line, column_idx LIMIT 1").fetchone()
    if first is None:
        return
    line, text, reason = int(first[0]), first[1] or "", first[2] or ""
    raise DataError(validate.row_shape_problem(
        party, path, header, text, row=validate.row_of_line(path, line), line=line,
        reason=reason.splitlines()[0] if reason else ""))


def check_values(con, party: str, path: str, raw: str, flags: list[tuple]) -> None:
    """The first row (in file order) with an empty or bad value in a column the job reads."""
    if not flags:
        return
    any_problem = " OR ".join(f"{n} OR {b}" for _, _, _, n, b in flags)
    cols = ", ".join(f"CAST({src} AS VARCHAR), {n}, {b}" for _, _, src, n, b in flags)
    first = con.execute(f"SELECT rowid, {cols} FROM {raw} WHERE {any_problem} "
                        f"ORDER BY rowid LIMIT 1").fetchone()
    if first is None:
        return
    row = first[0] + 1
    for i, (column, sql_type, _, _, _) in enumerate(flags):
        value, is_null, is_bad = first[1 + 3 * i: 4 + 3 * i]
        if is_null:
            raise message("null_value", party, path=path, row=row, column=column)
        if is_bad:
            raise message("bad_value", party, path=path, row=row, column=column,
                          value=validate.show_value(value), sql_type=sql_type)


def check_keys_and_size(con, party: str, part: Part, raw: str, casts: dict[str, str]) -> None:
    """Every value of a column with a declared domain one of its values (the first other in
    file order), every value of one with a declared range inside it, the part's row count within the table's pad_rows, and no two rows with the
    same value of a declared key (the first repeat in file order)."""
    path, table = part["path"], part["table"]
    types = {c[0]: c[1] for c in part["columns"]}
    for column, values in part["domains"].items():
        bad = con.execute(
            f"SELECT rowid, CAST({casts[column]} AS VARCHAR) FROM {raw} "
            f"WHERE NOT list_contains(?, {casts[column]}) ORDER BY rowid LIMIT 1",
            [validate.domain_values(values, types[column])]).fetchone()
        if bad is not None:
            raise message("out_of_domain", party, path=path, row=bad[0] + 1, column=column,
                          value=validate.show_value(bad[1]), count=len(values), table=table)
    for column, bounds in part.get("ranges", {}).items():
        bad = con.execute(
            f"SELECT rowid, CAST({casts[column]} AS VARCHAR) FROM {raw} "
            f"WHERE NOT ({casts[column]} BETWEEN ? AND ?) ORDER BY rowid LIMIT 1",
            list(validate.range_values(bounds, types[column]))).fetchone()
        if bad is not None:
            raise message("out_of_range", party, path=path, row=bad[0] + 1, column=column,
                          value=validate.show_value(bad[1]), lo=bounds[0], hi=bounds[1],
                          table=table)
    if part["max_rows"] is not None:
        (rows,) = con.execute(f"SELECT count(*) FROM {raw}").fetchone()
        if rows > part["max_rows"]:
            raise message("too_many_rows", party, path=path, rows=rows,
                          bound=part["max_rows"], table=table)
    for key in part["unique"]:
        cols = ", ".join(f"{casts[c]} AS k{i}" for i, c in enumerate(key))
        ks = ", ".join(f"k{i}" for i in range(len(key)))
        shown = " || ', ' || ".join(f"coalesce(CAST(k{i} AS VARCHAR), 'NULL')"
                                    for i in range(len(key)))
        dup = con.execute(
            f"SELECT r, first, {shown} FROM (SELECT r, {ks}, min(r) OVER (PARTITION BY {ks}) "
            f"AS first FROM (SELECT rowid AS r, {cols} FROM {raw})) WHERE r > first "
            f"ORDER BY r LIMIT 1").fetchone()
        if dup is not None:
            raise message("duplicate_key", party, path=path, row=dup[0] + 1, first=dup[1] + 1,
                          key=", ".join(key), value=dup[2], table=table)


# --- the output queries -----------------------------------------------------------------------
def output_table(con, party: str, out: Output) -> pa.Table:
    """Run one output query: its rows with the plan's names and types."""
    import duckdb

    names = ", ".join(f"c{i}" for i in range(len(out["columns"])))
    select = ", ".join(f"CAST(c{i} AS {duck_type}) AS {ident(name)}"
                       for i, (name, _, duck_type) in enumerate(out["columns"]))
    wrapped = f"SELECT {select} FROM (\n{out['sql']}\n) AS __q({names})"
    try:
        return con.sql(wrapped).to_arrow_table()
    except duckdb.Error as e:
        raise DataError(f"party {party}: output node {out['node']} failed in DuckDB: "
                        f"{first_line(e)}") from None


def write_table(table: pa.Table, out_dir: str, node: int) -> str:
    """Write one output as out_dir/<node>.parquet (whole or not at all); its path."""
    import pyarrow.parquet as pq

    path = os.path.join(out_dir, f"{node}.parquet")
    pq.write_table(table, path + ".tmp")
    os.replace(path + ".tmp", path)
    return path


def main(party: str, inputs: list[Part], outputs: list[Output],
         argv: list[str] | None = None) -> int:
    """A rendered program's command line: run the job, write each output to --out."""
    parser = argparse.ArgumentParser(description=f"sqlmpc local job of party {party} (DuckDB)")
    parser.add_argument("--out", metavar="DIR", default=f"sqlmpc_out_{party}",
                        help="where to write each output as DIR/<node>.parquet")
    args = parser.parse_args(argv)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        return fail(f"party {party}: cannot create output directory {args.out}: {e}", EXIT_DATA)
    try:
        tables = run_job(party, inputs, outputs)
        for out in outputs:
            table = tables[out["node"]]
            path = write_table(table, args.out, out["node"])
            print(f"party {party}: output node {out['node']} ({out['kind']}): "
                  f"{table.num_rows} rows -> {path}")
    except DataError as e:
        return fail(str(e), EXIT_DATA)
    except PartyError as e:
        return fail(f"party {party}: {e}", EXIT_START)
    return 0


__all__ = ["connect", "load_copy", "load_in_place", "load_part", "main", "output_table",
           "run_job"]
