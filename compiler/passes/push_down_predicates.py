"""Move filters towards the scans: below projections, unions of parties' parts, and joins.

A filter that sits below the union of the parties' parts runs locally at each party in the
clear, so the rows it drops never enter MPC. A filter moves below a join only to the side that
holds every column it reads (below an outer join, only to a side it preserves), and below a semi-join (IN / EXISTS) to its left input, whose
columns are all the semi-join outputs (it keeps or drops whole left rows, so filtering before
or after gives the same rows). Filters never move below an aggregate, a DISTINCT, a sort or a
limit (that would change the result).
"""

from __future__ import annotations

from sqlglot import exp

from ..ir.dag import (Dag, Filter, Join, Project, SemiJoin, Union, col, referenced_columns,
                      substitute)


# the join inputs a filter above a join may move to: not the side an outer join fills with
# NULLs (the filter would drop rows the join then keeps, NULL-extended)
PRESERVED_SIDES = {"inner": (0, 1), "left": (0,), "right": (1,), "full": ()}


def push_down_predicates(dag: Dag) -> Dag:
    dag = dag.copy()
    changed = True
    while changed:
        changed = False
        for node in dag.topo():
            if node in dag.g and isinstance(dag.op(node), Filter) and _push(dag, node):
                changed = True
                break
    dag.check()
    return dag


def _conjuncts(e: exp.Expression) -> list[exp.Expression]:
    return list(e.flatten()) if isinstance(e, exp.And) else [e]


def _push(dag: Dag, node: int) -> bool:
    """Push the filter at `node` one step down; True when the graph changed."""
    (src,) = dag.inputs(node)
    if len(dag.consumers(src)) != 1:  # a shared subplan (a CTE used twice) keeps its rows
        return False
    op, below = dag.op(node), dag.op(src)
    if isinstance(below, Project):
        mapping = dict(below.exprs)
        if any(e.find(exp.AggFunc) for e in mapping.values()):
            return False
        pred = substitute(op.predicate, mapping)
        (grand,) = dag.inputs(src)
        new_filter = dag.add(Filter(pred, pred.sql()), dag.schema(grand), [grand])
        dag.replace_input(src, grand, new_filter)
        dag.bypass(node)
        return True
    if isinstance(below, Union):
        out_names = dag.names(src)
        for i in dag.inputs(src):
            mapping = {o: col(n) for o, n in zip(out_names, dag.names(i))}
            pred = substitute(op.predicate, mapping)
            f = dag.add(Filter(pred, pred.sql()), dag.schema(i), [i])
            dag.replace_input(src, i, f)
        dag.bypass(node)
        return True
    if isinstance(below, SemiJoin):
        left = dag.inputs(src)[0]
        f = dag.add(Filter(op.predicate, op.text), dag.schema(left), [left])
        dag.replace_input(src, left, f)
        dag.bypass(node)
        return True
    if isinstance(below, Join):
        left, right = dag.inputs(src)
        lnames, rnames = set(dag.names(left)), set(dag.names(right))
        stay, moved = [], False
        for c in _conjuncts(op.predicate):
            used = referenced_columns(c)
            # the join's current input on that side (an earlier term may have put a filter there)
            pos = 0 if used <= lnames else 1 if used <= rnames else None
            if pos is None or not used or pos not in PRESERVED_SIDES[below.kind]:
                stay.append(c)
                continue
            side = dag.inputs(src)[pos]
            f = dag.add(Filter(c, c.sql()), dag.schema(side), [side])
            dag.replace_input(src, side, f)
            moved = True
        if not moved:
            return False
        if stay:
            pred = exp.and_(*stay) if len(stay) > 1 else stay[0]
            dag.set(node, op=Filter(pred, pred.sql()))
        else:
            dag.bypass(node)
        return True
    return False
