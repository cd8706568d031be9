"""Which parties' data each node depends on (owners) and who may see each column (trust).

Trust sets follow Conclave's rules: a scanned column is visible to its holder plus the parties
its owner trusts in the catalog ("*" = everyone); a computed column gets the intersection of the
sets of the columns it reads; a filter intersects every column with its condition's columns; an
aggregate's values and keys with its keys'; a join's columns with the keys'; a union intersects
column by column; a semi-join (IN / EXISTS) intersects left's columns with its left keys' and all
of its right input's columns (whether a matching right row exists tells about them). Beyond
Conclave, so that no hybrid protocol opens what the rows' number or
order tells: a DISTINCT intersects every column with all of them, a sort (and so a LIMIT after
it) every column with its keys', and COUNT(*) gets the intersection of all its input columns.
Not optional: placement and every hybrid protocol read these sets.
"""

from __future__ import annotations

from functools import reduce

from ..catalog import PUBLIC, Catalog
from ..ir.dag import (Aggregate, Dag, Distinct, Filter, Join, Limit, Output, Project, Scan,
                      SemiJoin, Sort, Union, referenced_columns)


def propagate_ownership(dag: Dag, *, catalog: Catalog) -> Dag:
    dag = dag.copy()
    everyone = frozenset(catalog.parties) | {PUBLIC}  # "*" survives only where all inputs have it
    for node in dag.topo():
        op = dag.op(node)
        ins = dag.inputs(node)
        owners = frozenset().union(*(dag.attr(i, "owners") for i in ins)) if ins else frozenset()
        names = dag.names(node)
        if isinstance(op, Scan):
            owners = frozenset({op.party})
            trust = {f.name: catalog.column_trust(op.table, c, op.party)
                     for c, f in zip(op.columns, dag.schema(node))}
        elif isinstance(op, Union):
            per_input = [dict(zip(names, (dag.attr(i, "trust")[n] for n in dag.names(i))))
                         for i in ins]
            trust = {n: reduce(frozenset.__and__, (t[n] for t in per_input)) for n in names}
        elif isinstance(op, Join):
            left, right = ins
            trust = {**dag.attr(left, "trust"), **dag.attr(right, "trust")}
            keys = set(op.left_keys) | set(op.right_keys)
            key_trust = _meet([trust[k] for k in keys], everyone)
            trust = {n: trust[n] & key_trust for n in names}
        elif isinstance(op, SemiJoin):
            left, right = ins
            ltrust, rtrust = dag.attr(left, "trust"), dag.attr(right, "trust")
            # which left rows stay tells their keys and, through the matches, the right rows
            # (their existence is as secret as any of their columns, as for COUNT(*))
            cond = _meet([ltrust[k] for k in op.left_keys] + list(rtrust.values()), everyone)
            trust = {n: ltrust[n] & cond for n in names}
        else:
            src_trust = dag.attr(ins[0], "trust")
            if isinstance(op, Filter):
                cond = _meet([src_trust[c] for c in referenced_columns(op.predicate)], everyone)
                trust = {n: src_trust[n] & cond for n in names}
            elif isinstance(op, Project):
                trust = {n: _meet([src_trust[c] for c in referenced_columns(e)], everyone)
                         for n, e in op.exprs}
            elif isinstance(op, Aggregate):
                key_trust = _meet([src_trust[k] for k in op.keys], everyone)
                # how often one key value occurs in the output tells the other keys' values
                trust = {k: src_trust[k] & key_trust for k in op.keys}
                # COUNT(*) reads no column but counts the rows, whose existence is as secret as
                # any of the row's columns (a filter has narrowed all of them)
                rows_trust = _meet(list(src_trust.values()), everyone)
                for a in op.aggs:
                    base = src_trust[a.arg] if a.arg else rows_trust
                    trust[a.name] = base & key_trust
            elif isinstance(op, Sort):
                # the order of the rows (and so which rows a LIMIT keeps) tells the sort keys
                cond = _meet([src_trust[k] for k, _ in op.keys], everyone)
                trust = {n: src_trust[n] & cond for n in names}
            elif isinstance(op, Distinct):
                cond = _meet(list(src_trust.values()), everyone)
                trust = {n: src_trust[n] & cond for n in names}
            elif isinstance(op, (Limit, Output)):
                trust = dict(src_trust)
            else:
                trust = {n: src_trust.get(n, frozenset()) for n in names}
        dag.set(node, owners=owners, trust=trust)
    return dag


def _meet(sets: list[frozenset[str]], everyone: frozenset[str]) -> frozenset[str]:
    return reduce(frozenset.__and__, sets, everyone)
