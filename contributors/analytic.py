"""The session's analytic, compiled by the ordinary compiler into the servers' secure program.

The contributors' table becomes a catalog table held (for the compiler) by the first server,
categorical text columns as ints with their declared domains (a value is its index in the
column's `values`); the query is compiled with every operator after the scan in MPC, and the
DAG is marked for contributor mode (backends/mpyc/codegen.py, PRESHARED): the share becomes
``ops.preshared_input`` (the servers already hold the contributors' Shamir shares) and the
GROUP BY becomes ``ops.aggregate_contributed`` (over the categorical keys' declared values,
cells of fewer than min_contributors contributors suppressed inside MPC). A SUM of a product
of two table columns (a spread's squares) is left to that aggregate, which sums the products
untruncated (:func:`deferred_products`); the projection over the cells moves to the
recipients when the result determines its inputs (``finish.py``).

What the analytic may be: one aggregate (GROUP BY categorical columns, or none) over the
table, with WHERE before it and HAVING, computed columns, ORDER BY, LIMIT after it. A query
that would open contributors' rows, group by a number column, or join is refused with one
line. In the SQL a categorical column compared with a string (``gender = 'F'``, ``IN (...)``)
is rewritten to the value's index.
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

import pandas as pd
import sqlglot
from sqlglot import exp

from ..backends.mpyc.codegen import PRESHARED
from ..backends.mpyc.lib.limits import RANGE_BITS
from ..compiler.analyses.bounds import Bounds, expression_fits
from ..compiler.catalog import Catalog
from ..compiler.errors import SqlmpcError, UnsupportedError
from ..compiler.ir.dag import SECURE, Aggregate, Filter, Limit, Project, Reveal, Share, Sort
from ..compiler.ir.plan import Plan
from ..compiler.planner import compile_query
from ..compiler.sqltypes import DECIMAL_RE
from .finish import finish_in_clear
from .session import Column, Session

#: operators allowed above the aggregate (on the cells) and below it (on the rows)
ABOVE = (Project, Filter, Sort, Limit, Reveal)
BELOW = (Project, Filter)


def catalog_text(session: Session) -> str:
    """The compile-time catalog of a session (TOML text); the part file is never read."""
    lines = [f"[parties.{s.name}]" for s in session.servers]
    cols = ", ".join(f'{c.name} = "{compile_type(c)}"' for c in session.columns)
    first = session.servers[0].name
    lines += [f"[tables.{session.table}]", f"columns = {{ {cols} }}",
              f'parts = {{ {first} = "{session.name}.contributions.csv" }}']
    domains = [c for c in session.columns if c.categorical]
    if domains:
        lines.append(f"[tables.{session.table}.domains]")
        lines += [f"{c.name} = {list(range(len(c.values)))}" for c in domains]
    lines += ["[result]", f"recipients = {list(session.recipients)!r}".replace("'", '"')]
    return "\n".join(lines) + "\n"


def compile_type(column: Column) -> str:
    """The column's type for the compiler: int for a categorical column (the value's index);
    a decimal narrowed to the digits its declared range needs, so that the compiler's bounds
    prove products such as squares to fit and MPC checks no row for overflow (the range is
    checked by the contributors' page and CLI, not by the servers: docs/contributors.md)."""
    if column.categorical:
        return "int"
    m = DECIMAL_RE.match(column.sql_type.replace(" ", ""))
    if m is None:
        return column.sql_type
    precision, scale = int(m.group(1)), int(m.group(2))
    largest = max(abs(column.min), abs(column.max))
    digits = len(str(int(largest)))  # 10^digits > largest
    return f"decimal({min(precision, digits + scale)},{scale})"


def rewrite_categories(session: Session, sql: str) -> str:
    """The analytic with string literals compared to categorical columns as value indexes."""
    cats = {c.name.lower(): c for c in session.columns if c.categorical}
    try:
        tree = sqlglot.parse_one(sql)
    except sqlglot.errors.ParseError:
        return sql  # the compiler reports it with its position

    def index(column: exp.Column, lit: exp.Expression) -> exp.Expression:
        c = cats.get(column.name.lower())
        if c is None or not isinstance(lit, exp.Literal) or not lit.is_string:
            return lit
        by_text = {v.lower(): i for i, v in enumerate(c.values)}
        if lit.this.lower() not in by_text:
            raise SqlmpcError(f"analytic: {lit.this!r} is not a value of {c.name} "
                              f"({', '.join(c.values)})")
        return exp.Literal.number(by_text[lit.this.lower()])

    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, (exp.EQ, exp.NEQ)):
            a, b = node.this, node.expression
            if isinstance(a, exp.Column):
                node.set("expression", index(a, b))
            elif isinstance(b, exp.Column):
                node.set("this", index(b, a))
        elif isinstance(node, exp.In) and isinstance(node.this, exp.Column):
            node.set("expressions", [index(node.this, e) for e in node.expressions])
        return node

    return tree.transform(fix).sql()


def compile_session(session: Session) -> Plan:
    """The session's analytic as a plan whose secure program runs in contributor mode."""
    catalog = Catalog.from_toml_text(catalog_text(session),
                                     path=session.path.with_suffix(".catalog.toml"))
    plan = compile_query(rewrite_categories(session, session.analytic), catalog,
                         all_secure=True)
    mark_contributor_mode(plan, session)
    contrib = plan.dag.g.graph[PRESHARED]
    contrib["finished_in_clear"] = finish_in_clear(plan.dag, contrib["aggregate"],
                                                   contrib.pop("never_null"))
    return plan


