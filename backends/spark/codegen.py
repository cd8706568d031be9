"""Render a party's LocalJob into a readable, standalone PySpark program.

    text = render_local_job(job)      # a Python program: `python it.py --out DIR [--master URL]`

The template (templates/local_job.py.j2) holds no logic: this module prepares every value it
shows, as Python literals, so the program is the plan's data plus fixed, auditable code. The
data checks and their messages are the ones of backends/validate.py, embedded verbatim.
"""

from __future__ import annotations

import ast

from jinja2 import Environment, PackageLoader, StrictUndefined
from sqlmpc.compiler.errors import CompileError
from sqlmpc.compiler.ir.plan import LocalJob

from .. import validate

ERROR_PREFIX = "sqlmpc-local-job-error: "
EXIT_DATA = 3
EXIT_START = 4

_env = Environment(loader=PackageLoader("sqlmpc.backends.spark", "templates"),
                   undefined=StrictUndefined, autoescape=False, trim_blocks=True,
                   lstrip_blocks=True, keep_trailing_newline=True)

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
    """SQL as a triple-quoted block when that is exact, else a plain literal."""
    if '"""' not in sql and "\\" not in sql and not sql.endswith('"'):
        return '"""\n' + sql + '\n"""'
    return repr(sql)


def doc_line(text: str) -> str:
    """Text that is safe inside the program's raw docstring."""
    return text.replace('"""', "'''").rstrip("\\")


def program_name(job: LocalJob) -> str:
    return f"local_job_{job.party}.py"


def render_local_job(job: LocalJob) -> str:
    """The PySpark program of `job`; raises CompileError if it would not be valid Python."""
    inputs = []
    input_lines = []
    for part in job.inputs:
        fmt = validate.file_format(part.path)
        cols = [{"name": py(c), "sql_type": py(t), "spark_type": py(validate.spark_type(t)),
                 "pattern": py_regex(validate.text_pattern(t))} for c, t in part.columns.items()]
        inputs.append({"view": py(part.view), "table": py(part.table), "path": py(part.path),
                       "format": py(fmt), "columns": cols, "unique": py(part.unique),
                       "max_rows": py(part.max_rows), "domains": py(part.domains)})
        declared = ", ".join(f"{c} {t}" for c, t in part.columns.items())
        input_lines.append(doc_line(f"{part.path} ({fmt}), its part of table {part.table}, as view "
                           f"{part.view}: {declared}"))
    outputs = []
    output_lines = []
    for out in job.outputs:
        cols = [{"name": py(n), "sql_type": py(t), "spark_type": py(validate.spark_type(t))}
                for n, t in out.columns]
        outputs.append({"node": py(out.node), "kind": py(out.kind), "columns": cols,
                        "sql": py_sql(out.sql_in("spark"))})
        kind = KIND_WORDS.get(out.kind, out.kind)
        size = f"; {out.rows}" if out.rows else ""
        public = f"; public columns: {', '.join(out.public_columns)}" if out.public_columns else ""
        output_lines.append(doc_line(f"node {out.node} ({out.kind}: {kind}): "
                            + ", ".join(f"{n} {t}" for n, t in out.columns) + size + public))
    text = _env.get_template("local_job.py.j2").render(
        party=job.party, party_literal=py(job.party), program_name=program_name(job),
        inputs=inputs, outputs=outputs, input_lines=input_lines, output_lines=output_lines,
        error_prefix=ERROR_PREFIX, error_prefix_literal=py(ERROR_PREFIX),
        messages=[(py(k), py(v)) for k, v in validate.MESSAGES.items()])
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


__all__ = ["ERROR_PREFIX", "EXIT_DATA", "EXIT_START", "program_name", "render_local_job"]
