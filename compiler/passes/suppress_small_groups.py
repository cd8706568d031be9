"""Owners' `min_group`: every revealed group holds none or at least k of an owner's rows.

For each data owner O whose policy sets `min_group = k` (and whose results go to someone else
than O), every row of O's parts carries a column ``__rows_O`` (1 on O's rows, 0 on the other
owners' rows of the same table), every aggregate sums it, and right above each aggregate whose
groups reach the result (no aggregate after it), a filter keeps only the groups with

    __rows_O = 0 OR __rows_O >= k        (for every such owner O)

and drops the counts. The filter runs where the aggregate runs: inside MPC when the groups
combine several owners' rows (the small groups are never opened, not even to the compute
parties), or at O itself when only O's rows are aggregated. This is the DuckDB query over the
union of the parts with an owner column and, per owner O,
``HAVING COUNT(*) FILTER (WHERE owner = O) = 0 OR COUNT(*) FILTER (WHERE owner = O) >= k``.

The count is of O's rows that reach the group. A join may not repeat them: a join over which
O's rows flow must have its other side unique on its keys (or hold at most one row), else the
same row of O would count several times and a small group could pass; such a query is refused
(PolicyError), as are DISTINCT over O's rows and groups that reach the result through no
aggregate after a nested one (the counts would be returned).

Runs first: it adds SUMs to the aggregates the analyst wrote, which the later passes split,
place and decompose like any other. Not optional: an owner's policy is not an optimisation.
"""

from __future__ import annotations

import networkx as nx
from sqlglot import exp

from ..analyses.unique_keys import join_unique_side
from ..catalog import Catalog
from ..errors import PolicyError
from ..ir.dag import (ROWS_PREFIX, AggCall, Aggregate, Dag, Distinct, Field, Filter, Join, Limit, Output,
                      Project, Scan, SemiJoin, Sort, Union, col)
from .infer_unique import infer_unique

__all__ = ["MIN_GROUP_ATTR", "rows_column", "suppress_small_groups"]

MIN_GROUP_ATTR = "min_group"
"""DAG graph attribute: {owner: k} for the owners whose small groups the plan suppresses."""


def rows_column(owner: str) -> str:
    """The column counting `owner`'s rows (internal: never revealed)."""
    return f"{ROWS_PREFIX}{owner}"


def suppress_small_groups(dag: Dag, *, catalog: Catalog) -> Dag:
    limits = _limits(dag, catalog)
    if not limits:
        return dag
    dag = infer_unique(dag, catalog=catalog)  # which joins repeat a side's rows
    carried: dict[int, tuple[str, ...]] = {}
    applied: set[str] = set()
    grouped: set[str] = set()  # owners whose counts passed an aggregate that filters nothing
    for n in dag.topo():
        op = dag.op(n)
        ins = dag.inputs(n)
        have = tuple(sorted({o for i in ins for o in carried.get(i, ())}))
        if isinstance(op, Scan):
            carried[n] = ()
            if op.party in limits:
                carried[_add_counts(dag, n, (op.party,), ones=(op.party,))] = (op.party,)
        elif isinstance(op, Union):
            carried[n] = _union(dag, n, have)
        elif isinstance(op, Join):
            carried[n] = _join(dag, n, carried, limits)
        elif isinstance(op, (Filter, Sort, Limit)):
            _extend_schema(dag, n, have)
            carried[n] = have
        elif isinstance(op, SemiJoin):
            left = carried.get(ins[0], ())
            _extend_schema(dag, n, left)
            carried[n] = left
        elif isinstance(op, Project):
            kept = op.exprs + tuple((rows_column(o), col(rows_column(o))) for o in have)
            dag.set(n, op=Project(kept, op.text))
            _extend_schema(dag, n, have)
            carried[n] = have
        elif isinstance(op, Aggregate) and have:
            aggs = op.aggs + tuple(AggCall(rows_column(o), "sum", rows_column(o)) for o in have)
            dag.set(n, op=Aggregate(op.keys, aggs, op.stage))
            _extend_schema(dag, n, have)
            carried[n] = have
            if not any(isinstance(dag.op(d), Aggregate) for d in nx.descendants(dag.g, n)):
                _filter_groups(dag, n, {o: limits[o] for o in have})
                applied |= set(have)
                carried[n] = ()
            else:
                grouped |= set(have)
        elif isinstance(op, Distinct) and have:
            raise _refusal(have[0], limits, "a SELECT DISTINCT over its rows")
        elif isinstance(op, Output) and have:
            if set(have) & grouped:  # an inner aggregate's groups reach the result unfiltered
                raise _refusal(sorted(set(have) & grouped)[0], limits,
                               "groups that reach the result by a second path")
            _add_counts(dag, ins[0], (), consumer=n)  # rows, not groups: the counts just go
        else:
            carried[n] = have
    for n in dag.g:
        dag.g.nodes[n].pop("unique", None)  # infer_unique runs again on the final plan
    dag.g.graph[MIN_GROUP_ATTR] = {o: limits[o] for o in sorted(applied)}
    dag.check()
    return dag


