"""GROUPING SETS, ROLLUP and CUBE as a union of ordinary group-bys.

`GROUP BY a, ROLLUP (b, c)` groups by (a, b, c), (a, b) and (a): one Aggregate per grouping
set over the same rows, each projected to all key columns with the keys it does not group by
NULL, then a UNION ALL. The NULL is `CASE WHEN FALSE THEN 0 END` (of the key's type): MPC has
no NULL literal but computes a CASE without ELSE.
"""

from __future__ import annotations

import itertools

from sqlglot import exp

from ..errors import UnsupportedError
from ..ir.dag import AggCall, Aggregate, Field, Project, Union, col
from .context import LoweringContext
from .trees import render_projection

# more grouping sets than this (a CUBE of 7 keys has 128) is refused: each is one group-by
MAX_GROUPING_SETS = 64
# the value a key column takes in a set that does not group by it (hidden by the CASE)
PADDING = {"text": exp.Literal.string(""), "bool": exp.false(),
           "date": exp.Cast(this=exp.Literal.string("1970-01-01"), to=exp.DataType.build("date"))}


def grouping_sets(ctx: LoweringContext, group: exp.Group | None
                  ) -> list[list[exp.Expression]] | None:
    """The grouping sets of a GROUP BY (each a list of its expressions), or None when it is
    a plain GROUP BY (one set)."""
    if group is None:
        return None
    items = list(group.expressions)
    for key in ("rollup", "cube", "grouping_sets"):  # older sqlglot keeps them apart
        if group.args.get(key):
            items += list(group.args[key]) if isinstance(group.args[key], list) else \
                [group.args[key]]
    if not any(isinstance(i, (exp.Rollup, exp.Cube, exp.GroupingSets)) for i in items):
        return None
    choices = [_item_sets(ctx, i) for i in items]
    count = 1
    for c in choices:
        count *= len(c)
    if count > MAX_GROUPING_SETS:
        raise ctx.error(UnsupportedError, f"{count} grouping sets (at most "
                                          f"{MAX_GROUPING_SETS}: each is one group-by)", group)
    return [[e for part in combo for e in part] for combo in itertools.product(*choices)]


def _item_sets(ctx: LoweringContext, item: exp.Expression) -> list[list[exp.Expression]]:
    """The alternatives one GROUP BY item contributes to a grouping set."""
    if isinstance(item, exp.Rollup):
        keys = list(item.expressions)
        return [keys[:k] for k in range(len(keys), -1, -1)]
    if isinstance(item, exp.Cube):
        keys = list(item.expressions)
        return [[k for k, bit in zip(keys, bits) if bit]
                for bits in itertools.product((1, 0), repeat=len(keys))]
    if isinstance(item, exp.GroupingSets):
        out = []
        for s in item.expressions:
            if isinstance(s, (exp.Rollup, exp.Cube)):
                out += _item_sets(ctx, s)
            elif isinstance(s, exp.Tuple):
                out.append(list(s.expressions))
            elif isinstance(s, exp.Paren):
                out.append([s.this])
            else:
                out.append([s])
        return out
    return [[item]]


def union_of_groupings(ctx: LoweringContext, below: int, set_keys: list[list[str]],
                       key_cols: list[str], aggs: list[AggCall],
                       out_fields: list[Field]) -> int:
    """One Aggregate per grouping set (`set_keys`: each set's key columns) over `below`,
    each with the keys it does not group by NULL, united; output columns `out_fields` (all
    key columns, then the aggregates). The largest set comes first: the union's columns
    take their labels from it."""
    types = {f.name: f.sql_type for f in out_fields}
    # an Aggregate with neither keys nor aggregates has no columns: the empty set counts rows
    computed = aggs or [AggCall(ctx.fresh_name("rows"), "count_star", None)]
    parts = []
    for keys in sorted(set_keys, key=len, reverse=True):
        keys = list(dict.fromkeys(keys))
        agg_fields = [Field(k, types[k]) for k in keys] + \
            [Field(a.name, "int") for a in computed if not aggs] + out_fields[len(key_cols):]
        node = ctx.dag.add(Aggregate(tuple(keys), tuple(computed)), agg_fields, [below])
        exprs = [(k, col(k) if k in keys else _null_of(types[k])) for k in key_cols] + \
            [(a.name, col(a.name)) for a in aggs]
        parts.append(ctx.dag.add(Project(tuple(exprs), render_projection(exprs)), out_fields,
                                 [node]))
    return ctx.dag.add(Union(), out_fields, parts)


def _null_of(sql_type: str) -> exp.Expression:
    """NULL of the key's type, as a CASE without ELSE (MPC has no NULL literal)."""
    return exp.Case(ifs=[exp.If(this=exp.false(), true=_padding(sql_type))])


def _padding(sql_type: str) -> exp.Expression:
    if sql_type in PADDING:
        return PADDING[sql_type].copy()
    return exp.Literal.number(0)  # numbers: no CAST (MPC refuses a CAST to int of a literal)
