"""Group by secret keys of a small public domain with one-hot columns instead of a secure sort.

When every key of a secure GROUP BY is a secret column whose values the catalog declares
(`[tables.T.domains]`, column = [values]) and the key tuples have at most MAX_DOMAIN
combinations, each owner computes, in its own local job and in the clear, one 0/1 column per
domain tuple (`__oh_<j>` = 1 where its row's key tuple is the j-th tuple of the product of the
domains, in declared order) and secret-shares them with its rows. MPC then sums per group with
one secure matrix product and needs no secure sort or comparison to find the groups
(backends/mpyc/onehot.py); the result has exactly D rows (one per domain tuple, valid where the
group has rows).

When it applies: the keys reach the aggregate unchanged from the owners' shared rows, through
secure unions, filters, semi-joins (left side) and renaming projections, each of which feeds
nothing else (the one-hot columns are added to their schemas); locally they trace back to
catalog columns with a declared domain (through filters, renaming projections, group keys of
partial aggregates, unions, joins, sorts, limits). A key computed in MPC (after a secure join, a
secure aggregate, a computed projection), a key of a table without a declared domain, a product
of domains larger than MAX_DOMAIN, or keys that may be NULL keep the radix-sort path. So does
a MIN or MAX over raw rows: per group it costs n secure comparisons (D x n in all: 345 s in
MPC for a 10-value domain and 10,000 rows with 3 parties here, against 22 s by the radix
sort), where a final aggregate over the owners' partial results (split_aggregates) reads at
most D rows per owner. Keys
every owner declared public ("*") are grouped in the clear by use_public_keys instead.

What it reveals: nothing new. The domain is public (the catalog), the one-hot columns are
secret-shared like the rest of the row, and the output length D follows from the catalog. A
value outside its declared domain stops the owner's local job with one line naming the file,
row, column and value (backends/validate.py "out_of_domain"); it is never silently dropped.

Optional (`--disable use_domains`; off under `--all-secure`).
"""

from __future__ import annotations

import datetime
from functools import reduce

from sqlglot import exp

from ..analyses.domains import DOMAIN_ATTR as ATTR
from ..analyses.domains import (ONEHOT_PREFIX, declared_values, domain_tuples, onehot_columns,
                                plain_column)
from ..analyses.nullability import Nullability
from ..catalog import Catalog
from ..ir.dag import (SECURE, Aggregate, Dag, Field, Filter, Project, SemiJoin, Share, Union, col,
                      render_exprs)

MAX_DOMAIN = 64  # one-hot columns per shared row; beyond this the radix sort is the cheaper path


def use_domains(dag: Dag, *, catalog: Catalog) -> Dag:
    dag = dag.copy()
    nullable = Nullability(dag)
    for n in [n for n in dag.topo() if dag.attr(n, "placement") == SECURE]:
        op = dag.op(n)
        if not isinstance(op, Aggregate) or not op.keys or dag.attr(n, "public_keys"):
            continue
        if op.stage != "final" and any(a.func in ("min", "max") for a in op.aggs):
            continue  # MIN/MAX over raw rows: D x n comparisons; the radix sort is cheaper
        (src,) = dag.inputs(n)
        path: list[int] = []
        shares = _trace_secure(dag, src, list(op.keys), n, path)
        if not shares:
            continue
        domain = _domain(dag, catalog, shares, op.keys, nullable)
        if domain is None or len(domain_tuples(domain)) > MAX_DOMAIN:
            continue
        _rewrite(dag, n, domain, shares, path)
    return dag


def _trace_secure(dag: Dag, node: int, cols: list[str], consumer: int, path: list[int]
                  ) -> list[tuple[int, list[str]]] | None:
    """[(share, key columns there)] when the key columns at `node` come unchanged from shares
    through nodes that feed only `consumer`; collects those nodes (not the shares) in `path`."""
    if dag.attr(node, "placement") != SECURE or dag.consumers(node) != [consumer]:
        return None
    op = dag.op(node)
    ins = dag.inputs(node)
    if isinstance(op, Share):
        return [(node, cols)]
    if isinstance(op, Union):
        out = []
        for i in ins:
            by_name = dict(zip(dag.names(node), dag.names(i)))
            got = _trace_secure(dag, i, [by_name[c] for c in cols], node, path)
            if got is None:
                return None
            out += got
        path.append(node)
        return out
    if isinstance(op, (Filter, SemiJoin)):
        got = _trace_secure(dag, ins[0], cols, node, path)
        if got is not None:
            path.append(node)
        return got
    if isinstance(op, Project):
        exprs = dict(op.exprs)
        renamed = [plain_column(exprs[c]) for c in cols]
        if any(r is None for r in renamed):
            return None  # a key computed in MPC
        got = _trace_secure(dag, ins[0], renamed, node, path)
        if got is not None:
            path.append(node)
        return got
    return None  # a secure join, aggregate, distinct, sort...: keys computed in MPC


