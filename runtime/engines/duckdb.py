"""Run a party's local job in an in-process DuckDB: the embedded engine for small parties.

    frames = run_local_job(job)     # {output node: DataFrame}, columns as LocalOutput.columns

Each data file is loaded in its raw form (CSV: every column as text, in file order; Parquet: as
stored), checked against the catalog types with the same rules and messages as the Spark
program (backends/validate.py), and exposed as a view with the catalog's column names and
types. Each output runs `LocalOutput.sql_duckdb`, its columns cast to the plan's types.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlmpc.compiler.errors import DataError
from sqlmpc.compiler.ir.plan import LocalJob, PartInput

from ...backends import validate


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def run_local_job(job: LocalJob, *, workdir: Path | None = None,
                  quiet: bool = True) -> dict[int, pd.DataFrame]:
    """Run `job` on this party's files; one DataFrame per output node."""
    import duckdb

    validate.preflight(job)
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        if workdir is not None:
            Path(workdir).mkdir(parents=True, exist_ok=True)
            con.execute(f"SET temp_directory = {_lit(str(workdir))}")
        for part in job.inputs:
            _register(con, job.party, part)
        results = {}
        for out in job.outputs:
            names = ", ".join(f"c{i}" for i in range(len(out.columns)))
            select = ", ".join(f"CAST(c{i} AS {validate.duckdb_type(t)}) AS {_ident(n)}"
                               for i, (n, t) in enumerate(out.columns))
            wrapped = f"SELECT {select} FROM (\n{out.sql_in('duckdb')}\n) AS __q({names})"
            try:
                table = con.sql(wrapped).to_arrow_table()
            except duckdb.Error as e:
                raise DataError(f"party {job.party}: output node {out.node} failed in DuckDB: "
                                f"{_first_line(e)}") from None
            results[out.node] = validate.to_frame(table, out.columns)
            if not quiet:
                print(f"party {job.party}: output node {out.node}: {len(table)} rows")
        return results
    finally:
        con.close()


def _register(con, party: str, part: PartInput) -> None:
    """Load one data file as `__raw_<view>`, check it, and expose the typed view `<view>`."""
    import duckdb

    raw = _ident(f"__raw_{part.view}")
    path = _lit(part.path)
    if validate.file_format(part.path) == "parquet":
        source = f"read_parquet({path})"
    else:
        source = (f"read_csv({path}, header = true, all_varchar = true, delim = ',', "
                  f"quote = '\"', escape = '\"', null_padding = true)")
    try:
        # a table keeps the file's row order; its rowid is the 0-based data row
        con.execute(f"CREATE TABLE {raw} AS SELECT * FROM {source}")
        desc = con.execute(f"DESCRIBE {raw}").fetchall()
    except duckdb.IOException as e:
        if not Path(part.path).exists():
            raise DataError(validate.message("missing_file", party=party, path=part.path)) \
                from None
        raise DataError(validate.message("unreadable", party=party, path=part.path,
                                         reason=_first_line(e))) from None
    except duckdb.Error as e:
        raise DataError(validate.message("unreadable", party=party, path=part.path,
                                         reason=_first_line(e))) from None
    found = [row[0] for row in desc]
    kinds = {row[0]: str(row[1]).upper() for row in desc}
    matched = validate.match_columns(party, part, found)

    typed, flags, casts = [], [], {}
    for column, sql_type in part.columns.items():
        src = _ident(matched[column])
        is_text = kinds[matched[column]] == "VARCHAR"
        cast = f"TRY_CAST({src} AS {validate.duckdb_type(sql_type)})"
        casts[column] = cast
        typed.append(f"{cast} AS {_ident(column)}")
        null = f"{src} IS NULL" + (f" OR trim({src}) = ''" if is_text else "")
        bad = f"{cast} IS NULL"
        pattern = validate.text_pattern(sql_type)
        if is_text and pattern:
            bad += f" OR NOT regexp_matches({src}, {_lit(pattern)})"
        flags.append((column, matched[column], f"({null})", f"({bad})"))

    if flags:
        any_problem = " OR ".join(f"{n} OR {b}" for _, _, n, b in flags)
        cols = ", ".join(f"CAST({_ident(src)} AS VARCHAR), {n}, {b}" for _, src, n, b in flags)
        first = con.execute(f"SELECT rowid, {cols} FROM {raw} WHERE {any_problem} "
                            f"ORDER BY rowid LIMIT 1").fetchone()
        if first is not None:
            row = first[0] + 1
            for i, (column, _, _, _) in enumerate(flags):
                value, is_null, is_bad = first[1 + 3 * i: 4 + 3 * i]
                if is_null:
                    raise DataError(validate.message("null_value", party=party, path=part.path,
                                                     row=row, column=column))
                if is_bad:
                    raise DataError(validate.message(
                        "bad_value", party=party, path=part.path, row=row, column=column,
                        value=validate.show_value(value), sql_type=part.columns[column]))
    _check_keys_and_size(con, party, part, raw, casts)
    con.execute(f"CREATE VIEW {_ident(part.view)} AS SELECT {', '.join(typed)} FROM {raw}")


def _check_keys_and_size(con, party: str, part: PartInput, raw: str, casts: dict[str, str]
                         ) -> None:
    """The part's row count within the table's pad_rows, no two rows with the same value
    of a declared key (validate.py: the messages; the first repeat in file order), and every
    value of a column with a declared domain one of its values (the first other in file order)."""
    for column, values in part.domains.items():
        bad = con.execute(
            f"SELECT rowid, CAST({casts[column]} AS VARCHAR) FROM {raw} "
            f"WHERE NOT list_contains(?, {casts[column]}) ORDER BY rowid LIMIT 1",
            [validate.domain_values(values, part.columns[column])]).fetchone()
        if bad is not None:
            raise DataError(validate.message(
                "out_of_domain", party=party, path=part.path, row=bad[0] + 1, column=column,
                value=validate.show_value(bad[1]), count=len(values), table=part.table))
    if part.max_rows is not None:
        (rows,) = con.execute(f"SELECT count(*) FROM {raw}").fetchone()
        if rows > part.max_rows:
            raise DataError(validate.message("too_many_rows", party=party, path=part.path,
                                             rows=rows, bound=part.max_rows, table=part.table))
    for key in part.unique:
        cols = ", ".join(f"{casts[c]} AS k{i}" for i, c in enumerate(key))
        ks = ", ".join(f"k{i}" for i in range(len(key)))
        shown = " || ', ' || ".join(f"coalesce(CAST(k{i} AS VARCHAR), 'NULL')"
                                    for i in range(len(key)))
        dup = con.execute(
            f"SELECT r, first, {shown} FROM (SELECT r, {ks}, min(r) OVER (PARTITION BY {ks}) "
            f"AS first FROM (SELECT rowid AS r, {cols} FROM {raw})) WHERE r > first "
            f"ORDER BY r LIMIT 1").fetchone()
        if dup is not None:
            raise DataError(validate.message(
                "duplicate_key", party=party, path=part.path, row=dup[0] + 1, first=dup[1] + 1,
                key=", ".join(key), value=dup[2], table=part.table))
