"""sqlmpc.backends.duckdb: the embedded engine for a party's local job (the default)."""

from __future__ import annotations

from collections.abc import Mapping

from ..base import RenderedProgram


class DuckDBEngine:
    name = "duckdb"
    dialect = "duckdb"
    title = "DuckDB"
    option_keys: dict[str, str] = {}

    def check_option(self, key: str, value: object) -> str | None:
        return None

    def unsupported(self, job) -> str | None:
        return None

    def render(self, job) -> RenderedProgram:
        raise NotImplementedError("the DuckDB local job program")

    def describe(self, options: Mapping[str, object]) -> str:
        return "DuckDB, embedded"


ENGINE = DuckDBEngine()

__all__ = ["ENGINE"]