def _domain(dag: Dag, catalog: Catalog, shares: list[tuple[int, list[str]]],
            keys: tuple[str, ...], nullable: Nullability) -> dict[str, tuple] | None:
    """{key: declared values} (the union over the tables the key comes from, in declared
    order), or None when a key has no declared domain somewhere or may be NULL."""
    values: list[dict] = [{} for _ in keys]
    for share, cols in shares:
        (src,) = dag.inputs(share)
        if set(cols) & (nullable(src) | set(dag.op(share).public_columns)):
            return None
        if any(c.startswith(ONEHOT_PREFIX) for c in dag.names(src)):
            return None  # already carries another aggregate's one-hot columns
        for j, c in enumerate(cols):
            declared = declared_values(dag, catalog, src, c)
            if declared is None:
                return None
            values[j].update(dict.fromkeys(declared))
    return {k: tuple(v) for k, v in zip(keys, values)}


def _literal(value, sql_type: str) -> exp.Expression:
    """A domain value as a SQL literal of the key's type (the same text in every engine's
    dialect)."""
    if sql_type == "text":
        return exp.Literal.string(str(value))
    if sql_type == "bool":
        return exp.Boolean(this=bool(value))
    if sql_type == "date":
        text = value.isoformat() if isinstance(value, datetime.date) else str(value)
        return exp.Cast(this=exp.Literal.string(text), to=exp.DataType.build("date"))
    return exp.Literal.number(value)


def _rewrite(dag: Dag, agg: int, domain: dict[str, tuple],
             shares: list[tuple[int, list[str]]], path: list[int]) -> None:
    names = onehot_columns(domain)
    fields = tuple(Field(c, "int") for c in names)
    tuples = domain_tuples(domain)
    for share, cols in shares:
        (src,) = dag.inputs(share)
        types = dag.types(src)
        exprs = [(c, col(c)) for c in dag.names(src)]
        for name, row in zip(names, tuples):
            test = reduce(exp.and_, [exp.EQ(this=col(c), expression=_literal(v, types[c]))
                                     for c, v in zip(cols, row)])
            exprs.append((name, exp.Case(ifs=[exp.If(this=test, true=exp.Literal.number(1))],
                                         default=exp.Literal.number(0))))
        proj = dag.insert_between(src, share, Project(tuple(exprs), render_exprs(exprs)),
                                  dag.schema(src) + fields)
        trust = _onehot_trust(dag, src, cols, names)
        dag.set(proj, placement=dag.attr(src, "placement"), owners=dag.attr(src, "owners"),
                trust=dict(dag.attr(src, "trust") or {}) | trust)
        dag.set(share, schema=dag.schema(share) + fields,
                trust=dict(dag.attr(share, "trust") or {}) | trust)
    for n in path:  # inputs first: each node passes the one-hot columns on, at the end
        op = dag.op(n)
        if isinstance(op, Project):
            exprs = list(op.exprs) + [(c, col(c)) for c in names]
            dag.set(n, op=Project(tuple(exprs), render_exprs(exprs)))
        below = [dag.attr(i, "trust") or {} for i in dag.inputs(n)[:1 if isinstance(
            op, SemiJoin) else None]]
        dag.set(n, schema=dag.schema(n) + fields,
                trust=dict(dag.attr(n, "trust") or {}) | {
                    c: reduce(frozenset.__and__, [t[c] for t in below])
                    for c in names if all(c in t for t in below)})
    dag.set(agg, **{ATTR: domain})


def _onehot_trust(dag: Dag, src: int, cols: list[str], names: list[str]) -> dict:
    """A one-hot column tells the key tuple: visible to whoever may see all the key columns."""
    trust = dag.attr(src, "trust")
    if not trust:
        return {}
    sets = [trust[c] for c in cols if c in trust]
    common = reduce(frozenset.__and__, sets) if sets else frozenset()
    return {c: common for c in names}
