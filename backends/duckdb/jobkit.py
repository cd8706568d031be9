"""The fixed code of every generated DuckDB local job: read, check, query, output.

A rendered program (templates/local_job.py.j2) holds only its job's data, PARTY, INPUTS and
OUTPUTS (the queries in DuckDB's SQL), and hands them to main():

    sys.exit(jobkit.main(PARTY, INPUTS, OUTPUTS))   # python local_job_X.py --out DIR

The runtime runs the same values in its own process (DuckDB is embedded):

    tables = run_job(PARTY, INPUTS, OUTPUTS)        # {node: pyarrow.Table}

Each data file is loaded in its raw form (CSV: every field as text, in file order; Parquet: as
stored) into a table, checked against the catalog types with the rules and messages of
backends/validate.py, and exposed as a view with the catalog's column names and types. A CSV
is parsed strictly: RFC 4180 quoting, the header's field count on every row (a row with more
or fewer fields is stopped, never padded or cut), no comment lines, nothing sniffed.
A problem is a DataError with a one-line message; main() prints it after
validate.ERROR_PREFIX and exits with validate.EXIT_DATA.
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
def read_source(con, party: str, part: Part, index: int) -> tuple[str, list[str] | None]:
    """The table function that reads the file, and a CSV's header (None for Parquet). A CSV's
    fields are columns c0, c1... in file order; rows that do not parse go to the table
    __rejects_<index> (see check_rejects())."""
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
    return (f"read_csv({literal(path)}, header = true, auto_detect = false, "
            f"columns = {{{columns}}}, delim = ',', quote = '\"', escape = '\"', "
            f"strict_mode = true, null_padding = false, store_rejects = true, "
            f"ignore_errors = true, rejects_table = '__rejects_{index}', "
            f"rejects_scan = '__rejects_scan_{index}')"), header


def load_part(con, party: str, part: Part, index: int = 0) -> None:
    """Load one data file as `__raw_<view>`, check it, and expose the typed view `<view>`."""
    import duckdb

    path = part["path"]
    if "://" not in path and not os.path.exists(path):
        raise message("missing_file", party, path=path)
    raw = ident(f"__raw_{part['view']}")
    source, header = read_source(con, party, part, index)
    try:
        # a table keeps the file's row order; its rowid is the 0-based data row
        con.execute(f"CREATE TABLE {raw} AS SELECT * FROM {source}")
        desc = con.execute(f"DESCRIBE {raw}").fetchall()
    except duckdb.IOException as e:
        if "://" not in path and not os.path.exists(path):
            raise message("missing_file", party, path=path) from None
        raise message("unreadable", party, path=path, reason=first_line(e)) from None
    except duckdb.Error as e:
        raise message("unreadable", party, path=path, reason=first_line(e)) from None
    if header is not None:
        check_rejects(con, party, path, header, index)
        names = header
        kinds = {f"c{i}": "VARCHAR" for i in range(len(header))}
        source_of = {name: f"c{i}" for i, name in enumerate(header)}
    else:
        names = [row[0] for row in desc]
        kinds = {row[0]: str(row[1]).upper() for row in desc}
        source_of = {name: name for name in names}
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
    check_values(con, party, path, raw, flags)
    check_keys_and_size(con, party, part, raw, casts)
    con.execute(f"CREATE VIEW {ident(part['view'])} AS SELECT {', '.join(typed)} FROM {raw}")


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
    file order), the part's row count within the table's pad_rows, and no two rows with the
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


__all__ = ["connect", "load_part", "main", "output_table", "run_job"]
