"""Move row-wise projections below the union of the parties' parts.

Each party then computes the projected expressions (including renames and the arguments of
later aggregates) on its own rows, in the clear; only the projected columns can enter MPC.
Projections that stack are merged into one.
"""

from __future__ import annotations

from sqlglot import exp

from ..ir.dag import Dag, Project, Union, col, render_exprs, substitute


def push_down_projections(dag: Dag) -> Dag:
    dag = dag.copy()
    changed = True
    while changed:
        changed = False
        for node in dag.topo():
            if node in dag.g and isinstance(dag.op(node), Project) and _push(dag, node):
                changed = True
                break
    dag.check()
    return dag


def _push(dag: Dag, node: int) -> bool:
    (src,) = dag.inputs(node)
    op, below = dag.op(node), dag.op(src)
    if len(dag.consumers(src)) != 1 and not (isinstance(below, Project) and (
            _renames(op) or _renames(below))):
        return False  # a shared projection is merged into its consumers only when cheap
    if isinstance(below, Project) and not any(e.find(exp.Sqrt) for _, e in op.exprs):
        # merge: outer expressions over the inner ones (a square root stays on its own, so
        # push_up_reveal can move it out of MPC)
        inner = dict(below.exprs)
        exprs = tuple((n, substitute(e, inner)) for n, e in op.exprs)
        (grand,) = dag.inputs(src)
        dag.set(node, op=Project(exprs, render_exprs(exprs)))
        dag.replace_input(node, src, grand)
        if not dag.consumers(src):
            dag.remove(src)
        return True
    if isinstance(below, Union):
        out_names = dag.names(src)
        for i in dag.inputs(src):
            mapping = {o: col(n) for o, n in zip(out_names, dag.names(i))}
            exprs = tuple((n, substitute(e, mapping)) for n, e in op.exprs)
            p = dag.add(Project(exprs, render_exprs(exprs)), dag.schema(node), [i])
            dag.replace_input(src, i, p)
        dag.set(src, schema=dag.schema(node))
        dag.bypass(node)
        return True
    return False


def _renames(op: Project) -> bool:
    return all(isinstance(e, exp.Column) for _, e in op.exprs)
