"""sqlmpc.backends.duckdb: the embedded engine for a party's local job (the default).

DuckDB runs in the party's own process, on one machine: nothing to install or start besides
the `duckdb` package. The rendered program is `python local_job_X.py --out DIR`; the runtime
runs the same program's values in its own process (jobkit.run_job).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from ..base import RenderedProgram
from .codegen import program_name, render_local_job

if TYPE_CHECKING:
    from sqlmpc.compiler.ir.plan import LocalJob


class DuckDBEngine:
    name = "duckdb"
    dialect = "duckdb"
    title = "DuckDB"
    jobkit = "sqlmpc.backends.duckdb.jobkit"
    option_keys: ClassVar[dict[str, str]] = {}

    def check_option(self, key: str, value: object) -> str | None:
        return None

    def unsupported(self, job: LocalJob) -> str | None:
        return None

    def render(self, job: LocalJob) -> RenderedProgram:
        return RenderedProgram(program_name(job), render_local_job(job))

    def describe(self, options: Mapping[str, object]) -> str:
        return "DuckDB, embedded"


ENGINE = DuckDBEngine()

__all__ = ["ENGINE", "render_local_job"]
