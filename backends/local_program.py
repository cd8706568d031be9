"""What every local engine's rendered program shares: its data as Python literals.

A local engine renders a party's LocalJob into a short program: a docstring saying what it
reads and outputs, then PARTY, INPUTS and OUTPUTS as literals, then one call into the engine's
fixed job module (`backends/<engine>/jobkit.py`). This module prepares those literals, so an
engine's template holds no logic and an engine's codegen is a few lines:

    text = render_program(job, env.get_template("local_job.py.j2"), dialect="duckdb",
                          type_of=validate.duckdb_type)

INPUTS: one dict per data file: view, table, path, format ("csv" or "parquet"), columns as
(column, catalog type, engine type, pattern a text value must match), unique (declared keys),
max_rows (pad_rows), domains (declared public domains), ranges (declared public ranges). OUTPUTS: one dict per output: node,
kind, columns as (column, catalog type, engine type), sql (in the engine's dialect).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlmpc.compiler.errors import CompileError

from . import validate

if TYPE_CHECKING:
    from jinja2 import Template
    from sqlmpc.compiler.ir.plan import LocalJob

KIND_WORDS = {"share": "secret-shared into MPC", "result": "the query result, for its recipients"}


def py(value: object) -> str:
    """A Python literal for a plain value."""
    return repr(value)


def py_regex(pattern: str | None) -> str:
    """A regular expression as a raw string literal when that is exact (easier to read)."""
    if pattern is not None and '"' not in pattern and not pattern.endswith("\\"):
        return f'r"{pattern}"'
    return repr(pattern)


def py_sql(sql: str) -> str:
    """SQL as a block on lines of its own whenever that is exact, else a plain literal. The
    block is a triple-quoted literal worth newline + sql + newline (the same query to every
    engine): in double quotes unless the SQL holds three in a row, then in single quotes; raw
    when the SQL holds a backslash (a raw literal keeps it as written, and the block's last
    character is the newline, never a backslash). A character Python's reader would change or
    refuse inside a literal (a carriage return, another line break, a control character)
    forces the plain literal."""
    if all(ch in "\n\t" or ch.isprintable() for ch in sql):
        for quotes in ('"""', "'''"):
            if quotes not in sql:
                prefix = "r" if "\\" in sql else ""
                return f"{prefix}{quotes}\n{sql}\n{quotes}"
    return repr(sql)


def doc_line(text: str) -> str:
    """Text that is safe inside the program's raw docstring."""
    return text.replace('"""', "'''").rstrip("\\")


def program_name(job: LocalJob) -> str:
    return f"local_job_{job.party}.py"


def job_values(job: LocalJob, *, dialect: str,
               type_of: Callable[[str], str]) -> tuple[list[dict], list[dict]]:
    """(INPUTS, OUTPUTS) of `job`'s program as Python values (see the module docstring);
    `type_of` maps a catalog type to the engine's type name."""
    inputs = [{"view": part.view, "table": part.table, "path": part.path,
               "format": validate.file_format(part.path),
               "columns": [(c, t, type_of(t), validate.text_pattern(t))
                           for c, t in part.columns.items()],
               "unique": part.unique, "max_rows": part.max_rows, "domains": part.domains,
               "ranges": part.ranges}
              for part in job.inputs]
    outputs = [{"node": out.node, "kind": out.kind,
                "columns": [(n, t, type_of(t)) for n, t in out.columns],
                "sql": out.sql_in(dialect)}
               for out in job.outputs]
    return inputs, outputs


def program_context(job: LocalJob, *, dialect: str, type_of: Callable[[str], str]) -> dict:
    """The template values of `job`'s program: job_values() as Python literals, and the lines
    of its docstring."""
    values, results = job_values(job, dialect=dialect, type_of=type_of)
    inputs = []
    for part in values:
        literal = {key: py(value) for key, value in part.items() if key != "columns"}
        literal["columns"] = [{"name": py(c), "sql_type": py(t), "engine_type": py(e),
                               "pattern": py_regex(pattern)}
                              for c, t, e, pattern in part["columns"]]
        inputs.append(literal)
    outputs = [{"node": py(out["node"]), "kind": py(out["kind"]), "sql": py_sql(out["sql"]),
                "columns": [{"name": py(n), "sql_type": py(t), "engine_type": py(e)}
                            for n, t, e in out["columns"]]}
               for out in results]
    input_lines = [doc_line(f"{part.path} ({validate.file_format(part.path)}), its part of "
                            f"table {part.table}, as view {part.view}: "
                            + ", ".join(f"{c} {t}" for c, t in part.columns.items()))
                   for part in job.inputs]
    output_lines = []
    for out in job.outputs:
        kind = KIND_WORDS.get(out.kind, out.kind)
        size = f"; {out.rows}" if out.rows else ""
        public = f"; public columns: {', '.join(out.public_columns)}" if out.public_columns else ""
        output_lines.append(doc_line(f"node {out.node} ({out.kind}: {kind}): "
                                     + ", ".join(f"{n} {t}" for n, t in out.columns) + size
                                     + public))
    return {"party": job.party, "party_literal": py(job.party), "program_name": program_name(job),
            "inputs": inputs, "outputs": outputs, "input_lines": input_lines,
            "output_lines": output_lines, "error_prefix": validate.ERROR_PREFIX,
            "exit_data": validate.EXIT_DATA, "exit_start": validate.EXIT_START}


def render_program(job: LocalJob, template: Template, *, dialect: str,
                   type_of: Callable[[str], str]) -> str:
    """`job`'s program from its engine's template; CompileError if it is not valid Python."""
    text = template.render(**program_context(job, dialect=dialect, type_of=type_of))
    if text not in _VALID:  # parsing costs more than rendering: an agent renders each query
        try:
            ast.parse(text)
        except SyntaxError as e:  # a bug in sqlmpc, not the user's
            raise CompileError(f"the local job of party {job.party} is not valid Python "
                               f"(line {e.lineno}): {e.msg}") from None
        if len(_VALID) >= 64:
            _VALID.pop(next(iter(_VALID)))
        _VALID[text] = None
    return text


#: programs already parsed once (insertion-ordered: the oldest is dropped first)
_VALID: dict[str, None] = {}


__all__ = ["doc_line", "job_values", "program_context", "program_name", "py", "py_regex",
           "py_sql", "render_program"]
