"""Render a party's LocalJob into a readable, standalone DuckDB program.

    text = render_local_job(job)      # a Python program: `python it.py --out DIR`

The template (templates/local_job.py.j2) holds no logic: backends/local_program.py prepares
every value it shows, as Python literals, so the program is the plan's data plus a call into
the fixed, tested module jobkit.py. Each output's SQL is `LocalOutput.sql_in("duckdb")`.
"""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined
from sqlmpc.compiler.ir.plan import LocalJob

from .. import validate
from ..local_program import job_values, program_name, render_program

_env = Environment(loader=PackageLoader("sqlmpc.backends.duckdb", "templates"),
                   undefined=StrictUndefined, autoescape=False, trim_blocks=True,
                   lstrip_blocks=True, keep_trailing_newline=True)


def render_local_job(job: LocalJob) -> str:
    """The DuckDB program of `job`; raises CompileError if it would not be valid Python."""
    return render_program(job, _env.get_template("local_job.py.j2"), dialect="duckdb",
                          type_of=validate.duckdb_type)


def program_values(job: LocalJob) -> tuple[list[dict], list[dict]]:
    """(INPUTS, OUTPUTS) of `job`'s program as Python values: what its literals say."""
    return job_values(job, dialect="duckdb", type_of=validate.duckdb_type)


__all__ = ["program_name", "program_values", "render_local_job"]
