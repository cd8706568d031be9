"""Each operator of a plan in plain words ("keeps the rows where fare > 10"), whoever runs it.

How a secure operator runs -- its algorithm and what it reveals -- is the secure backend's to
say (backends/base.py ``SecureBackend.describe``); these words say only *what* it computes.
"""

from __future__ import annotations

import networkx as nx
from sqlglot import exp

from ..analyses.domains import ONEHOT_PREFIX
from ..analyses.padding import exactly_one_row
from ..ir.dag import (Aggregate, Dag, Distinct, Filter, Join, Limit, Project, Reveal, Scan,
                      SemiJoin, Share, Sort, Union, Window)
from ..analyses.labels import label_expr, names

__all__ = ["describe", "is_rename", "local_chain", "onehot_columns_text"]


def describe(dag: Dag, n: int, lab: dict[int, dict[str, str]]) -> str:
    """One operator in plain words."""
    op = dag.op(n)
    ins = dag.inputs(n)
    src = lab[ins[0]] if ins else {}
    if isinstance(op, Scan):
        return f"reads its part of {op.table} (columns {', '.join(op.columns)})"
    if isinstance(op, Filter):
        return f"keeps the rows where {label_expr(op.predicate, src)}"
    if isinstance(op, Project) and _onehot_names(dag.names(n)):
        return _describe_onehot(dag, n, lab)
    if isinstance(op, Project):
        shown = [f"{lab[n][name]}" for name, e in op.exprs]
        return "computes " + ", ".join(shown)
    if isinstance(op, Aggregate):
        return _describe_aggregate(op, lab[n], src)
    if isinstance(op, (Join, SemiJoin)):
        return _describe_join(dag, n, lab)
    if isinstance(op, Union):
        return f"combines the rows of {len(ins)} inputs"
    if isinstance(op, Distinct):
        return "removes duplicate rows"
    if isinstance(op, Sort):
        return "sorts by " + ", ".join(f"{src.get(k, k)}{' descending' if d else ''}"
                                       for k, d in op.keys)
    if isinstance(op, Limit):
        skip = f" after skipping the first {op.offset}" if op.offset else ""
        return f"keeps the first {op.n} rows{skip}"
    if isinstance(op, Window):
        return "computes " + ", ".join(label_expr(e, src) for _, e in op.exprs) + \
            " over its rows (window functions)"
    if isinstance(op, Share):
        return f"{op.party}'s rows enter MPC"
    if isinstance(op, Reveal):
        return "opens the result to " + ", ".join(op.recipients)
    return type(op).__name__


def _describe_aggregate(op: Aggregate, own: dict[str, str], src: dict[str, str]) -> str:
    if not op.aggs:
        return f"keeps one row per distinct ({names(op.keys, src)})"
    what = ", ".join(own[a.name] if op.stage != "final" else
                     f"{'sum' if a.func == 'sum' else a.func} of the parties' "
                     f"{own[a.name]}" for a in op.aggs if a.name != "__rows")
    per = f" per ({names(op.keys, src)})" if op.keys else " over all rows"
    return f"{what}{per}"


def _describe_join(dag: Dag, n: int, lab: dict[int, dict[str, str]]) -> str:
    op = dag.op(n)
    ins = dag.inputs(n)
    pairs = ", ".join(f"{lab[ins[0]].get(a, a)} = {lab[ins[1]].get(b, b)}"
                      for a, b in zip(op.left_keys, op.right_keys))
    if isinstance(op, SemiJoin):
        if not op.left_keys:
            return f"keeps its rows only if the subquery has {'no' if op.anti else 'any'} rows"
        return f"keeps the rows {'without' if op.anti else 'with'} a subquery row where {pairs}"
    if not op.left_keys:
        if any(exactly_one_row(dag, i) for i in ins):
            return "pairs every row with the single row of a subquery result"
        return "pairs every row of one input with every row of the other (a cross join)"
    kind = getattr(op, "kind", "inner")
    if kind == "inner":
        return f"joins rows where {pairs}"
    kept = {"left": "the left side's", "right": "the right side's",
            "full": "both sides'"}[kind]
    return f"{kind} outer join: joins rows where {pairs}, keeping {kept} unmatched rows " \
           f"(the other side's columns NULL)"


def _onehot_names(columns) -> list[str]:
    return [c for c in columns if c.startswith(ONEHOT_PREFIX)]


def _describe_onehot(dag: Dag, n: int, lab: dict[int, dict[str, str]]) -> str:
    """The owner's local step of the one-hot group-by (use_domains): which key tuples."""
    op = dag.op(n)
    keys = [label_expr(e.args["ifs"][0].this, lab[dag.inputs(n)[0]])
            for name, e in op.exprs if name == f"{ONEHOT_PREFIX}0"]
    count = len(_onehot_names(dag.names(n)))
    return (f"adds {count} one-hot columns, one per value of the declared public domain "
            f"(1 where the row's key is that value, else 0; the first: {keys[0]})")


def onehot_columns_text(columns: list[str], labels: list[str]) -> list[str]:
    """A share's column labels with its one-hot columns summed up in one entry."""
    count = len(_onehot_names(columns))
    kept = [lbl for c, lbl in zip(columns, labels) if not c.startswith(ONEHOT_PREFIX)]
    return kept + ([f"{count} one-hot columns of the declared domain"] if count else [])


def local_chain(dag: Dag, node: int) -> list[int]:
    """The nodes computing `node`, inputs first."""
    nodes = nx.ancestors(dag.g, node) | {node}
    return [n for n in dag.topo() if n in nodes]


def is_rename(dag: Dag, n: int) -> bool:
    """A projection that only renames (or drops) columns: explain skips it."""
    op = dag.op(n)
    return all(isinstance(e, exp.Column) for _, e in op.exprs)
