"""SQL text -> one sqlglot query tree, and the SQL positions every front-end error carries.

sqlglot parses; this module turns its exceptions into a `ParseError` with the line and column
of the problem, rejects anything but exactly one query statement, and computes the position
of any node of the tree (`node_position`) for the errors of the later stages.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from ..errors import ParseError, UnsupportedError

DEFAULT_DIALECT = None  # sqlglot's own, a permissive common dialect
STATEMENT_NAMES = {exp.Delete: "DELETE", exp.Drop: "DROP", exp.Insert: "INSERT",
                   exp.Update: "UPDATE", exp.Create: "CREATE", exp.Merge: "MERGE"}
# sqlglot's class name of a clause -> its SQL keyword, for "WHERE is missing what follows it"
CLAUSE_NAMES = {"Where": "WHERE", "Having": "HAVING", "Group": "GROUP BY", "Order": "ORDER BY",
                "Limit": "LIMIT", "From": "FROM", "Join": "JOIN", "Select": "SELECT"}


def parse_sql(sql: str, dialect: str | None = DEFAULT_DIALECT) -> exp.Query:
    """Parse exactly one query statement, or raise a ParseError / UnsupportedError."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except sqlglot.errors.ParseError as e:
        raise _parse_error(e, sql) from None
    except sqlglot.errors.TokenError as e:
        quote = _unterminated_quote(sql)
        if quote is None:
            raise ParseError(str(e).splitlines()[0], sql=sql) from None
        raise ParseError("unterminated string: the quote opened here is never closed",
                         **offset_position(sql, quote)) from None
    except SqlglotError as e:
        raise ParseError(str(e).splitlines()[0], sql=sql) from None
    except ValueError as e:  # e.g. an unknown dialect
        raise ParseError(str(e)) from None
    if not statements:
        raise ParseError("empty SQL: no statement found", sql=sql)
    if len(statements) > 1:
        raise UnsupportedError(f"{len(statements)} statements found; sqlmpc compiles exactly one "
                               f"query", **node_position(statements[1], sql))
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        name = next((n for cls, n in STATEMENT_NAMES.items() if isinstance(tree, cls)),
                    type(tree).__name__.upper())
        raise UnsupportedError(f"{name} statement: sqlmpc compiles queries (SELECT) only",
                               **keyword_position(sql, name))
    return tree


def _parse_error(e: sqlglot.errors.ParseError, sql: str) -> ParseError:
    """sqlglot's first parse error in our words, placed at the start of its highlighted text."""
    err = e.errors[0] if e.errors else {}
    line, end, highlight = err.get("line"), err.get("col"), err.get("highlight") or ""
    start = end - len(highlight) + 1 if end is not None else None
    desc = err.get("description", str(e)).split(". Line")[0]
    desc = re.sub(r"<Token token_type: [^,]+, text: ([^,]+), line.*?>", r"'\1'", desc)
    if desc.startswith("Required keyword"):  # sqlglot's wording for a clause left empty
        clause = re.search(r"\.(\w+)'>", err.get("description", ""))
        what = CLAUSE_NAMES.get(clause.group(1), "a clause") if clause else "a clause"
        desc = f"incomplete SQL: {what} is missing what should follow it"
        if start is None and end is None and err.get("line") is None:
            line = None
    return ParseError(desc, sql=sql, line=line, col=start)


def _unterminated_quote(sql: str) -> int | None:
    """Offset of a string or quoted identifier's opening quote that is never closed."""
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if sql.startswith("--", i):
            i = sql.find("\n", i)
            if i < 0:
                return None
        elif ch in "'\"`":
            j = i + 1
            while j < n and not (sql[j] == ch and not sql.startswith(ch * 2, j)):
                j += 2 if sql.startswith(ch * 2, j) or sql[j] == "\\" else 1
            if j >= n:
                return i
            i = j
        i += 1
    return None


def offset_position(sql: str, offset: int) -> dict:
    """sql/line/col keyword arguments of an error at character `offset` of `sql`."""
    before = sql[:offset]
    return {"sql": sql, "line": before.count("\n") + 1,
            "col": offset - (before.rfind("\n") + 1) + 1}


def keyword_position(sql: str, keyword: str) -> dict:
    """sql/line/col of the first occurrence of a keyword (statements carry no positions)."""
    m = re.search(rf"\b{re.escape(keyword)}\b", sql, re.I)
    if m is None:
        return {"sql": sql}
    return offset_position(sql, m.start())


def node_position(node: exp.Expression, sql: str | None) -> dict:
    """sql/line/col keyword arguments for an error at `node` (its first token with a position)."""
    start = None
    for n in node.walk():
        if n.meta.get("start") is not None:
            s = n.meta["start"]
            start = s if start is None else min(start, s)
    if start is None or sql is None:
        return {"sql": sql}
    return offset_position(sql, start)
