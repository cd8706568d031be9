"""Which secret sort keys come straight from an owner's input, so that the owner can input
their bits (the MPC backend's ``share_input(..., input_bits=...)``) instead of MPC extracting
them; and which secure operators sort on such keys (explain marks them). A pure analysis of
the placed DAG, shared by the MPC code generator and explain."""

from __future__ import annotations

from sqlglot import exp

from ..ir.dag import (SECURE, Aggregate, Dag, Distinct, Filter, Join, Project, SemiJoin, Share,
                      Sort, Union)
from ..sqltypes import INTEGRAL_TYPES
from .unique_keys import join_unique_side

__all__ = ["input_bit_columns", "sorts_on_owner_bits"]


def input_bit_columns(dag: Dag) -> dict[int, frozenset[str]]:
    """Share node -> the integral columns whose key bits its owner should input (the secure
    backend's ``share_input(..., input_bits=...)``): those that a later secure operator sorts
    on -- GROUP BY keys and MIN/MAX arguments on the radix path, DISTINCT, ORDER BY, join and
    semi-join keys -- reached from the input through row-preserving steps only: filters,
    projections that copy the column, UNION ALL (by position), the left side of a semi-join
    and the FK side of a PK-FK join. Conservative and name-based; a wrong guess costs only
    input bandwidth, since the operators use the bits only for the very column array they were
    input for (the backend's ``KeyBits``)."""
    return _owner_bits(dag)[0]


def sorts_on_owner_bits(dag: Dag) -> frozenset[int]:
    """The secure sorting operators some of whose keys get their bits from the owners (see
    :func:`input_bit_columns`; explain mentions it)."""
    return _owner_bits(dag)[1]


def _owner_bits(dag: Dag) -> tuple[dict[int, frozenset[str]], frozenset[int]]:
    want: dict[int, set[str]] = {}
    users: set[int] = set()

    def trace(node: int, name: str) -> bool:
        """Follow column ``name`` of ``node`` back to the inputs; True if one was reached."""
        while dag.attr(node, "placement") == SECURE and name in dag.names(node):
            op = dag.op(node)
            if isinstance(op, Share):
                if dag.types(node).get(name) in INTEGRAL_TYPES:
                    want.setdefault(node, set()).add(name)
                    return True
                return False
            if isinstance(op, (Filter, SemiJoin)):
                node = dag.inputs(node)[0]
            elif isinstance(op, Project):
                e = dict(op.exprs).get(name)
                while isinstance(e, exp.Paren):
                    e = e.this
                if not isinstance(e, exp.Column):
                    return False  # computed: its bits would have to be extracted anyway
                node, name = dag.inputs(node)[0], e.name
            elif isinstance(op, Union):
                pos = dag.names(node).index(name)
                return any([trace(i, dag.names(i)[pos]) for i in dag.inputs(node)])
            elif isinstance(op, Join) and op.left_keys and join_unique_side(dag, node):
                fk = dag.inputs(node)[1 if join_unique_side(dag, node) == "left" else 0]
                if name not in dag.names(fk):
                    return False  # a PK side column: copied into new arrays by the join
                node = fk
            else:
                return False
        return False

    for n in dag.topo():
        if dag.attr(n, "placement") != SECURE:
            continue
        op, ins = dag.op(n), dag.inputs(n)
        uses: list[tuple[int, str]] = []
        if isinstance(op, Aggregate) and op.keys and not dag.attr(n, "public_keys") \
                and not dag.attr(n, "domain"):
            uses = [(ins[0], k) for k in list(op.keys) + [a.arg for a in op.aggs
                                                          if a.func in ("min", "max")]]
        elif isinstance(op, Distinct):
            uses = [(ins[0], k) for k in dag.names(ins[0])]
        elif isinstance(op, Sort):
            uses = [(ins[0], k) for k, _ in op.keys]
        elif isinstance(op, (Join, SemiJoin)) and op.left_keys:
            uses = [(ins[0], k) for k in op.left_keys] + [(ins[1], k) for k in op.right_keys]
        if any([trace(i, k) for i, k in uses]):  # (a list: trace every key)
            users.add(n)
    return {n: frozenset(c) for n, c in want.items()}, frozenset(users)
