"""Place every node locally at one party or in MPC, and insert share and reveal nodes.

A node whose output depends on one party's data only runs at that party in the clear
("local:<party>"); every other node runs in MPC ("secure"). Each edge from a local node into
MPC gets a Share node (that party secret-shares those rows), and the result gets a Reveal node
that opens it to the recipients only. A query over one party's data whose only recipient is
that party needs no MPC at all.

With all_secure=True (the benchmarks' baseline) every operator after the scans runs in MPC.
Not optional: this pass is what keeps each party's rows at that party.
"""

from __future__ import annotations

from ..catalog import Catalog
from ..errors import CompileError
from ..ir.dag import RECIPIENT, SECURE, Dag, Output, Reveal, Scan, Share


def local(party: str) -> str:
    return f"local:{party}"


def mark_boundary(dag: Dag, *, catalog: Catalog, all_secure: bool = False) -> Dag:
    dag = dag.copy()
    for node in dag.topo():
        op = dag.op(node)
        owners = dag.attr(node, "owners")
        ins = dag.inputs(node)
        if isinstance(op, Output):
            placement = RECIPIENT
        elif isinstance(op, Scan):
            placement = local(op.party)
        elif all_secure:
            placement = SECURE
        elif len(owners) == 1 and all(dag.attr(i, "placement") == local(next(iter(owners)))
                                      for i in ins):
            placement = local(next(iter(owners)))
        else:
            placement = SECURE
        dag.set(node, placement=placement)
    # a result computed at one party goes to the recipients through MPC, unless that party is
    # the only recipient
    for src, dst in list(dag.g.edges()):
        sp, dp = dag.attr(src, "placement"), dag.attr(dst, "placement")
        if sp.startswith("local:") and (dp == SECURE or (dp == RECIPIENT and catalog.recipients
                                                          != (sp.split(":", 1)[1],))):
            share = dag.insert_between(src, dst, Share(sp.split(":", 1)[1]), dag.schema(src))
            dag.set(share, placement=SECURE, owners=dag.attr(src, "owners"),
                    trust=dict(dag.attr(src, "trust")))
    (top,) = dag.inputs(dag.root)
    if dag.attr(top, "placement") == SECURE:
        rev = dag.insert_between(top, dag.root, Reveal(catalog.recipients), dag.schema(top))
        dag.set(rev, placement=SECURE, owners=dag.attr(top, "owners"),
                trust=dict(dag.attr(top, "trust")))
    check_placement(dag)
    return dag


def check_placement(dag: Dag) -> None:
    """No local node may read MPC data, and no party reads another party's local data."""
    for src, dst in dag.g.edges():
        sp, dp = dag.attr(src, "placement"), dag.attr(dst, "placement")
        if sp is None or dp is None:
            raise CompileError(f"internal error: node {src if sp is None else dst} not placed")
        if dp.startswith("local:") and sp != dp:
            raise CompileError(f"internal error: {dp} node {dst} reads {sp} node {src}")
        if dp == RECIPIENT and sp == SECURE and not isinstance(dag.op(src), Reveal):
            raise CompileError(f"internal error: recipients read secret node {src} unrevealed")
