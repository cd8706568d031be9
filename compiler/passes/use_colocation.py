"""Run joins and aggregates of co-located tables part by part, locally at each party.

When the catalog declares two tables co-located on a key (`[tables.lineitem] colocated =
{ with = "orders", on = { l_orderkey = "o_orderkey" } }`: every key value's rows of both are
held by one party), the union of a table's parts is *partitioned* on that key: no key value
occurs at two parties. Then

- a join (inner or outer) or an EXISTS / NOT EXISTS semi-join of two partitioned inputs whose
  keys pair columns of the same partitioning equals the UNION ALL over the parties of the join
  of that party's two inputs (a row's matches are all at its own party);
- a GROUP BY whose keys include a partitioning column equals the UNION ALL of each party's
  GROUP BY (each group's rows are all at one party);

and the outputs are partitioned again, so a chain of them (lineitem joined with orders, then
grouped by order key, then semi-joined with orders: TPC-H Q18) runs entirely at each party in
the clear; only what follows crosses. Filters and projections between a union and the
operator are repeated per party. `x NOT IN (SELECT ...)` is never split: a NULL at another
party changes every party's answer. A semi-join above an inner join whose keys come from one
side of it first moves onto that side (filtering rows before the join is the same), so it can
meet the partitioned input there.

The declaration is the declarer's promise, like a unique key: no party can check it alone; if
it is broken, matches across parties are missed (a wrong result, never a leak).
"""

from __future__ import annotations

from sqlglot import exp

from ..catalog import Catalog
from ..ir.dag import Aggregate, Dag, Filter, Join, Project, Scan, SemiJoin, Union

# a partitioned node: ({column: its partitioning label}, {party: that party's branch})
Parted = tuple[dict[str, str], dict[str, int]]


def use_colocation(dag: Dag, *, catalog: Catalog) -> Dag:
    dag = dag.copy()
    while _push_semi_join(dag):
        pass
    parted: dict[int, Parted] = {}
    for node in dag.topo():
        if node not in dag.g:
            continue
        op = dag.op(node)
        if isinstance(op, Union):
            found = _table_parts(dag, node, catalog)
            if found is not None:
                parted[node] = found
        elif isinstance(op, Join) or (isinstance(op, SemiJoin) and not op.not_in):
            _split_join(dag, node, parted)
        elif isinstance(op, Aggregate) and op.stage == "full":
            _split_aggregate(dag, node, parted)
    dag.check()
    return dag


def _push_semi_join(dag: Dag) -> bool:
    """Move one semi-join above an inner join onto the join's side holding its keys."""
    for node in dag.topo():
        op = dag.op(node)
        if not isinstance(op, SemiJoin):
            continue
        left, right = dag.inputs(node)
        below = dag.op(left)
        if not isinstance(below, Join) or below.kind != "inner" or \
                len(dag.consumers(left)) != 1:
            continue
        for side in dag.inputs(left):
            if set(op.left_keys) <= set(dag.names(side)):
                moved = dag.add(op, dag.schema(side), [side, right])
                dag.replace_input(left, side, moved)
                dag.g.remove_edge(right, node)
                dag.bypass(node)
                return True
    return False


def _labels(catalog: Catalog) -> dict[tuple[str, str], str]:
    """{(table, column): label}: columns declared co-located share one label."""
    labels: dict[tuple[str, str], str] = {}
    for name, table in catalog.tables.items():
        if table.colocated is None:
            continue
        other, pairs = table.colocated
        for mine, theirs in pairs:
            label = labels.get((other, theirs)) or labels.get((name, mine)) or \
                f"{other}.{theirs}"
            labels[(name, mine)] = labels[(other, theirs)] = label
    return labels


def _table_parts(dag: Dag, node: int, catalog: Catalog) -> Parted | None:
    """The union at `node` of one co-located table's parts, each at its own party."""
    scans = dag.inputs(node)
    ops = [dag.op(s) for s in scans]
    if not ops or not all(isinstance(o, Scan) for o in ops) or \
            len({o.table for o in ops}) != 1 or len({o.party for o in ops}) != len(ops):
        return None
    table = ops[0].table
    labels = {f"{ops[0].alias}.{c}".lower(): label
              for (t, c), label in _labels(catalog).items() if t == table}
    labels = {name: label for name, label in labels.items() if name in dag.names(scans[0])}
    if not labels:
        return None
    return labels, {o.party: s for o, s in zip(ops, scans)}


