"""SQL text -> DAG -> passes -> physical plan (compiler/ir/plan.py).

    plan = compile_query(sql, catalog)          # SQL -> DAG -> passes -> Plan
    plan.to_json()                              # what `sqlmpc compile` writes as plan.json

Each local job's queries are built here as sqlglot expressions over the party's registered part
views and kept as engine-neutral SQL; the engines' backends render them in their dialects.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from .analyses.nullability import Nullability
from .analyses.padding import ONE_PIECE_TEXTS, one_piece_texts, share_padding
from .analyses.policy import check as check_policies
from .analyses.policy import check_sizes
from .analyses.secure_expressions import check_secure_expressions
from .catalog import Catalog
from .errors import CompileError
from .frontend import lower_sql
from .frontend.parse import node_position
from .ir.dag import (SECURE, Aggregate, Dag, Distinct, Filter, Join, Limit, Output, Project, Scan,
                     SemiJoin, Share, Sort, Union, Window)
from .ir.plan import MIN_COMPUTE_PARTIES, LocalJob, LocalOutput, PartInput, Plan
from .ir.portable import local_date_arithmetic
from .passes import optimize

HELPER_PREFIX = "helper"



def compile_query(sql: str, catalog: Catalog, *, dialect: str | None = None,
                  all_secure: bool = False, disable: tuple[str, ...] = (),
                  pad_inputs: str | None = None, join_bound: int | None = None,
                  engines: Mapping[str, str | None] | None = None) -> Plan:
    """SQL text -> optimised DAG -> physical plan.

    ``pad_inputs="pow2"`` pads every share to a power of two (see compiler/analyses/padding.py);
    ``join_bound`` makes every secure many-to-many join pad its output to that many rows and
    reveal only whether its size M fits, instead of M (a run with M > bound fails).
    ``engines`` ({party: engine name}) records which local engine runs each party's job; by
    default each party's catalog entry (None where it names none: the default engine)."""
    if join_bound is not None and join_bound < 1:
        raise CompileError(f"join bound must be a positive number of rows, not {join_bound}")
    dag = lower_sql(sql, catalog, dialect=dialect)
    dag = optimize(dag, catalog=catalog, all_secure=all_secure, disable=disable)
    # a function only a local engine has, left where rows of several parties meet: one line
    check_secure_expressions(dag, lambda node: node_position(node, sql))
    # each owner's [policy.OWNER] against what the result reveals: PolicyError if refused
    verdicts = check_policies(dag, catalog, sql, dialect)
    plan = build_plan(dag, catalog, sql, all_secure, pad_inputs=pad_inputs)
    plan.join_bound = join_bound
    check_sizes(plan, catalog)  # and what the placed plan shows of row counts
    plan.engines = {p: (engines or {}).get(p, catalog.parties[p].engine) for p in plan.parties}
    plan.dag.g.graph["join_bound"] = join_bound  # explain reads it from the DAG
    plan.dag.g.graph["policies"] = verdicts      # so do the owners' verdicts
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
                n, kind, query.sql(pretty=True),
                [(f.name, f.sql_type) for f in dag.schema(src)],
                list(op.public_columns) if isinstance(op, Share) else [],
                describe_rows(dag, src),
                [f.name for f in dag.schema(src) if f.name in nullable(src)],
                share_padding(dag, n, catalog, pad_inputs) if kind == "share" else None))
        if outputs:
            jobs[party] = LocalJob(party, list(inputs.values()), outputs)
    dag.g.graph[ONE_PIECE_TEXTS] = {  # for explain and the owners' sizes
        o.node: one_piece_texts(dag, o.node, catalog)
        for job in jobs.values() for o in job.outputs if o.kind == "share"}
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
        part.ranges = {c: [str(b) for b in r] for c, r in table.ranges.items() if c in part.columns}
        return exp.select(*[exp.alias_(exp.column(ident(c)), ident(n), quoted=True)
                            for c, n in zip(op.columns, names)]).from_(exp.to_table(view))
    if isinstance(op, Filter):
        return star_from(ins[0]).where(local_date_arithmetic(op.predicate))
    if isinstance(op, Project):
        return exp.select(*[exp.alias_(local_date_arithmetic(e), ident(n), quoted=True)
                            for n, e in op.exprs]).from_(sub(ins[0], f"q{ins[0]}"))
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
        kind = {"inner": None, "left": "left", "right": "right", "full": "full"}[op.kind]
        return q.join(sub(right, f"r{right}"), on=on,
                      join_type=kind if on is not None else "cross")
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
    if isinstance(op, Window):  # the input's columns, then each window's
        inner = [exp.column(ident(n)) for n in dag.names(ins[0])]
        return exp.select(*inner, *[exp.alias_(e.copy(), ident(n), quoted=True)
                                    for n, e in op.exprs]).from_(sub(ins[0], f"q{ins[0]}"))
    if isinstance(op, Limit):
        return star_from(ins[0]).limit(op.n).offset(op.offset) if op.offset else \
            star_from(ins[0]).limit(op.n)
    raise NotImplementedError(f"no local SQL for {type(op).__name__}")


def _semi_join_sql(dag: Dag, node: int, left: exp.Subquery, right: exp.Subquery) -> exp.Select:
    """`WHERE [NOT] EXISTS (SELECT 1 FROM right WHERE right.k = left.k ...)`, standard SQL
    that every local engine plans as a semi/anti join. The keys that come from NOT IN
    stay `(left.k, ...) NOT IN (SELECT right.k, ...)`: SQL's NULL semantics of NOT IN (a NULL
    in the subquery empties the result) differ from NOT EXISTS."""
    op = dag.op(node)
    la, ra = left.alias, right.alias

    def ref(name: str, table: str) -> exp.Column:
        return exp.column(exp.Identifier(this=name, quoted=True), table=table)

    pairs = list(zip(op.left_keys, op.right_keys))
    equal = exp.NullSafeEQ if op.null_safe else exp.EQ  # INTERSECT / EXCEPT: NULL = NULL
    correlated = [equal(this=ref(b, ra), expression=ref(a, la)) for a, b in pairs[op.not_in:]]
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
    if isinstance(op, (Project, Filter, Window)):
        inner = describe_rows(dag, dag.inputs(node)[0])
        if isinstance(op, Filter) and inner.startswith("one row per") and "row of" in inner:
            return inner + " that passes the filter"
        return inner
    if isinstance(op, Scan):
        return f"one row per row of its part of {op.table}"
    if isinstance(op, Limit):
        return f"at most {op.n} rows" + (f" (after skipping {op.offset})" if op.offset else "")
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


