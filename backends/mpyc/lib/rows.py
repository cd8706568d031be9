"""Operators that keep rows where they are: UNION ALL, WHERE, SELECT, renames, cross join.

None of them moves a row or needs a protocol beyond a multiplication of flags: a filter clears
``valid`` flags (the number of rows that pass stays secret), a projection computes new columns
on the same rows. Each states its public output length; none reveals anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpyc.runtime import mpc

from .encoding import companion_bases
from .keyspec import KeySpec
from .table import KeyBits, SecTable, companion_range, with_companions, zeros

__all__ = ["carry", "concat", "cross_join", "filter_rows", "project", "rename"]


def concat(tables: list[SecTable]) -> SecTable:
    """UNION ALL of tables with the same column names (in the first table's order).

    Output length: sum of the input lengths (public). Free (local concatenation). Owners' key
    bits (``table.KeyBits``) of a column are kept when every part has them for a range with
    the same lo (narrower parts get zero bits on top); otherwise the column has none.
    """
    if not tables:
        raise ValueError("concat needs at least one table")
    names = list(dict.fromkeys(c for t in tables for c in t.columns))
    bases = companion_bases(names)
    for t in tables:
        missing = [c for c in names if c not in t.columns]
        if any(c not in bases for c in missing):
            raise ValueError(f"concat: column names differ: {names} vs {list(t.columns)}")
    if any(c not in t.columns for t in tables for c in names):
        # a missing companion is all zeros: zero text pieces (a shorter text), not NULL
        tables = [SecTable({c: t.columns[c] if c in t.columns else zeros(t.sectype, t.n)
                            for c in names}, t.valid, t.valid_first,
                           {**t.ranges, **{c: companion_range(t, c, bases[c])
                                           for c in names if c not in t.columns}}, dict(t.bits))
                  for t in tables]
    cols = {c: mpc.np_concatenate([t.columns[c] for t in tables]) for c in names}
    for c in names:  # concatenation keeps the integral flag only if every part has it
        cols[c].integral = all(bool(getattr(t.columns[c], "integral", False)) for t in tables)
    ranges = {}
    for c in names:
        rs = [t.ranges.get(c) for t in tables]
        if all(r is not None for r in rs):
            ranges[c] = KeySpec(min(r.lo for r in rs), max(r.hi for r in rs),
                                all(r.integral for r in rs))
    return SecTable(cols, mpc.np_concatenate([t.valid for t in tables]), ranges=ranges,
                    bits=_concat_bits(tables, names, cols))


def _concat_bits(tables: list[SecTable], names: list[str], cols: dict[str, Any]
                 ) -> dict[str, KeyBits]:
    """The owners' key bits of the union: per column, when every part has them."""
    bits = {}
    for c in names:
        kbs = [t.bits.get(c) for t in tables]
        if any(kb is None for kb in kbs):
            continue
        spec = KeySpec(min(kb.spec.lo for kb in kbs), max(kb.spec.hi for kb in kbs),
                       all(kb.spec.integral for kb in kbs))
        fitted = [t.key_bits(c, spec) for t in tables]
        if all(b is not None for b in fitted):
            bits[c] = KeyBits(cols[c], spec, np.concatenate(fitted, axis=1))
    return bits


def filter_rows(t: SecTable, flags: Any) -> SecTable:
    """WHERE: valid := valid * flags (one multiplication). Output length n; drops no row."""
    return SecTable(dict(t.columns), t.valid * flags, ranges=dict(t.ranges), bits=dict(t.bits))


def project(t: SecTable, columns: dict[str, Any]) -> SecTable:
    """SELECT expressions: new columns (each of length n), same valid flags. Free."""
    for name, c in columns.items():
        if getattr(c, "shape", None) != (t.n,):
            raise ValueError(f"project: column {name!r} has shape {getattr(c, 'shape', None)}")
    # a projected column that *is* an input column keeps that column's key range
    by_id = {id(a): c for c, a in t.columns.items()}
    ranges = {name: t.ranges[by_id[id(c)]] for name, c in columns.items()
              if id(c) in by_id and by_id[id(c)] in t.ranges}
    return SecTable(dict(columns), t.valid, ranges=ranges, bits=t.keep_bits(columns))


def rename(t: SecTable, mapping: dict[str, str]) -> SecTable:
    """The same table with columns renamed (mapping: new name -> old name), companion columns
    (text pieces, NULL flags) renamed with their column; so are the owners' key bits."""
    full = {}
    for new, old in mapping.items():
        for c in with_companions(t, [old]):
            full[new + c[len(old):]] = c
    ranges = {new: t.ranges[old] for new, old in full.items() if old in t.ranges}
    cols = {new: t.columns[old] for new, old in full.items()}
    return SecTable(cols, t.valid, ranges=ranges, bits=t.keep_bits(cols))


def carry(t: SecTable, name: str, source: str) -> dict:
    """The companion columns of ``source`` (text pieces, NULL flag) renamed for output column
    ``name`` of a projection that copies ``source``."""
    return {name + c[len(source):]: t.columns[c] for c in with_companions(t, [source])[1:]}


def cross_join(left: SecTable, right: SecTable) -> SecTable:
    """All pairs of rows (used with a one-row scalar-subquery result): n*m rows, public length.

    Free: public index selection and one vectorised multiplication of the valid flags.
    """
    n, m = left.n, right.n
    li = np.repeat(np.arange(n), m)
    ri = np.tile(np.arange(m), n)
    cols = {c: a[li] for c, a in left.columns.items()}
    cols |= {c: a[ri] for c, a in right.columns.items()}
    return SecTable(cols, left.valid[li] * right.valid[ri], ranges={**left.ranges, **right.ranges})
