"""Split an aggregate over the union of parties' parts into local partials and a final combine.

Each party aggregates its own rows in the clear (Conclave's push-down of the MPC frontier);
only one row per group and party enters MPC, where the partials are combined:
COUNT becomes a SUM of counts, SUM a SUM of sums, MIN a MIN of minima, MAX a MAX of maxima,
and a DISTINCT (an aggregate without functions, or SELECT DISTINCT) a DISTINCT of local
DISTINCTs: each party removes its own duplicates first (a SELECT DISTINCT only where a union
input reads one party's tables, so no extra secure operator is added in MPC).
Runs after decompose_aggregates, so AVG / VARIANCE / STDDEV / COUNT(DISTINCT) are already
rewritten into these. A keyless partial aggregate also counts its rows, and a party with no
rows sends no partial row (a party's partial would otherwise carry SQL NULLs into MPC).
"""

from __future__ import annotations

from sqlglot import exp

from ..ir.dag import (AggCall, Aggregate, Dag, Distinct, Field, Filter, Project, Scan, Union, col,
                      render_exprs)

COMBINE = {"sum": "sum", "count": "sum", "count_star": "sum", "min": "min", "max": "max"}
ROWS = "__rows"


def split_aggregates(dag: Dag) -> Dag:
    dag = dag.copy()
    for node in dag.topo():
        op = dag.op(node)
        if isinstance(op, Distinct):
            _split_distinct(dag, node)
            continue
        if not isinstance(op, Aggregate) or op.stage != "full":
            continue
        (src,) = dag.inputs(node)
        if not isinstance(dag.op(src), Union):
            continue
        out_names = dag.names(src)
        partials = []
        for i in dag.inputs(src):
            rename = dict(zip(out_names, dag.names(i)))
            keys = tuple(rename[k] for k in op.keys)
            aggs = tuple(AggCall(a.name, a.func, rename[a.arg] if a.arg else None)
                         for a in op.aggs)
            if not keys and aggs:
                aggs += (AggCall(ROWS, "count_star", None),)
            fields = [Field(k, dag.types(i)[k]) for k in keys] + [
                Field(a.name, "int" if a.func.startswith("count") or a.name == ROWS else
                      dag.types(node).get(a.name, "int")) for a in aggs]
            p = dag.add(Aggregate(keys, aggs, "partial"), fields, [i])
            if not keys and aggs:
                pred = exp.GT(this=col(ROWS), expression=exp.Literal.number(0))
                p = dag.add(Filter(pred, pred.sql()), fields, [p])
            if keys != op.keys:  # name the partial's keys as the final aggregate reads them
                exprs = tuple((ok, col(k)) for ok, k in zip(op.keys, keys)) + tuple(
                    (f.name, col(f.name)) for f in fields[len(keys):])
                pf = [Field(ok, dag.types(i)[k]) for ok, k in zip(op.keys, keys)] + \
                    fields[len(keys):]
                p = dag.add(Project(exprs, render_exprs(exprs)), pf, [p])
            partials.append(p)
        union = dag.add(Union(), dag.schema(partials[0]), partials)
        final = tuple(AggCall(a.name, COMBINE[a.func], a.name) for a in op.aggs)
        if not op.keys and op.aggs:  # the total row count says whether any party had rows
            final += (AggCall(ROWS, "sum", ROWS),)
            dag.set(node, schema=dag.schema(node) + (Field(ROWS, "int"),))
        dag.set(node, op=Aggregate(op.keys, final, "final"))
        dag.replace_input(node, src, union)
        if not dag.consumers(src):  # a union shared with other operators stays for them
            dag.remove(src)
    dag.check()
    return dag


def _split_distinct(dag: Dag, node: int) -> None:
    """DISTINCT(UNION ALL(a, b, ...)) -> DISTINCT(UNION ALL(DISTINCT(a), DISTINCT(b), ...)) when
    every input reads the tables of one party only (its DISTINCT then runs locally)."""
    (src,) = dag.inputs(node)
    if not isinstance(dag.op(src), Union) or dag.consumers(src) != [node]:
        return
    ins = dag.inputs(src)
    if any(len(_scanned_parties(dag, i)) != 1 or isinstance(dag.op(i), Distinct) for i in ins):
        return
    for i in ins:
        dag.insert_between(i, src, Distinct(), dag.schema(i))


def _scanned_parties(dag: Dag, node: int) -> set[str]:
    op = dag.op(node)
    if isinstance(op, Scan):
        return {op.party}
    return set().union(*(_scanned_parties(dag, i) for i in dag.inputs(node)))
