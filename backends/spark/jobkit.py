"""The fixed code of every generated PySpark local job: read, check, query, output.

A rendered program (templates/local_job.py.j2) holds only its job's data, PARTY, INPUTS (the
files, their catalog columns, keys, bounds and domains) and OUTPUTS (the queries in Spark
SQL), and hands them to main():

    sys.exit(jobkit.main(PARTY, INPUTS, OUTPUTS))   # python local_job_X.py --out DIR [...]

The runtime runs the same values in a Spark session it keeps (runtime/engines/spark.py):

    tables = run_job(spark, PARTY, INPUTS, OUTPUTS)   # {node: pyarrow.Table}

Every column a job reads is checked against its catalog type before any query runs (the
rules and messages of backends/validate.py); a problem is a DataError, a Spark that cannot
start or be reached a PartyError, each with a one-line message. main() prints that line after
validate.ERROR_PREFIX and exits with validate.EXIT_DATA or validate.EXIT_START.

Costs kept low on purpose: a local Parquet file's footer gives the schema (no inference job)
and, when its statistics prove the checks, spares the scan; a CSV file is scanned once for
bad values and malformed rows together; on Spark Connect a query and its views go to the
server in one round trip and a lost server fails a call after about 5 s of retries.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from functools import reduce
from typing import Any

import pyarrow as pa
from sqlmpc.compiler.errors import DataError, PartyError

from .. import validate
from ..footer import (
    footer_is_clean,
    footer_proves_domain,
    footer_proves_range,
    is_local_file,
    local_parquet_metadata,
    read_footer,
)
from ..validate import EXIT_DATA, EXIT_START, fail, one_line

# a Spark Connect server lost in the middle of a job fails it after about 5 s of retries
# (50 ms, 0.2, 0.8, 3.2 s), not after pyspark's default of at least 10 minutes
CONNECT_RETRIES = 4
ROW_ID = "__sqlmpc_row"
#: the column where Spark's CSV reader puts a row whose field count differs from the header
MALFORMED = "__sqlmpc_malformed"
#: the settings every session of a local job gets (dates in UTC; pandas' nanosecond
#: timestamps in Parquet read as numbers, see nanosecond_columns())
SESSION_SETTINGS = {"spark.sql.session.timeZone": "UTC",
                    "spark.sql.legacy.parquet.nanosAsLong": "true"}

Part = dict[str, Any]  # one entry of a program's INPUTS
Output = dict[str, Any]  # one entry of a program's OUTPUTS


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def message(kind: str, party: str, **fields: Any) -> DataError:
    return DataError(validate.message(kind, party=party, **fields))


# --- Spark: start, reach ----------------------------------------------------------------------
def parse_args(party: str, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=f"sqlmpc local job of party {party}")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--master", metavar="URL",
                       help="local[*] (default, unless spark-submit set one) or "
                            "spark://HOST:PORT for a standalone cluster")
    where.add_argument("--remote", metavar="sc://HOST:PORT", help="a Spark Connect server")
    parser.add_argument("--out", metavar="DIR", default=f"sqlmpc_out_{party}",
                        help="where to write each output as DIR/<node>.parquet")
    return parser.parse_args(argv)


def start_spark(party: str, *, master: str | None = None, remote: str | None = None,
                app_name: str | None = None):
    """A Spark session: Spark Connect at `remote`, else a driver in this process with
    `master` (None: local[*], or spark-submit's choice under spark-submit). PartyError when
    Spark cannot start or its cluster or server cannot be reached."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise PartyError(f"party {party}: pyspark is not installed for {sys.executable}") \
            from None
    if remote:
        try:
            # a session of its own (never a stale default one); no round trip yet
            spark = SparkSession.builder.remote(remote).create()
            bound_retries(spark)  # so an unreachable server fails the first call in seconds
            set_session_settings(spark)
        except Exception as e:  # noqa: BLE001 -- pyspark's errors of every kind: one line
            raise PartyError(f"party {party}: cannot connect to Spark Connect at {remote}: "
                             f"{one_line(e)}") from None
        return spark
    if master is None and "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit
        master = "local[*]"
    builder = (SparkSession.builder.appName(app_name or f"sqlmpc local job ({party})")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false"))
    for key, value in SESSION_SETTINGS.items():
        builder = builder.config(key, value)
    if master:
        builder = builder.master(master)
    if master and master.startswith("local"):  # small and quick to start
        builder = (builder.config("spark.sql.shuffle.partitions", "4")
                   .config("spark.driver.host", "127.0.0.1")
                   .config("spark.driver.bindAddress", "127.0.0.1"))
    try:
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
        stopped = spark.sparkContext._jsc.sc().isStopped()
    except Exception as e:  # noqa: BLE001 -- the JVM's errors of every kind: one line
        raise PartyError(f"party {party}: cannot start Spark ({master or 'spark-submit'}): "
                         f"{one_line(e)}") from None
    if stopped:  # a standalone master that never answered (Spark gives up after a minute)
        raise PartyError(f"party {party}: cannot reach Spark at {master}: the master did not "
                         f"answer")
    return spark


def set_session_settings(spark) -> None:
    """SESSION_SETTINGS onto a Spark Connect session, in one round trip."""
    try:
        spark.conf._set_all(configs=SESSION_SETTINGS, silent=True)
    except (AttributeError, TypeError):  # a pyspark without it: one call per setting
        for key, value in SESSION_SETTINGS.items():
            spark.conf.set(key, value)


def bound_retries(spark) -> None:
    """At most CONNECT_RETRIES retries of a failed Spark Connect call (see above)."""
    try:
        from pyspark.sql.connect.client.retries import DefaultPolicy
        spark.client.set_retry_policies([DefaultPolicy(max_retries=CONNECT_RETRIES)])
    except (ImportError, AttributeError, TypeError):  # a pyspark without them: its default
        return
    # the failed call raises and is reported in one line; pyspark's warning would be a second
    warnings.filterwarnings("ignore", message=r"\[RETRIES_EXCEEDED\]")


def is_connect(spark) -> bool:
    return type(spark).__module__.startswith("pyspark.sql.connect")


# --- reading a data file ----------------------------------------------------------------------
def check_files(party: str, inputs: list[Part]) -> None:
    """Local files must exist before Spark is started (remote URLs are checked by Spark)."""
    for part in inputs:
        if "://" not in part["path"] and not os.path.exists(part["path"]):
            raise message("missing_file", party, path=part["path"])


def read_raw(spark, party: str, part: Part):
    """The file as stored: (DataFrame, its columns as (name, Spark type name, column of the
    DataFrame) triples, the CSV header or None). A CSV's columns are text, named _c0, _c1...
    in file order, plus MALFORMED; a Parquet file's are typed, with the file's names."""
    path = part["path"]
    try:
        if part["format"] == "csv":
            header = (validate.csv_header(party, path) if is_local_file(part)
                      else csv_reader(spark).csv(path).columns)  # Spark reads the header now
            if not header:
                raise message("empty_file", party, path=path)
            schema = ", ".join([f"`_c{i}` string" for i in range(len(header))]
                               + [f"{MALFORMED} string"])
            raw = (csv_reader(spark).options(enforceSchema=True, mode="PERMISSIVE",
                                             columnNameOfCorruptRecord=MALFORMED)
                   .schema(schema).csv(path))
            return raw, [(name, "string", f"_c{i}") for i, name in enumerate(header)], header
        # A local Parquet file's schema is in its footer: read here, it spares the cluster
        # a schema-inference job (and Spark Connect a round trip) on every run.
        footer = local_parquet_schema(part)
        schema = footer and read_schema(footer, part)
        raw = (spark.read.schema(schema) if schema else spark.read).parquet(path)
        dtypes = ([(f.name, spark_kind(f.type)) for f in footer] if footer is not None
                  else raw.dtypes)  # raw.dtypes reads the footer now
        return raw, [(name, kind, name) for name, kind in dtypes], None
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 -- Spark's or pyarrow's: said in one line
        if "PATH_NOT_FOUND" in str(e):
            raise message("missing_file", party, path=path) from None
        raise message("unreadable", party, path=path, reason=one_line(e)) from None


def csv_reader(spark):
    """Spark's CSV reader as every local job uses it: a header line, text as it stands,
    RFC 4180 quoting ("" inside quotes), UTF-8, one record per line."""
    return spark.read.options(header=True, inferSchema=False, escape='"', encoding="UTF-8")


def local_parquet_schema(part: Part):
    """The Arrow schema in a local Parquet file's footer; None for anything else (then Spark
    reads the schema). Raises what pyarrow raises for a bad file."""
    if part["format"] != "parquet" or not is_local_file(part):
        return None
    return read_footer(part["path"]).schema.to_arrow_schema()


def spark_kind(arrow_type) -> str:
    """The Arrow type's name, and "string" for any text: load_part() asks only "is it text"."""
    if pa.types.is_dictionary(arrow_type):  # pandas categoricals: Spark reads their values
        arrow_type = arrow_type.value_type
    text = pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    return "string" if text else str(arrow_type)


# Parquet (Arrow) types and the Spark type Spark itself infers for them. A column of another
# type (timestamps, decimals, unsigned, nested) leaves the schema to Spark's inference.
SPARK_TYPE_OF = {
    "bool": "boolean", "int8": "tinyint", "int16": "smallint", "int32": "int",
    "int64": "bigint", "float": "float", "double": "double", "string": "string",
    "large_string": "string", "date32[day]": "date",
}


def read_schema(footer, part: Part) -> str | None:
    """The Spark schema (DDL) of just the file columns the catalog names, as Spark would infer
    it from the footer; None when a column is missing (load_part() reports it) or of a type
    outside SPARK_TYPE_OF."""
    fields = {}
    for field in footer:
        fields.setdefault(field.name.strip().lower(), field)
    columns = []
    for column in part["columns"]:
        field = fields.get(column[0].lower())
        if field is None:
            return None
        arrow_type = field.type
        if pa.types.is_dictionary(arrow_type):
            arrow_type = arrow_type.value_type
        spark_type = SPARK_TYPE_OF.get(str(arrow_type))
        if spark_type is None:
            return None
        columns.append(f"{quote(field.name)} {spark_type}")
    return ", ".join(dict.fromkeys(columns))


def nanosecond_columns(part: Part) -> set[str]:
    """Parquet timestamp columns in nanoseconds (pandas' default), which Spark reads as longs."""
    if part["format"] != "parquet" or "://" in part["path"]:
        return set()
    import pyarrow.parquet as pq

    schema = local_parquet_schema(part)
    if schema is None:  # a folder of Parquet files
        schema = pq.read_schema(part["path"])
    return {field.name for field in schema
            if pa.types.is_timestamp(field.type) and field.type.unit == "ns"}


# --- checking a data file ---------------------------------------------------------------------
def load_part(spark, party: str, part: Part):
    """Check one data file against the catalog; its columns with the catalog's names and types
    (the view part["view"] of the output queries)."""
    from pyspark.sql import functions as F

    raw, columns, header = read_raw(spark, party, part)
    by_key: dict[str, tuple[str, str]] = {}
    for name, kind, source in columns:
        by_key.setdefault(name.strip().lower(), (kind, source))
    nanos = nanosecond_columns(part)
    typed, checks, sources = [], [], {}
    for column, sql_type, spark_type, pattern in part["columns"]:
        if column.lower() not in by_key:
            raise message("missing_column", party, path=part["path"], column=column,
                          table=part["table"],
                          found=", ".join(name for name, _, _ in columns) or "(no columns)")
        kind, source = by_key[column.lower()]
        sources[column] = source
        expr = quote(source)
        if source in nanos:  # read as a count of nanoseconds, see nanosecond_columns()
            expr = f"timestamp_micros(div({expr}, 1000))"
        value = F.expr(expr)
        converted = F.expr(f"try_cast({expr} AS {spark_type})")
        is_text = kind == "string"
        is_null = value.isNull() | (F.trim(value) == "") if is_text else value.isNull()
        is_bad = converted.isNull()
        if is_text and pattern:
            is_bad = is_bad | ~value.rlike(pattern)
        typed.append(converted.alias(column))
        checks.append((column, sql_type, value, is_null, is_bad))

    # A version of the file that passed these checks in this process before is not scanned
    # again (validate.passed; taken before the scans, so a change rescans)
    version = validate.file_version(part)
    if validate.passed(version):
        return raw.select(*typed)
    # A local Parquet file's footer can prove that the scan below would find nothing; then
    # the data are read once (by the query), not twice.
    if not footer_is_clean(part, [(sources[c[0]], c[2]) for c in part["columns"]]):
        shape = (header, [source for _, _, source in columns]) if header is not None else None
        scan_for_bad_value(raw, party, part, checks, shape)
    converted = {c[0]: t for c, t in zip(part["columns"], typed)}
    check_keys_and_size(raw, party, part, converted)
    check_domains(raw, party, part, converted, sources)
    check_ranges(raw, party, part, converted, sources)
    validate.remember_passed(version)
    return raw.select(*typed)


def scan_for_bad_value(raw, party: str, part: Part, checks: list, shape=None) -> None:
    """One pass over the data: stop at the first row (in file order) with an empty or bad value,
    or, for a CSV (`shape` = (header, its columns in `raw`)), more or fewer fields than the
    header."""
    from pyspark.sql import functions as F

    numbered = raw.withColumn(ROW_ID, F.monotonically_increasing_id())
    problems = [c[3] | c[4] for c in checks]
    fields = []
    if shape is not None:
        problems.insert(0, F.col(MALFORMED).isNotNull())
        # every field is selected: Spark counts a row's fields only when it parses them all
        fields = [F.col(MALFORMED).alias("__m"),
                  *[F.col(quote(s)).alias(f"__f{i}") for i, s in enumerate(shape[1])]]
    if not problems:
        return
    flags = []
    for i, (_, _, value, is_null, is_bad) in enumerate(checks):
        flags += [value.cast("string").alias(f"v{i}"), is_null.alias(f"n{i}"),
                  is_bad.alias(f"b{i}")]
    problem = reduce(lambda a, b: a | b, problems)
    first = (numbered.where(problem).orderBy(ROW_ID).select(ROW_ID, *fields, *flags)
             .limit(1).collect())
    if not first:
        return
    bad = first[0]
    # ids grow in file order; the row number is how many rows come before, plus one
    row = numbered.where(F.col(ROW_ID) < bad[ROW_ID]).count() + 1
    path = part["path"]
    if shape is not None and bad["__m"] is not None:
        line = validate.line_of_row(path, row, quoted_newlines=False)
        raise DataError(validate.row_shape_problem(party, path, shape[0], bad["__m"], row=row,
                                                   line=line))
    for i, (column, sql_type, _, _, _) in enumerate(checks):
        if bad[f"n{i}"]:
            raise message("null_value", party, path=path, row=row, column=column)
        if bad[f"b{i}"]:
            raise message("bad_value", party, path=path, row=row, column=column,
                          value=validate.show_value(bad[f"v{i}"]), sql_type=sql_type)


def check_keys_and_size(raw, party: str, part: Part, converted: dict) -> None:
    """At most max_rows rows (the table's pad_rows), and no two rows with the same value of a
    declared key: the first repeat in file order is reported with the row it repeats."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if part["max_rows"] is not None:
        footer = local_parquet_metadata(part)
        rows = footer.num_rows if footer is not None else raw.count()
        if rows > part["max_rows"]:
            raise message("too_many_rows", party, path=part["path"], rows=rows,
                          bound=part["max_rows"], table=part["table"])
    if not part["unique"]:
        return
    numbered = raw.withColumn(ROW_ID, F.monotonically_increasing_id())
    for key in part["unique"]:
        keys = [f"__k{i}" for i in range(len(key))]
        rows = numbered.select(ROW_ID, *[converted[c].alias(k) for c, k in zip(key, keys)])
        first = rows.withColumn("__first", F.min(ROW_ID).over(Window.partitionBy(*keys)))
        dup = first.where(F.col(ROW_ID) > F.col("__first")).orderBy(ROW_ID).limit(1).collect()
        if dup:
            d = dup[0]
            # ids grow in file order; a row number is how many rows come before, plus one
            row = numbered.where(F.col(ROW_ID) < d[ROW_ID]).count() + 1
            first_row = numbered.where(F.col(ROW_ID) < d["__first"]).count() + 1
            raise message("duplicate_key", party, path=part["path"], row=row, first=first_row,
                          key=", ".join(key), table=part["table"],
                          value=", ".join("NULL" if d[k] is None else str(d[k]) for k in keys))


def check_domains(raw, party: str, part: Part, converted: dict, sources: dict) -> None:
    """Every value of a column with a declared domain is one of its values: the first other
    value in file order is reported (the one-hot group-by counts only declared values).
    A scan of the data, unless the file's footer proves it (footer_proves_domain())."""
    from pyspark.sql import functions as F

    if not part["domains"]:
        return
    types = {c[0]: c[1] for c in part["columns"]}
    numbered = raw.withColumn(ROW_ID, F.monotonically_increasing_id())
    for column, values in part["domains"].items():
        if footer_proves_domain(part, sources[column], values):
            continue
        values = validate.domain_values(values, types[column])  # dates: declared as ISO text
        value = converted[column]
        bad = numbered.where(~value.isin(*values)).orderBy(ROW_ID).select(
            ROW_ID, value.cast("string").alias("__v")).limit(1).collect()
        if bad:
            row = numbered.where(F.col(ROW_ID) < bad[0][ROW_ID]).count() + 1
            raise message("out_of_domain", party, path=part["path"], row=row, column=column,
                          value=validate.show_value(bad[0]["__v"]), count=len(values),
                          table=part["table"])


def check_ranges(raw, party: str, part: Part, converted: dict, sources: dict) -> None:
    """Every value of a column with a declared range lies in it: the first other value in file
    order is reported (the compiler proved secure arithmetic fits from the range). One
    aggregate over the data finds whether any is outside (unless the file's footer proves the
    range: footer_proves_range()); only then is the row looked up."""
    from pyspark.sql import functions as F

    ranges = part.get("ranges", {})
    if not ranges:
        return
    types = {c[0]: c[1] for c in part["columns"]}
    outside = {}
    for column, bounds in ranges.items():
        lo, hi = validate.range_values(bounds, types[column])
        outside[column] = ~converted[column].between(F.lit(lo), F.lit(hi))
        if footer_proves_range(part, sources[column], lo, hi):
            del outside[column]
    if not outside:  # the footer's statistics prove every range: no scan
        return
    counts = raw.agg(*(F.count_if(cond).alias(c) for c, cond in outside.items())).collect()[0]
    numbered = raw.withColumn(ROW_ID, F.monotonically_increasing_id())
    for column, cond in outside.items():
        if not counts[column]:
            continue
        bad = numbered.where(cond).orderBy(ROW_ID).select(
            ROW_ID, converted[column].cast("string").alias("__v")).limit(1).collect()
        row = numbered.where(F.col(ROW_ID) < bad[0][ROW_ID]).count() + 1
        raise message("out_of_range", party, path=part["path"], row=row, column=column,
                      value=validate.show_value(bad[0]["__v"]), lo=ranges[column][0],
                      hi=ranges[column][1], table=part["table"])


# --- the output queries -----------------------------------------------------------------------
def query_frame(spark, sql: str, views: dict):
    """The DataFrame of `sql` over `views` (view name -> DataFrame).

    On Spark Connect, spark.sql() is a round trip of its own, and a temporary view one more,
    each making the server analyse the plan again; here the views ride inside the query's
    plan (the same WithRelations plan spark.sql(text, name=df) sends), so the query costs
    one round trip, when its rows are fetched. Elsewhere (or should pyspark's plan classes
    change) the views are registered and spark.sql() runs the query.
    """
    if is_connect(spark):
        try:
            from pyspark.sql.connect.dataframe import DataFrame
            from pyspark.sql.connect.plan import SQL, SubqueryAlias

            relations = [SubqueryAlias(df._plan, name) for name, df in views.items()]
            return DataFrame(SQL(sql, None, None, relations), spark)
        except (ImportError, AttributeError, TypeError):
            pass
    for name, df in views.items():
        df.createOrReplaceTempView(name)
    return spark.sql(sql)


def fetch_arrow(spark, df) -> pa.Table:
    """The rows of `df` as an Arrow table.

    On Spark Connect, toArrow() first asks the server for the schema (one more analysis of
    the whole query) only to cast the table to it; every column here is already cast to its
    plan type, so the table is fetched as the server sends it, in the one round trip that
    runs the query (or by toArrow(), should pyspark's client change).
    """
    if is_connect(spark) and hasattr(df, "_to_table"):
        table, _ = df._to_table()
        return table
    return df.toArrow()


def output_table(spark, party: str, out: Output, views: dict) -> pa.Table:
    """Run one output query: its rows with the plan's names and types."""
    result = query_frame(spark, out["sql"], views)
    df = result.toDF(*[f"_c{i}" for i in range(len(out["columns"]))])
    df = df.select(*[df[f"_c{i}"].cast(spark_type).alias(name)
                     for i, (name, _, spark_type) in enumerate(out["columns"])])
    try:
        return fetch_arrow(spark, df)
    except Exception:
        # the column count is checked only now, to save a round trip on the way that works
        if len(result.columns) != len(out["columns"]):
            raise message("columns", party, node=out["node"], got=len(result.columns),
                          want=len(out["columns"])) from None
        raise


def load_views(spark, party: str, inputs: list[Part]) -> dict:
    """{view: checked, typed DataFrame} of every data file; DataError names the first
    problem."""
    check_files(party, inputs)
    return {part["view"]: load_part(spark, party, part) for part in inputs}


def run_job(spark, party: str, inputs: list[Part], outputs: list[Output]) -> dict[int, pa.Table]:
    """The job in an open session: {node: its rows}. DataError for bad data; Spark's own
    exceptions for everything else (the caller says them in one line, one_line())."""
    views = load_views(spark, party, inputs)
    return {out["node"]: output_table(spark, party, out, views) for out in outputs}


def write_table(table: pa.Table, out_dir: str, node: int) -> str:
    """Write one output as out_dir/<node>.parquet (whole or not at all); its path."""
    import pyarrow.parquet as pq

    path = os.path.join(out_dir, f"{node}.parquet")
    pq.write_table(table, path + ".tmp")
    os.replace(path + ".tmp", path)
    return path


def stop_quietly(spark) -> None:
    """Stop a session at the end of a program; a session already gone is no problem."""
    with contextlib.suppress(Exception):
        spark.stop()


def main(party: str, inputs: list[Part], outputs: list[Output],
         argv: list[str] | None = None) -> int:
    """A rendered program's command line: run the job, write each output to --out."""
    args = parse_args(party, argv)
    try:
        check_files(party, inputs)
        os.makedirs(args.out, exist_ok=True)
        spark = start_spark(party, master=args.master, remote=args.remote)
    except DataError as e:
        return fail(str(e), EXIT_DATA)
    except PartyError as e:
        return fail(str(e), EXIT_START)
    except OSError as e:
        return fail(f"party {party}: cannot create output directory {args.out}: {e}", EXIT_DATA)
    try:
        views = load_views(spark, party, inputs)
        for out in outputs:
            table = output_table(spark, party, out, views)
            path = write_table(table, args.out, out["node"])
            print(f"party {party}: output node {out['node']} ({out['kind']}): "
                  f"{table.num_rows} rows -> {path}")
    except DataError as e:
        return fail(str(e), EXIT_DATA)
    except Exception as e:  # noqa: BLE001 -- a Spark error: one line, never a Java trace
        return fail(f"party {party}: the local job failed in Spark: {one_line(e)}", EXIT_DATA)
    finally:
        stop_quietly(spark)
    return 0


__all__ = ["CONNECT_RETRIES", "load_part", "main", "output_table", "run_job", "start_spark"]
