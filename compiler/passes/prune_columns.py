"""Drop columns nobody downstream reads: scans read only what the query uses.

Fewer columns means less local I/O and, above all, fewer values secret-shared into MPC.
A DISTINCT keeps all its input columns (they define which rows are duplicates); a union keeps
the same positions in every input; a semi-join reads only its keys from its right input; a
join or filter is followed by a projection of what its consumer reads (a join's keys, a
filter's tested columns are often used up).
"""

from __future__ import annotations

from ..ir.dag import (Aggregate, Dag, Distinct, Field, Filter, Join, Limit, Output, Project, Scan,
                      SemiJoin, Sort, Union, Window, col, referenced_columns, render_exprs)


def prune_columns(dag: Dag) -> Dag:
    dag = dag.copy()
    needed: dict[int, set[str]] = {}
    union_inputs: dict[tuple[int, int], list[str]] = {}  # (union, input) -> columns it takes
    for node in reversed(dag.topo()):
        want = needed.get(node, set())
        op = dag.op(node)
        names = dag.names(node)
        if isinstance(op, Output):
            want = set(names)
        if isinstance(op, Scan):
            keep = [c for c, f in zip(op.columns, dag.schema(node)) if f.name in want] or \
                [op.columns[0]]
            fields = [f for c, f in zip(op.columns, dag.schema(node)) if c in keep]
            dag.set(node, op=Scan(op.table, op.party, op.alias, tuple(keep)), schema=tuple(fields))
            continue
        if isinstance(op, Project):
            exprs = tuple((n, e) for n, e in op.exprs if n in want) or op.exprs[:1]
            dag.set(node, op=Project(exprs, render_exprs(exprs)),
                    schema=tuple(f for f in dag.schema(node) if f.name in {n for n, _ in exprs}))
        if isinstance(op, Window):  # drop the windows nobody reads (one stays)
            exprs = tuple((n, e) for n, e in op.exprs if n in want) or op.exprs[:1]
            dag.set(node, op=Window(exprs, render_exprs(exprs), op.where))
        if isinstance(op, Union):
            ins = dag.inputs(node)
            if any(len(dag.consumers(i)) > 1 for i in ins):
                want = set(names)
            positions = [i for i, n in enumerate(names) if n in want] or [0]
            dag.set(node, schema=tuple(dag.schema(node)[i] for i in positions))
            for i in ins:
                in_names = dag.names(i)
                needed.setdefault(i, set()).update(in_names[p] for p in positions)
                union_inputs[(node, i)] = [in_names[p] for p in positions]
            continue
        for i in dag.inputs(node):
            needed.setdefault(i, set()).update(_requires(dag, node, i, want))
    # pass-through operators take their (now narrower) input schema
    for node in dag.topo():
        op = dag.op(node)
        ins = dag.inputs(node)
        if isinstance(op, (Filter, Sort, Limit, Distinct, Output, SemiJoin)):
            dag.set(node, schema=dag.schema(ins[0]))
            if isinstance(op, Filter):  # a column only the filter read goes no further
                _narrow(dag, node, needed.get(node, set()))
        elif isinstance(op, Join):
            dag.set(node, schema=dag.schema(ins[0]) + dag.schema(ins[1]))
            _narrow(dag, node, needed.get(node, set()))
        elif isinstance(op, Window):
            types = dag.types(node)
            dag.set(node, schema=dag.schema(ins[0]) + tuple(Field(n, types[n])
                                                            for n, _ in op.exprs))
        elif isinstance(op, Union):
            for i in ins:  # an input still wider than the union (its filter read more) narrows
                take = union_inputs[(node, i)]
                if dag.names(i) != take:
                    types = dag.types(i)
                    exprs = tuple((n, col(n)) for n in take)
                    dag.insert_between(i, node, Project(exprs, render_exprs(exprs)),
                                       [Field(n, types[n]) for n in take])
    dag.check()
    return dag


def _narrow(dag: Dag, join: int, want: set[str]) -> None:
    """A join outputs both sides' columns, its keys too, and a filter its input's, those it
    tests too; a projection right after it keeps only what its consumer reads, so a key used
    up by a local join or a column only a local filter tests is not secret-shared."""
    consumers = dag.consumers(join)
    if len(consumers) != 1 or isinstance(dag.op(consumers[0]), (Union, Project)):
        return  # read by several (each wants its own columns); a union narrows its inputs
        #         itself, a projection is one
    (consumer,) = consumers
    names = dag.names(join)
    keep = [n for n in names if n in want] or names[:1]
    if len(keep) == len(names):
        return
    types = dag.types(join)
    exprs = tuple((n, col(n)) for n in keep)
    dag.insert_between(join, consumer, Project(exprs, render_exprs(exprs)),
                       [Field(n, types[n]) for n in keep])


def _requires(dag: Dag, node: int, src: int, want: set[str]) -> set[str]:
    """The columns of input `src` that `node` reads, given its consumers want `want`."""
    op = dag.op(node)
    src_names = set(dag.names(src))
    if isinstance(op, (Output, Distinct)):
        return src_names
    if isinstance(op, Filter):
        return (want | referenced_columns(op.predicate)) & src_names
    if isinstance(op, Project):
        return set().union(*(referenced_columns(e) for _, e in op.exprs)) & src_names
    if isinstance(op, Aggregate):
        return set(op.keys) | {a.arg for a in op.aggs if a.arg}
    if isinstance(op, Join):
        keys = set(op.left_keys) | set(op.right_keys)
        return (want | keys) & src_names
    if isinstance(op, SemiJoin):  # by side: left and right may share column names
        if src == dag.inputs(node)[0]:
            return (want | set(op.left_keys)) & src_names
        return set(op.right_keys)
    if isinstance(op, Sort):
        return (want | {k for k, _ in op.keys}) & src_names
    if isinstance(op, Window):  # every window reads its partition: the rows stay whole
        return (want | set().union(*(referenced_columns(e) for _, e in op.exprs))) & src_names
    return want & src_names if want else src_names
