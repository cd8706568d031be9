"""The physical plan: one local job per party, the secure job, and the data edges between them.

    plan = compile_query(sql, catalog)          # SQL -> DAG -> passes -> Plan
    plan.to_json()                              # what `sqlmpc compile` writes as plan.json

A local job is a list of SQL queries over the party's own parts (one per share into MPC, or the
final result when no MPC is needed), rendered in Spark SQL by default. The secure job is the
part of the DAG placed in MPC; backends.mpyc renders it into one MPyC program.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlglot import exp

from .catalog import Catalog
from .dag import (Aggregate, Dag, Distinct, Filter, Join, Limit, Output, Project, Reveal, Scan,
                  SemiJoin, Share, Sort, Union)
from .errors import CompileError
from .frontend import lower_sql
from .nullability import Nullability
from .padding import share_padding
from .passes import optimize
from .passes.mark_boundary import RECIPIENT, SECURE

HELPER_PREFIX = "helper"
MIN_COMPUTE_PARTIES = 3  # MPyC needs an honest majority: t < m/2 with t >= 1


@dataclass
class PartInput:
    """One data file a local job reads, registered as a view named `view`."""

    view: str
    table: str
    path: str
    columns: dict[str, str]  # catalog column -> SQL type (those the job reads)
    # declared keys of the table whose columns the job reads: the job checks its part has no
    # duplicates (infer_unique relies on them); pad_rows: the part may not have more rows
    unique: list[list[str]] = field(default_factory=list)
    max_rows: int | None = None
    declared: list[str] = field(default_factory=list)  # every column the catalog declares
    # declared public domains of the columns the job reads (catalog `domains`; dates as ISO
    # text): every value must be one of them (the one-hot group-by relies on it)
    domains: dict[str, list] = field(default_factory=dict)


@dataclass
class LocalOutput:
    """One result of a local job: rows that are secret-shared (share) or the query result."""

    node: int
    kind: str  # "share" or "result"
    sql: str  # Spark SQL
    sql_duckdb: str  # the same query for the embedded DuckDB engine (small parties, fast tests)
    columns: list[tuple[str, str]]  # (name, type), in order
    public_columns: list[str] = field(default_factory=list)
    rows: str = ""  # plain-language size of the output, for explain
    nullable: list[str] = field(default_factory=list)  # columns that may be NULL (compiler/nullability.py)
    pad: int | str | None = None  # share_input's pad_to: a public bound, "pow2" or exact (padding.py)


@dataclass
class LocalJob:
    party: str
    inputs: list[PartInput]
    outputs: list[LocalOutput]


@dataclass
class Plan:
    sql: str
    catalog_path: str
    all_secure: bool
    parties: list[str]          # catalog parties
    compute_parties: list[str]  # MPyC parties, in MPyC id order (catalog parties + helpers)
    helpers: list[str]          # compute parties added for an honest majority
    recipients: list[str]
    local_jobs: dict[str, LocalJob]
    needs_mpc: bool
    result_columns: list[tuple[str, str]]
    dag: Dag = field(repr=False)
    dialect: str = "spark"
    join_bound: int | None = None  # many-to-many joins: pad to this many rows, reveal only M <= it

    def to_dict(self) -> dict:
        return {
            "sql": self.sql,
            "catalog": self.catalog_path,
            "all_secure": self.all_secure,
            "parties": self.parties,
            "compute_parties": self.compute_parties,
            "helpers": self.helpers,
            "recipients": self.recipients,
            "needs_mpc": self.needs_mpc,
            "join_bound": self.join_bound,
            "result_columns": [list(c) for c in self.result_columns],
            "local_jobs": {p: asdict(j) for p, j in self.local_jobs.items()},
            "dag": dag_to_dict(self.dag),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)


def compile_query(sql: str, catalog: Catalog, *, dialect: str | None = None,
                  all_secure: bool = False, disable: tuple[str, ...] = (),
                  pad_inputs: str | None = None, join_bound: int | None = None) -> Plan:
    """SQL text -> optimised DAG -> physical plan.

    ``pad_inputs="pow2"`` pads every share to a power of two (see compiler/padding.py);
    ``join_bound`` makes every secure many-to-many join pad its output to that many rows and
    reveal only whether its size M fits, instead of M (a run with M > bound fails)."""
    if join_bound is not None and join_bound < 1:
        raise CompileError(f"join bound must be a positive number of rows, not {join_bound}")
    dag = lower_sql(sql, catalog, dialect=dialect)
    dag = optimize(dag, catalog=catalog, all_secure=all_secure, disable=disable)
    plan = build_plan(dag, catalog, sql, all_secure, pad_inputs=pad_inputs)
    plan.join_bound = join_bound
    plan.dag.g.graph["join_bound"] = join_bound  # explain reads it from the DAG
    return plan


def build_plan(dag: Dag, catalog: Catalog, sql: str, all_secure: bool, *,
               pad_inputs: str | None = None) -> Plan:
    parties = list(catalog.parties)
    helpers = []
    needs_mpc = any(dag.attr(n, "placement") == SECURE for n in dag.g)
    if needs_mpc:
        candidates = (HELPER_PREFIX if i == 1 else f"{HELPER_PREFIX}{i}" for i in range(1, 99))
        while len(parties) + len(helpers) < MIN_COMPUTE_PARTIES:
            name = next(c for c in candidates if c not in parties)
            helpers.append(name)
    jobs: dict[str, LocalJob] = {}
    nullable = Nullability(dag)
    for party in parties:
        outputs = []
        inputs: dict[str, PartInput] = {}
        for n in dag.topo():
            op = dag.op(n)
            if isinstance(op, Share) and op.party == party:
                (src,) = dag.inputs(n)
                kind = "share"
            elif isinstance(op, Output) and dag.attr(dag.inputs(n)[0], "placement") == \
                    f"local:{party}":
                src, kind = dag.inputs(n)[0], "result"
            else:
                continue
            query = to_sql(dag, src, catalog, inputs)
            outputs.append(LocalOutput(
                n, kind, query.sql(dialect="spark", pretty=True),
                query.sql(dialect="duckdb", pretty=True),
                [(f.name, f.sql_type) for f in dag.schema(src)],
                list(op.public_columns) if isinstance(op, Share) else [],
                describe_rows(dag, src),
                [f.name for f in dag.schema(src) if f.name in nullable(src)],
                share_padding(dag, n, catalog, pad_inputs) if kind == "share" else None))
        if outputs:
            jobs[party] = LocalJob(party, list(inputs.values()), outputs)
    (top,) = dag.inputs(dag.root)
    return Plan(sql, str(catalog.path), all_secure, parties, parties + helpers, helpers,
                list(catalog.recipients), jobs, needs_mpc,
                [(f.name, f.sql_type) for f in dag.schema(dag.root)], dag)


def view_name(party: str, table: str) -> str:
    return f"{party}_{table}".lower()


def to_sql(dag: Dag, node: int, catalog: Catalog, inputs: dict[str, PartInput]) -> exp.Select:
    """The SQL query computing a local node over the party's registered part views."""
    op = dag.op(node)
    names = dag.names(node)
    ins = dag.inputs(node)

    def ident(name: str) -> exp.Identifier:
        return exp.Identifier(this=name, quoted=True)

    def sub(i: int, alias: str) -> exp.Subquery:
        return to_sql(dag, i, catalog, inputs).subquery(alias)

    def star_from(i: int) -> exp.Select:
        return exp.select(*[exp.column(ident(n)) for n in names]).from_(sub(i, f"q{i}"))

    if isinstance(op, Scan):
        view = view_name(op.party, op.table)
        table = catalog.tables[op.table]
        part = inputs.setdefault(view, PartInput(view, op.table, str(table.parts[op.party]), {},
                                                 declared=list(table.columns)))
        for c in op.columns:
            part.columns[c] = table.columns[c].sql_type
        part.unique = [list(k) for k in table.unique if set(k) <= set(part.columns)]
        part.max_rows = table.pad_rows
        part.domains = {c: list(table.domains[c]) for c in part.columns if c in table.domains}
        return exp.select(*[exp.alias_(exp.column(ident(c)), ident(n), quoted=True)
                            for c, n in zip(op.columns, names)]).from_(exp.to_table(view))
    if isinstance(op, Filter):
        return star_from(ins[0]).where(op.predicate.copy())
    if isinstance(op, Project):
        return exp.select(*[exp.alias_(e.copy(), ident(n), quoted=True) for n, e in op.exprs]
                          ).from_(sub(ins[0], f"q{ins[0]}"))
    if isinstance(op, Aggregate):
        funcs = {"sum": exp.Sum, "count": exp.Count, "min": exp.Min, "max": exp.Max}
        cols = [exp.column(ident(k)) for k in op.keys]
        for a in op.aggs:
            if a.func == "count_star":
                e = exp.Count(this=exp.Star())
            else:
                e = funcs[a.func](this=exp.column(ident(a.arg)))
            cols.append(exp.alias_(e, ident(a.name), quoted=True))
        q = exp.select(*cols).from_(sub(ins[0], f"q{ins[0]}"))
        if op.keys:
            q = q.group_by(*[exp.column(ident(k)) for k in op.keys])
        return q
    if isinstance(op, Join):
        left, right = ins
        on = exp.and_(*[exp.EQ(this=exp.column(ident(a), table=f"l{left}"),
                               expression=exp.column(ident(b), table=f"r{right}"))
                        for a, b in zip(op.left_keys, op.right_keys)]) if op.left_keys else None
        q = exp.select(*[exp.column(ident(n)) for n in names]).from_(sub(left, f"l{left}"))
        return q.join(sub(right, f"r{right}"), on=on, join_type=None if on is not None else "cross")
    if isinstance(op, SemiJoin):
        return _semi_join_sql(dag, node, sub(ins[0], f"l{ins[0]}"), sub(ins[1], f"r{ins[1]}"))
    if isinstance(op, Union):
        queries = [to_sql(dag, i, catalog, inputs) for i in ins]
        # columns match by position: name each input's columns as the union's
        renamed = [exp.select(*[exp.alias_(exp.column(ident(a)), ident(b), quoted=True)
                                for a, b in zip(dag.names(i), names)]).from_(q.subquery(f"u{i}"))
                   for i, q in zip(ins, queries)]
        u = renamed[0]
        for r in renamed[1:]:
            u = exp.union(u, r, distinct=False)
        return exp.select(*[exp.column(ident(n)) for n in names]).from_(u.subquery(f"u{node}"))
    if isinstance(op, Distinct):
        return star_from(ins[0]).distinct()
    if isinstance(op, Sort):
        return star_from(ins[0]).order_by(*[exp.Ordered(this=exp.column(ident(k)), desc=d)
                                            for k, d in op.keys])
    if isinstance(op, Limit):
        return star_from(ins[0]).limit(op.n)
    raise NotImplementedError(f"no local SQL for {type(op).__name__}")


