"""One error hierarchy for everything a user can get wrong; the CLI prints `str(err)` as one line.

SQL errors carry the line and column of the offending construct and render a caret line
under the SQL snippet, the way sqlglot reports its own parse errors.
"""

from __future__ import annotations


class SqlmpcError(Exception):
    """Base of every error sqlmpc reports to a user (never shown with a traceback)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def detail(self) -> str | None:
        """Extra lines shown under the one-line message (a caret line for SQL errors)."""
        return self.hint


class CatalogError(SqlmpcError):
    """The catalog TOML is malformed or inconsistent."""

    def __init__(self, path: str, where: str | None, problem: str) -> None:
        location = f"{path}: {where}: " if where else f"{path}: "
        super().__init__(f"catalog error: {location}{problem}")
        self.path, self.where, self.problem = path, where, problem


class SqlError(SqlmpcError):
    """The SQL text is wrong: parse errors, unknown names, type errors."""

    kind = "SQL error"

    def __init__(self, problem: str, *, sql: str | None = None, line: int | None = None,
                 col: int | None = None) -> None:
        position = f" at line {line}, col {col}" if line is not None and col is not None else ""
        super().__init__(f"{self.kind}{position}: {problem}")
        self.problem, self.sql, self.line, self.col = problem, sql, line, col

    def detail(self) -> str | None:
        if self.sql is None or self.line is None or self.col is None:
            return None
        lines = self.sql.splitlines() or [""]
        if not 1 <= self.line <= len(lines):
            return None
        text = lines[self.line - 1]
        return f"  {text}\n  {' ' * max(self.col - 1, 0)}^"


class ParseError(SqlError):
    """The SQL does not parse."""

    kind = "SQL parse error"


class SchemaError(SqlError):
    """A table or column is unknown or ambiguous, or types do not fit."""

    kind = "SQL schema error"


class UnsupportedError(SqlError):
    """A SQL construct sqlmpc does not compile (yet), or cannot run under MPC."""

    kind = "unsupported"


class CompileError(SqlmpcError):
    """An internal plan invariant failed: a bug in sqlmpc, reported without a traceback."""


class DataError(SqlmpcError):
    """A data file is missing, unreadable, or does not match the catalog."""


class PartyError(SqlmpcError):
    """A party process failed, died, or could not connect."""


class PolicyError(SqlError):
    """A data owner's policy ([policy.OWNER] in the catalog) refuses the query; the message
    names the owner, the column, the rule and where in the SQL (a caret line under it too)."""

    def __init__(self, message: str, *, owner: str, sql: str | None = None,
                 line: int | None = None, col: int | None = None) -> None:
        SqlmpcError.__init__(self, message)
        self.problem, self.sql, self.line, self.col = message, sql, line, col
        self.owner = owner
