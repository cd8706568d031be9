"""The dataflow DAG: a networkx.DiGraph whose nodes hold one frozen operator dataclass each.

A node's attributes:
    op         the operator (one of the dataclasses below)
    schema     tuple[Field, ...]: the output columns, in order
    owners     frozenset of parties whose data the output depends on (ownership pass)
    trust      dict column -> frozenset of parties allowed to see it in the clear (ownership pass)
    placement  "local:<party>", "secure" or "recipient" (mark_boundary pass)
Edges run from input to consumer; the edge attribute `pos` orders a node's inputs (join: 0 = left).

Column references inside expressions are sqlglot `exp.Column` nodes whose name is the full
internal column name of the input schema (for example "t.fare"); `col(name)` builds one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
from sqlglot import exp

from ..errors import CompileError

# Aggregate functions after lowering. AVG / VARIANCE / STDDEV are decomposed into these
# by the decompose_aggregates pass before any placement decision is taken.
# where a node runs (DAG attribute "placement"): "local:<party>", in MPC, or at the recipients
SECURE = "secure"
#: the DAG's record of the catalog's declared ranges: {table: {column: (lo, hi)}}
RANGES = "ranges"
RECIPIENT = "recipient"
ROWS_PREFIX = "__rows_"
"""Prefix of the columns counting one owner's rows (compiler/passes/suppress_small_groups.py)."""

# DAG graph attribute: {outer join node: the sql/line/col of its JOIN clause}, for errors
JOIN_POSITIONS = "join_positions"

AGG_FUNCS = ("sum", "count", "count_star", "min", "max", "avg", "var_samp", "var_pop",
             "stddev_samp", "stddev_pop", "count_distinct")
ROWWISE_AGGS = ("sum", "count", "count_star", "min", "max")


@dataclass(frozen=True)
class Field:
    """One output column: internal name and SQL type."""

    name: str
    sql_type: str


@dataclass(frozen=True)
class Scan:
    """Read one party's part of a catalog table; output columns are named `alias.column`."""

    table: str
    party: str
    alias: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Union:
    """UNION ALL of the inputs (edge pos gives the order); columns are matched by position."""


@dataclass(frozen=True)
class Filter:
    """Keep the rows where `predicate` holds."""

    predicate: exp.Expression = field(compare=False)
    text: str = ""


@dataclass(frozen=True)
class Project:
    """Compute one output column per (name, expression), row by row."""

    exprs: tuple[tuple[str, exp.Expression], ...] = field(compare=False)
    text: str = ""


@dataclass(frozen=True)
class AggCall:
    """One aggregate: output column `name` = func(arg); arg None for COUNT(*)."""

    name: str
    func: str
    arg: str | None


@dataclass(frozen=True)
class Aggregate:
    """GROUP BY `keys` (input column names) computing `aggs`; no aggs and keys = DISTINCT keys.

    `stage` is "full", or "partial"/"final" after the aggregate was split around a union.
    """

    keys: tuple[str, ...]
    aggs: tuple[AggCall, ...]
    stage: str = "full"


@dataclass(frozen=True)
class Join:
    """Equi-join of input 0 (left) and input 1 (right); no keys = cross join. `kind` is
    "inner", or "left" / "right" / "full" for outer joins (the unmatched rows of the
    preserved side(s) kept, the other side's columns NULL)."""

    left_keys: tuple[str, ...]
    right_keys: tuple[str, ...]
    kind: str = "inner"


@dataclass(frozen=True)
class SemiJoin:
    """Rows of input 0 (left) with a row of input 1 (right) whose right_keys equal left_keys.

    `anti`: the rows without one instead. No keys: left's rows if right has any row (anti: if
    it has none). The output schema is left's. `not_in` counts the leading key pairs that
    come from `x NOT IN (SELECT y ...)`: local engines give them SQL's NULL semantics for NOT
    IN (a NULL y empties the result), the other pairs (EXISTS correlations) those of `=`.
    `null_safe` (INTERSECT / EXCEPT): keys match with IS NOT DISTINCT FROM (NULL = NULL).
    """

    left_keys: tuple[str, ...]
    right_keys: tuple[str, ...]
    anti: bool = False
    not_in: int = 0
    null_safe: bool = False