def _semi_join_sql(dag: Dag, node: int, left: exp.Subquery, right: exp.Subquery) -> exp.Select:
    """`WHERE [NOT] EXISTS (SELECT 1 FROM right WHERE right.k = left.k ...)`, the same text in
    Spark SQL and DuckDB (both plan it as a semi/anti join). The keys that come from NOT IN
    stay `(left.k, ...) NOT IN (SELECT right.k, ...)`: SQL's NULL semantics of NOT IN (a NULL
    in the subquery empties the result) differ from NOT EXISTS."""
    op = dag.op(node)
    la, ra = left.alias, right.alias

    def ref(name: str, table: str) -> exp.Column:
        return exp.column(exp.Identifier(this=name, quoted=True), table=table)

    pairs = list(zip(op.left_keys, op.right_keys))
    correlated = [exp.EQ(this=ref(b, ra), expression=ref(a, la)) for a, b in pairs[op.not_in:]]
    if op.not_in:
        lhs = [ref(a, la) for a, _ in pairs[:op.not_in]]
        inner = exp.select(*[ref(b, ra) for _, b in pairs[:op.not_in]]).from_(right)
        if correlated:
            inner = inner.where(*correlated)
        pred = exp.Not(this=exp.In(this=lhs[0] if len(lhs) == 1 else exp.Tuple(expressions=lhs),
                                   query=exp.Subquery(this=inner)))
    else:
        inner = exp.select(exp.Literal.number(1)).from_(right)
        if correlated:
            inner = inner.where(*correlated)
        pred = exp.Exists(this=inner)
        if op.anti:
            pred = exp.Not(this=pred)
    return exp.select(*[exp.column(exp.Identifier(this=n, quoted=True))
                        for n in dag.names(node)]).from_(left).where(pred)


