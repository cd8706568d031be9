"""Bad input of every kind through the command line, in-process (`sqlmpc.runtime.cli.main`).

Every case must end with a non-zero exit status and, on stderr, exactly one line starting
"sqlmpc: error:" that says what is wrong and where; SQL errors with a position add exactly two
lines: the offending SQL line and a caret under the offending construct. Never a traceback.

Cases that run parties (data files checked when a run starts) are marked slow. Known bugs are
`xfail(strict=True)` with the reason; fixing one makes its test fail until the mark goes.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from sqlmpc.runtime import cli

CATALOG = """\
[parties.a]
[parties.b]
[parties.c]

[tables.t]
columns = { k = "int", name = "text", v = "decimal(10,2)", d = "date", f = "float", flag = "bool" }
parts = { a = "a.csv", b = "b.csv" }

[tables.u]
columns = { k = "int", w = "int" }
parts = { c = "c.csv" }
"""
ERROR_PREFIX = "sqlmpc: error: "
POSITION = re.compile(r" at line (\d+), col (\d+): ")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "catalog.toml").write_text(CATALOG)
    (tmp_path / "a.csv").write_text("k,name,v,d,f,flag\n1,x,1.50,2024-01-02,0.5,true\n"
                                    "2,y,2.25,2024-02-03,1.5,false\n")
    (tmp_path / "b.csv").write_text("k,name,v,d,f,flag\n3,z,3.00,2024-03-04,2.5,true\n")
    (tmp_path / "c.csv").write_text("k,w\n1,10\n3,30\n")
    return tmp_path


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def assert_one_line_error(rc: int, err: str, fragment: str) -> str:
    assert rc != 0
    assert "Traceback" not in err
    lines = err.rstrip("\n").split("\n")
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith(ERROR_PREFIX), err
    assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def assert_sql_error(rc: int, err: str, sql: str, fragment: str, at: str | None = None) -> str:
    """The message line, the SQL line and a caret line (under `at`, when given)."""
    assert rc != 0
    assert "Traceback" not in err
    lines = err.rstrip("\n").split("\n")
    assert len(lines) == 3, f"expected message, SQL line and caret line, got:\n{err}"
    message, snippet, caret = lines
    assert message.startswith(ERROR_PREFIX), err
    assert fragment in message, f"{fragment!r} not in {message!r}"
    m = POSITION.search(message)
    assert m, f"no 'at line L, col C' in {message!r}"
    line, col = int(m.group(1)), int(m.group(2))
    assert snippet.startswith("  ") and snippet[2:] == sql.splitlines()[line - 1]
    assert caret.strip() == "^" and caret.index("^") == col + 1, err
    if at is not None:
        assert snippet[caret.index("^"):].startswith(at), \
            f"caret points at {snippet[caret.index('^'):]!r}, expected {at!r}\n{err}"
    return message


def explain(workspace: Path, sql: str, capsys, *extra: str) -> tuple[int, str, str]:
    q = workspace / "query.sql"
    q.write_text(sql)
    return run_cli(["explain", q, "--catalog", workspace / "catalog.toml", *extra], capsys)


# --- SQL errors with a position: (id, sql, message fragment, text under the caret) --------------
SQL_CASES = [
    # malformed SQL
    ("parse-misspelled-keyword", "SELEC k FROM t", "SQL parse error", None),
    ("parse-unclosed-paren", "SELECT (k FROM t", "SQL parse error at line 1, col 11: Expecting )",
     "FROM"),
    ("parse-unclosed-call", "SELECT SUM(k FROM t", "Expecting )", "FROM"),
    ("parse-dangling-operator", "SELECT k FROM t WHERE k >",
     "incomplete SQL: a clause is missing what should follow it", None),
    ("parse-error-on-line-3", "SELECT k\nFROM t\nWHERE k = = 1",
     "SQL parse error at line 3", "= 1"),
    ("parse-order-without-by", "SELECT k FROM t ORDER k", "Unexpected token", "k"),
    # unknown / ambiguous names
    ("unknown-table", "SELECT k FROM nope",
     "SQL schema error at line 1, col 15: unknown table 'nope' (catalog tables: t, u)", "nope"),
    ("unknown-column", "SELECT zz FROM t", "Column 'zz' could not be resolved", "zz"),
    ("unknown-column-line-3", "SELECT k FROM t WHERE k > 1 AND\n  name = 'x' AND\n  zz = 3",
     "SQL schema error at line 3, col 3: Column 'zz' could not be resolved", "zz"),
    ("unknown-table-alias", "SELECT x.k FROM t", "could not be resolved for table: 'x'", "k"),
    ("unknown-party", "SELECT k FROM zz.t", "unknown party 'zz' in 'zz.t'", "zz.t"),
    ("party-without-part", "SELECT k FROM c.t", "party 'c' holds no part of table 't'", "c.t"),
    # type errors
    ("sum-of-text", "SELECT SUM(name) FROM t", "SUM of text (needs a number)", "SUM(name)"),
    ("avg-of-date", "SELECT AVG(d) FROM t", "AVG of date (needs a number)", "AVG(d)"),
    ("text-plus-int", "SELECT name + 1 FROM t", "arithmetic on text", "name + 1"),
    ("negate-text", "SELECT -name FROM t", "negation of text", "name"),
    ("where-on-int", "SELECT k FROM t WHERE k", "WHERE condition is int, not a boolean", "k"),
    ("date-vs-int", "SELECT k FROM t WHERE d = 5", "cannot compare date with int", "d = 5"),
    ("text-vs-int", "SELECT k FROM t WHERE name = 1", "cannot compare text with int",
     "name = 1"),
    ("between-int-text", "SELECT k FROM t WHERE k BETWEEN 'a' AND 'b'",
     "BETWEEN compares int with text", "k BETWEEN"),
    ("in-list-mixed", "SELECT k FROM t WHERE k IN (1, 'a')", "IN list mixes int and text", None),
    ("and-of-int", "SELECT k FROM t WHERE flag AND k", "AND of a non-boolean", None),
    ("case-when-int", "SELECT CASE WHEN k THEN 1 END FROM t",
     "CASE WHEN condition is int, not a boolean", "k THEN"),
    ("case-mixed-branches", "SELECT CASE WHEN k > 1 THEN 'a' ELSE 1 END FROM t",
     "CASE branches mix text and int", None),
    ("not-grouped", "SELECT name, k FROM t GROUP BY name",
     "column t.k must appear in GROUP BY or be used in an aggregate function", "k FROM"),
    ("having-without-group", "SELECT k FROM t HAVING k > 1",
     "HAVING without GROUP BY or aggregates", "k > 1"),
    ("nested-aggregate", "SELECT SUM(SUM(k)) FROM t", "nested aggregate functions", "SUM("),
    ("union-arity", "SELECT k FROM t UNION ALL SELECT k, w FROM u", "UNION of 1 and 2 columns",
     None),
    # statements that are not queries
    ("delete", "DELETE FROM t", "DELETE statement: sqlmpc compiles queries (SELECT) only", None),
    ("drop", "DROP TABLE t", "DROP statement: sqlmpc compiles queries (SELECT) only", None),
    ("insert", "INSERT INTO t VALUES (1)",
     "INSERT statement: sqlmpc compiles queries (SELECT) only", None),
    ("update", "UPDATE t SET k = 1", "UPDATE statement: sqlmpc compiles queries (SELECT) only",
     None),
    ("create", "CREATE TABLE x (a INT)",
     "CREATE statement: sqlmpc compiles queries (SELECT) only", None),
    ("two-statements", "SELECT k FROM t; SELECT k FROM t",
     "2 statements found; sqlmpc compiles exactly one query", None),
    # unsupported constructs
    ("window-function", "SELECT k, NTILE(2) OVER (ORDER BY k) FROM t",
     "unsupported at line 1, col 11: window function NTILE over rows of several parties",
     "NTILE(2)"),
    ("window-in-where", "SELECT k FROM t WHERE ROW_NUMBER() OVER (ORDER BY k) < 3",
     "unsupported at line 1, col 23: window function in WHERE", None),
    ("window-unknown-function", "SELECT k, NTH_VALUE(k, 2) OVER (ORDER BY k) FROM t",
     "window function NTH_VALUE", None),
    ("left-join-extra-condition", "SELECT t.k FROM t LEFT JOIN u ON t.k = u.k AND t.v > 1",
     "a condition of LEFT JOIN ... ON other than key equalities", "t.v > 1"),
    ("asof-join", "SELECT t.k FROM t ASOF JOIN u ON t.k >= u.k", "ASOF JOIN", None),
    ("non-equi-join", "SELECT t.k FROM t JOIN u ON t.k < u.k",
     "join without an equality between the two sides (only equi-joins)", "t.k < u.k"),
    ("in-subquery-under-or", "SELECT k FROM t WHERE k > 1 OR k IN (SELECT k FROM u)",
     "IN (subquery) here", "k IN"),
    ("exists-two-non-equalities",
     "SELECT k FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.k > t.k AND u.w < t.k)",
     "a second correlation condition other than inner.column = outer.column", "u.w < t.k"),
    ("exists-correlated-expression",
     "SELECT k FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.k + 1 = t.k)",
     "correlated subquery condition other than inner.column = outer.column", None),
    ("offset-without-limit", "SELECT k FROM t OFFSET 2",
     "unsupported at line 1, col 24: OFFSET without LIMIT", None),
    ("limit-not-a-number", "SELECT k FROM t LIMIT k", "LIMIT must be a whole number", "k"),
    ("intersect-all", "SELECT k FROM t INTERSECT ALL SELECT k FROM u",
     "unsupported at line 1, col 8: INTERSECT ALL", None),
    ("except-all", "SELECT k FROM t EXCEPT ALL SELECT k FROM u", "EXCEPT ALL", None),
    ("except-arity", "SELECT k FROM t EXCEPT SELECT k, w FROM u", "EXCEPT of 1 and 2 columns",
     None),
    ("correlated-scalar-not-aggregate",
     "SELECT k FROM t WHERE v > (SELECT w FROM u WHERE u.k = t.k)",
     "correlated scalar subquery that is not one aggregate", None),
    ("function-in-mpc", "SELECT UPPER(name) FROM t GROUP BY name",
     "UPPER on t.name, whose rows come from a, b: not available inside MPC", "UPPER("),
    ("like-in-mpc", "SELECT t.k FROM t JOIN u ON t.k = u.k WHERE t.name || 'x' LIKE u.k || '%'",
     "LIKE on t.name, u.k, whose rows come from a, b, c: not available inside MPC", "t.name"),
    ("function-without-a-type", "SELECT NO_SUCH_FUNCTION(k) FROM t",
     "cannot tell the type of NO_SUCH_FUNCTION(", "NO_SUCH_FUNCTION("),
    ("percentile-of-text-per-group",
     "SELECT k, PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY name) FROM t GROUP BY k",
     "PERCENTILE_DISC over rows of several parties", "PERCENTILE_DISC("),
    ("sum-distinct", "SELECT SUM(DISTINCT k) FROM t",
     "DISTINCT inside an aggregate other than COUNT(DISTINCT x)", "SUM("),
    ("with-recursive", "WITH RECURSIVE r AS (SELECT k FROM t) SELECT k FROM r",
     "WITH RECURSIVE", None),
    ("distinct-on", "SELECT DISTINCT ON (k) k FROM t", "DISTINCT ON", None),
    ("grouping-function", "SELECT k, GROUPING(k) FROM t GROUP BY ROLLUP (k)", "GROUPING()",
     "GROUPING("),
    ("cube-too-many-sets", "SELECT COUNT(*) FROM t GROUP BY CUBE (k, name, v, d, f, flag, k + 1)",
     "128 grouping sets (at most 64", None),
    ("cast-to-blob", "SELECT CAST(k AS BLOB) FROM t", "CAST to", None),
    ("scalar-subquery-not-aggregate", "SELECT k FROM t WHERE v > (SELECT k FROM u)",
     "scalar subquery that is not a single aggregate", None),
]


@pytest.mark.parametrize("sql,fragment,at", [c[1:] for c in SQL_CASES],
                         ids=[c[0] for c in SQL_CASES])
def test_sql_error(workspace, capsys, sql, fragment, at):
    rc, out, err = explain(workspace, sql, capsys)
    assert out == ""
    assert_sql_error(rc, err, sql, fragment, at)


# --- SQL errors that have no position ------------------------------------------------------------
@pytest.mark.parametrize("sql", ["", "   \n", "-- only a comment\n", ";"],
                         ids=["empty", "blank", "comment-only", "semicolon-only"])
def test_empty_query(workspace, capsys, sql):
    rc, _, err = explain(workspace, sql, capsys)
    assert_one_line_error(rc, err, "SQL parse error: empty SQL: no statement found")


def test_unknown_dialect(workspace, capsys):
    rc, _, err = explain(workspace, "SELECT k FROM t", capsys, "--dialect", "klingon")
    assert_one_line_error(rc, err, "Unknown dialect 'klingon'")


def test_query_file_missing(workspace, capsys):
    rc, _, err = run_cli(["explain", workspace / "nope.sql", "--catalog",
                          workspace / "catalog.toml"], capsys)
    line = assert_one_line_error(rc, err, "query file")
    assert line.endswith(f"{workspace / 'nope.sql'} not found")


def test_query_file_is_a_folder(workspace, capsys):
    rc, _, err = run_cli(["explain", workspace, "--catalog", workspace / "catalog.toml"], capsys)
    assert_one_line_error(rc, err, f"cannot read query file {workspace}")


def test_dialect_is_used(workspace, capsys):
    """Backticks parse under --dialect mysql (sanity check that the option reaches the parser)."""
    rc, out, err = explain(workspace, "SELECT SUM(`k`) AS s FROM t", capsys, "--dialect", "mysql")
    assert rc == 0, err


# --- known bugs (reported; strict xfail) ----------------------------------------------------------
def test_ambiguous_column(workspace, capsys):
    sql = "SELECT k FROM t JOIN u ON t.k = u.k"
    rc, _, err = explain(workspace, sql, capsys)
    assert_sql_error(rc, err, sql, "ambiguous", "k FROM")


def test_in_list_caret_under_offending_item(workspace, capsys):
    sql = "SELECT k FROM t WHERE k IN (1, 'a')"
    rc, _, err = explain(workspace, sql, capsys)
    assert_sql_error(rc, err, sql, "IN list mixes int and text", "'a'")


def test_correlated_subquery(workspace, capsys):
    """A correlated scalar subquery decorrelates into an outer join, which runs in MPC as an
    inner join plus the unmatched rows (compiler/passes/secure_outer_joins.py)."""
    for sql in ("SELECT k, (SELECT SUM(w) FROM u WHERE u.k = t.k) AS s FROM t",
                "SELECT k FROM t WHERE v > (SELECT COUNT(*) FROM u WHERE u.k = t.k)",
                "SELECT k FROM t WHERE v > 1 OR v > (SELECT SUM(w) FROM u WHERE u.k = t.k)"):
        rc, out, err = explain(workspace, sql, capsys)
        assert rc == 0 and "In MPC" in out, err


def test_where_without_condition(workspace, capsys):
    sql = "SELECT k FROM t WHERE"
    rc, _, err = explain(workspace, sql, capsys)
    message = assert_sql_error(rc, err, sql, "SQL parse error")
    assert "<class" not in message and "sqlglot" not in message
    assert "WHERE" in message


def test_unterminated_string(workspace, capsys):
    sql = "SELECT 'abc FROM t"
    rc, _, err = explain(workspace, sql, capsys)
    assert_sql_error(rc, err, sql, "SQL parse error", "'abc")


def test_order_by_position_out_of_range(workspace, capsys):
    sql = "SELECT k FROM t ORDER BY 5"
    rc, _, err = explain(workspace, sql, capsys)
    assert_sql_error(rc, err, sql, "ORDER BY position 5 is not in the select list", "5")


def test_tablesample_rejected(workspace, capsys):
    sql = "SELECT SUM(k) AS s FROM t TABLESAMPLE (10 PERCENT)"
    rc, _, err = explain(workspace, sql, capsys)
    assert_sql_error(rc, err, sql, "TABLESAMPLE")


def test_explain_out_in_missing_folder(workspace, capsys):
    rc, _, err = explain(workspace, "SELECT SUM(k) AS s FROM t", capsys,
                         "--out", workspace / "missing" / "plan.txt")
    assert_one_line_error(rc, err, "missing")
    assert rc == cli.EXIT_USER_ERROR


# --- catalog errors -------------------------------------------------------------------------------
T = '[tables.t]\ncolumns = { k = "int", v = "int" }\nparts = { a = "a.csv" }\n'
CATALOG_CASES = [
    ("malformed-toml", "[parties.a\n", "malformed TOML: Expected ']' at the end of a table "
                                       "declaration (at line 1, column 11)"),
    ("toml-duplicate-section", "[parties.a]\n[parties.a]\n" + T, "malformed TOML"),
    ("no-parties", T, "[parties]: no parties declared (add a [parties.NAME] section)"),
    ("no-tables", "[parties.a]\n[parties.b]\n",
     "[tables]: no tables declared (add a [tables.NAME] section)"),
    ("unknown-top-level-key", "[parties.a]\n" + T + "[extra]\nx = 1\n",
     "top level: unknown key 'extra' (allowed: deployment, parties, policy, result, tables)"),
    ("unknown-party-key", "[parties.a]\nhots = 'x'\n" + T,
     "[parties.a]: unknown key 'hots' (allowed: host, port, engine, agent, analysts, spark_master)"),
    ("unknown-engine", "[parties.a]\nengine = 'postgres'\n" + T,
     "[parties.a]: unknown engine 'postgres' (engines: duckdb, spark)"),
    ("key-of-another-engine", "[parties.a]\nengine = 'duckdb'\nspark_master = 'local[2]'\n" + T,
     "[parties.a]: unknown key 'spark_master' (allowed: host, port, engine, agent, analysts)"),
    ("unknown-table-key", "[parties.a]\n" + T + "partz = {}\n",
     "[tables.t]: unknown key 'partz'"),
    ("unknown-result-key", "[parties.a]\n" + T + "[result]\nrecipient = ['a']\n",
     "[result]: unknown key 'recipient'"),
    ("party-not-a-section", "parties = { a = 1 }\n" + T,
     "[parties.a]: must be a table (a [parties.NAME] section)"),
    ("bad-party-name", '[parties."a b"]\n' + T,
     "a party name must be a plain identifier"),
    ("trust-unknown-party", "[parties.a]\n" + T + "[tables.t.trust]\nk = ['zed']\n",
     "[tables.t.trust] k: unknown party 'zed'"),
    ("trust-unknown-column", "[parties.a]\n" + T + "[tables.t.trust]\nq = '*'\n",
     "[tables.t.trust]: unknown column 'q'"),
    ("trust-bad-value", "[parties.a]\n" + T + "[tables.t.trust]\nk = 5\n",
     "[tables.t.trust] k: must be \"*\" or a list of party names"),
    ("recipient-unknown-party", "[parties.a]\n" + T + "[result]\nrecipients = ['zed']\n",
     "[result] recipients: unknown party 'zed'"),
    ("recipients-empty", "[parties.a]\n" + T + "[result]\nrecipients = []\n",
     "[result] recipients: must be a non-empty list of party names"),
    ("recipient-twice", "[parties.a]\n" + T + "[result]\nrecipients = ['a', 'a']\n",
     "[result] recipients: a party is listed twice"),
    ("bad-type",
     '[parties.a]\n[tables.t]\ncolumns = { k = "integer128" }\nparts = { a = "a.csv" }\n',
     "[tables.t] column 'k': unknown type 'integer128' (use int, decimal(p,s), float, text, "
     "date or bool)"),
    ("bad-decimal-precision",
     '[parties.a]\n[tables.t]\ncolumns = { k = "decimal(50,2)" }\nparts = { a = "a.csv" }\n',
     "[tables.t] column 'k': unknown type 'decimal(50,2)'"),
    ("type-not-a-string", '[parties.a]\n[tables.t]\ncolumns = { k = 5 }\nparts = { a = "a.csv" }\n',
     "[tables.t] column 'k': unknown type 5"),
    ("duplicate-column-case-insensitive",
     '[parties.a]\n[tables.t]\ncolumns = { k = "int", K = "int" }\nparts = { a = "a.csv" }\n',
     "[tables.t] column 'K': duplicate column (same name as 'k'; names are case-insensitive)"),
    ("no-columns", '[parties.a]\n[tables.t]\nparts = { a = "a.csv" }\n',
     "[tables.t] columns: missing or empty"),
    ("no-parts", '[parties.a]\n[tables.t]\ncolumns = { k = "int" }\n',
     "[tables.t] parts: missing or empty"),
    ("part-for-undeclared-party",
     '[parties.a]\n[tables.t]\ncolumns = { k = "int" }\nparts = { a = "a.csv", b = "b.csv" }\n',
     "[tables.t] parts: part for undeclared party 'b' (declared: a)"),
    ("bad-file-extension",
     '[parties.a]\n[tables.t]\ncolumns = { k = "int" }\nparts = { a = "a.xlsx" }\n',
     "[tables.t] parts.a: unsupported file type '.xlsx' (use .csv or .parquet)"),
    ("part-not-a-string", '[parties.a]\n[tables.t]\ncolumns = { k = "int" }\nparts = { a = 1 }\n',
     "[tables.t] parts.a: must be a file path string"),
    ("port-out-of-range", "[parties.a]\nport = 70000\n" + T,
     "[parties.a]: port must be an integer in 1..65535, got 70000"),
    ("port-a-string", "[parties.a]\nport = '80'\n" + T,
     "[parties.a]: port must be an integer in 1..65535, got '80'"),
    ("duplicate-host-port", "[parties.a]\nport = 9000\n[parties.b]\nport = 9000\n" + T,
     "[parties]: two parties share the same host and port"),
    ("bad-spark-master", "[parties.a]\nspark_master = 'yarn'\n" + T,
     "spark_master must be local[N], spark://HOST:PORT or sc://HOST:PORT, got 'yarn'"),
    ("table-named-like-party", "[parties.a]\n[parties.t]\n" + T,
     "[tables.t]: a table may not have the same name as a party"),
    ("table-named-like-party-case", "[parties.a]\n[parties.T]\n" + T,
     "[tables.t]: a table may not have the same name as a party"),
]


@pytest.mark.parametrize("text,fragment", [c[1:] for c in CATALOG_CASES],
                         ids=[c[0] for c in CATALOG_CASES])
def test_catalog_error(tmp_path, capsys, text, fragment):
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(text)
    (tmp_path / "query.sql").write_text("SELECT SUM(k) AS s FROM t")
    rc, out, err = run_cli(["explain", tmp_path / "query.sql", "--catalog", catalog], capsys)
    line = assert_one_line_error(rc, err, fragment)
    assert line.startswith(f"{ERROR_PREFIX}catalog error: {catalog}: "), line
    assert out == ""


def test_catalog_missing(tmp_path, capsys):
    (tmp_path / "query.sql").write_text("SELECT SUM(k) AS s FROM t")
    missing = tmp_path / "nope.toml"
    rc, _, err = run_cli(["explain", tmp_path / "query.sql", "--catalog", missing], capsys)
    assert_one_line_error(rc, err, f"catalog error: {missing}: file not found")


def test_catalog_is_a_folder(tmp_path, capsys):
    (tmp_path / "query.sql").write_text("SELECT SUM(k) AS s FROM t")
    rc, _, err = run_cli(["explain", tmp_path / "query.sql", "--catalog", tmp_path], capsys)
    assert_one_line_error(rc, err, f"catalog error: {tmp_path}: cannot read")


def test_compile_out_is_a_file(workspace, capsys):
    (workspace / "query.sql").write_text("SELECT SUM(k) AS s FROM t")
    rc, _, err = run_cli(["compile", workspace / "query.sql", "--catalog",
                          workspace / "catalog.toml", "--out", workspace / "a.csv"], capsys)
    assert_one_line_error(rc, err, f"cannot create output folder {workspace / 'a.csv'}")


# --- explain --format png -------------------------------------------------------------------------
def test_explain_png(workspace, capsys):
    png = workspace / "plan.png"
    rc, out, err = explain(workspace, "SELECT SUM(k) AS s FROM t", capsys,
                           "--format", "png", "--out", png)
    if shutil.which("dot") is None:
        assert_one_line_error(rc, err, "Graphviz 'dot' is not installed, so no PNG can be "
                                       "drawn (install it: apt-get install graphviz, or use "
                                       "--format dot)")
        assert not png.exists()
    else:
        assert rc == 0, err
        assert png.read_bytes().startswith(b"\x89PNG")


# --- data errors, found when a run starts (slow: the parties are started) -------------------------
DATA_CASES = [
    ("missing-file", None, "data file {path} not found"),
    ("missing-column", "k,name,v,d,f\n3,z,3.00,2024-03-04,2.5\n",
     "data file {path} has no column 'flag' (table t declares it; the file has: k, name, v, d, f)"),
    ("bad-int",
     "k,name,v,d,f,flag\n3,z,3.00,2024-03-04,2.5,true\nabc,q,1.00,2024-03-05,1.0,false\n",
     "data file {path}, row 2, column 'k': value 'abc' is not a valid int"),
    ("int-out-of-range",
     "k,name,v,d,f,flag\n99999999999999999999,z,3.00,2024-03-04,2.5,true\n",
     "data file {path}, row 1, column 'k': value '99999999999999999999' is not a valid int"),
    ("null-value",
     "k,name,v,d,f,flag\n3,z,3.00,2024-03-04,2.5,true\n,q,1.00,2024-03-05,1.0,false\n",
     "data file {path}, row 2, column 'k': empty or NULL value"),
    ("bad-date", "k,name,v,d,f,flag\n3,z,3.00,2024-13-45,2.5,true\n",
     "data file {path}, row 1, column 'd'"),
]


# a query that reads every column of t, so that every column of the file is checked
READ_ALL_COLUMNS = ("SELECT SUM(k) AS s, SUM(v) AS sv, MAX(d) AS md, SUM(f) AS sf, "
                    "COUNT(name) AS n, SUM(CASE WHEN flag THEN 1 ELSE 0 END) AS nf FROM t")


@pytest.mark.slow
@pytest.mark.parametrize("content,fragment", [c[1:] for c in DATA_CASES],
                         ids=[c[0] for c in DATA_CASES])
def test_data_error_at_run(workspace, capsys, content, fragment):
    path = workspace / "b.csv"
    if content is None:
        path.unlink()
    else:
        path.write_text(content)
    (workspace / "query.sql").write_text(READ_ALL_COLUMNS)
    result = workspace / "result.csv"
    rc, out, err = run_cli(["run", workspace / "query.sql", "--catalog",
                            workspace / "catalog.toml", "--engine", "duckdb", "--quiet",
                            "--out", result, "--timeout", "120"], capsys)
    line = assert_one_line_error(rc, err, fragment.format(path=path.resolve()))
    assert "party b" in line or line.startswith(f"{ERROR_PREFIX}b: ")
    assert not result.exists(), "a result was written although a party failed"
    assert out == ""


@pytest.mark.slow
def test_missing_column_not_read_by_query(workspace, capsys):
    (workspace / "b.csv").write_text("k,name,v,d,f\n3,z,3.00,2024-03-04,2.5\n")
    (workspace / "query.sql").write_text("SELECT SUM(k) AS s FROM t")
    rc, out, err = run_cli(["run", workspace / "query.sql", "--catalog",
                            workspace / "catalog.toml", "--engine", "duckdb", "--quiet",
                            "--timeout", "120"], capsys)
    assert_one_line_error(rc, err, "has no column 'flag'")
