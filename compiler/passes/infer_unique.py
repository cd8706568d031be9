"""Which column sets are unique among each node's rows: the licence for the linear PK-FK join.

Sets the node attribute `unique` on every node: a frozenset of keys, each a frozenset of the
node's column names whose values no two (valid) rows share. Secure joins read it
(`join_unique_side` in analyses/unique_keys.py): when one side's join keys contain one of its
keys, the MPyC program runs the sort-based PK-FK join (linear per key bit, output length =
the other side's length) instead of comparing all n x m pairs. The rules, each sound on its own:

- Scan: the table's declared keys (`primary_key`, `unique` in the catalog) whose columns it
  reads. A declared key holds over the UNION of all parts of the table: each owner's local
  job checks its own part for duplicates (backends/validate.py); that no two parts share a
  key is the declarer's promise, which no party can check alone. A broken promise gives
  wrong sums in the join (the PK columns of the duplicates are added), never a leak.
- Aggregate: its group keys (no keys: at most one row, unique on the empty set).
  Distinct: all its columns. Limit 1: the empty set.
- Filter, Sort, Limit, Share, Reveal, Output, SemiJoin (IN / EXISTS): their input's keys
  (fewer rows stay unique; inside MPC a filter clears valid flags, and uniqueness is among
  valid rows).
- Project: a key whose every column passes through as a plain column reference (renamed
  is fine); a computed column proves nothing.
- Join: when the right side is unique on its join keys, every left row appears at most
  once, so left's keys survive (and vice versa).
- Union: nothing, except a declared key of one table whose parts meet in the union: every
  input a subset of a different party's part of that table, the key columns in the same
  positions (a row-subset "lineage" tracked from the scans through filters, projections,
  sorts, limits, shares and joins with a unique other side).

Optional (`--disable infer_unique`, and `--all-secure`): without it every secure join is the
n x m nested loop, the baseline.
"""

from __future__ import annotations

from itertools import product

from sqlglot import exp

from ..analyses.unique_keys import UNIQUE_ATTR as ATTR
from ..analyses.unique_keys import (
    Key,
    covers,
    join_unique_side,  # noqa: F401 -- read by explain and backends
    unique_keys,
)
from ..catalog import Catalog
from ..ir.dag import (Aggregate, Dag, Distinct, Filter, Join, Limit, Output, Project, Reveal, Scan,
                      Share, Sort, Union)

# (table, key columns in this node, parties whose parts the rows are a subset of)
Lineage = tuple[str, frozenset, frozenset]
PASS_THROUGH = (Filter, Sort, Limit, Share, Reveal, Output)
# operators (by name: defined by other work) whose output is a subset of input 0's rows
ROW_SUBSETS = ("SemiJoin",)
MAX_KEYS = 16  # keys kept per node: renames that copy a column twice could multiply them


def infer_unique(dag: Dag, *, catalog: Catalog) -> Dag:
    dag = dag.copy()
    lineage: dict[int, set[Lineage]] = {}
    for n in dag.topo():
        op = dag.op(n)
        ins = dag.inputs(n)
        keys: set[Key] = set()
        lin: set[Lineage] = set()
        if isinstance(op, Scan):
            rename = dict(zip(op.columns, dag.names(n)))
            for declared in catalog.tables[op.table].unique:
                if set(declared) <= set(rename):
                    key = frozenset(rename[c] for c in declared)
                    keys.add(key)
                    lin.add((op.table, key, frozenset({op.party})))
        elif isinstance(op, Aggregate):
            keys.add(frozenset(op.keys))
        elif isinstance(op, Distinct):
            keys.add(frozenset(dag.names(n)))
        elif isinstance(op, PASS_THROUGH) or type(op).__name__ in ROW_SUBSETS:
            keys |= unique_keys(dag, ins[0])
            lin |= lineage[ins[0]]
            if isinstance(op, Limit) and op.n <= 1:
                keys.add(frozenset())
        elif isinstance(op, Project):
            targets: dict[str, list[str]] = {}
            for name, e in op.exprs:
                if isinstance(e, exp.Column):
                    targets.setdefault(e.name, []).append(name)
            keys |= {k for key in unique_keys(dag, ins[0]) for k in _rename(key, targets)}
            lin |= {(t, k, p) for t, key, p in lineage[ins[0]] for k in _rename(key, targets)}
        elif isinstance(op, Join):  # a cross join (no keys) with a one-row side keeps the other's
            left, right = ins
            if covers(unique_keys(dag, right), op.right_keys):
                keys |= unique_keys(dag, left)
                lin |= lineage[left]
            if covers(unique_keys(dag, left), op.left_keys):
                keys |= unique_keys(dag, right)
                lin |= lineage[right]
        elif isinstance(op, Union):
            lin = _union_lineage(dag, n, ins, lineage)
            keys = {key for _, key, _ in lin}
        lineage[n] = lin
        dag.set(n, **{ATTR: _minimal(keys)})
    return dag


def _rename(key: Key, targets: dict[str, list[str]]) -> list[Key]:
    """The key in a projection's output names: every column must pass through (any copy)."""
    if not all(c in targets for c in key):
        return []
    cols = sorted(key)
    return [frozenset(choice) for choice in product(*(targets[c] for c in cols))][:MAX_KEYS]


def _union_lineage(dag: Dag, node: int, ins: list[int],
                   lineage: dict[int, set[Lineage]]) -> set[Lineage]:
    """Declared keys of one table that hold over the union: each input a subset of other
    parties' parts of the table, the key in the same column positions."""
    names = dag.names(node)
    per_input = []
    for i in ins:
        position = {c: k for k, c in enumerate(dag.names(i))}
        per_input.append({(t, frozenset(position[c] for c in key)): parties
                          for t, key, parties in lineage[i]})
    out: set[Lineage] = set()
    for fact, parties in per_input[0].items():
        seen = set(parties)
        for other in per_input[1:]:
            more = other.get(fact)
            if more is None or more & seen:
                break
            seen |= more
        else:
            table, positions = fact
            out.add((table, frozenset(names[k] for k in positions), frozenset(seen)))
    return out


def _minimal(keys: set[Key]) -> frozenset[Key]:
    """Drop every key that contains another (a superset of a unique key is unique anyway)."""
    return frozenset(k for k in keys if not any(o < k for o in keys))