def describe_rows(dag: Dag, node: int) -> str:
    """How many rows a local output has, in words a non-engineer can follow."""
    op = dag.op(node)
    if isinstance(op, Filter) and dag.op(dag.inputs(node)[0]).__class__ is Aggregate and \
            not dag.op(dag.inputs(node)[0]).keys:
        return "at most 1 row (its totals)"
    if isinstance(op, Aggregate):
        if not op.keys:
            return "1 row (its totals)"
        return "one row per distinct (" + ", ".join(_plain(k) for k in op.keys) + ")"
    if isinstance(op, (Project, Filter)):
        inner = describe_rows(dag, dag.inputs(node)[0])
        if isinstance(op, Filter) and inner.startswith("one row per") and "row of" in inner:
            return inner + " that passes the filter"
        return inner
    if isinstance(op, Scan):
        return f"one row per row of its part of {op.table}"
    if isinstance(op, Limit):
        return f"at most {op.n} rows"
    if isinstance(op, Distinct):
        return "one row per distinct row"
    if isinstance(op, Join):
        return "one row per matching pair of rows"
    if isinstance(op, SemiJoin):
        return describe_rows(dag, dag.inputs(node)[0]) + (
            " that has no match" if op.anti else " that has a match")
    if isinstance(op, Union):
        return "the rows of several inputs"
    return "rows"


