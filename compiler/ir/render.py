"""A deterministic, compact text rendering of a DAG: one line per node, inputs first.

Used by the golden tests of the passes and by error messages. Node ids are renumbered 0..n-1
in a canonical order (a depth-first walk from the root that visits a node's inputs in their
`pos` order before the node), so the text depends only on the graph's shape and operators,
never on the internal ids a run happened to hand out:

    #0 Scan[local:yellow] yellow.trips AS t cols=(vendor, fare)
    #1 Filter[local:yellow] t.fare > 0 <- #0
    #2 Aggregate[local:yellow] keys=(t.vendor) aggs=(sum(t.fare) AS __agg0) stage=partial <- #1

Column names inside expressions are printed without quotes (`t.fare`, not `"t.fare"`).
Optional extras: `schema=True` appends each node's output columns and types, `trust=True`
appends the owners and per-column trust sets from propagate_ownership (a trust set equal to
`everyone` prints as `*`).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlglot import exp

from .dag import (Aggregate, Dag, Distinct, Filter, Join, Limit, Output, Project, Reveal, Scan,
                  SemiJoin, Share, Sort, Union, Window)


def render_dag(dag: Dag, *, schema: bool = False, trust: bool = False,
               everyone: Iterable[str] | None = None) -> str:
    """The DAG as text, one line per node in canonical topological order (see module doc)."""
    order = canonical_order(dag)
    number = {n: i for i, n in enumerate(order)}
    all_parties = frozenset(everyone) if everyone is not None else None
    lines = []
    for n in order:
        op = dag.op(n)
        head = f"#{number[n]} {type(op).__name__}"
        placement = dag.attr(n, "placement")
        if placement:
            head += f"[{placement}]"
        parts = [head]
        detail = _detail(dag, n)
        if detail:
            parts.append(detail)
        public = dag.attr(n, "public")
        if public and not isinstance(op, Share):
            parts.append(f"public=({', '.join(sorted(public))})")
        if dag.attr(n, "public_keys"):
            parts.append("public_keys")
        if dag.attr(n, "unique"):  # infer_unique: each key as (a, b), the empty key as ()
            parts.append("unique=" + "; ".join(sorted(_names(sorted(k))
                                                      for k in dag.attr(n, "unique"))))
        ins = dag.inputs(n)
        if ins:
            parts.append("<- " + ", ".join(f"#{number[i]}" for i in ins))
        line = " ".join(parts)
        if schema:
            line += " -> (" + ", ".join(f"{f.name} {f.sql_type}" for f in dag.schema(n)) + ")"
        if trust and dag.attr(n, "trust") is not None:
            owners = dag.attr(n, "owners") or frozenset()
            sets = dag.attr(n, "trust")
            line += f" owners={_parties(owners, all_parties)} trust=(" + ", ".join(
                f"{c}: {_parties(sets[c], all_parties)}" for c in dag.names(n) if c in sets) + ")"
        lines.append(line)
    return "\n".join(lines)


def canonical_order(dag: Dag) -> list[int]:
    """Nodes in a topological order that depends only on the graph's shape and input order."""
    seen: set[int] = set()
    order: list[int] = []

    def visit(start: int) -> None:
        stack = [(start, False)]
        while stack:
            n, done = stack.pop()
            if done:
                order.append(n)
                continue
            if n in seen:
                continue
            seen.add(n)
            stack.append((n, True))
            for i in reversed(dag.inputs(n)):
                if i not in seen:
                    stack.append((i, False))

    if dag.root is not None and dag.root in dag.g:
        visit(dag.root)
    for n in dag.topo():  # nodes that do not reach the root (a broken DAG in an error message)
        if n not in seen:
            visit(n)
    return order


def expr_text(e: exp.Expression) -> str:
    """An expression's SQL with internal column names unquoted: `trips.fare > 0`."""
    def unquote(x: exp.Expression) -> exp.Expression:
        if isinstance(x, exp.Column):
            return exp.column(exp.Identifier(this=x.name, quoted=False))
        return x
    return e.copy().transform(unquote).sql()


def _names(names: Iterable[str]) -> str:
    return "(" + ", ".join(names) + ")"


def _parties(parties: Iterable[str], everyone: frozenset[str] | None) -> str:
    s = frozenset(parties) - {"*"}  # "*": declared public (catalog.PUBLIC)
    if everyone is not None and s == everyone:
        return "*"
    return "{" + ",".join(sorted(s)) + "}"


def _detail(dag: Dag, n: int) -> str:
    op = dag.op(n)
    if isinstance(op, Scan):
        return f"{op.party}.{op.table} AS {op.alias} cols={_names(op.columns)}"
    if isinstance(op, Filter):
        return expr_text(op.predicate)
    if isinstance(op, Project):
        return "exprs=(" + ", ".join(
            name if isinstance(e, exp.Column) and e.name == name else f"{expr_text(e)} AS {name}"
            for name, e in op.exprs) + ")"
    if isinstance(op, Window):
        return "windows=(" + ", ".join(f"{expr_text(e)} AS {name}" for name, e in op.exprs) + ")"
    if isinstance(op, Aggregate):
        aggs = ", ".join(
            f"{'count(*)' if a.func == 'count_star' else f'{a.func}({a.arg})'} AS {a.name}"
            for a in op.aggs)
        text = f"keys={_names(op.keys)} aggs=({aggs})"
        if op.stage != "full":
            text += f" stage={op.stage}"
        return text
    if isinstance(op, Join):
        if not op.left_keys:
            return "cross"
        kind = "" if op.kind == "inner" else f"{op.kind} "
        return kind + "on=(" + ", ".join(f"{a} = {b}" for a, b in
                                         zip(op.left_keys, op.right_keys)) + ")"
    if isinstance(op, SemiJoin):
        text = ("on=(" + ", ".join(f"{a} = {b}" for a, b in zip(op.left_keys, op.right_keys))
                + ")") if op.left_keys else "exists"
        if op.anti:
            text += " anti"
        if op.not_in:
            text += f" not_in={op.not_in}"
        if op.null_safe:
            text += " null_safe"
        return text
    if isinstance(op, Sort):
        return "keys=(" + ", ".join(f"{k} DESC" if d else k for k, d in op.keys) + ")"
    if isinstance(op, Limit):
        return f"n={op.n}" + (f" offset={op.offset}" if op.offset else "")
    if isinstance(op, Share):
        text = f"party={op.party}"
        if op.public_columns:
            text += f" public={_names(op.public_columns)}"
        return text
    if isinstance(op, (Reveal, Output)):
        return f"to={_names(op.recipients)}"
    if isinstance(op, (Union, Distinct)):
        return ""
    return ""


__all__ = ["render_dag", "canonical_order", "expr_text"]
