"""Hybrid operators: group by keys that every party may see in the clear, with no secure comparison.

When every owner declared a group-by key column public (trust "*"), the parties that share
rows send that column in the clear alongside their secret-shared values; MPC then sums values
per public key by plain index selection. Only the key columns an aggregate needs are sent in
the clear; `explain` lists them as revealed to all compute parties. A column stays public
through unions, filters and semi-joins (which only change secret validity flags of the left
rows, in place) and projections of public columns; sorting, limits, joins and secret-key
aggregates end it.
"""

from __future__ import annotations

from ..catalog import PUBLIC, Catalog
from ..ir.plan import MIN_COMPUTE_PARTIES
from ..ir.dag import (SECURE, Aggregate, Dag, Filter, Project, SemiJoin, Share, Union,
                      referenced_columns)


def use_public_keys(dag: Dag, *, catalog: Catalog) -> Dag:
    dag = dag.copy()
    everyone = frozenset(catalog.parties)
    if len(catalog.parties) < MIN_COMPUTE_PARTIES:
        # the plan adds a helper compute party that no trust list names: only columns
        # declared public ("*") may be shown to it
        everyone |= {PUBLIC}
    secure = [n for n in dag.topo() if dag.attr(n, "placement") == SECURE]
    potential = _public_columns(dag, secure, lambda share: {
        n for n in dag.names(share) if dag.attr(share, "trust")[n] >= everyone})
    chosen = [n for n in secure if isinstance(dag.op(n), Aggregate) and dag.op(n).keys
              and set(dag.op(n).keys) <= potential[dag.inputs(n)[0]]]
    # which public columns the chosen aggregates need, traced back to the shares
    need: dict[int, set[str]] = {}
    for n in chosen:
        src = dag.inputs(n)[0]
        need.setdefault(src, set()).update(dag.op(n).keys)
    for n in reversed(secure):
        want = need.get(n, set())
        op = dag.op(n)
        if not want or isinstance(op, Share):
            continue
        for i in dag.inputs(n):
            if isinstance(op, Union):
                mapping = dict(zip(dag.names(n), dag.names(i)))
                need.setdefault(i, set()).update(mapping[c] for c in want)
            elif isinstance(op, Project):
                exprs = dict(op.exprs)
                need.setdefault(i, set()).update(
                    *(referenced_columns(exprs[c]) for c in want))
            elif isinstance(op, SemiJoin):  # its columns are its left input's
                if i == dag.inputs(n)[0]:
                    need.setdefault(i, set()).update(want)
            else:
                need.setdefault(i, set()).update(want)
    for n in secure:
        op = dag.op(n)
        if isinstance(op, Share):
            cols = tuple(c for c in dag.names(n) if c in need.get(n, set()))
            dag.set(n, op=Share(op.party, cols))
    public = _public_columns(dag, secure, lambda share: set(dag.op(share).public_columns))
    for n in secure:
        dag.set(n, public=frozenset(public[n]))
        if n in chosen:
            dag.set(n, public_keys=True)
    return dag


def _public_columns(dag: Dag, secure: list[int], share_public) -> dict[int, set[str]]:
    public: dict[int, set[str]] = {}
    for n in secure:
        op = dag.op(n)
        ins = dag.inputs(n)
        if isinstance(op, Share):
            public[n] = set(share_public(n))
        elif isinstance(op, Union):
            per = [[c in public.get(i, set()) for c in dag.names(i)] for i in ins]
            public[n] = {c for k, c in enumerate(dag.names(n)) if all(p[k] for p in per)}
        elif isinstance(op, (Filter, SemiJoin)):
            public[n] = set(public.get(ins[0], set()))
        elif isinstance(op, Project):
            src = public.get(ins[0], set())
            public[n] = {c for c, e in op.exprs if referenced_columns(e) <= src}
        elif isinstance(op, Aggregate) and op.keys and set(op.keys) <= public.get(ins[0], set()):
            public[n] = set(op.keys)
        else:
            public[n] = set()
    return public
