"""What a query reveals of each owner's columns, checked against the owners' policies.

`derive(dag)` walks an optimised DAG from the scans to the result and says, for every input
column of every owner (`Use`), the most revealing way it reaches the result:

    "as is"      its value can reach a result column directly: a projection, a group key that
                 is returned, a CASE result, any expression of it computed row by row, the
                 ORDER BY of returned rows (their order shows it)
    "aggregate"  only through aggregates over groups (SUM, COUNT, MIN, MAX and what AVG,
                 STDDEV and VARIANCE decompose into)
    "compare"    only through comparisons: WHERE and HAVING, JOIN ON, IN and EXISTS, GROUP BY
                 keys that are not returned, COUNT(DISTINCT); reading a column at all is at
                 least this

Expressions are not looked into: a column read by an expression that is returned counts as
returned (`CASE WHEN memo = 'x' THEN 1 END` returns memo), the safe side. It also says which
owners' rows a returned aggregate or group summarises (for `min_group`).

`check(dag, catalog, sql)` compares that with each owner's [policy.OWNER] (compiler/catalog.py):
"public" may be returned as is; "aggregate" only inside aggregates; "join_key" only compared;
"none" not read at all; the result's recipients must all be among the owner's `recipients`;
`min_group` is enforced by compiler/passes/suppress_small_groups.py (groups with 1 to k - 1
of the owner's rows are filtered out where they are aggregated), which records the owners it
applied to; a query returning an aggregate of such an owner's rows without it is refused. An
owner's rules do not restrict a result that goes to that owner alone. Owners without a
section are not checked. The first violation raises PolicyError, one line naming the owner,
column, rule and place in the SQL; otherwise the verdict per data owner is returned for
explain.

`check_sizes(plan, catalog)` checks what the placed plan reveals besides its result against
each owner's `sizes`: "shown" (the default) lets the compute parties learn how many of the
owner's rows are shared and the size of a secure many-to-many join over them; "rounded" allows
shared row counts only rounded up to a power of two (or padded to a public bound), texts' lengths
in 7-byte pieces, and no join size (a --join-bound pads it, revealing only whether it fits);
"hidden" allows nothing beyond public bounds (pad_rows or declared domains) and no text length
(a text column whose declared domain fits one secret number shows none).
Keys grouped in the clear are "public" columns the owner's policy allows (catalog.column_trust);
they show the count too, so "rounded" and "hidden" refuse them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

import networkx as nx

from ..catalog import Catalog, Policy
from ..errors import PolicyError
from ..ir.dag import (SECURE, Aggregate, Dag, Filter, Join, Project, Scan, SemiJoin, Sort,
                      Union, referenced_columns)
from ..ir.plan import Plan
from .labels import labels, names
from .padding import ONE_PIECE_TEXTS, exactly_one_row
from .unique_keys import join_unique_side

__all__ = ["AGGREGATE", "AS_IS", "COMPARE", "Use", "check", "check_sizes", "derive",
           "verdict_lines"]

AS_IS, AGGREGATE, COMPARE = "as is", "aggregate", "compare"
_RANK = {COMPARE: 0, AGGREGATE: 1, AS_IS: 2}

Source = tuple[str, str, str]   # (owner, table, column) of one scanned input column
ROWS = ""                        # table of a Source that stands for the owner's rows themselves


@dataclass
class Use:
    """What the result reveals, derived from the plan (see the module docstring)."""

    columns: dict[Source, str] = field(default_factory=dict)   # source -> AS_IS/AGGREGATE/COMPARE
    grouped: set[str] = field(default_factory=set)   # owners whose rows a returned value summarises
    owners: set[str] = field(default_factory=set)    # owners whose rows the result depends on
    recipients: tuple[str, ...] = ()


# one node's output: {column: {source: AS_IS or AGGREGATE}}, and the sources compared so far
_Deps = dict[str, dict[Source, str]]


def _merge(*maps: dict[Source, str]) -> dict[Source, str]:
    """The sources of several columns, each with its most revealing mode."""
    out: dict[Source, str] = {}
    for m in maps:
        for src, mode in m.items():
            if src not in out or _RANK[mode] > _RANK[out[src]]:
                out[src] = mode
    return out


def derive(dag: Dag) -> Use:
    """How every scanned column of every owner reaches the result of `dag` (an optimised DAG);
    the flow per operator mirrors compiler/passes/propagate_ownership.py."""
    deps: dict[int, _Deps] = {}
    compared: dict[int, set[Source]] = {}
    owners: dict[int, set[str]] = {}
    for node in dag.topo():
        op = dag.op(node)
        ins = dag.inputs(node)
        names = dag.names(node)
        seen = set().union(*(compared[i] for i in ins)) if ins else set()
        own = set().union(*(owners[i] for i in ins)) if ins else set()
        if isinstance(op, Scan):
            # a scanned column that nothing uses (COUNT(*) keeps one) is not read by the query
            out = {n: {(op.party, op.table, c): AS_IS} for c, n in zip(op.columns, names)}
            own = {op.party}
        elif isinstance(op, Union):
            out = {n: _merge(*(deps[i][dag.names(i)[k]] for i in ins))
                   for k, n in enumerate(names)}
        elif isinstance(op, (Join, SemiJoin)):
            left, right = ins
            both = {**deps[right], **deps[left]}
            seen |= _sources(both, [*op.left_keys, *op.right_keys])
            if isinstance(op, SemiJoin):  # whether a right row matches tells about all of it
                seen |= _sources(deps[right], list(deps[right]))
            out = {n: dict(both[n]) for n in names}
        elif isinstance(op, Project):
            src = deps[ins[0]]
            out = {n: _merge(*(src[c] for c in referenced_columns(e))) for n, e in op.exprs}
        elif isinstance(op, Aggregate):
            src = deps[ins[0]]
            seen |= _sources(src, list(op.keys))
            rows = {(o, ROWS, ROWS): AGGREGATE for o in own}
            out = {k: _merge(src[k], rows) for k in op.keys}
            for a in op.aggs:
                if a.arg is None:
                    out[a.name] = dict(rows)
                elif a.func in ("count_distinct", "count"):  # how many, never which values
                    seen |= _sources(src, [a.arg])
                    out[a.name] = dict(rows)
                else:
                    out[a.name] = _merge({s: AGGREGATE for s in src[a.arg]}, rows)
        else:
            src = deps[ins[0]]
            if isinstance(op, Filter):
                seen |= _sources(src, list(referenced_columns(op.predicate)))
            out = {n: dict(src.get(n, {})) for n in names}
            if isinstance(op, Sort):  # the order of the returned rows shows the keys' order
                keys = _merge(*(src[k] for k, _ in op.keys))
                out = {n: _merge(m, keys) for n, m in out.items()}
        deps[node], compared[node], owners[node] = out, seen, own
    root = dag.root
    use = Use(owners=owners[root], recipients=tuple(getattr(dag.op(root), "recipients", ())))
    use.columns = {s: COMPARE for s in compared[root] if s[1] != ROWS}
    for column_deps in deps[root].values():
        for s, mode in column_deps.items():
            if s[1] == ROWS:
                use.grouped.add(s[0])
            elif _RANK[mode] > _RANK[use.columns.get(s, COMPARE)]:
                use.columns[s] = mode
    return use


def _sources(deps: _Deps, columns: list[str]) -> set[Source]:
    return {s for c in columns for s in deps.get(c, {}) if s[1] != ROWS}


# --- the check -----------------------------------------------------------------------------
#: per policy level, the uses it refuses, and how the refusal reads
_RULES = {
    "aggregate": ({AS_IS}, 'may leave only inside aggregates ("aggregate")'),
    "join_key": ({AS_IS, AGGREGATE}, 'may only be compared, in joins, IN, GROUP BY and '
                                     'COUNT(DISTINCT), never returned ("join_key")'),
    "none": ({AS_IS, AGGREGATE, COMPARE}, 'may not be read by any query ("none")'),
}
_HOW = {("aggregate", AS_IS): "the query returns it row by row",
        ("join_key", AS_IS): "the query returns it",
        ("join_key", AGGREGATE): "the query returns an aggregate of it",
        ("none", AS_IS): "the query returns it",
        ("none", AGGREGATE): "the query returns an aggregate of it",
        ("none", COMPARE): "the query reads it"}
_FIX = {
    ("aggregate", AS_IS): "return an aggregate of it (e.g. SUM, AVG) instead",
    ("join_key", AS_IS): "compare it without returning it (drop it from SELECT)",
    ("join_key", AGGREGATE): "compare it without returning it (e.g. COUNT(DISTINCT ...))",
    ("none", AS_IS): "remove it from the query",
    ("none", AGGREGATE): "remove it from the query",
    ("none", COMPARE): "remove it from the query",
}


def check(dag: Dag, catalog: Catalog, sql: str | None = None, dialect: str | None = None
          ) -> list[dict]:
    """Check `dag`'s result against every owner's policy; raise PolicyError on the first
    violation, else return one verdict per data owner ({"owner", "policy", "allowed",
    "columns"}: columns = ["table.column as is (public)", ...] of that owner's rows)."""
    use = derive(dag)
    tree = _parse(sql, dialect)
    suppressed = dag.g.graph.get("min_group", {})  # passes/suppress_small_groups.py
    verdicts = []
    for owner in catalog.data_owners:
        policy = catalog.policies.get(owner)
        used = sorted((s, m) for s, m in use.columns.items() if s[0] == owner)
        if policy is not None and owner in use.owners and set(use.recipients) - {owner}:
            _check_owner(policy, used, use, tree, sql, suppressed)
        verdicts.append({
            "owner": owner, "policy": policy is not None,
            "allowed": True, "min_group": suppressed.get(owner),
            "sizes": policy.sizes if policy else None,
            "columns": [f"{t}.{c} {_USE_WORDS[m]}" + (f" ({policy.level(t, c)})" if policy else "")
                        for (_, t, c), m in used]})
    return verdicts


_USE_WORDS = {AS_IS: "as is", AGGREGATE: "in aggregates", COMPARE: "compared"}


def _check_owner(policy: Policy, used: list[tuple[Source, str]], use: Use,
                 tree: exp.Expression | None, sql: str | None,
                 suppressed: dict[str, int]) -> None:
    owner = policy.owner
    refusals = []
    for (_, table, column), mode in used:
        level = policy.level(table, column)
        if level in _RULES and mode in _RULES[level][0]:
            where = _position(tree, sql, table, column, mode)
            refusals.append((where.get("offset", 1 << 30), table, column, level, mode, where))
    if refusals:
        _, table, column, level, mode, where = min(refusals, key=lambda r: r[0])
        at = f" (line {where['line']}:{where['col']})" if "line" in where else ""
        raise PolicyError(
            f"refused by {owner}'s policy: {table}.{column} {_RULES[level][1]}; "
            f"{_HOW[(level, mode)]}{at}; "
            f"{_FIX[(level, mode)]}, or ask {owner} to allow it in [policy.{owner}.columns]",
            owner=owner, sql=sql, line=where.get("line"), col=where.get("col"))
    outside = [r for r in use.recipients if r not in policy.recipients and r != owner]
    if outside:
        raise PolicyError(
            f"refused by {owner}'s policy: the result goes to {', '.join(outside)}, but {owner} "
            f"lets only {', '.join(policy.recipients)} receive results computed from its rows "
            f"(recipients); name recipients among them in [result], or ask {owner} to add "
            f"{', '.join(outside)} to [policy.{owner}] recipients", owner=owner)
    if policy.min_group is not None and owner in use.grouped \
            and owner not in suppressed:
        raise PolicyError(
            f"refused by {owner}'s policy: min_group = {policy.min_group} lets an aggregate "
            f"reveal only groups of none or at least {policy.min_group} of {owner}'s rows, and "
            f"suppressing smaller groups inside MPC is not available yet (a total without GROUP "
            f"BY is one group whose size nothing proves, so it is refused too); return no "
            f"aggregate of {owner}'s rows, or ask {owner} to remove min_group", owner=owner)


# --- sizes: what the plan reveals besides its result ------------------------------------------
_SIZES_ALLOW = {
    "rounded": "the number of its shared rows only rounded up to a power of two (or padded to a "
               "public bound) and no join size",
    "hidden": "nothing of its row counts beyond public bounds (pad_rows, declared domains)",
}


def check_sizes(plan: Plan, catalog: Catalog) -> None:
    """Raise PolicyError when the placed `plan` reveals more of an owner's row counts to the
    compute parties than its policy's `sizes` allows (see the module docstring)."""
    dag = plan.dag
    strict = {o: p for o, p in catalog.policies.items() if p.sizes != "shown"}
    if not strict:
        return
    lab = labels(dag)
    for party, job in plan.local_jobs.items():
        policy = strict.get(party)
        if policy is None:
            continue
        for out in job.outputs:
            if out.kind != "share":
                continue
            (src,) = dag.inputs(out.node)
            if exactly_one_row(dag, src):
                continue  # one row: its count says nothing
            tables = ", ".join(sorted(_scanned_tables(dag, src))) or "its tables"
            if out.public_columns:
                cols = names(out.public_columns, lab[src])
                _refuse_size(policy, f"this plan sends {party}'s values of {cols} in the clear "
                                     f"to group by them, one per shared row, which shows their "
                                     f"number", "run with --disable use_public_keys")
            if out.pad is None or (policy.sizes == "hidden" and out.pad == "pow2"):
                fix = (f"declare pad_rows (a public bound on each part's rows) on {tables}, or "
                       f"domains for the columns it groups by"
                       if policy.sizes == "hidden" else
                       f"run with --pad-inputs pow2, or declare pad_rows on {tables}")
                shown = "exact" if out.pad is None else "rounded"
                _refuse_size(policy, f"this plan shares {party}'s rows of {tables} with their "
                                     f"{shown} count", fix)
            short = dag.g.graph.get(ONE_PIECE_TEXTS, {}).get(out.node, ())
            texts = [c for c, t in out.columns if t == "text" and c not in out.public_columns
                     and c not in short]
            if policy.sizes == "hidden" and texts:
                _refuse_size(policy, f"sharing {party}'s secret text {names(texts, lab[src])} "
                                     f"shows how long the longest is (in 7-byte pieces)",
                             "leave text columns out of what crosses", looser="rounded")
    for node in dag.topo():
        op = dag.op(node)
        if not (isinstance(op, Join) and op.left_keys and dag.attr(node, "placement") == SECURE
                and join_unique_side(dag, node) is None and not plan.join_bound):
            continue
        for owner in sorted(_scan_parties(dag, node) & set(strict)):
            keys = names(op.left_keys, lab[dag.inputs(node)[0]])
            _refuse_size(strict[owner], f"the secure join on ({keys}) reveals its number of "
                                        f"joined rows, which depends on {owner}'s rows",
                         "run with --join-bound N (a public bound: only whether the join "
                         "fits is revealed)")


def _refuse_size(policy: Policy, what: str, fix: str, looser: str = "shown") -> None:
    owner = policy.owner
    raise PolicyError(
        f'refused by {owner}\'s policy: sizes = "{policy.sizes}" lets the compute parties learn '
        f"{_SIZES_ALLOW[policy.sizes]}, but {what}; {fix}, or ask {owner} to set "
        f'sizes = "{looser}" in [policy.{owner}]', owner=owner)


def _ancestor_scans(dag: Dag, node: int) -> list[Scan]:
    return [op for n in (nx.ancestors(dag.g, node) | {node})
            if isinstance(op := dag.op(n), Scan)]


def _scanned_tables(dag: Dag, node: int) -> set[str]:
    return {s.table for s in _ancestor_scans(dag, node)}


def _scan_parties(dag: Dag, node: int) -> set[str]:
    return {s.party for s in _ancestor_scans(dag, node)}


def _parse(sql: str | None, dialect: str | None) -> exp.Expression | None:
    if not sql:
        return None
    try:
        return sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.SqlglotError:  # it compiled, so this is not expected; no position then
        return None


def _position(tree: exp.Expression | None, sql: str | None, table: str, column: str,
              mode: str) -> dict:
    """{line, col, offset} of the first reference to table.column in the analyst's SQL that
    fits `mode` (for a returned column: one outside any aggregate, in a SELECT list), or {}."""
    if tree is None or sql is None:
        return {}
    aliases = {t.alias_or_name.lower(): t.name.lower() for t in tree.find_all(exp.Table)}
    found = []
    for c in tree.find_all(exp.Column):
        if c.name.lower() != column.lower():
            continue
        if c.table and aliases.get(c.table.lower(), c.table.lower()) != table.lower():
            continue
        start = c.this.meta.get("start") if isinstance(c.this, exp.Expression) else None
        if start is None:
            continue
        fits = mode != AS_IS or (c.find_ancestor(exp.AggFunc) is None and _in_select_list(c))
        found.append((not fits, start))
    if not found:
        return {}
    _, start = min(found)
    before = sql[:start]
    return {"offset": start, "line": before.count("\n") + 1,
            "col": start - (before.rfind("\n") + 1) + 1}


def _in_select_list(node: exp.Expression) -> bool:
    child, parent = node, node.parent
    while parent is not None:
        if isinstance(parent, exp.Select):
            return any(child is e for e in parent.expressions)
        child, parent = parent, parent.parent
    return False


_SIZE_WORDS = {
    "shown": '{o}\'s sizes = "shown": the compute parties may learn how many of {o}\'s rows '
             'are shared and the size of a secure join over them (the leak list says which)',
    "rounded": '{o}\'s sizes = "rounded": the compute parties learn the number of {o}\'s '
               'shared rows at most rounded up to a power of two, and no join size',
    "hidden": '{o}\'s sizes = "hidden": the compute parties learn nothing of {o}\'s row '
              'counts beyond public bounds',
}


def verdict_lines(verdicts: list[dict]) -> list[str]:
    """One line per data owner for explain."""
    lines = []
    for v in verdicts:
        if not v["policy"]:
            lines.append(f"{v['owner']} has set no policy")
        else:
            cols = ", ".join(v["columns"]) or f"none of {v['owner']}'s columns"
            lines.append(f"{v['owner']}'s policy: allows this query (columns used: {cols})")
            lines.append(_SIZE_WORDS[v.get("sizes") or "shown"].format(o=v["owner"]))
            k = v.get("min_group")
            if k:
                lines.append(f"{v['owner']}'s min_group = {k}: groups holding 1 to {k - 1} of "
                             f"{v['owner']}'s rows are suppressed where they are aggregated "
                             f"(inside MPC when several owners' rows meet), never opened; "
                             f"the number of result rows shows how many groups remain")
    return lines
