"""sqlmpc.backends.mpyc: the secure backend (MPyC).

    BACKEND.render(plan)                 # RenderedProgram("secure_job.py", the MPyC program)
    BACKEND.describe(dag, node, labels)  # OperatorDescription: algorithm, cost, leakage

    codegen.py, expressions.py   the plan's secure part -> one readable MPyC program
    describe.py                  each secure operator's algorithm and leakage, for explain
    ops.py                       the facade the generated program imports
    lib/                         the secure operators, one job per module
    support.py                   what a party's runtime uses around the program

Importing this package loads nothing heavy: rendering loads jinja2 and sqlglot, describing
loads neither, and only ``ops`` (the program's side) loads MPyC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..base import Labels, OperatorDescription, RenderedProgram

if TYPE_CHECKING:
    from ...compiler.ir.dag import Dag
    from ...compiler.ir.plan import Plan

__all__ = ["BACKEND", "MPyCBackend"]

PROGRAM = "secure_job.py"


class MPyCBackend:
    """The secure backend of backends/base.py: MPyC, Shamir secret sharing, passive
    adversaries, honest majority."""

    name = "mpyc"

    def unsupported(self, plan: Plan) -> str | None:
        """Why the secure part of `plan` cannot run in MPC (the construct), or None."""
        from ...compiler.errors import UnsupportedError
        try:
            self.render(plan)
        except UnsupportedError as e:
            return str(e)
        return None

    def render(self, plan: Plan) -> RenderedProgram:
        """The one MPyC program every compute party runs (UnsupportedError for what MPC
        lacks)."""
        from .codegen import render_secure_job
        return RenderedProgram(PROGRAM, render_secure_job(plan))

    def describe(self, dag: Dag, node: int, labels: Labels) -> OperatorDescription:
        """The algorithm and leakage of the secure operator `node` (describe.py)."""
        from .describe import describe
        return describe(dag, node, labels)


BACKEND = MPyCBackend()