def _limits(dag: Dag, catalog: Catalog) -> dict[str, int]:
    """{owner: min_group} for the owners whose rows the query scans and whose policy sets
    min_group, unless the result goes to that owner alone (its rules do not restrict that)."""
    scanned = {dag.op(n).party for n in dag.g if isinstance(dag.op(n), Scan)}
    out = {}
    for owner, policy in catalog.policies.items():
        if policy.min_group is None or owner not in scanned:
            continue
        if set(catalog.recipients) - {owner}:
            out[owner] = policy.min_group
    return out


def _add_counts(dag: Dag, node: int, owners: tuple[str, ...], ones: tuple[str, ...] = (),
                consumer: int | None = None) -> int:
    """A projection above `node` passing its columns on and adding __rows_O for every O in
    `owners` (1 for those in `ones`, else 0); it replaces `node` as input of `consumer` (of
    every consumer when None)."""
    present = {f.name for f in dag.schema(node)}
    base = [f for f in dag.schema(node) if not f.name.startswith(ROWS_PREFIX)]
    exprs = tuple((f.name, col(f.name)) for f in base) + tuple(
        (rows_column(o), col(rows_column(o)) if rows_column(o) in present
         else exp.Literal.number(1 if o in ones else 0)) for o in owners)
    fields = base + [Field(rows_column(o), "int") for o in owners]
    consumers = [consumer] if consumer is not None else dag.consumers(node)
    new = dag.add(Project(exprs, "owners' row counts (min_group)"), fields, [node])
    for c in consumers:
        dag.replace_input(c, node, new)
    return new


def _extend_schema(dag: Dag, node: int, owners: tuple[str, ...]) -> None:
    fields = [f for f in dag.schema(node) if not f.name.startswith(ROWS_PREFIX)]
    dag.set(node, schema=tuple(fields + [Field(rows_column(o), "int") for o in owners]))


def _union(dag: Dag, node: int, owners: tuple[str, ...]) -> tuple[str, ...]:
    """Every input of a union gets the same count columns, in the same order (0 where an
    input holds none of that owner's rows)."""
    if not owners:
        return ()
    for i in dag.inputs(node):
        names = dag.names(i)
        if [n for n in names if n.startswith(ROWS_PREFIX)] != [rows_column(o) for o in owners]:
            _add_counts(dag, i, owners, consumer=node)
    _extend_schema(dag, node, owners)
    return owners


def _join(dag: Dag, node: int, carried: dict[int, tuple[str, ...]],
          limits: dict[str, int]) -> tuple[str, ...]:
    """The counts a join passes on: those of a side whose rows the join does not repeat."""
    left, right = dag.inputs(node)
    lhs, rhs = carried.get(left, ()), carried.get(right, ())
    if not lhs and not rhs:
        return ()
    unique = join_unique_side(dag, node)
    left_once = unique == "right" or _at_most_one_row(dag, right)
    right_once = unique == "left" or _at_most_one_row(dag, left)
    keep_left, keep_right = [], []
    for o in sorted(set(lhs) | set(rhs)):
        if o in lhs and left_once:
            keep_left.append(o)
        elif o in rhs and right_once:
            keep_right.append(o)
        else:
            raise _refusal(o, limits, "a join that may repeat its rows (neither side is unique "
                                      "on the join keys)")
    for side, had, keep in ((left, lhs, keep_left), (right, rhs, keep_right)):
        if tuple(keep) != had:
            _add_counts(dag, side, tuple(keep), consumer=node)
    new_left, new_right = dag.inputs(node)
    dag.set(node, schema=dag.schema(new_left) + dag.schema(new_right))
    return tuple(sorted(keep_left + keep_right))


def _at_most_one_row(dag: Dag, node: int) -> bool:
    """An aggregate without GROUP BY (through filters and projections): one row at most."""
    op = dag.op(node)
    while isinstance(op, (Filter, Project, Sort, Limit)):
        (node,) = dag.inputs(node)
        op = dag.op(node)
    return isinstance(op, Aggregate) and not op.keys


def _filter_groups(dag: Dag, node: int, limits: dict[str, int]) -> None:
    """Above aggregate `node`: keep the groups with none or at least k rows of each owner,
    then drop the counts."""
    conditions = [exp.or_(exp.EQ(this=col(rows_column(o)), expression=exp.Literal.number(0)),
                          exp.GTE(this=col(rows_column(o)), expression=exp.Literal.number(k)))
                  for o, k in limits.items()]
    consumers = dag.consumers(node)
    schema = dag.schema(node)
    text = " AND ".join(f"{o}'s rows = 0 OR >= {k}" for o, k in limits.items())
    kept = dag.add(Filter(exp.and_(*conditions), f"min_group: {text}"), schema, [node])
    base = [f for f in schema if not f.name.startswith(ROWS_PREFIX)]
    drop = dag.add(Project(tuple((f.name, col(f.name)) for f in base), ""), base, [kept])
    for c in consumers:
        dag.replace_input(c, node, drop)
    if dag.root == node:
        dag.root = drop


def _refusal(owner: str, limits: dict[str, int], why: str) -> PolicyError:
    k = limits[owner]
    return PolicyError(
        f"refused by {owner}'s policy: min_group = {k} lets an aggregate reveal only groups of "
        f"none or at least {k} of {owner}'s rows, and this query passes {owner}'s rows through "
        f"{why}, so they cannot be counted; aggregate {owner}'s rows before that step, or ask "
        f"{owner} to remove min_group", owner=owner)
