"""Refuse a plan with a window that MPC cannot compute, naming its function and position.

A Window (compiler/frontend/windows.py; MEDIAN and PERCENTILE_CONT / _DISC go through one
too, see frontend/ordered_sets.py) runs in the local job of the one party whose rows it
reads; over several parties' rows it is secure, and the secure backend computes only some
window functions (analyses/secure_windows.py). The refusal comes at compile time, with the
function's SQL position, so that `explain` says it too (an analysis: the DAG is returned
unchanged).
"""

from __future__ import annotations

from sqlglot import exp

from ..analyses.secure_windows import secure_window_problem
from ..errors import UnsupportedError
from ..ir.dag import SECURE, Dag, Window


def refuse_secure_windows(dag: Dag) -> Dag:
    """`dag` unchanged, or UnsupportedError for its first secure Window MPC cannot compute."""
    for node in dag.topo():
        op = dag.op(node)
        if not isinstance(op, Window) or dag.attr(node, "placement") != SECURE:
            continue
        types = dag.types(dag.inputs(node)[0])
        problems = [secure_window_problem(w, types) for _, w in op.exprs]
        problem = next((p for p in problems if p is not None), None)
        if problem is not None:
            line, col = op.where
            raise UnsupportedError(
                f"{_what(op)} over rows of several parties: not available inside MPC yet "
                f"({problem}; it runs in a party's local job when all its rows come from "
                f"that party, e.g. FROM party.table)", sql=dag.g.graph.get("sql"), line=line,
                col=col)
    return dag


def _what(op: Window) -> str:
    """The functions of a Window in the user's words."""
    funcs = [e.this.this if isinstance(e.this, exp.WithinGroup) else e.this for _, e in op.exprs]
    names = ", ".join(dict.fromkeys(f.sql_name() for f in funcs))
    if all(isinstance(f, (exp.Median, exp.PercentileCont, exp.PercentileDisc)) for f in funcs):
        return names
    return f"window function {names}"