def mark_contributor_mode(plan: Plan, session: Session) -> None:
    """Check the plan's secure part has the allowed shape and mark it (PRESHARED)."""
    dag = plan.dag
    secure = [n for n in dag.topo() if dag.attr(n, "placement") == SECURE]
    shares = [n for n in secure if isinstance(dag.op(n), Share)]
    aggs = [n for n in secure if isinstance(dag.op(n), Aggregate)]
    if len(shares) != 1:
        raise UnsupportedError("contributor mode: the analytic must read the table once")
    if len(aggs) != 1:
        raise UnsupportedError("contributor mode: the analytic must be one aggregate (GROUP "
                               "BY categorical columns, or none): contributors' rows are "
                               "never opened")
    (agg,) = aggs
    below = _path(dag, dag.inputs(agg)[0], shares[0])
    for n in secure:
        if n in (shares[0], agg):
            continue
        allowed = BELOW if n in below else ABOVE
        if not isinstance(dag.op(n), allowed):
            raise UnsupportedError(f"contributor mode: {type(dag.op(n)).__name__} is not "
                                   f"allowed in the analytic")
    cats = {c.name: len(c.values) for c in session.columns if c.categorical}
    domains = {}
    for key in dag.op(agg).keys:
        source = _source_column(dag, dag.inputs(agg)[0], key, shares[0])
        base = source.split(".", 1)[-1] if source else None
        if base not in cats:
            raise UnsupportedError(f"contributor mode: GROUP BY {key.split('.', 1)[-1]}: "
                                   f"only categorical columns (with `values`) can be keys")
        domains[key] = cats[base]
    (src,) = dag.inputs(agg)
    options = {"filtered": any(isinstance(dag.op(n), Filter) for n in below)}
    products = deferred_products(dag, agg, shares[0], session)
    if products:
        options["products"] = products
    dag.g.graph[PRESHARED] = {
        "share": shares[0], "domains": domains, "min_contributors": session.min_contributors,
        "aggregate": agg, "options": options,
        "never_null": {c for c in dag.names(src) if _source_column(dag, src, c, shares[0])}}


def deferred_products(dag, agg: int, share: int, session: Session) -> dict[str, list]:
    """{column: [a, b, bound]} for each SUM(a * b) whose product the secure aggregate can
    sum untruncated and truncate once per cell (``preshared.aggregate_contributed``): the
    aggregate's input is a projection computing column = a * b from two number columns of
    the table, which it also passes on as they are, the column is used by that one SUM
    only, and the compile-time bounds prove the row product fits the secure type (so the
    per-row fallback needs no check either). bound = max|a| * max|b| from the declared
    ranges (text of a fraction), which proves the sum's bound at run time from the number
    of rows."""
    (src,) = dag.inputs(agg)
    op = dag.op(src)
    if not isinstance(op, Project) or len(dag.consumers(src)) != 1:
        return {}
    (below,) = dag.inputs(src)
    exprs = dict(op.exprs)
    copies: dict[str, str] = {}  # an input column -> an output column copying it
    for name, e in op.exprs:
        if isinstance(_unparen(e), exp.Column):
            copies.setdefault(_unparen(e).name, name)
    numbers = {c.name: c for c in session.columns if not c.categorical}
    uses = Counter(a.arg for a in dag.op(agg).aggs)
    fits = Bounds(dag, share_limit=1 << RANGE_BITS)
    out = {}
    for a in dag.op(agg).aggs:
        e = _unparen(exprs.get(a.arg)) if a.func == "sum" and uses[a.arg] == 1 else None
        if not isinstance(e, exp.Mul) or \
                not expression_fits(fits, below, e, 1 << RANGE_BITS):
            continue
        factors = [_unparen(e.this), _unparen(e.expression)]
        ranges = []
        for x in factors:
            source = _source_column(dag, below, x.name, share) \
                if isinstance(x, exp.Column) and x.name in copies else None
            column = numbers.get(source.split(".", 1)[-1]) if source else None
            if column is None:
                break
            ranges.append(max(abs(Fraction(column.min)), abs(Fraction(column.max))))
        else:
            out[a.arg] = [copies[factors[0].name], copies[factors[1].name],
                          str(ranges[0] * ranges[1])]
    return out


def _unparen(e):
    while isinstance(e, exp.Paren):
        e = e.this
    return e


def _path(dag, node: int, share: int) -> set[int]:
    """The nodes from `node` down to `share` (exclusive), each with one input."""
    out = set()
    while node != share:
        out.add(node)
        ins = dag.inputs(node)
        if len(ins) != 1:
            raise UnsupportedError("contributor mode: the analytic must read the table once")
        node = ins[0]
    return out


def _source_column(dag, node: int, column: str, share: int) -> str | None:
    """The share's column that `column` at `node` copies unchanged, or None if computed."""
    while node != share:
        op = dag.op(node)
        if isinstance(op, Project):
            e = dict(op.exprs).get(column)
            while isinstance(e, exp.Paren):
                e = e.this
            if not isinstance(e, exp.Column):
                return None
            column = e.name
        node = dag.inputs(node)[0]
    return column if column in dag.names(share) else None


def decode_result(frame: pd.DataFrame, session: Session, plan: Plan) -> pd.DataFrame:
    """The revealed result with categorical group keys shown as their values."""
    dag = plan.dag
    contrib = dag.g.graph.get(PRESHARED) or {}
    key_bases = {k.split(".", 1)[-1] for k in contrib.get("domains", {})}
    out = frame.copy()
    for c in session.columns:
        if c.categorical and c.name in out.columns and c.name in key_bases:
            out[c.name] = [c.values[int(v)] if pd.notna(v) else v for v in out[c.name]]
    return out