def _plain(name: str) -> str:
    return name.split(".", 1)[1] if "." in name and not name.startswith("__") else name


def dag_to_dict(dag: Dag) -> dict:
    nodes = []
    for n in dag.topo():
        op = dag.op(n)
        d = {"id": n, "op": type(op).__name__, "inputs": dag.inputs(n),
             "placement": dag.attr(n, "placement"),
             "schema": [[f.name, f.sql_type] for f in dag.schema(n)]}
        for k, v in op.__dict__.items():
            if k in ("predicate", "exprs"):
                continue
            d[k] = v if not isinstance(v, tuple) else [
                asdict(x) if hasattr(x, "__dataclass_fields__") else x for x in v]
        if isinstance(op, Filter):
            d["predicate"] = op.predicate.sql()
        if isinstance(op, Project):
            d["exprs"] = [[name, e.sql()] for name, e in op.exprs]
        if dag.attr(n, "public"):
            d["public_columns"] = sorted(dag.attr(n, "public"))
        if dag.attr(n, "public_keys"):
            d["public_keys"] = True
        if dag.attr(n, "domain"):  # use_domains: the one-hot group-by's public key values
            d["domain"] = {k: list(v) for k, v in dag.attr(n, "domain").items()}
        nodes.append(d)
    return {"root": dag.root, "nodes": nodes}


def secure_nodes(dag: Dag) -> list[int]:
    return [n for n in dag.topo() if dag.attr(n, "placement") == SECURE]


def recipient_nodes(dag: Dag) -> list[int]:
    return [n for n in dag.topo() if dag.attr(n, "placement") == RECIPIENT
            and not isinstance(dag.op(n), Output)]


def write_plan(plan: Plan, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "plan.json"
    path.write_text(plan.to_json())
    return path


__all__ = ["Plan", "compile_query", "build_plan", "to_sql", "Reveal"]
