"""Reading the unique keys that the infer_unique pass records on every node.

A node's attribute UNIQUE_ATTR is a frozenset of keys, each a frozenset of the node's column
names whose values no two (valid) rows share. The secure backend and explain ask one
question of it: may a secure equi-join run as the linear PK-FK join (`join_unique_side`)?
"""

from __future__ import annotations

from collections.abc import Iterable

from ..ir.dag import Dag, Join

UNIQUE_ATTR = "unique"
Key = frozenset  # of column names


def unique_keys(dag: Dag, node: int) -> frozenset[Key]:
    """The keys recorded on `node` (none before infer_unique ran, or when it is disabled)."""
    return dag.attr(node, UNIQUE_ATTR) or frozenset()


def covers(keys: frozenset[Key], columns: Iterable[str]) -> bool:
    """Whether `columns` contain one of `keys` (then rows are unique on `columns` too)."""
    cols = set(columns)
    return any(k <= cols for k in keys)


def join_unique_side(dag: Dag, node: int) -> str | None:
    """"left" or "right" when that side of the equi-join `node` is unique on its join keys
    (its join keys contain one of its unique keys), else None. Prefers "right": the output
    then keeps the left side's length and row order."""
    op = dag.op(node)
    if not isinstance(op, Join) or not op.left_keys:
        return None
    left, right = dag.inputs(node)
    if covers(unique_keys(dag, right), op.right_keys):
        return "right"
    if covers(unique_keys(dag, left), op.left_keys):
        return "left"
    return None
