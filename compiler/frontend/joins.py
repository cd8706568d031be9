"""Inner joins of any number of sources, in any syntax, as a tree of equi-joins.

`FROM a, b, c WHERE a.k = b.k AND b.j = c.j` and `FROM a JOIN b ON a.k = b.k JOIN c ON ...`
mean the same for inner joins: the ON terms and the WHERE terms are pooled, every equality
between columns of two different sources is a join edge, and the sources are joined one by
one, each next source being one connected by an edge to those already joined (its edges are
the join's keys, less those the others imply), so no cross product is built where an equality
exists. Equalities are transitive: a = b and b = c link a's and c's sources too. Groups are joined
among themselves first: a pair of tables the catalog declares co-located (split by the same
key; the join runs part by part at each party, passes/use_colocation.py), and sources held by
one same party linked by equalities (their join runs at that party in the clear); then the
groups are joined the same way.

An OR whose every disjunct contains the same equality (TPC-H Q19) gives that edge too, and for
each source whose columns every disjunct tests, the OR of those tests is added as a filter on
that source alone (it is implied by the OR, which stays as well).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
from sqlglot import exp

from .. import sqltypes
from ..errors import SchemaError, UnsupportedError
from ..ir.dag import Join, Scan, Union
from .context import Ctes, LoweringContext
from .trees import conjuncts, internal_name

# (column of one source, column of another): an equality that can be a join key
Edge = tuple[str, str]


@dataclass
class JoinPlan:
    """The sources (DAG node per source), their column names, and the pooled terms."""

    nodes: list[int]
    names: list[set[str]]
    terms: list[exp.Expression] = field(default_factory=list)


def lower_inner_joins(ctx: LoweringContext, first: exp.Expression, joins: list[exp.Join],
                      where: exp.Expression | None, ctes: Ctes
                      ) -> tuple[int, list[exp.Expression]]:
    """Join the FROM source and the joined ones; (node, the WHERE and ON terms left for the
    filter above it). A JOIN ... ON without an equality between two sources is refused: it
    would be a cross product."""
    sources = [first] + [j.this for j in joins]
    nodes = [ctx.source(s, ctes) for s in sources]
    plan = JoinPlan(nodes, [set(ctx.dag.names(n)) for n in nodes])
    ons = [j.args["on"] for j in joins if j.args.get("on") is not None]
    for on in ons:
        if not any(_edge(plan, t) is not None for t in conjuncts(on)) and not (
                isinstance(_unparen(on), exp.Or) and _or_edges(plan, _unparen(on))[0]):
            raise ctx.error(UnsupportedError, "join without an equality between the two sides "
                                              "(only equi-joins)", on)
    plan.terms = [t for on in ons for t in conjuncts(on)] + \
        (conjuncts(where) if where is not None else [])
    edge_terms: dict[int, Edge] = {}  # index in plan.terms -> the edge that term is
    or_edges: list[Edge] = []         # edges every disjunct of an OR term holds
    implied: list[exp.Expression] = []
    for i, term in enumerate(plan.terms):
        edge = _edge(plan, term)
        if edge is not None:
            edge_terms[i] = edge
        elif isinstance(_unparen(term), exp.Or) and _sources(plan, term) > 1:
            common, tests = _or_edges(plan, _unparen(term))
            or_edges += common
            implied += tests
    edges = _with_implied(plan, list(edge_terms.values()) + or_edges)
    groups = _groups(ctx, plan, edges)
    equal = nx.utils.UnionFind()  # columns the joins built so far make equal
    built = [(_join_all(ctx, plan, edges, [(nodes[i], {i}) for i in g], sources[g[0]], equal),
              set(g)) for g in groups]
    node = _join_all(ctx, plan, edges, built, first, equal)
    rest = [t for i, t in enumerate(plan.terms) if i not in edge_terms]
    return node, implied + rest


def _join_all(ctx: LoweringContext, plan: JoinPlan, edges: list[Edge],
              items: list[tuple[int, set[int]]], where: exp.Expression,
              equal: nx.utils.UnionFind) -> int:
    """Join (node, the sources it covers) items one by one, the first first, then each
    next one linked by an edge to those joined (the first such in order), else the next in
    order (a cross join); the keys are the edges between the joined and the next, less those
    the others imply (`equal`: the columns each side's joins already made equal)."""
    (node, joined), left = items[0], list(items[1:])
    joined = set(joined)
    while left:
        linked = [it for it in left if any(_oriented(plan, e, joined, it[1]) for e in edges)]
        nxt = (linked or left)[0]
        left.remove(nxt)
        pairs = []
        for e in edges:
            pair = _oriented(plan, e, joined, nxt[1])
            if pair is not None and equal[pair[0]] != equal[pair[1]]:
                equal.union(*pair)
                pairs.append(pair)
        node = _equi_join(ctx, node, nxt[0], pairs, where)
        joined |= nxt[1]
    return node


def _with_implied(plan: JoinPlan, edges: list[Edge]) -> list[Edge]:
    """`edges` and the equalities they imply between columns of different sources (a = b and
    b = c give a = c): sources equal to a third one on the same key are linked directly, so
    two tables one party holds join at that party first (TPC-H Q9: part and partsupp, both
    equal to lineitem's l_partkey)."""
    classes = nx.utils.UnionFind()
    for a, b in edges:
        classes.union(a, b)
    out = list(edges)
    have = {frozenset(e) for e in edges}
    for cls in classes.to_sets():
        cols = sorted(cls)
        for i, a in enumerate(cols):
            for b in cols[i + 1:]:
                if _source_of(plan, a) != _source_of(plan, b) and frozenset((a, b)) not in have:
                    out.append((a, b))
                    have.add(frozenset((a, b)))
    return out


def _unparen(e: exp.Expression) -> exp.Expression:
    while isinstance(e, exp.Paren):
        e = e.this
    return e


def _source_of(plan: JoinPlan, name: str) -> int | None:
    return next((i for i, names in enumerate(plan.names) if name in names), None)


def _edge(plan: JoinPlan, term: exp.Expression) -> Edge | None:
    """(a, b) when `term` is `a = b` over columns of two different sources."""
    term = _unparen(term)
    if not (isinstance(term, exp.EQ) and isinstance(term.this, exp.Column) and
            isinstance(term.expression, exp.Column)):
        return None
    a, b = internal_name(term.this), internal_name(term.expression)
    sa, sb = _source_of(plan, a), _source_of(plan, b)
    if sa is None or sb is None or sa == sb:
        return None
    return a, b


def _or_edges(plan: JoinPlan, term: exp.Or) -> tuple[list[Edge], list[exp.Expression]]:
    """The edges in every disjunct of `term`, and the implied single-source filters."""
    disjuncts = list(term.flatten())
    per = [[_edge(plan, c) for c in conjuncts(_unparen(d))] for d in disjuncts]
    norm = [{frozenset(e) for e in edges if e is not None} for edges in per]
    common = set.intersection(*norm) if norm else set()
    out = [next(e for e in per[0] if e is not None and frozenset(e) == c) for c in common]
    tests = []
    for source in range(len(plan.nodes)):
        alone = [[c for c in conjuncts(_unparen(d)) if _only(plan, c, source)]
                 for d in disjuncts]
        if alone and all(alone):
            tests.append(exp.or_(*[exp.and_(*c) if len(c) > 1 else c[0] for c in alone],
                                 copy=True))
    return out, tests


def _sources(plan: JoinPlan, term: exp.Expression) -> int:
    """How many sources `term` reads columns of."""
    return len({_source_of(plan, internal_name(c)) for c in term.find_all(exp.Column)} - {None})


def _only(plan: JoinPlan, term: exp.Expression, source: int) -> bool:
    """Whether `term` reads columns of `source` only (and reads some), with no subquery."""
    if term.find(exp.Subquery, exp.Exists) is not None:
        return False
    cols = [internal_name(c) for c in term.find_all(exp.Column)]
    return bool(cols) and all(c in plan.names[source] for c in cols)


def _groups(ctx: LoweringContext, plan: JoinPlan, edges: list[Edge]) -> list[list[int]]:
    """The sources in groups that are joined among themselves first: a co-located pair (it
    joins part by part at each party), and sources held by one same party that are linked
    by edges (their join runs at that party in the clear, and only its result enters MPC).
    The co-located pair's group comes first, then the groups in FROM order; each group's
    sources in FROM order (the co-located pair first)."""
    n = len(plan.nodes)
    root = list(range(n))

    def find(i: int) -> int:
        while root[i] != i:
            i = root[i]
        return i
    holders = [_holder(ctx, node) for node in plan.nodes]
    for a, b in edges:
        sa, sb = _source_of(plan, a), _source_of(plan, b)
        if holders[sa] is not None and holders[sa] == holders[sb]:
            root[find(sa)] = find(sb)
    start = _colocated_start(ctx, plan, edges)
    if start is not None:
        root[find(start[0])] = find(start[1])
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    ordered = sorted(groups.values(), key=lambda g: (start is None or start[0] not in g, g[0]))
    if start is not None:
        first = ordered[0]
        ordered[0] = list(start) + [i for i in first if i not in start]
    return ordered


def _holder(ctx: LoweringContext, node: int) -> str | None:
    """The one party whose data a source reads, or None (several, or none)."""
    parties = {ctx.dag.op(n).party for n in nx.ancestors(ctx.dag.g, node) | {node}
               if isinstance(ctx.dag.op(n), Scan)}
    return next(iter(parties)) if len(parties) == 1 else None


def _colocated_start(ctx: LoweringContext, plan: JoinPlan, edges: list[Edge]
                     ) -> tuple[int, int] | None:
    """Two sources that are logical tables declared co-located and joined on the declared
    keys, if any."""
    tables = [_table_of(ctx, n) for n in plan.nodes]
    for a, b in edges:
        sa, sb = _source_of(plan, a), _source_of(plan, b)
        ta, tb = tables[sa], tables[sb]
        if ta is None or tb is None:
            continue
        pairs = ctx.catalog.colocation(ta, tb)
        if pairs and any(a.split(".", 1)[1] == p and b.split(".", 1)[1] == q
                         for p, q in pairs):
            return min(sa, sb), max(sa, sb)
    return None


def _table_of(ctx: LoweringContext, node: int) -> str | None:
    """The catalog table a source node reads whole (a union of its parts), else None."""
    op = ctx.dag.op(node)
    if isinstance(op, Union):
        ops = [ctx.dag.op(i) for i in ctx.dag.inputs(node)]
        tables = {o.table for o in ops if isinstance(o, Scan)}
        return next(iter(tables)) if len(tables) == 1 and len(ops) == len(
            [o for o in ops if isinstance(o, Scan)]) else None
    return op.table if isinstance(op, Scan) else None


def _oriented(plan: JoinPlan, edge: Edge, joined: set[int], nxt: set[int]) -> Edge | None:
    """The edge as (column of the joined sources, column of the `nxt` sources), if it links
    them."""
    a, b = edge
    sa, sb = _source_of(plan, a), _source_of(plan, b)
    if sa in joined and sb in nxt:
        return a, b
    if sb in joined and sa in nxt:
        return b, a
    return None


def _equi_join(ctx: LoweringContext, left: int, right: int, pairs: list[Edge],
               where: exp.Expression) -> int:
    """Join two nodes on key pairs (none: a cross join), checking the key types."""
    types = {**ctx.dag.types(left), **ctx.dag.types(right)}
    for a, b in pairs:
        ta, tb = types[a], types[b]
        if ta != tb and not (sqltypes.is_numeric(ta) and sqltypes.is_numeric(tb)):
            raise ctx.error(SchemaError, f"join key types differ: {a} {ta} vs {b} {tb}", where)
    fields = ctx.dag.schema(left) + ctx.dag.schema(right)
    return ctx.dag.add(Join(tuple(a for a, _ in pairs), tuple(b for _, b in pairs)), fields,
                       [left, right])
