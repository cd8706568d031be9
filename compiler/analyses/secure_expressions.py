"""Which constructs can run inside MPC, and the one-line refusal where one cannot.

A party's local engine runs any SQL function on its own rows (LIKE, SUBSTRING, EXTRACT, ...).
Once rows of several parties are combined, expressions run on secret shares, where only the
PORTABLE_EXPRESSIONS (compiler/ir/portable.py) have an implementation: the secure backend's
expression translator covers exactly these, and so do the recipients' steps after the reveal.
`check_secure_expressions` finds a non-portable construct in a filter or projection placed in
MPC or at the recipients and says which construct, over whose rows, and how it would run
locally instead, at the construct's line and column. It also refuses an outer join placed in
MPC (no secure version yet).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from ..errors import UnsupportedError
from ..ir.dag import JOIN_POSITIONS, RECIPIENT, SECURE, Dag, Filter, Join, Project
from ..ir.portable import PORTABLE_EXPRESSIONS


def check_secure_expressions(dag: Dag, position: Callable[[exp.Expression], dict]) -> None:
    """Raise UnsupportedError at the first construct without a secure implementation in a
    filter or projection that runs in MPC (or after the reveal); `position(node)` gives the
    error's sql/line/col keyword arguments."""
    for node in dag.topo():
        if dag.attr(node, "placement") not in (SECURE, RECIPIENT):
            continue
        op = dag.op(node)
        if isinstance(op, Join) and op.kind != "inner" and dag.attr(node, "placement") == SECURE:
            owners = ", ".join(sorted(dag.attr(node, "owners") or ()))
            raise UnsupportedError(
                f"{op.kind.upper()} JOIN of rows from {owners} inside MPC: not available yet; "
                f"it runs locally when both sides are held by one party or the catalog declares "
                f"them co-located on the join key", **dag.g.graph.get(JOIN_POSITIONS, {}).get(
                    node, {}))
        exprs = [op.predicate] if isinstance(op, Filter) else \
            [e for _, e in op.exprs] if isinstance(op, Project) else []
        for e in exprs:
            bad = next((x for x in e.walk() if not isinstance(x, PORTABLE_EXPRESSIONS)), None)
            if bad is not None:
                raise _refusal(dag, node, _construct(bad), position)


def _construct(x: exp.Expression) -> exp.Expression:
    """The node an error names: the operator or function around an inner part (the
    INTERVAL of `d + INTERVAL '1' DAY` is named by its `+`)."""
    while isinstance(x, (exp.Var, exp.Interval, exp.Literal)) and x.parent is not None:
        x = x.parent
    return x


def _refusal(dag: Dag, node: int, x: exp.Expression,
             position: Callable[[exp.Expression], dict]) -> UnsupportedError:
    name = x.name.upper() if isinstance(x, exp.Anonymous) else \
        x.sql_name() if isinstance(x, exp.Func) else type(x).__name__.upper()
    if isinstance(x, (exp.Like, exp.ILike)) and x.args.get("negate"):
        name = "NOT " + name
    columns = sorted({c.name for c in x.find_all(exp.Column)})
    owners = sorted(dag.attr(node, "owners") or ())
    on = f" on {', '.join(columns)}" if columns else ""
    where = "after the reveal" if dag.attr(node, "placement") == RECIPIENT else "inside MPC"
    held = f", whose rows come from {', '.join(owners)}" if len(owners) > 1 else ""
    message = (f"{name}{on}{held}: not available {where}; it would run locally if it read "
               f"only one party's rows before they are combined (e.g. a condition on one "
               f"table, or a column computed in a subquery over one table)")
    return UnsupportedError(message, **position(x))
