"""Declared domains: which values a column can take by the catalog, and the one-hot columns.

`declared_values` follows a local column back to the catalog columns it copies and returns
the union of their declared domains (`[tables.T.domains]`). The use_domains pass marks a
secure Aggregate with DOMAIN_ATTR = {key: (values...)}; `onehot_columns` and `domain_tuples`
name and order the one-hot columns of such a mark, for the pass, the secure backend and
explain alike.
"""

from __future__ import annotations

import itertools

from sqlglot import exp

from ..catalog import Catalog
from ..ir.dag import (Aggregate, Dag, Distinct, Filter, Join, Limit, Project, Scan, SemiJoin, Sort,
                      Union)

ONEHOT_PREFIX = "__oh_"
DOMAIN_ATTR = "domain"  # on the Aggregate: {key: (values...)} in key order


def onehot_columns(domain: dict[str, tuple]) -> list[str]:
    """The one-hot column names of a marked aggregate's `domain` attribute."""
    size = 1
    for values in domain.values():
        size *= len(values)
    return [f"{ONEHOT_PREFIX}{j}" for j in range(size)]


def domain_tuples(domain: dict[str, tuple]) -> list[tuple]:
    """The key tuples of a marked aggregate, in one-hot column order (first key slowest)."""
    return list(itertools.product(*domain.values()))


def plain_column(e: exp.Expression) -> str | None:
    """The column `e` is (through parentheses), or None when it computes something."""
    while isinstance(e, exp.Paren):
        e = e.this
    return e.name if isinstance(e, exp.Column) else None


def local_sources(dag: Dag, node: int, column: str) -> set[tuple[str, str]] | None:
    """The catalog (table, column) pairs whose values a local column copies, or None when it
    is computed."""
    op = dag.op(node)
    ins = dag.inputs(node)
    if isinstance(op, Scan):
        return {(op.table, op.columns[dag.names(node).index(column)])}
    if isinstance(op, (Filter, Sort, Limit, Distinct, SemiJoin)):
        return local_sources(dag, ins[0], column)
    if isinstance(op, Project):
        inner = plain_column(dict(op.exprs)[column])
        return None if inner is None else local_sources(dag, ins[0], inner)
    if isinstance(op, Aggregate):  # group keys pass values through; aggregates are computed
        return local_sources(dag, ins[0], column) if column in op.keys else None
    if isinstance(op, Union):
        out: set[tuple[str, str]] = set()
        for i in ins:
            got = local_sources(dag, i, dict(zip(dag.names(node), dag.names(i)))[column])
            if got is None:
                return None
            out |= got
        return out
    if isinstance(op, Join):
        for i in ins:
            if column in dag.names(i):
                return local_sources(dag, i, column)
    return None


def declared_values(dag: Dag, catalog: Catalog, node: int, column: str) -> tuple | None:
    """The values a local column can take by the catalog's declared domains (the union over
    the table columns it copies, in declared order), or None when it is computed or one of
    those columns declares no domain. NULL is not among them (see Nullability)."""
    sources = local_sources(dag, node, column)
    if not sources:
        return None
    values: dict = {}
    for table, name in sorted(sources):
        declared = catalog.tables[table].domains.get(name)
        if declared is None:
            return None
        values.update(dict.fromkeys(declared))
    return tuple(values)
