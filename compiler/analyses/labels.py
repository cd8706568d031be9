"""Readable labels for a plan's columns: `sum(fare)` for `__agg0`, `one-hot vendor` ..."""

from __future__ import annotations

from sqlglot import exp

from .domains import ONEHOT_PREFIX
from ..ir.dag import ROWS_PREFIX, Aggregate, Dag, Join, Project, Scan, Union, Window, substitute

__all__ = ["label_expr", "labels", "names", "short"]


def labels(dag: Dag) -> dict[int, dict[str, str]]:
    """For each node, a readable label per output column (e.g. `sum(fare)` for `__agg0`)."""
    out: dict[int, dict[str, str]] = {}
    for n in dag.topo():
        op = dag.op(n)
        ins = dag.inputs(n)
        src = out[ins[0]] if ins else {}
        if isinstance(op, Scan):
            lab = {f.name: c for c, f in zip(op.columns, dag.schema(n))}
        elif isinstance(op, Project):
            lab = {name: (f"one-hot {name[len(ONEHOT_PREFIX):]}" if name.startswith(ONEHOT_PREFIX)
                          else f"{name[len(ROWS_PREFIX):]}'s rows"
                          if name.startswith(ROWS_PREFIX) and isinstance(e, exp.Literal)
                          else label_expr(e, src)) for name, e in op.exprs}
        elif isinstance(op, Aggregate):
            lab = _aggregate_labels(op, src)
        elif isinstance(op, Union):
            lab = dict(zip(dag.names(n), (src.get(x, short(x)) for x in dag.names(ins[0]))))
        elif isinstance(op, Join):
            lab = {**out[ins[0]], **out[ins[1]]}
        elif isinstance(op, Window):
            lab = {**src, **{name: label_expr(e, src) for name, e in op.exprs}}
        else:
            lab = dict(src)
        for name in dag.names(n):
            lab.setdefault(name, short(name))
        out[n] = lab
    return out


def _aggregate_labels(op: Aggregate, src: dict[str, str]) -> dict[str, str]:
    lab = {k: src.get(k, short(k)) for k in op.keys}
    for a in op.aggs:
        if a.name == "__rows":
            lab[a.name] = "number of rows"
        elif a.func == "count_star":
            lab[a.name] = "count(*)" if op.stage != "final" else src.get(a.name, "count")
        elif op.stage == "final":
            lab[a.name] = src.get(a.arg, a.name)
        else:
            lab[a.name] = f"{a.func}({src.get(a.arg, short(a.arg))})"
    return lab


def short(name: str) -> str:
    """A column's name without its table (and internal names without their underscores)."""
    if name.startswith("__"):
        return name.strip("_")
    return name.split(".", 1)[1] if "." in name else name


def label_expr(e: exp.Expression, src: dict[str, str]) -> str:
    """An expression with its columns written as their labels."""
    if isinstance(e, exp.Column):
        return src.get(e.name, short(e.name))
    mapping = {c.name: exp.column(exp.Identifier(this=src.get(c.name, short(c.name)),
                                                 quoted=False)) for c in e.find_all(exp.Column)}
    return substitute(e, mapping).sql()


def names(columns, lab: dict[str, str]) -> str:
    """Columns as their labels, comma-separated."""
    return ", ".join(lab.get(n, short(n)) for n in columns)
