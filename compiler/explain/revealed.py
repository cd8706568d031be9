"""The leak list: every piece of information a plan opens, and to whom.

What the plan itself decides is written here: how many rows each owner shares (or the padded
bound), the columns the owners declared public, and the result to its recipients. What each
secure operator opens is the secure backend's to say (``SecureBackend.describe``): explain
never keeps its own copy of a protocol's leakage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..analyses.padding import describe_padding
from ..errors import SqlmpcError
from ..ir.dag import Dag, Output, Reveal, Share
from ..ir.plan import LocalOutput, Plan, secure_nodes
from ..analyses.labels import labels, names, short

__all__ = ["Describer", "column_words", "revealed", "secure_backend_of"]

#: whom an operator's reveal goes to, as backends/base.py OperatorDescription names it
COMPUTE, NOBODY = "compute", "nobody"

#: labels(node, columns) -> the columns of `node` in readable words
Labels = Callable[[int, Sequence[str]], str]


class Describer(Protocol):
    """What explain needs of the secure backend (backends/base.py SecureBackend, which the
    compiler does not import): each secure operator's description, with ``how`` (the
    algorithm's tags), ``cost`` and ``reveals`` ([(what, "compute" or "nobody")])."""

    def describe(self, dag: Dag, node: int, labels: Labels) -> Any:
        ...


def secure_backend_of(plan: Plan, secure: Describer | None) -> Describer | None:
    """`secure`, which a plan that runs in MPC requires (SqlmpcError without it)."""
    if secure is None and plan.needs_mpc:
        raise SqlmpcError("explaining a plan that runs in MPC needs the secure backend that "
                          "describes its operators (pass secure=sqlmpc.backends."
                          "secure_backend())")
    return secure


def column_words(lab: dict[int, dict[str, str]]) -> Labels:
    """The backends' `labels(node, columns)`: columns of a node in readable words."""
    return lambda node, columns: names(columns, lab[node])


def revealed(plan: Plan, secure: Describer | None = None) -> list[dict]:
    """Every piece of information opened by the protocol, and to whom (the leak list):
    [{"what": words, "to": [party, ...]}], an empty "to" for a note that nothing is opened.
    `secure`: the secure backend (required when the plan runs in MPC)."""
    secure = secure_backend_of(plan, secure)
    dag = plan.dag
    lab = labels(dag)
    words = column_words(lab)
    compute = plan.compute_parties

    def backend_items(node: int) -> list[dict]:
        return [{"what": what, "to": compute if whom == COMPUTE else []}
                for what, whom in secure.describe(dag, node, words).reveals]

    items = []
    for party, job in plan.local_jobs.items():
        for o in job.outputs:
            if o.kind == "share":
                items += _share_items(party, o, compute)
                items += backend_items(o.node)
                if o.public_columns:
                    cols = ", ".join(lab[o.node].get(c, short(c)) for c in o.public_columns)
                    items.append({"what": f"the values of {cols} in {party}'s shared rows, in "
                                          f"the clear (declared public \"*\" by the owners; "
                                          f"used to group without secure comparisons)",
                                  "to": compute})
    for n in secure_nodes(dag):
        if not isinstance(dag.op(n), (Share, Reveal)):
            items += backend_items(n)
    for n in dag.topo():
        op = dag.op(n)
        if isinstance(op, Reveal):
            cols = names(dag.names(n), lab[n])
            items.append({"what": f"the result rows ({cols}) and their number", "to":
                          list(op.recipients)})
        if isinstance(op, Output) and not plan.needs_mpc:
            items.append({"what": "the result, computed at its only recipient from its own data",
                          "to": list(op.recipients)})
    return items


def _share_items(party: str, o: LocalOutput, compute: list[str]) -> list[dict]:
    """How many rows `party` shares in output `o` (or what its padding shows instead)."""
    pad = getattr(o, "pad", None)
    if pad is None:
        return [{"what": f"how many rows {party} secret-shares into MPC ({o.rows})",
                 "to": compute}]
    # compiler/analyses/padding.py: dummy rows with a secret valid flag 0
    return [{"what": f"how many rows {party} secret-shares into MPC ({o.rows}): "
                     f"{describe_padding(pad)}", "to": compute}]