@dataclass(frozen=True)
class Window:
    """Window functions: the input's rows and columns, plus one column per (name, sqlglot
    `exp.Window` over the input's columns). `where` is the first function's SQL position
    (line, col), for the refusal when the rows come from several parties."""

    exprs: tuple[tuple[str, exp.Expression], ...] = field(compare=False)
    text: str = ""
    where: tuple[int | None, int | None] = (None, None)


@dataclass(frozen=True)
class Distinct:
    """SELECT DISTINCT over all columns."""


@dataclass(frozen=True)
class Sort:
    """ORDER BY input columns; (name, descending)."""

    keys: tuple[tuple[str, bool], ...]


@dataclass(frozen=True)
class Limit:
    """Keep the first n rows after skipping the first `offset` (LIMIT n OFFSET offset)."""

    n: int
    offset: int = 0


@dataclass(frozen=True)
class Share:
    """`party` secret-shares its input rows into MPC (public_columns go in the clear)."""

    party: str
    public_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reveal:
    """Open the (valid) result rows to the recipients only."""

    recipients: tuple[str, ...]


@dataclass(frozen=True)
class Output:
    """The query result as the recipients receive it (the DAG's single sink)."""

    recipients: tuple[str, ...]


OPERATORS = (Scan, Union, Filter, Project, Aggregate, Join, SemiJoin, Distinct, Sort, Limit, Share,
             Reveal, Output, Window)


def col(name: str) -> exp.Column:
    """A reference to the internal column `name` (quoted, so dots and case survive)."""
    return exp.Column(this=exp.Identifier(this=name, quoted=True))


def referenced_columns(expression: exp.Expression) -> set[str]:
    """Internal column names an expression reads."""
    return {c.name for c in expression.find_all(exp.Column)}