def _chain(dag: Dag, node: int, parted: dict[int, Parted]
           ) -> tuple[list[int], Parted] | None:
    """(filters and projections from `node` down to a partitioned union, top first, ending
    with the union; the union's partitioning), each step used only by the one above."""
    chain = []
    while isinstance(dag.op(node), (Filter, Project)) and len(dag.consumers(node)) == 1:
        chain.append(node)
        node = dag.inputs(node)[0]
    if node not in parted or len(dag.consumers(node)) != 1:
        return None
    return chain + [node], parted[node]


def _label_at_top(dag: Dag, chain: list[int], labels: dict[str, str], name: str) -> str | None:
    """The partitioning label of column `name` at the top of `chain` (renames followed)."""
    for node in chain[:-1]:
        op = dag.op(node)
        if isinstance(op, Project):
            e = dict(op.exprs).get(name)
            if not isinstance(e, exp.Column):
                return None
            name = e.name
    return labels.get(name)


def _replay(dag: Dag, chain: list[int], branch: int) -> int:
    """The steps of `chain` (top first, its last node the union) over one party's branch."""
    node = branch
    for step in reversed(chain[:-1]):
        op = dag.op(step)  # each copy has expressions of its own
        op = Filter(op.predicate.copy(), op.text) if isinstance(op, Filter) else \
            Project(tuple((n, e.copy()) for n, e in op.exprs), op.text)
        node = dag.add(op, dag.schema(step), [node])
    return node


def _replace_by_union(dag: Dag, node: int, pieces: list[int], chains: list[list[int]]) -> int:
    """A union of the per-party `pieces` takes `node`'s place; the old chains go."""
    union = dag.add(Union(), dag.schema(node), pieces)
    dag.replace_node(node, union)
    for step in (s for chain in chains for s in chain):
        if step in dag.g:
            dag.remove(step)
    return union


def _top_labels(dag: Dag, chain: list[int], labels: dict[str, str]) -> dict[str, str]:
    top = chain[0]
    found = {n: _label_at_top(dag, chain, labels, n) for n in dag.names(top)}
    return {n: lab for n, lab in found.items() if lab is not None}


def _split_join(dag: Dag, node: int, parted: dict[int, Parted]) -> None:
    """A join of two partitioned inputs on a shared partitioning: a union of local joins."""
    op = dag.op(node)
    left, right = dag.inputs(node)
    lside, rside = _chain(dag, left, parted), _chain(dag, right, parted)
    if lside is None or rside is None or set(lside[1][1]) != set(rside[1][1]):
        return
    (lchain, (llabels, lparts)), (rchain, (rlabels, rparts)) = lside, rside
    if not any(_label_at_top(dag, lchain, llabels, a) is not None and
               _label_at_top(dag, lchain, llabels, a) == _label_at_top(dag, rchain, rlabels, b)
               for a, b in zip(op.left_keys, op.right_keys)):
        return
    labels = _top_labels(dag, lchain, llabels)
    if isinstance(op, Join):
        labels.update(_top_labels(dag, rchain, rlabels))
    pieces = [dag.add(op, dag.schema(node), [_replay(dag, lchain, lparts[p]),
                                            _replay(dag, rchain, rparts[p])]) for p in lparts]
    union = _replace_by_union(dag, node, pieces, [lchain, rchain])
    parted[union] = labels, dict(zip(lparts, pieces))


def _split_aggregate(dag: Dag, node: int, parted: dict[int, Parted]) -> None:
    """A GROUP BY a partitioning column of a partitioned input: a union of local GROUP BYs."""
    op = dag.op(node)
    side = _chain(dag, dag.inputs(node)[0], parted)
    if side is None:
        return
    chain, (labels, parts) = side
    keyed = {k: _label_at_top(dag, chain, labels, k) for k in op.keys}
    keyed = {k: lab for k, lab in keyed.items() if lab is not None}
    if not keyed:
        return
    pieces = [dag.add(op, dag.schema(node), [_replay(dag, chain, parts[p])]) for p in parts]
    union = _replace_by_union(dag, node, pieces, [chain])
    parted[union] = keyed, dict(zip(parts, pieces))
