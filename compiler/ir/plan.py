"""The physical plan as data: one local job per party, the secure job, the data edges.

A local job is a list of queries over the party's own parts (one per share into MPC, or the
final result when no MPC is needed). Each query is kept as engine-neutral SQL (sqlglot's own
dialect); a local engine backend renders it in its engine's dialect (`LocalOutput.sql_in`).
The secure job is the part of the DAG placed in MPC; the secure backend renders it.

Nothing here names an engine: `Plan.engines` maps each party to the engine name its catalog
(or the caller) chose, as plain data.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sqlglot

from .dag import RECIPIENT, SECURE, Dag, Filter, Output, Project

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
    # declared public ranges of the columns the job reads (catalog `ranges`, as [lo, hi] text
    # so they stay exact): every value must lie in it (the bounds analysis relies on it)
    ranges: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class LocalOutput:
    """One result of a local job: rows that are secret-shared (share) or the query result."""

    node: int
    kind: str  # "share" or "result"
    sql: str  # engine-neutral SQL (sqlglot's dialect); see sql_in()
    columns: list[tuple[str, str]]  # (name, type), in order
    public_columns: list[str] = field(default_factory=list)
    rows: str = ""  # plain-language size of the output, for explain
    # columns that may be NULL (compiler/analyses/nullability.py)
    nullable: list[str] = field(default_factory=list)
    # share_input's pad_to: a public bound, "pow2" or exact (compiler/analyses/padding.py)
    pad: int | str | None = None

    def sql_in(self, dialect: str) -> str:
        """This query in an engine's SQL dialect (sqlglot's transpiler)."""
        return sqlglot.parse_one(self.sql).sql(dialect=dialect, pretty=True)


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
    dialect: str | None = None  # the analyst's SQL dialect (sqlglot name), None = generic
    # party -> the name of the local engine that runs its job (the catalog's choice, or the
    # caller's override); None = the default engine
    engines: dict[str, str | None] = field(default_factory=dict)
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
            "engines": self.engines,
            "needs_mpc": self.needs_mpc,
            "join_bound": self.join_bound,
            "result_columns": [list(c) for c in self.result_columns],
            "local_jobs": {p: asdict(j) for p, j in self.local_jobs.items()},
            "dag": dag_to_dict(self.dag),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)



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