class Dag:
    """A thin wrapper around networkx.DiGraph with typed helpers; copy() is deep for structure.

    Node ids count up from 0 within one query's DAG and its copies (the graph carries the next
    id), never reused: the same query compiles to the same ids in any process, so a party's
    agent reproduces the client's plan exactly (its SQL aliases name node ids too)."""

    def __init__(self, graph: nx.DiGraph | None = None, root: int | None = None) -> None:
        self.g = graph if graph is not None else nx.DiGraph()
        self.root = root
        self.g.graph.setdefault("next_id", max(self.g.nodes, default=-1) + 1)

    def copy(self) -> "Dag":
        g = nx.DiGraph(**self.g.graph)
        for n, data in self.g.nodes(data=True):
            g.add_node(n, **{k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()})
        g.add_edges_from(self.g.edges(data=True))
        return Dag(g, self.root)

    def add(self, op, schema, inputs=()) -> int:
        node = self.g.graph["next_id"]
        self.g.graph["next_id"] = node + 1
        self.g.add_node(node, op=op, schema=tuple(schema))
        for pos, src in enumerate(inputs):
            self.g.add_edge(src, node, pos=pos)
        return node

    def op(self, node: int):
        return self.g.nodes[node]["op"]

    def schema(self, node: int) -> tuple[Field, ...]:
        return self.g.nodes[node]["schema"]

    def names(self, node: int) -> list[str]:
        return [f.name for f in self.schema(node)]

    def types(self, node: int) -> dict[str, str]:
        return {f.name: f.sql_type for f in self.schema(node)}

    def inputs(self, node: int) -> list[int]:
        preds = list(self.g.in_edges(node, data="pos"))
        return [src for src, _, _ in sorted(preds, key=lambda e: e[2])]

    def consumers(self, node: int) -> list[int]:
        return list(self.g.successors(node))

    def topo(self) -> list[int]:
        return list(nx.lexicographical_topological_sort(self.g))

    def attr(self, node: int, key: str, default=None):
        return self.g.nodes[node].get(key, default)

    def set(self, node: int, **attrs) -> None:
        self.g.nodes[node].update(attrs)

    def replace_input(self, node: int, old: int, new: int) -> None:
        pos = self.g.edges[old, node]["pos"]
        self.g.remove_edge(old, node)
        self.g.add_edge(new, node, pos=pos)

    def insert_between(self, src: int, dst: int, op, schema) -> int:
        """A new node on the edge src -> dst, taking src's place as dst's input."""
        mid = self.add(op, schema, [src])
        self.replace_input(dst, src, mid)
        return mid

    def remove(self, node: int) -> None:
        self.g.remove_node(node)

    def replace_node(self, old: int, new: int) -> None:
        """`new` takes `old`'s place as its consumers' input (and as the root); `old` goes."""
        for consumer in self.consumers(old):
            self.replace_input(consumer, old, new)
        if self.root == old:
            self.root = new
        self.remove(old)

    def bypass(self, node: int) -> None:
        """Remove a node with one input, wiring its consumers (and the root) to that input."""
        (src,) = self.inputs(node)
        self.replace_node(node, src)

    def prune(self) -> None:
        """Drop nodes that do not reach the root."""
        keep = nx.ancestors(self.g, self.root) | {self.root}
        self.g.remove_nodes_from([n for n in list(self.g) if n not in keep])

    def check(self) -> None:
        """Invariants every pass must keep: acyclic, one sink, expressions read existing columns."""
        if not nx.is_directed_acyclic_graph(self.g):
            raise CompileError("internal error: the plan has a cycle")
        sinks = [n for n in self.g if self.g.out_degree(n) == 0]
        if sinks != [self.root]:
            raise CompileError(f"internal error: plan sinks {sinks} != root {self.root}")
        for n in self.g:
            op = self.op(n)
            ins = self.inputs(n)
            avail = set().union(*(self.names(i) for i in ins)) if ins else set()
            used: set[str] = set()
            if isinstance(op, Filter):
                used = referenced_columns(op.predicate)
            elif isinstance(op, (Project, Window)):
                used = set().union(*(referenced_columns(e) for _, e in op.exprs))
            elif isinstance(op, Aggregate):
                used = set(op.keys) | {a.arg for a in op.aggs if a.arg}
            elif isinstance(op, Sort):
                used = {k for k, _ in op.keys}
            elif isinstance(op, SemiJoin):
                # keys are checked per side: left and right may use the same column names
                missing = (set(op.left_keys) - set(self.names(ins[0]))) | \
                    (set(op.right_keys) - set(self.names(ins[1])))
                if missing or len(op.left_keys) != len(op.right_keys):
                    raise CompileError(f"internal error: semi-join {n} keys {sorted(missing)} "
                                       f"missing or unpaired")
            elif isinstance(op, Union):
                widths = {len(self.schema(i)) for i in ins}
                if len(widths) > 1:
                    raise CompileError(f"internal error: union inputs of different widths at {n}")
            missing = used - avail
            if missing:
                raise CompileError(f"internal error: node {n} ({type(op).__name__}) reads unknown "
                                   f"columns {sorted(missing)}")


def substitute(expression: exp.Expression, mapping: dict[str, exp.Expression]) -> exp.Expression:
    """A copy of `expression` with each column reference replaced by mapping[name] (if present)."""
    def swap(x: exp.Expression) -> exp.Expression:
        if isinstance(x, exp.Column) and x.name in mapping:
            return mapping[x.name].copy()
        return x
    return expression.copy().transform(swap)


def render_exprs(exprs) -> str:
    """The text shown for a projection: `expr AS name, ...`."""
    return ", ".join(e.sql() if isinstance(e, exp.Column) and e.name == n else f"{e.sql()} AS {n}"
                     for n, e in exprs)
