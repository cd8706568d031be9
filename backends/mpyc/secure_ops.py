"""Secure relational operators over MPyC secure fixed-point arrays.

Generated MPyC programs call these functions between ``await mpc.start()`` and
``await mpc.shutdown()``::

    from sqlmpc.backends.mpyc import secure_ops as ops
    secfxp = mpc.SecFxp(96, 32)
    t = await ops.share_input(secfxp, my_rows, ["k", "v"], senders=[0, 1])
    g = ops.aggregate(t, ["k"], [("total", "sum", "v"), ("n", "count", None)])
    rows = await ops.reveal(g, receivers=[2], columns=["k", "total", "n"], ordered=False)

Security model: MPyC's Shamir secret sharing, passive (semi-honest) adversaries, honest
majority (t < m/2). Every value in a :class:`SecTable` is secret-shared; so is the ``valid``
flag of every row, so a table's *number of rows* is secret as well: filters, joins, group-bys
never drop rows, they clear ``valid`` flags. What *is* public is each table's length ``n``
(the padded number of rows); each operator's docstring states its output length, which is a
function of public input lengths only (and of a public LIMIT) -- that is all it reveals.
Nothing is opened to anybody except in :func:`share_input` (the input row counts, to all
parties) and :func:`reveal` (the result, to its receivers only).

Cost model (see ``measured-here.md``): additions and multiplications by public numbers are
local and free; a secret x secret multiplication costs one round of communication (vectorised:
one round for a whole array); every comparison or equality test costs about a millisecond per
element with 96-bit numbers. Operators are therefore written as a few vectorised calls per
round, never as Python loops over secure scalars. Every operator that needs order (GROUP BY on
secret keys, DISTINCT, ORDER BY/LIMIT, reveal's compaction, the PK-FK join) uses the
oblivious radix sort of ``radix.py`` (Asharov et al., CCS 2022): one pass per key bit, each
pass a linear resharing shuffle (``shuffle.py``, Laur-Willemson-Zhang), one multiplication
and the opening of a uniformly random permutation -- no comparisons; sorting permutations,
key bits and positions live in the small field GF(2^31-1) on int64 arrays
(``smallfield.py``), only the payload rows stay in secfxp's field. Cost: linear in n per key
bit, so key widths matter: ``key_bits`` arguments or the catalog types given to
:func:`share_input` (text 56 bits, date 20, bool 1; ints 64 unless told). Key columns that
come straight from an owner's input can have their bits input by the owner (``share_input``'s
``input_bits``; generated programs do it for every such sort key): the sorts then skip
extracting them inside MPC (``radix.py``, "Key bits input by their owners"). The former
Batcher merge-exchange network (what ``mpc.np_sort`` runs: ~n log2(n)^2 / 4 secfxp
compare-exchanges) remains available as ``method="network"`` (the benchmark baseline).

Numbers: one secure type per program, ``secfxp = mpc.SecFxp(l, f)``; ints are exact up to
2^(l-f-1), fractions to 2^-f. Comparisons are exact when |a - b| < 2^(l-f-1) (see
``encoding.py``). Booleans are secfxp 0/1 values.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mpyc.runtime import mpc
from mpyc.sectypes import SecureArray, SecureObject

from . import encoding, fxpdiv, radix
from . import smallfield as sf

__all__ = [
    "SecTable",
    "abs_",
    "aggregate",
    "aggregate_public_keys",
    "and_",
    "concat",
    "const",
    "distinct",
    "div",
    "eq",
    "filter_rows",
    "ge",
    "gt",
    "join",
    "le",
    "lt",
    "ne",
    "neg",
    "not_",
    "or_",
    "order_by",
    "project",
    "reveal",
    "share_input",
    "to_field_matrix",
    "where",
]

AGG_FUNCS = ("sum", "count", "min", "max")
RANDOM_BITS = 40  # secret random tiebreak for unordered reveal


# --------------------------------------------------------------------------------------------
# The secure table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyBits:
    """Small-field shares of the key bits of one column, input by the column's owners (see
    :func:`share_input`'s ``input_bits`` and ``radix.py``, "Key bits input by their owners"):
    ``bits`` (int64 (spec.bits, n), row 0 least significant) are the bits of x - spec.lo for
    the values x of exactly the secure array ``column`` -- the cache is used only while the
    table still holds that very array (``is``), so a recomputed or reordered column never
    gets stale bits."""

    column: Any
    spec: Any
    bits: np.ndarray


@dataclass
class SecTable:
    """A secret table: n rows (n public), each column a 1-D secure array of length n.

    ``valid`` holds secret 0/1 flags saying which of the n rows are really in the table.
    ``valid_first`` is a public promise (set only by :func:`order_by`) that all valid rows
    precede all invalid rows; :func:`reveal` uses it to skip a compaction sort.
    """

    columns: dict[str, Any]
    valid: Any
    valid_first: bool = field(default=False)
    ranges: dict[str, Any] = field(default_factory=dict)
    """Public key ranges per column (``radix.KeySpec``; from the catalog types given to
    :func:`share_input` or ``key_bits``): narrower keys sort faster. Carried along by the
    operators that keep a column unchanged."""
    bits: dict[str, KeyBits] = field(default_factory=dict)
    """Key bits input by the owners, per column (see :class:`KeyBits`): kept only by the
    operators that keep the column's array and rows unchanged (filters, projections and
    renames that copy it, UNION ALL of parts that all have them, semi-joins, the FK side of
    a PK-FK join); every other operator builds a table without them."""

    @property
    def n(self) -> int:
        """Public number of (padded) rows."""
        return int(self.valid.shape[0])

    @property
    def sectype(self) -> type:
        """The secure array type (``secfxp.array``) of this table."""
        return type(self.valid)

    def key_bits(self, name: str, spec: Any) -> np.ndarray | None:
        """The owners' bits of column ``name`` fitted to the key range ``spec``
        (``radix.fit_bits``), or None (no cache, or not for this very column array, or not
        convertible for free): the sort then extracts the bits itself."""
        kb = self.bits.get(name)
        if kb is None or kb.column is not self.columns.get(name):
            return None
        if kb.bits.shape != (kb.spec.bits, self.n):
            return None
        return radix.fit_bits(kb.spec, kb.bits, spec)

    def keep_bits(self, columns: dict[str, Any]) -> dict[str, KeyBits]:
        """The cache entries still valid for ``columns`` (same arrays, same rows), renamed to
        the names they have there; for a table whose rows are this table's rows."""
        by_id = {id(a): c for c, a in self.columns.items()}
        out = {}
        for name, a in columns.items():
            old = by_id.get(id(a))
            kb = self.bits.get(old) if old is not None else None
            if kb is not None and kb.column is a:
                out[name] = kb
        return out


# --------------------------------------------------------------------------------------------
# Constants and plumbing
# --------------------------------------------------------------------------------------------


def to_field_matrix(secfxp: type, values: Any) -> Any:
    """Scale numbers by 2^f into a field array of ``secfxp`` losslessly.

    Python/numpy ints (also beyond 2^53, e.g. packed texts in object arrays) are shifted
    exactly; floats are scaled by 2^f (exact in binary) and rounded to the nearest integer,
    like MPyC does for float arrays. Mixed object arrays (ints and floats) are fine.
    """
    v = np.asarray(values, dtype=object)
    f = secfxp.frac_length
    exact = (int, np.integer, bool, np.bool_)
    flat = [int(x) << f if isinstance(x, exact) else round(float(x) * (1 << f))
            for x in v.reshape(-1)]
    scaled = np.empty(len(flat), dtype=object)
    scaled[:] = flat
    return secfxp.field.array(scaled.reshape(v.shape))


def _is_integral(values: Any) -> bool:
    v = np.asarray(values, dtype=object).reshape(-1)
    return all(
        isinstance(x, int | np.integer | bool | np.bool_) or float(x).is_integer() for x in v
    )


def const(secfxp: type, values: Any, integral: bool | None = None) -> Any:
    """A public constant as a secure array (every party holds the value itself as its share).

    Free: no communication. ``integral`` is MPyC's flag that all entries are integers (it lets
    multiplications skip truncation); computed from the values when not given.
    """
    if integral is None:
        integral = _is_integral(values)
    return secfxp.array(to_field_matrix(secfxp, values), integral=integral)


def _zeros(stype: type, n: int, integral: bool = True) -> Any:
    return const(stype.sectype, np.zeros(n, dtype=object), integral=integral)


def _ones(stype: type, n: int) -> Any:
    return const(stype.sectype, np.ones(n, dtype=object), integral=True)


def _sec_type_of(*xs: Any) -> type | None:
    for x in xs:
        if isinstance(x, SecureArray):
            return type(x)
        if isinstance(x, SecureObject):
            return type(x).array
    return None


def _lift(x: Any, stype: type) -> Any:
    """Secure arrays pass; public numbers/arrays become (free) public secure constants."""
    if isinstance(x, SecureObject):
        return x
    return const(stype.sectype, np.asarray(x, dtype=object))


def _copy(a: Any) -> Any:
    # np_update works in place on the underlying field array, so copy first.
    return mpc.np_copy(a)


def _stack(cols: Sequence[Any], stype: type, n: int) -> Any:
    """Stack 1-D columns into a (len(cols), n) matrix (handles n == 0 and no columns)."""
    if not cols:
        return const(stype.sectype, np.zeros((0, n), dtype=object), integral=True)
    return mpc.np_stack(list(cols))


def _unstack(m: Any, names: Sequence[str]) -> dict[str, Any]:
    return {name: m[i] for i, name in enumerate(names)}


# --------------------------------------------------------------------------------------------
# Companion columns: long texts and NULLs
# --------------------------------------------------------------------------------------------
#
# A logical column ``c`` may have companion columns in a SecTable:
#   ``c~1``, ``c~2``, ...  the further 7-byte pieces of a text longer than 7 bytes
#                          (``c`` itself holds piece 0; see encoding.py);
#   ``c~null``             a secret 0/1 flag, 1 where c is SQL NULL (c itself then holds 0).
# Operators that take column names (group keys, DISTINCT, ORDER BY, join keys, reveal) expand
# them to include the companions, and operators that keep columns carry them along, so code
# generated for one-piece, non-null columns never mentions them.

COMPANION = "~"
NULL_FLAG = "~null"


def pieces(t: SecTable, name: str) -> list[str]:
    """The piece columns of ``name`` in order: [name, name~1, ...] (just [name] usually)."""
    out = [name]
    while f"{name}{COMPANION}{len(out)}" in t.columns:
        out.append(f"{name}{COMPANION}{len(out)}")
    return out


def null_flag(t: SecTable, name: str) -> Any | None:
    """The secret NULL flag of column ``name``, or None when the column cannot be NULL."""
    return t.columns.get(name + NULL_FLAG)


def with_companions(t: SecTable, names: Sequence[str]) -> list[str]:
    """``names`` and all their companion columns (pieces, NULL flags), each name's together."""
    out: list[str] = []
    for c in names:
        out += pieces(t, c)
        if c + NULL_FLAG in t.columns:
            out.append(c + NULL_FLAG)
    return out


def _sort_keys(t: SecTable, keys: Sequence[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """Expand sort keys to their companions: the NULL flag first, ascending (NULLs sort last,
    as in DuckDB and Spark's default for ascending keys), then the text pieces in order."""
    out: list[tuple[str, bool]] = []
    for c, desc in keys:
        if c + NULL_FLAG in t.columns:
            out.append((c + NULL_FLAG, False))
        out += [(p, desc) for p in pieces(t, c)]
    return out


def _piece_bases(names: Sequence[str]) -> dict[str, str]:
    """companion name -> its column's name (for renaming and aligning companions)."""
    out = {}
    for c in names:
        base, sep, tail = c.rpartition(COMPANION)
        if sep and base and (tail == "null" or tail.isdigit()):
            out[c] = base
    return out


def _companion_range(t: SecTable, name: str, base: str) -> Any:
    if name.endswith(NULL_FLAG):
        return radix.TYPE_RANGES["bool"]
    return t.ranges.get(base, radix.TYPE_RANGES["text"])


def text_compare(op: str, a: Sequence[Any], b: Sequence[Any]) -> Any:
    """Compare texts given as piece lists (secure arrays or public ints; padded with zero
    pieces to equal length): op in eq/ne/lt/le/gt/ge, lexicographic on the pieces (piece 0
    most significant), i.e. SQL's binary collation. Cost: one batched equality test per
    piece for eq/ne; for the orders also one comparison per piece, combined with k-1
    multiplications."""
    k = max(len(a), len(b))
    a = list(a) + [0] * (k - len(a))
    b = list(b) + [0] * (k - len(b))
    if op in ("gt", "ge"):
        a, b, op = b, a, {"gt": "lt", "ge": "le"}[op]
    eqs = [eq(x, y) for x, y in zip(a, b)]
    if op in ("eq", "ne"):
        r = eqs[0]
        for e in eqs[1:]:
            r = and_(r, e)
        return r if op == "eq" else not_(r)
    # lt: a0 < b0, or a0 == b0 and (a1 < b1, or ...); le: the last piece compares with <=
    r = lt(a[-1], b[-1]) if op == "lt" else le(a[-1], b[-1])
    for i in range(k - 2, -1, -1):
        r = lt(a[i], b[i]) + eqs[i] * r  # the two cases exclude each other: a sum is an OR
    return r


def text_where(cond: Any, a: Sequence[Any], b: Sequence[Any]) -> list[Any]:
    """cond ? a : b for texts as piece lists (padded to equal length)."""
    k = max(len(a), len(b))
    a = list(a) + [0] * (k - len(a))
    b = list(b) + [0] * (k - len(b))
    return [where(cond, x, y) for x, y in zip(a, b)]


# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------


async def share_input(
    secfxp: type,
    my_rows: np.ndarray | None,
    columns: list[str],
    senders: list[int],
    integral: list[bool] | None = None,
    types: list[str] | None = None,
    key_bits: dict[str, Any] | None = None,
    extra: list[str] | None = None,
    pad_to: int | str | None = None,
    input_bits: Sequence[str] | None = None,
) -> SecTable:
    """Secret-share the rows of the parties in ``senders`` into one table (their UNION ALL).

    Every party calls this with the same ``columns`` and ``senders``; a sender passes its
    already encoded rows as a 2-D matrix (n_i x len(columns); ints may be Python ints in an
    object array), every other party (e.g. a helper compute party) passes None.

    Protocol: (1) each sender's row count n_i is sent *in the clear* to all parties
    (``mpc.transfer``) -- this is the one size leak of the input: every party learns how many
    rows each sender contributes; (2) each sender with n_i > 0 secret-shares its matrix with one
    vectorised ``mpc.input`` (Shamir shares sent directly to each party, one round). Values
    are scaled by 2^f exactly (:func:`to_field_matrix`), never via float for ints.

    ``integral`` (optional, public schema knowledge: True for int/bool/date/text columns) marks
    columns whose values are integers, which makes later multiplications cheaper; it is never
    derived from the data, since that would leak.

    ``types`` (optional, the catalog's SQL types, one per column) and ``key_bits`` (optional,
    column -> bit length L (values in [0, 2^L)) or a (lo, hi) range) are public schema
    knowledge that sets the columns' key ranges for sorting (text 56 bits, date 20, bool 1,
    int 64; see ``radix.TYPE_RANGES``): a narrower key costs proportionally less in every
    sort-based operator. Values outside a declared range give wrong orders, never leaks.

    ``extra`` (a sender's own): names of companion columns (text pieces ``c~1``..., NULL
    flags ``c~null``; see "Companion columns") appended to its rows after ``columns``. Their
    names travel in the clear with the row counts (so the number of pieces of a sender's
    longest text in a column is visible to all parties; explain says so); a sender lacking a
    companion another sender has sends zeros for it (zero pieces: shorter text; flag 0:
    not NULL).

    ``pad_to`` (optional, public, the same at every party; compiler/padding.py) hides n_i: each
    sender appends all-zero dummy rows up to a public bound (an int; more rows than that is a
    ValueError at the sender) or up to the next power of two ("pow2"; 0 rows count as 1), and
    shares a 0/1 validity column with its rows; the padded count is what is transferred, and
    ``valid`` is the shared column. Then it reveals nothing beyond the bound, or only
    ceil(log2 n_i), instead of n_i.

    ``input_bits`` (optional, public, the same at every party: the compiler picks them from the
    plan, codegen.py) names integral columns that later operators sort on: each sender also
    computes the bits of (x - lo) of its values x in the clear (``radix.clear_bits``, for the
    column's key range [lo, hi] as above; text pieces and NULL flags of the column too) and
    Shamir-shares them in the small field GF(2^31 - 1) (``smallfield.reshare_from``, one round
    per sender right after the values), so the sorts skip extracting them (``radix.py``, "Key
    bits input by their owners"). A sender with a value outside the range gets a ValueError
    naming the column before anything is sent; padding's dummy rows get the bits of (0 - lo)
    mod 2^L, which is what extraction gives for their shared zero. Reveals nothing more: the
    bits are shared like the values, and which columns are input as bits is public. Cost: one
    more round per sender and L small-field elements per value.

    Output: n = sum(n_i) rows in sender order, ``valid`` = 1 everywhere (padded: the shared
    flags). Reveals: n_i (padded: see ``pad_to``) of every sender (to all parties), and the
    companion column names. Cost: one round, O(n * k) field
    elements per party.
    """
    stype = secfxp.array
    k = len(columns)
    if integral is None:
        integral = [False] * k
    if len(integral) != k:
        raise ValueError("integral must have one flag per column")
    senders = list(senders)
    mine = None
    if mpc.pid in senders:
        mine = np.zeros((0, k), dtype=object) if my_rows is None else np.asarray(my_rows)
        if mine.ndim == 1 and mine.size == 0:
            mine = mine.reshape(0, k + len(extra or []))
    my_extra = list(extra or []) if mine is not None else []
    if mine is not None and my_extra:
        if mine.shape[1] != k + len(my_extra):
            raise ValueError(f"party {mpc.pid} rows have {mine.shape[1]} columns, expected "
                             f"{k} + {len(my_extra)} companions")
    elif mine is not None and (mine.ndim != 2 or mine.shape[1] != k):
        raise ValueError(f"party {mpc.pid} rows have shape {mine.shape}, expected (n, {k})")
    my_n = 0 if mine is None else int(mine.shape[0])
    f = secfxp.frac_length
    bit_cols = list(dict.fromkeys(input_bits or []))
    for name in bit_cols:
        if name not in columns:
            raise ValueError(f"input_bits: {name!r} is not one of the columns")
        if not integral[columns.index(name)]:
            raise ValueError(f"input_bits: column {name!r} is not integral")
    if mine is not None and bit_cols:  # the owner checks its values before anything is sent
        own = _input_ranges(columns, integral, my_extra, types, key_bits, f)
        for name in bit_cols:
            for j, c in enumerate(list(columns) + my_extra):
                if c == name or _piece_bases([c]).get(c) == name:
                    _check_key_range(c, mine[:, j], own.get(c, radix.spec_for(None, True, f)))
    sent_n = my_n if mine is None or pad_to is None else _padded_count(my_n, pad_to)
    sent = await mpc.transfer((sent_n, my_extra), senders=senders) if senders else []
    counts = [int(c) for c, _ in sent]
    companions = list(dict.fromkeys(e for _, es in sent for e in es))
    if mine is not None and companions != my_extra:  # align to every sender's companions
        wide = np.zeros((my_n, k + len(companions)), dtype=object)
        wide[:, :k] = mine[:, :k]
        for j, name in enumerate(my_extra):
            wide[:, k + companions.index(name)] = mine[:, k + j]
        mine = wide
    if pad_to is not None and mine is not None:  # zero dummy rows, then the validity column
        padded = np.zeros((sent_n, mine.shape[1] + 1), dtype=object)
        padded[:my_n, :-1] = mine
        padded[:my_n, -1] = 1
        mine = padded
    base_columns = list(columns)
    columns = base_columns + companions + ([PAD_VALID] if pad_to is not None else [])
    integral = list(integral) + [True] * (len(columns) - len(base_columns))
    k = len(columns)
    parts = []
    for sender, n_i in zip(senders, counts, strict=True):
        if n_i == 0:
            continue  # nothing to share; avoids zero-size protocol messages
        if sender == mpc.pid:
            x = stype(to_field_matrix(secfxp, mine), integral=False)
        else:
            x = stype(None, shape=(n_i, k), integral=False)
        parts.append(mpc.input(x, senders=sender))
    ranges = _input_ranges(base_columns, integral[:len(base_columns)], companions, types,
                           key_bits, f)
    bases = _piece_bases(companions)
    bit_names = [c for b in bit_cols
                 for c in [b] + [x for x in companions if bases.get(x) == b]]
    bit_specs = [ranges.get(c, radix.spec_for(None, True, f)) for c in bit_names]
    total = sum(sp.bits for sp in bit_specs)
    bit_parts = []
    for sender, n_i in zip(senders, counts, strict=True):
        if n_i == 0 or not bit_names:
            continue
        clear = None
        if sender == mpc.pid:  # the owner's own bits, in the clear, of the sent (padded) rows
            clear = np.concatenate([radix.clear_bits(mine[:, columns.index(c)], sp)
                                    for c, sp in zip(bit_names, bit_specs, strict=True)])
        bit_parts.append(await sf.reshare_from(clear, [sender], (total, n_i)))
    n = sum(counts)
    if parts:
        m = parts[0] if len(parts) == 1 else mpc.np_concatenate(parts, axis=0)
        cols = {}
        for j, name in enumerate(columns):
            c = m[:, j]
            c.integral = bool(integral[j])
            cols[name] = c
    else:
        cols = {name: _zeros(stype, 0, bool(integral[j])) for j, name in enumerate(columns)}
    ranges = {c: r for c, r in ranges.items() if c in cols}
    bits = {}
    if bit_names:
        allbits = np.concatenate(bit_parts, axis=1) if bit_parts else \
            np.zeros((total, 0), dtype=np.int64)
        row = 0
        for c, sp in zip(bit_names, bit_specs, strict=True):
            bits[c] = KeyBits(cols[c], sp, allbits[row:row + sp.bits])
            row += sp.bits
    valid = cols.pop(PAD_VALID) if pad_to is not None else _ones(stype, n)
    return SecTable(cols, valid, ranges=ranges, bits=bits)


def _input_ranges(columns: Sequence[str], integral: Sequence[bool], companions: Sequence[str],
                  types: list[str] | None, key_bits: dict[str, Any] | None, f: int
                  ) -> dict[str, Any]:
    """Public key ranges of an input's columns (all public schema knowledge): the catalog
    types' (``radix.TYPE_RANGES``), text pieces like their column, NULL flags 0/1, then the
    ``key_bits`` hints (scaled for non-integral columns, see ``radix.spec_for``)."""
    kinds = dict(zip(columns, (bool(x) for x in integral), strict=True))
    ranges = {}
    if types is not None:
        for name, ty in zip(columns, types, strict=True):
            base = str(ty).lower().split("(")[0].strip()
            if base in radix.TYPE_RANGES:
                ranges[name] = radix.TYPE_RANGES[base]
    bases = _piece_bases(companions)
    for name in companions:
        if name.endswith(NULL_FLAG):
            ranges[name] = radix.TYPE_RANGES["bool"]
        elif bases[name] in ranges:
            ranges[name] = ranges[bases[name]]
    for name, b in (key_bits or {}).items():
        ranges[name] = radix.spec_for(b, kinds.get(name, True), f)
    return ranges


def _check_key_range(name: str, values: np.ndarray, spec: Any) -> None:
    """An owner's check before it inputs key bits: every value an integer in [lo, hi]. The
    message names the column and the range, not the value (it may be shown to others)."""
    for x in np.asarray(values, dtype=object).reshape(-1):
        ok = isinstance(x, int | np.integer | bool | np.bool_) or \
            (isinstance(x, float | np.floating) and float(x).is_integer())
        if not ok or not spec.lo <= int(x) <= spec.hi:
            shown = name.split(".", 1)[1] if "." in name and not name.startswith("__") else name
            raise ValueError(f"column {shown}: a value lies outside its key range "
                             f"[{spec.lo}, {spec.hi}] (or is not an integer), so its key bits "
                             f"cannot be input")


PAD_VALID = "\0valid"  # share_input's shared validity column when padding


def _padded_count(n: int, pad_to: int | str) -> int:
    """The row count a padding sender announces (see share_input's ``pad_to``)."""
    if pad_to == "pow2":
        return 1 << max(n - 1, 0).bit_length()
    if n > int(pad_to):
        raise ValueError(f"party {mpc.pid} has {n} rows, more than the padding bound {pad_to}")
    return int(pad_to)


def concat(tables: list[SecTable]) -> SecTable:
    """UNION ALL of tables with the same column names (in the first table's order).

    Output length: sum of the input lengths (public). Free (local concatenation). Owners' key
    bits (:class:`KeyBits`) of a column are kept when every part has them for a range with
    the same lo (narrower parts get zero bits on top); otherwise the column has none.
    """
    if not tables:
        raise ValueError("concat needs at least one table")
    names = list(dict.fromkeys(c for t in tables for c in t.columns))
    bases = _piece_bases(names)
    for t in tables:
        missing = [c for c in names if c not in t.columns]
        if any(c not in bases for c in missing):
            raise ValueError(f"concat: column names differ: {names} vs {list(t.columns)}")
    if any(c not in t.columns for t in tables for c in names):
        # a missing companion is all zeros: zero text pieces (a shorter text), not NULL
        tables = [SecTable({c: t.columns[c] if c in t.columns else _zeros(t.sectype, t.n)
                            for c in names}, t.valid, t.valid_first,
                           {**t.ranges, **{c: _companion_range(t, c, bases[c])
                                           for c in names if c not in t.columns}}, dict(t.bits))
                  for t in tables]
    cols = {c: mpc.np_concatenate([t.columns[c] for t in tables]) for c in names}
    for c in names:  # concatenation keeps the integral flag only if every part has it
        cols[c].integral = all(bool(getattr(t.columns[c], "integral", False)) for t in tables)
    ranges = {}
    for c in names:
        rs = [t.ranges.get(c) for t in tables]
        if all(r is not None for r in rs):
            ranges[c] = radix.KeySpec(min(r.lo for r in rs), max(r.hi for r in rs),
                                      all(r.integral for r in rs))
    bits = {}
    for c in names:
        kbs = [t.bits.get(c) for t in tables]
        if any(kb is None for kb in kbs):
            continue
        spec = radix.KeySpec(min(kb.spec.lo for kb in kbs), max(kb.spec.hi for kb in kbs),
                             all(kb.spec.integral for kb in kbs))
        fitted = [t.key_bits(c, spec) for t in tables]
        if all(b is not None for b in fitted):
            bits[c] = KeyBits(cols[c], spec, np.concatenate(fitted, axis=1))
    return SecTable(cols, mpc.np_concatenate([t.valid for t in tables]), ranges=ranges,
                    bits=bits)


# --------------------------------------------------------------------------------------------
# Expression helpers (elementwise; secure arrays or public numbers/arrays on either side)
# --------------------------------------------------------------------------------------------


def _binary(a: Any, b: Any) -> tuple[Any, Any, type | None]:
    stype = _sec_type_of(a, b)
    if stype is None:
        return np.asarray(a), np.asarray(b), None
    return _lift(a, stype), _lift(b, stype), stype


def lt(a: Any, b: Any) -> Any:
    """a < b as secret 0/1 (one secure comparison per element; exact if |a-b| < 2^(l-f-1))."""
    a, b, s = _binary(a, b)
    return (a < b).astype(int) if s is None else mpc.np_less(a, b)


def gt(a: Any, b: Any) -> Any:
    """a > b as secret 0/1 (one secure comparison per element)."""
    return lt(b, a)


def le(a: Any, b: Any) -> Any:
    """a <= b as secret 0/1, computed as 1 - (b < a)."""
    r = lt(b, a)
    return 1 - r


def ge(a: Any, b: Any) -> Any:
    """a >= b as secret 0/1, computed as 1 - (a < b)."""
    r = lt(a, b)
    return 1 - r


def eq(a: Any, b: Any) -> Any:
    """a == b as secret 0/1 (MPyC's probabilistic zero test; cheaper than a comparison)."""
    a, b, s = _binary(a, b)
    return (a == b).astype(int) if s is None else mpc.np_equal(a, b)


def ne(a: Any, b: Any) -> Any:
    """a != b as secret 0/1."""
    r = eq(a, b)
    return 1 - r


def and_(a: Any, b: Any) -> Any:
    """Boolean AND of 0/1 values: a*b (one secure multiplication)."""
    a, b, _ = _binary(a, b)
    return a * b


def or_(a: Any, b: Any) -> Any:
    """Boolean OR of 0/1 values: a + b - a*b (one secure multiplication)."""
    a, b, _ = _binary(a, b)
    return a + b - a * b


def not_(a: Any) -> Any:
    """Boolean NOT of a 0/1 value: 1 - a (free)."""
    return 1 - a


def where(cond: Any, a: Any, b: Any) -> Any:
    """cond ? a : b elementwise for a secret 0/1 cond: cond*(a-b) + b (one multiplication)."""
    stype = _sec_type_of(cond, a, b)
    if stype is None:
        return np.where(cond, a, b)
    cond, a, b = _lift(cond, stype), _lift(a, stype), _lift(b, stype)
    return mpc.np_where(cond, a, b)


def div(a: Any, b: Any) -> Any:
    """a / b elementwise (fixed-point, f fractional bits; b must be nonzero).

    Public divisor (Python number or numpy array): multiplication by the public reciprocal
    (one truncation). Secret divisor: ``fxpdiv.divide`` (one bit extraction of b to normalise
    it, Newton's iteration with 2f fraction bits in a wider field, about 55 rounds; see
    fxpdiv.py): absolute error about |a / b| 2^-2f plus a few units of 2^-f. Types with
    l - 1 < 2f use MPyC's reciprocal (np_divide) instead. A zero divisor gives 0, not an
    error (it cannot be detected without revealing it; the SQL layer marks it NULL).
    """
    if not isinstance(b, SecureObject):
        if not isinstance(a, SecureObject):
            return np.asarray(a) / np.asarray(b)
        if isinstance(b, int | float):
            return a * (1.0 / b)  # NB: a / b would take MPyC's integral-only path for ints
        return a * (1.0 / np.asarray(b, dtype=float))
    stype = type(b)
    a = _lift(a, stype)
    if a.shape != b.shape:
        shape = np.broadcast_shapes(a.shape, b.shape)
        zero = const(stype.sectype, np.zeros(shape, dtype=object), integral=True)
        a, b = a + zero, b + zero  # broadcast (free): the division works elementwise
    if fxpdiv.supported(stype):  # l - 1 >= 2f, e.g. the default secfxp(96, 32)
        return fxpdiv.divide(a, b)
    return mpc.np_divide(a, b)  # MPyC's reciprocal is valid for l <= 2f + 1


def neg(a: Any) -> Any:
    """-a (free)."""
    return -a


def abs_(a: Any) -> Any:
    """|a| (one secure sign computation per element)."""
    return mpc.np_absolute(a)


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


# --------------------------------------------------------------------------------------------
# Oblivious sorting of rows
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _network(n: int) -> tuple[tuple[np.ndarray, int], ...]:
    """Layers (I, d) of Batcher's merge-exchange sort (Knuth 5.2.2 M), as in mpc.np_sort:
    compare-exchange positions I and I + d. Public, data-independent."""
    layers = []
    if n < 2:
        return ()
    t = (n - 1).bit_length()
    p = 1 << (t - 1)
    while p:
        d, q, r = p, 1 << (t - 1), 0
        while d:
            index = np.fromiter((i for i in range(n - d) if i & p == r), dtype=int)
            if index.size:
                layers.append((index, d))
            d, q, r = q - p, q >> 1, p
        p >>= 1
    return tuple(layers)


def _lex_less(
    k1: list[Any], k0: list[Any], bits: list[bool], widths: list[int | None] | None = None
) -> Any:
    """Secret 0/1: (k1[0], k1[1], ...) < (k0[0], k0[1], ...) lexicographically.

    k1[i], k0[i] are 1-D secure arrays (already negated for descending keys; 0/1 bit keys
    are flagged in ``bits`` and compared with one multiplication instead of a comparison).
    All non-bit comparisons of a layer run in one np_less and one np_equal call.
    """
    r = len(k1)
    gen = [i for i in range(r) if not bits[i]]
    lts: list[Any] = [None] * r
    eqs: list[Any] = [None] * r
    if gen:
        a = mpc.np_stack([k1[i] for i in gen]) if len(gen) > 1 else k1[gen[0]]
        b = mpc.np_stack([k0[i] for i in gen]) if len(gen) > 1 else k0[gen[0]]
        # A known bound |k1 - k0| < 2^(w-1) (scaled by 2^f) lets np_sgn use w-bit masks instead
        # of l-bit ones: the cost of a comparison is about linear in the bit length.
        ws = [widths[i] if widths else None for i in gen]
        w = None if None in ws else max(ws)
        lt_all = mpc.np_sgn(a - b, l=w, LT=True) if w else mpc.np_less(a, b)
        eq_gen = [i for i in gen if i < r - 1]  # the last key's equality is never needed
        if eq_gen:
            if len(gen) > 1:
                sel = np.array([gen.index(i) for i in eq_gen])
                eq_all = mpc.np_equal(a[sel], b[sel])
            else:
                eq_all = mpc.np_equal(a, b)
        for j, i in enumerate(gen):
            lts[i] = lt_all[j] if len(gen) > 1 else lt_all
            if i in eq_gen:
                eqs[i] = eq_all[eq_gen.index(i)] if len(gen) > 1 else eq_all
    for i in range(r):
        if bits[i]:
            x, y = k1[i], k0[i]
            xy = x * y
            lts[i] = y - xy  # x=0, y=1
            eqs[i] = 1 - x - y + 2 * xy
    res = lts[r - 1]
    for i in range(r - 2, -1, -1):
        res = lts[i] + eqs[i] * res
    return res


def _sort_matrix(m: Any, keys: list[tuple[int, bool, bool, int | None]]) -> Any:
    """Obliviously sort the columns of matrix m (shape (c, n); one table row per column of m)
    by the key rows ``keys`` = [(row index in m, descending, is_0/1_bit, width), ...],
    lexicographic; width (or None) is a public bound: |key difference| * 2^f < 2^(width-1).

    Batcher merge-exchange network, one vectorised compare-exchange per layer: per layer one
    batched np_less/np_equal over all keys, r-1 multiplications to combine keys, and one
    multiplication to swap whole rows. Not stable: ties end in an input-dependent order.
    """
    n = m.shape[1]
    if n < 2 or not keys:
        return m
    m = _copy(m)
    rows = np.array([k[0] for k in keys])
    sign = [(-1 if k[1] else 1) for k in keys]
    bits = [bool(k[2]) for k in keys]
    widths = [k[3] for k in keys]
    for index, d in _network(n):
        b0 = m[:, index]
        b1 = m[:, index + d]
        kb0 = b0[rows]
        kb1 = b1[rows]
        k0, k1 = [], []
        for j in range(len(keys)):
            x0, x1 = kb0[j], kb1[j]
            if bits[j]:
                if sign[j] < 0:  # descending bit: compare complements
                    x0, x1 = 1 - x0, 1 - x1
            elif sign[j] < 0:
                x0, x1 = -x0, -x1
            k0.append(x0)
            k1.append(x1)
        c = _lex_less(k1, k0, bits, widths)  # swap when row at I+d sorts before row at I
        h = c * (b1 - b0)
        m = mpc.np_update(m, (slice(None), index), b0 + h)
        m = mpc.np_update(m, (slice(None), index + d), b1 - h)
    return m


def _sort_table_network(
    t: SecTable,
    keys: list[tuple[str, bool]],
    extra: dict[str, Any] | None = None,
    widths: dict[str, int] | None = None,
) -> tuple[dict[str, Any], Any]:
    """Sort t's rows by (valid desc, keys...) and return (sorted columns incl. extra, valid)."""
    names = list(t.columns)
    extra = extra or {}
    all_names = names + list(extra) + ["\0valid"]
    cols = [t.columns[c] for c in names] + list(extra.values()) + [t.valid]
    m = _stack(cols, t.sectype, t.n)
    pos = {c: i for i, c in enumerate(all_names)}
    spec = [(pos["\0valid"], True, True, None)]
    for name, desc in keys:
        if name not in pos:
            raise KeyError(f"sort key {name!r} is not a column")
        spec.append((pos[name], desc, False, (widths or {}).get(name)))
    m = _sort_matrix(m, spec)
    out = _unstack(m, all_names)
    valid = out.pop("\0valid")
    return out, valid


SORT_METHOD = "radix"
"""Default sorting protocol of the operators: "radix" (``radix.py``: shuffle-based radix sort,
linear per key bit) or "network" (Batcher's merge-exchange network on secfxp comparisons,
the previous implementation, kept as the benchmark baseline). Operators also take
``method=``."""


def _spec(t: SecTable, name: str, col: Any, key_bits: dict[str, Any] | None) -> Any:
    """Public key range of a sort key: ``key_bits`` > the table's ranges > the default
    (64-bit ints for integral columns, 96-bit scaled values otherwise)."""
    f = t.sectype.frac_length
    integral = bool(getattr(col, "integral", False))
    if key_bits and name in key_bits:
        return radix.spec_for(key_bits[name], integral, f)
    if name in t.ranges:
        return t.ranges[name]
    return radix.spec_for(None, integral, f)


def _sort_table(
    t: SecTable,
    keys: list[tuple[str, bool]],
    key_bits: dict[str, Any] | None = None,
    method: str | None = None,
    same: bool = False,
) -> tuple[dict[str, Any], Any, Any]:
    """Sort t's rows stably by (valid desc, keys...): (sorted columns, valid, same) where
    ``same`` (only if requested; secret 0/1 of length n-1) says row i+1 equals row i on
    (valid, keys). Radix sort by default (see ``radix.py``); "network" = Batcher. Key bits
    input by the owners (``t.bits``, see :class:`KeyBits`) are used where they fit a key's
    range; the rest are extracted."""
    method = method or SORT_METHOD
    names = list(t.columns)
    for name, _ in keys:
        if name not in t.columns:
            raise KeyError(f"sort key {name!r} is not a column")
    n = t.n
    if method == "network":
        # the baseline gets the same key-width knowledge: narrower comparisons (np_sgn)
        f = t.sectype.frac_length
        widths = {}
        for k, _ in keys:
            sp = _spec(t, k, t.columns[k], key_bits)
            widths[k] = sp.bits + (f if sp.integral else 0) + 2
        cols, valid = _sort_table_network(t, keys, None, widths)
        sm = None
        if same:
            sm = _adjacent_equal([cols[k] for k, _ in keys], n) if keys and n > 1 else None
            if sm is not None and n > 1:
                sm = sm * valid[1:] + (1 - valid[1:]) * (1 - valid[:-1])
        return cols, valid, sm
    if method != "radix":
        raise ValueError(f"unknown sort method {method!r}")
    stype = t.sectype
    ints = [bool(getattr(t.columns[c], "integral", False)) for c in names]
    if n < 2:
        sm = _zeros(stype, 0) if same else None
        return dict(t.columns), t.valid, sm
    m = _stack([t.columns[c] for c in names] + [t.valid], stype, n)
    kcols = [t.valid] + [t.columns[k] for k, _ in keys]
    specs = [radix.KeySpec(0, 1)] + [_spec(t, k, t.columns[k], key_bits) for k, _ in keys]
    desc = [True] + [bool(d) for _, d in keys]
    cached = [None] + [t.key_bits(k, sp) for (k, _), sp in zip(keys, specs[1:], strict=True)]
    out = radix.sort_rows(kcols, specs, desc, m, same_keys=len(kcols) if same else 0,
                          cached=cached if any(c is not None for c in cached) else None)
    cols = {}
    for i, c in enumerate(names):
        a = out[i]
        a.integral = ints[i]
        cols[c] = a
    valid = out[len(names)]
    valid.integral = True
    sm = None
    if same:
        sm = out[len(names) + 1][: n - 1]
        sm.integral = True
    return cols, valid, sm


def _adjacent_equal(cols: list[Any], n: int) -> Any:
    """Secret 0/1 of length n-1: row i+1 equals row i on all cols (one np_equal batch)."""
    if not cols:
        return None
    a = mpc.np_stack([c[1:] for c in cols])
    b = mpc.np_stack([c[:-1] for c in cols])
    e = mpc.np_equal(a, b)
    res = e[0]
    for i in range(1, len(cols)):
        res = res * e[i]
    return res


# --------------------------------------------------------------------------------------------
# Scans and reductions
# --------------------------------------------------------------------------------------------


def _seg_sum_scan(x: Any, start: Any) -> Any:
    """Inclusive segmented prefix sums of every row of x (c, n); segments begin where
    start (n,) is 1. Hillis-Steele: ceil(log2 n) rounds, 2 multiplications per round."""
    n = x.shape[1]
    f = start
    d = 1
    while d < n:
        upd = x[:, d:] + (1 - f[d:]) * x[:, :-d]
        x = mpc.np_concatenate([x[:, :d], upd], axis=1)
        fd = f[d:] + f[:-d] - f[d:] * f[:-d]
        f = mpc.np_concatenate([f[:d], fd])
        d *= 2
    return x


def _seg_min_scan(x: Any, start: Any) -> Any:
    """Inclusive segmented prefix minima of every row of x (c, n) (segments as above).
    ceil(log2 n) rounds, each one batched np_less over about c*n elements."""
    n = x.shape[1]
    f = start
    d = 1
    while d < n:
        cur, prev = x[:, d:], x[:, :-d]
        c = mpc.np_less(prev, cur) * (1 - f[d:])  # take the earlier value if smaller
        upd = cur + c * (prev - cur)
        x = mpc.np_concatenate([x[:, :d], upd], axis=1)
        fd = f[d:] + f[:-d] - f[d:] * f[:-d]
        f = mpc.np_concatenate([f[:d], fd])
        d *= 2
    return x


def _masked_min(x: Any, v: Any) -> tuple[Any, Any]:
    """Minimum of each row of x (c, n) over positions where v is 1 -- v (n,) one mask for all
    rows, or (c, n) one mask per row -- as a tree reduction of (value, valid) pairs:
    ceil(log2 n) rounds, n-1 comparisons per row in total, no sentinel (so no range
    assumption). Returns (c,) minima (0 where nothing valid) and the any-valid flag(s)."""
    c, n = x.shape
    per_row = len(v.shape) == 2
    if n == 0:
        return _zeros(type(v), c, integral=True), _zeros(type(v), c if per_row else 1)[0]
    while x.shape[1] > 1:
        n = x.shape[1]
        h = n // 2
        xa, xb = x[:, :h], x[:, h:2 * h]
        va, vb = (v[:, :h], v[:, h:2 * h]) if per_row else (v[:h], v[h:2 * h])
        vab = va * vb
        # take b if b is valid and (a is not, or b < a)
        pick = (vb - vab) + vab * mpc.np_less(xb, xa)
        xm = xa + pick * (xb - xa)
        vm = va + vb - vab
        if n % 2:
            xm = mpc.np_concatenate([xm, x[:, 2 * h:]], axis=1)
            vm = mpc.np_concatenate([vm, v[:, 2 * h:]], axis=1) if per_row else \
                mpc.np_concatenate([vm, v[2 * h:]])
        x, v = xm, vm
    anyv = v[:, 0] if per_row else v[0]
    return x[:, 0] * anyv, anyv


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------


def _check_aggs(t: SecTable, aggs: list[tuple[str, str, str | None]]) -> None:
    for out, func, col in aggs:
        if func not in AGG_FUNCS:
            raise ValueError(f"aggregate {out!r}: unknown function {func!r}")
        if func != "count" and col is None:
            raise ValueError(f"aggregate {out!r}: {func} needs an input column")
        if col is not None and col not in t.columns:
            raise KeyError(f"aggregate {out!r}: no column {col!r}")


def aggregate(
    t: SecTable,
    keys: list[str],
    aggs: list[tuple[str, str, str | None]],
    key_bits: dict[str, Any] | None = None,
    method: str | None = None,
) -> SecTable:
    """GROUP BY on secret keys (or a whole-table aggregate when ``keys`` is empty).

    ``aggs``: (output name, func, input column) with func in sum/count/min/max; count's input
    is ignored (no NULLs: COUNT(col) = COUNT(*) = number of valid rows). AVG, STDDEV... are
    composed by the caller from sums and counts.

    keys == []: output length 1, valid = 1 (SQL returns one row even for an empty input).
    sum = sum of value*valid (linear, free), count = sum(valid), min/max over valid rows by a
    tree reduction (n-1 comparisons, log2 n rounds); when no row is valid: sum = count = 0 and
    min = max = 0 (SQL would give NULL; the caller may test count = 0). Reveals nothing.

    keys != []: output length n (padded; only the number of groups stays secret). Algorithm:
    stable oblivious radix sort of (keys, aggregate inputs) by (valid desc, keys)
    (``radix.py``: one shuffle-based pass per key bit, no comparisons; key widths from
    ``key_bits`` or the table's key ranges, default 64 bits per integer key), adjacent-
    equality flags from the sorted key bits (XOR + product tree in the small field, then
    converted to a secfxp 0/1), segmented prefix sums/counts (log2 n rounds of
    multiplications), and per MIN/MAX column one more radix sort by (valid desc, keys,
    value) whose group-last rows hold the extreme (value bits from ``key_bits``/ranges, else
    64 or 96; with ``method="network"``: segmented prefix minima, ~n log2 n comparisons),
    then the last row of each
    group of valid rows is marked valid and carries the key and the aggregates. Invalid
    output rows hold unspecified values. Reveals nothing (the sort opens only uniformly
    random permutations). ``method="network"`` uses the former Batcher sort instead.
    Output columns: the keys, then the aggregates, in the given order.
    """
    _check_aggs(t, aggs)
    stype = t.sectype
    names = [a[0] for a in aggs]
    for o, f, c in aggs:
        if f in ("min", "max") and len(pieces(t, c)) > 1:
            raise ValueError(f"aggregate {o!r}: {f.upper()} of a text longer than 7 bytes is "
                             f"not supported inside MPC")
    nulls = {c: null_flag(t, c) for _, _, c in aggs if c is not None and null_flag(t, c) is not None}
    if not keys:
        return _aggregate_all(t, aggs, nulls)

    for k in keys:
        if k not in t.columns:
            raise KeyError(f"group key {k!r} is not a column")
    key_cols = with_companions(t, keys)
    n = t.n
    null_outs = [o + NULL_FLAG for o, f, c in aggs if f != "count" and c in nulls]
    if n == 0:
        cols = {k: _zeros(stype, 0) for k in key_cols} | {o: _zeros(stype, 0) for o in names}
        return SecTable(cols | {o: _zeros(stype, 0) for o in null_outs}, _zeros(stype, 0))
    if n <= SMALL_GROUP_MAX and (method or SORT_METHOD) == "radix" and \
            not any(f in ("min", "max") for _, f, _ in aggs):
        return _aggregate_small(t, key_cols, aggs, nulls)
    arg_cols = [c for _, _, c in aggs if c is not None]
    sub = SecTable({c: t.columns[c] for c in dict.fromkeys(
        key_cols + arg_cols + [c + NULL_FLAG for c in nulls])}, t.valid, ranges=t.ranges,
        bits=t.bits)
    sort_keys = _sort_keys(t, [(k, False) for k in keys])
    sorted_cols, valid, same = _sort_table(sub, sort_keys, key_bits, method, same=True)
    # same[i]: row i+1 has the same (valid, keys) as row i; valid rows come first, so an
    # invalid row never joins a group of valid rows.
    if same is not None and n > 1:
        start = mpc.np_concatenate([_ones(stype, 1), 1 - same])
        last = valid * mpc.np_concatenate([1 - same, _ones(stype, 1)])
    else:
        start = _ones(stype, n)
        last = valid
    out = {k: sorted_cols[k] for k in key_cols}
    present = {c: 1 - sorted_cols[c + NULL_FLAG] for c in nulls}  # 1 where the arg is not NULL
    sums = [(o, c) for o, f, c in aggs if f == "sum"]
    counts = [(o, c) for o, f, c in aggs if f == "count"]
    nn_args = list(dict.fromkeys(c for _, f, c in aggs if c in nulls))
    sum_rows = [sorted_cols[c] * present[c] if c in nulls else sorted_cols[c] for _, c in sums]
    sum_rows += [valid] + [present[c] for c in nn_args]  # counts: all rows, non-NULL rows
    s = _seg_sum_scan(_stack(sum_rows, stype, n), start)
    for i, (o, _) in enumerate(sums):
        out[o] = s[i]
    nn_count = {c: s[len(sums) + 1 + i] for i, c in enumerate(nn_args)}
    for o, c in counts:
        out[o] = nn_count[c] if c in nulls else s[len(sums)]
    mins = [(o, f, c) for o, f, c in aggs if f in ("min", "max")]
    if mins and (method or SORT_METHOD) == "radix":
        # One more radix sort per MIN/MAX column, by (valid desc, keys, [not NULL,] value):
        # groups occupy the same positions as in the main sort, and the last row of a group
        # holds its maximum (value ascending) or minimum (value descending), a NULL only if
        # the whole group is NULL. No comparisons.
        for o, f, c in mins:
            extra = {"\0v": sub.columns[c]}
            ranges = {"\0v": sub.ranges[c]} if c in sub.ranges else {}
            vbits = {"\0v": sub.bits[c]} if c in sub.bits else {}  # same array: same bits
            vkeys = [("\0v", f == "min")]
            if c in nulls:
                extra["\0nn"] = 1 - sub.columns[c + NULL_FLAG]
                ranges["\0nn"] = radix.TYPE_RANGES["bool"]
                vkeys = [("\0nn", False)] + vkeys
            sc, _, _ = _sort_table(SecTable(extra | {k: sub.columns[k] for k in key_cols},
                                            t.valid, ranges=ranges | {
                                                k: sub.ranges[k] for k in key_cols
                                                if k in sub.ranges},
                                            bits=vbits | {k: sub.bits[k] for k in key_cols
                                                          if k in sub.bits}),
                                   sort_keys + vkeys,
                                   (key_bits or {}) | ({"\0v": key_bits[c]}
                                                       if key_bits and c in key_bits else {}),
                                   method)
            out[o] = sc["\0v"]
    elif mins:
        if nulls:
            raise ValueError("MIN/MAX of a nullable column needs the radix method")
        x = _stack([(-1 if f == "max" else 1) * sorted_cols[c] for _, f, c in mins], stype, n)
        mn = _seg_min_scan(x, start)
        for i, (o, f, _) in enumerate(mins):
            out[o] = -mn[i] if f == "max" else mn[i]
    if nn_args:
        empty = mpc.np_equal(mpc.np_stack([nn_count[c] for c in nn_args]), 0)
        for o, f, c in aggs:
            if f != "count" and c in nulls:
                out[o + NULL_FLAG] = empty[nn_args.index(c)]
    return SecTable({k: out[k] for k in key_cols} | {o: out[o] for o in names}
                    | {o: out[o] for o in null_outs}, last,
                    ranges={k: t.ranges[k] for k in key_cols if k in t.ranges})


SMALL_GROUP_MAX = 64
"""aggregate: up to this many rows (and no MIN/MAX), group by comparing all pairs of rows
(:func:`_aggregate_small`: a constant number of rounds) instead of a radix sort (a few rounds
per key bit: hundreds for 64-bit keys). Typical for combining the owners' partial aggregates."""


def _aggregate_small(t: SecTable, key_cols: list[str], aggs: list[tuple[str, str, str | None]],
                     nulls: dict[str, Any]) -> SecTable:
    """GROUP BY over few rows by pairwise key equality (like the nested-loop join).

    E[i, j] = (row j has row i's keys) * valid_j: n^2 * len(keys) equality tests in one batch.
    Row i's group sums and counts are E @ [values; 1] (one secure matrix product); row i
    represents its group (stays valid) when it is valid and no earlier row j < i is in its group:
    sum_{j<i} E[i, j] == 0 (public triangular mask, n equality tests). Output: n rows, the
    representatives valid, as :func:`aggregate`. Rounds: a constant (two equality batches,
    two multiplications); work O(n^2). Reveals nothing beyond the public length n.
    """
    stype = t.sectype
    n = t.n
    li, ri = np.repeat(np.arange(n), n), np.tile(np.arange(n), n)
    e = mpc.np_equal(_stack([t.columns[k][li] for k in key_cols], stype, n * n),
                     _stack([t.columns[k][ri] for k in key_cols], stype, n * n))
    same = e[0]
    for i in range(1, len(key_cols)):
        same = same * e[i]
    members = (same * t.valid[ri]).reshape(n, n)  # E[i, j]
    earlier = mpc.np_sum(members * np.tril(np.ones((n, n), dtype=int), -1), axis=1)
    first = t.valid * mpc.np_equal(earlier, 0)
    present = {c: 1 - nf for c, nf in nulls.items()}  # 1 where the argument is not NULL
    sums = [(o, c) for o, f, c in aggs if f == "sum"]
    nn_args = list(dict.fromkeys(c for _, f, c in aggs if c in nulls))
    cols = [t.columns[c] * present[c] if c in nulls else t.columns[c] for _, c in sums]
    cols += [_ones(stype, n)] + [present[c] for c in nn_args]
    tot = mpc.np_matmul(members, mpc.np_stack(cols).T).T  # (len(cols), n)
    out = {k: t.columns[k] for k in key_cols}
    for i, (o, _) in enumerate(sums):
        out[o] = tot[i]
    nn_count = {c: tot[len(sums) + 1 + i] for i, c in enumerate(nn_args)}
    for o, f, c in aggs:
        if f == "count":
            out[o] = nn_count[c] if c in nulls else tot[len(sums)]
    if nn_args:
        empty = mpc.np_equal(mpc.np_stack([nn_count[c] for c in nn_args]), 0)
        for o, f, c in aggs:
            if f != "count" and c in nulls:
                out[o + NULL_FLAG] = empty[nn_args.index(c)]
    return SecTable({k: out[k] for k in key_cols} | {o: out[o] for o in _names_in_order(aggs, out)},
                    first, ranges={k: t.ranges[k] for k in key_cols if k in t.ranges})


def _aggregate_all(t: SecTable, aggs: list[tuple[str, str, str | None]],
                   nulls: dict[str, Any]) -> SecTable:
    """aggregate() without keys: one row, valid = 1; SUM/MIN/MAX over no (non-NULL) rows are
    NULL (a ``~null`` flag), COUNT is 0."""
    stype = t.sectype
    v = t.valid
    n = t.n
    masks = {None: v} | {c: v * (1 - nf) for c, nf in nulls.items()}  # rows that count per arg
    cnt = {c: (mpc.np_sum(m) if n else _zeros(stype, 1)[0]) for c, m in masks.items()}
    out: dict[str, Any] = {}
    sums = [(o, c) for o, f, c in aggs if f == "sum"]
    if sums:
        if n:
            x = _stack([t.columns[c] for _, c in sums], stype, n)
            w = _stack([masks[c if c in nulls else None] for _, c in sums], stype, n)
            tot = mpc.np_sum(x * w, axis=1)
        else:
            tot = _zeros(stype, len(sums))
        for i, (o, _) in enumerate(sums):
            out[o] = tot[i]
    for key in dict.fromkeys(c if c in nulls else None for _, f, c in aggs if f in ("min", "max")):
        mins = [(o, f, c) for o, f, c in aggs if f in ("min", "max")
                and (c if c in nulls else None) == key]
        x = _stack([(-1 if f == "max" else 1) * t.columns[c] for _, f, c in mins], stype, n)
        mn, _ = _masked_min(x, masks[key])
        for i, (o, f, _) in enumerate(mins):
            out[o] = -mn[i] if f == "max" else mn[i]
    for o, f, c in aggs:
        if f == "count":
            out[o] = cnt[c if c in nulls else None]
    nullable = [(o, c if c in nulls else None) for o, f, c in aggs if f != "count"]
    if nullable:
        keys = list(dict.fromkeys(c for _, c in nullable))
        empty = mpc.np_equal(mpc.np_stack([_scalar_to_array(cnt[c], stype) for c in keys]), 0)
        for o, c in nullable:
            out[o + NULL_FLAG] = empty[keys.index(c)]
    cols = {o: _scalar_to_array(x, stype) for o, x in out.items()}
    return SecTable({o: cols[o] for o in _names_in_order(aggs, cols)}, _ones(stype, 1))


def _names_in_order(aggs: list[tuple[str, str, str | None]], cols: dict[str, Any]) -> list[str]:
    """Aggregate output names in the given order, each followed by its NULL flag if any."""
    return [c for o, _, _ in aggs for c in (o, o + NULL_FLAG) if c in cols]


def _scalar_to_array(x: Any, stype: type) -> Any:
    if isinstance(x, SecureArray):
        return x.reshape(1) if x.shape != (1,) else x
    return mpc.np_fromlist([x]) if isinstance(x, SecureObject) else const(stype.sectype, [x])


def aggregate_public_keys(
    t: SecTable, key_columns: dict[str, np.ndarray], aggs: list[tuple[str, str, str | None]]
) -> SecTable:
    """GROUP BY on PUBLIC keys (known in the clear to all parties) over secret values/valid.

    ``key_columns``: name -> plain numpy array of length n (encoded numbers, e.g. from
    ``encoding.encode_column``), the same at every party. The groups are the distinct public
    key tuples, in sorted order; no comparison on secrets is needed to find them.

    Algorithm: a public permutation brings each group's rows together (free); sums and counts
    are differences of prefix sums at public group boundaries (free, linear); min/max are
    segmented prefix minima over (value, valid) pairs restricted to public segments
    (log2 n rounds, <= n log2 n comparisons per column); valid = (count > 0), one equality
    test per group. Output length: the number of distinct public key tuples G (public anyway).
    Output columns: the keys (as public secure constants, so downstream code is uniform), then
    the aggregates. min/max of a group with no valid row: unspecified (its valid flag is 0).
    Reveals nothing.
    """
    _check_aggs(t, aggs)
    stype = t.sectype
    n = t.n
    knames = list(key_columns)
    karrs = [np.asarray(key_columns[k]) for k in knames]
    for k, a in zip(knames, karrs, strict=True):
        if a.shape != (n,):
            raise ValueError(f"public key {k!r} has shape {a.shape}, expected ({n},)")
    if n == 0 or not knames:
        if not knames:
            return aggregate(t, [], aggs)
        cols = {k: _zeros(stype, 0) for k in knames} | {a[0]: _zeros(stype, 0) for a in aggs}
        return SecTable(cols, _zeros(stype, 0))
    # Public grouping: codes per key column, then distinct code tuples (sorted).
    codes = []
    uniq_vals = []
    for a in karrs:
        u, inv = np.unique(a, return_inverse=True)
        uniq_vals.append(u)
        codes.append(inv.reshape(-1))
    code_mat = np.stack(codes, axis=1)
    groups, gid = np.unique(code_mat, axis=0, return_inverse=True)
    gid = gid.reshape(-1)
    g = groups.shape[0]
    perm = np.argsort(gid, kind="stable")
    gs = gid[perm]
    starts = np.searchsorted(gs, np.arange(g), side="left")
    ends = np.searchsorted(gs, np.arange(g), side="right")  # exclusive
    valid = t.valid[perm]
    out: dict[str, Any] = {}
    for j, k in enumerate(knames):
        values = uniq_vals[j][groups[:, j]]
        if any(isinstance(v, str) for v in values):  # public texts travel as strings
            for i, piece in enumerate(encoding.encode_text(values.tolist())):
                out[k if i == 0 else f"{k}{COMPANION}{i}"] = const(stype.sectype, piece)
        else:
            out[k] = const(stype.sectype, values.astype(object))
    # rows that count per aggregate argument: valid, and not NULL for a NULL-flagged argument
    nullable = list(dict.fromkeys(c for _, _, c in aggs if c is not None
                                  and null_flag(t, c) is not None))
    masks = {c: valid * (1 - null_flag(t, c)[perm]) for c in nullable}
    sums = [(o, c) for o, f, c in aggs if f == "sum"]
    rows = [t.columns[c][perm] * masks.get(c, valid) for _, c in sums] + [valid]
    rows += [masks[c] for c in nullable]
    x = _stack(rows, stype, n)
    cs = mpc.np_concatenate([_zeros(stype, len(rows)).reshape(len(rows), 1),
                             mpc.np_cumsum(x, axis=1)], axis=1)
    tot = cs[:, ends] - cs[:, starts]
    for i, (o, _) in enumerate(sums):
        out[o] = tot[i]
    cnt = tot[len(sums)]
    nn_count = {c: tot[len(sums) + 1 + i] for i, c in enumerate(nullable)}
    for o, f, c in aggs:
        if f == "count":
            out[o] = nn_count.get(c, cnt)
    for key in dict.fromkeys(c if c in masks else None for _, f, c in aggs if f in ("min", "max")):
        mins = [(o, f, c) for o, f, c in aggs if f in ("min", "max")
                and (c if c in masks else None) == key]
        xm = _stack([(-1 if f == "max" else 1) * t.columns[c][perm] for _, f, c in mins], stype, n)
        mn = _public_seg_min(xm, masks.get(key, valid), gs)[:, ends - 1]
        for i, (o, f, _) in enumerate(mins):
            out[o] = -mn[i] if f == "max" else mn[i]
    if nullable:  # SUM/MIN/MAX of a group without a non-NULL value are NULL
        empty = mpc.np_equal(mpc.np_stack([nn_count[c] for c in nullable]), 0)
        for o, f, c in aggs:
            if f != "count" and c in masks:
                out[o + NULL_FLAG] = empty[nullable.index(c)]
    gvalid = 1 - mpc.np_equal(cnt, 0)
    names = [c for k in knames for c in out if c == k or c.startswith(k + COMPANION)]
    return SecTable({c: out[c] for c in names + _names_in_order(aggs, out)}, gvalid)


def _public_seg_min(x: Any, v: Any, seg: np.ndarray) -> Any:
    """Inclusive prefix minima over valid entries within public segments (seg sorted ids).
    Round d combines position i with i-d only where both lie in the same (public) segment."""
    n = x.shape[1]
    d = 1
    while d < n:
        idx = np.nonzero(seg[d:] == seg[:-d])[0] + d
        if idx.size == 0:
            break
        cur, prev = x[:, idx], x[:, idx - d]
        vc, vp = v[idx], v[idx - d]
        vcp = vc * vp
        # take prev if prev is valid and (cur is not, or prev < cur)
        pick = (vp - vcp) + vcp * mpc.np_less(prev, cur)
        upd = cur + pick * (prev - cur)
        x = mpc.np_update(_copy(x), (slice(None), idx), upd)
        v = mpc.np_update(_copy(v), idx, vc + vp - vcp)
        d *= 2
    return x


# --------------------------------------------------------------------------------------------
# Join, distinct, order by
# --------------------------------------------------------------------------------------------


NESTED_LOOP_MAX = 256
"""join: with n * m at most this, the n x m nested-loop join is used even when a unique side
is declared (it is faster for tiny inputs: one batched equality test, no sort)."""


def join(
    left: SecTable,
    right: SecTable,
    left_keys: list[str],
    right_keys: list[str],
    unique: str | None = None,
    key_bits: dict[str, Any] | None = None,
    method: str | None = None,
) -> SecTable:
    """Inner equi-join on one or several secret keys. Output columns: all of left's then all
    of right's columns (the caller guarantees distinct names).

    ``unique`` = "left" or "right" declares that side's keys unique among its valid rows
    (a primary key joined with a foreign key; public schema knowledge). Then the join is
    sort-based (PK-FK join, linear per key bit): the rows of both sides are concatenated
    and stably radix-sorted by (keys, side) so each key's PK row precedes its FK rows;
    every FK row gets the columns of the nearest PK row before it and is "matched" when
    that row is valid with equal key bits; the rows are moved back to the input order
    (unshuffle) and the FK side's rows are kept. Output length: the FK side's length (public); output row j is FK row j
    (its valid flag cleared when it has no valid partner), so the join size stays secret.
    Cost: one radix sort of n + m rows over the key bits + 2, a compaction pass, a few
    shuffles of the PK columns, no comparisons and no big-field prefix scans (the copy is a
    prefix sum of differences; see ``radix.pkfk_fill``). Reveals nothing. If the declared
    side is not unique, the copied columns are sums over the duplicates (wrong, not leaky).

    For 0 < n * m <= ``NESTED_LOOP_MAX`` (or ``method="network"``): nested-loop join over all
    pairs: output row i*m + j pairs left row i with right row j (public index selection,
    free); valid = prod_k (left.key_k == right.key_k) * left.valid * right.valid: n*m*len(keys)
    equality tests in one batched np_equal. Output length n*m (public). Reveals nothing.

    No unique side and n * m > ``NESTED_LOOP_MAX``: the sort-based many-to-many join of
    ``mmjoin.py`` (Krastnikov et al., VLDB 2020; linear per key bit, no n x m work). Its output
    length is the join size M, revealed to the compute parties (or a public bound
    ``max_rows``, then only "M <= max_rows" is revealed), so it must be awaited: use
    ``await join_many(...)`` (same arguments); this synchronous ``join`` refuses that case
    with a ValueError naming it.
    """
    if len(left_keys) != len(right_keys) or not left_keys:
        raise ValueError("join needs the same positive number of left and right keys")
    dup = set(left.columns) & set(right.columns)
    if dup:
        raise ValueError(f"join: column names on both sides: {sorted(dup)}")
    if unique not in (None, "left", "right"):
        raise ValueError("join: unique must be None, 'left' or 'right'")
    left, right, left_keys, right_keys = _join_keys(left, right, left_keys, right_keys)
    n, m = left.n, right.n
    stype = left.sectype
    if unique is not None and (n * m > NESTED_LOOP_MAX or n * m == 0) \
            and (method or SORT_METHOD) == "radix":
        return _pkfk_join(left, right, left_keys, right_keys, unique, key_bits)
    if n * m == 0:
        cols = {c: _zeros(stype, 0) for c in list(left.columns) + list(right.columns)}
        return SecTable(cols, _zeros(stype, 0))
    if unique is None and n * m > NESTED_LOOP_MAX and (method or SORT_METHOD) == "radix":
        raise ValueError(f"join: {n} x {m} rows without a unique side: the many-to-many join "
                         f"reveals its size, use `await join_many(...)` (mmjoin.py)")
    li = np.repeat(np.arange(n), m)
    ri = np.tile(np.arange(m), n)
    cols = {c: a[li] for c, a in left.columns.items()}
    cols |= {c: a[ri] for c, a in right.columns.items()}
    for c, a in left.columns.items():
        cols[c].integral = bool(getattr(a, "integral", False))
    for c, a in right.columns.items():
        cols[c].integral = bool(getattr(a, "integral", False))
    a = _stack([cols[k] for k in left_keys], stype, n * m)
    b = _stack([cols[k] for k in right_keys], stype, n * m)
    e = mpc.np_equal(a, b)
    valid = left.valid[li] * right.valid[ri]
    for i in range(len(left_keys)):
        valid = valid * e[i]
    return SecTable(cols, valid, ranges=left.ranges | right.ranges)


def _join_keys(left: SecTable, right: SecTable, left_keys: Sequence[str],
               right_keys: Sequence[str]) -> tuple[SecTable, SecTable, list[str], list[str]]:
    """Expand join keys to their text pieces (the side with fewer pieces gets zero pieces) and
    drop rows whose key is NULL (NULL never equals anything). Free but for one
    multiplication per nullable key. The owners' key bits stay with the (same) columns; a
    zero piece gets its public bits (a public value's shares are the value itself)."""
    lk, rk = [], []
    lcols, rcols = dict(left.columns), dict(right.columns)
    lranges, rranges = dict(left.ranges), dict(right.ranges)
    lbits, rbits = dict(left.bits), dict(right.bits)
    lvalid, rvalid = left.valid, right.valid
    for a, b in zip(left_keys, right_keys, strict=True):
        pa, pb = pieces(left, a), pieces(right, b)
        for i in range(max(len(pa), len(pb))):
            for p, name, cols, ranges, kbits, side in ((pa, a, lcols, lranges, lbits, left),
                                                       (pb, b, rcols, rranges, rbits, right)):
                if i >= len(p):
                    piece = f"{name}{COMPANION}{i}"
                    cols[piece] = _zeros(side.sectype, side.n)
                    ranges[piece] = _companion_range(side, piece, name)
                    kbits[piece] = KeyBits(cols[piece], ranges[piece], radix.clear_bits(
                        np.zeros(side.n, dtype=object), ranges[piece]))
            lk.append(a if i == 0 else f"{a}{COMPANION}{i}")
            rk.append(b if i == 0 else f"{b}{COMPANION}{i}")
        if null_flag(left, a) is not None:
            lvalid = lvalid * (1 - null_flag(left, a))
        if null_flag(right, b) is not None:
            rvalid = rvalid * (1 - null_flag(right, b))
    return (SecTable(lcols, lvalid, ranges=lranges, bits=lbits),
            SecTable(rcols, rvalid, ranges=rranges, bits=rbits), lk, rk)


def _two_sided_bits(first: SecTable, second: SecTable, first_keys: Sequence[str],
                    second_keys: Sequence[str], specs: Sequence[Any]) -> list | None:
    """Owner key bits of the keys of two tables whose rows are concatenated (``first``'s
    rows first), as blocks for ``radix.key_bits_small`` (a side without them is extracted);
    None when neither side has any."""
    out = []
    for a, b, sp in zip(first_keys, second_keys, specs, strict=True):
        out.append([(first.key_bits(a, sp), first.n), (second.key_bits(b, sp), second.n)])
    return out if any(x is not None for blocks in out for x, _ in blocks) else None


def _pkfk_join(left: SecTable, right: SecTable, left_keys: list[str], right_keys: list[str],
               unique: str, key_bits: dict[str, Any] | None) -> SecTable:
    u, fk = (left, right) if unique == "left" else (right, left)
    ukeys, fkeys = (left_keys, right_keys) if unique == "left" else (right_keys, left_keys)
    stype = left.sectype
    f = stype.frac_length
    specs = []
    for uk, fkk in zip(ukeys, fkeys, strict=True):
        ua, fa = u.columns[uk], fk.columns[fkk]
        integral = bool(getattr(ua, "integral", False)) and bool(getattr(fa, "integral", False))
        hint = (key_bits or {}).get(uk, (key_bits or {}).get(fkk))
        if hint is not None:
            specs.append(radix.spec_for(hint, integral, f))
        elif uk in u.ranges and fkk in fk.ranges and integral:
            r1, r2 = u.ranges[uk], fk.ranges[fkk]
            specs.append(radix.KeySpec(min(r1.lo, r2.lo), max(r1.hi, r2.hi)))
        else:
            specs.append(radix.spec_for(None, integral, f))
    ucols = list(u.columns)
    nf = fk.n
    if nf == 0:
        cols = {c: _zeros(stype, 0) for c in list(left.columns) + list(right.columns)}
        return SecTable(cols, _zeros(stype, 0))
    if u.n == 0:
        mat = _zeros(stype, (len(ucols) + 1) * nf).reshape(len(ucols) + 1, nf)
    else:
        upay = _stack([u.columns[c] for c in ucols], stype, u.n)
        keys = [mpc.np_concatenate([u.columns[a], fk.columns[b]])
                for a, b in zip(ukeys, fkeys, strict=True)]
        mat = radix.pkfk_fill(keys, specs, upay, u.valid,
                              _two_sided_bits(u, fk, ukeys, fkeys, specs))
    got = {c: mat[i] for i, c in enumerate(ucols)}
    for c in ucols:
        got[c].integral = bool(getattr(u.columns[c], "integral", False))
    matched = mat[len(ucols)]
    matched.integral = True
    valid = fk.valid * matched
    own = dict(fk.columns)
    if unique == "left":
        cols = {c: got[c] for c in left.columns} | own
    else:
        cols = own | {c: got[c] for c in right.columns}
    ranges = {c: r for c, r in (u.ranges | fk.ranges).items() if c in cols}
    # output row j is FK row j: the FK side's columns keep their arrays, rows and key bits
    return SecTable(cols, valid, ranges=ranges, bits=fk.keep_bits(own))


def distinct(
    t: SecTable,
    columns: list[str],
    key_bits: dict[str, Any] | None = None,
    method: str | None = None,
) -> SecTable:
    """SELECT DISTINCT columns: stable oblivious radix sort by (valid desc, columns) (see
    :func:`aggregate`), then each valid row that differs from its predecessor stays valid.

    Output length n (only the number of distinct rows stays secret); output columns: the
    given columns. Cost: one radix sort (one pass per key bit) + equality flags from the
    sorted bits. Reveals nothing.
    """
    for c in columns:
        if c not in t.columns:
            raise KeyError(f"distinct: no column {c!r}")
    keys = _sort_keys(t, [(c, False) for c in columns])
    columns = with_companions(t, columns)
    sub = SecTable({c: t.columns[c] for c in columns}, t.valid,
                   ranges={c: r for c, r in t.ranges.items() if c in columns},
                   bits={c: b for c, b in t.bits.items() if c in columns})
    n = t.n
    if n < 2:
        return sub
    cols, valid, same = _sort_table(sub, keys, key_bits, method, same=True)
    first = mpc.np_concatenate([_ones(t.sectype, 1), 1 - same])
    return SecTable(cols, valid * first, ranges=dict(sub.ranges))


def order_by(
    t: SecTable,
    keys: list[tuple[str, bool]],
    limit: int | None = None,
    key_bits: dict[str, Any] | None = None,
    method: str | None = None,
) -> SecTable:
    """ORDER BY keys (True = descending) [LIMIT limit]: stable oblivious radix sort by
    (valid desc, keys) (descending keys sort on complemented bits).

    Valid rows come first, in key order (ties keep their input order with the radix sort;
    unspecified with ``method="network"``); with a public ``limit`` only the first
    min(n, limit) rows are kept (output length min(n, limit), else n; the number of valid
    rows among them stays secret). Cost: one sort as in :func:`aggregate` (linear in n per
    key bit, so top-k is a full sort followed by a free slice). Reveals nothing beyond the
    public output length.
    """
    cols, valid, _ = _sort_table(t, _sort_keys(t, keys), key_bits, method)
    if limit is not None:
        if limit < 0:
            raise ValueError("LIMIT must be non-negative")
        k = min(limit, t.n)
        ints = {c: bool(getattr(a, "integral", False)) for c, a in cols.items()}
        cols = {c: a[:k] for c, a in cols.items()}
        for c, a in cols.items():
            a.integral = ints[c]
        valid = valid[:k]
        valid.integral = True
    return SecTable(cols, valid, valid_first=True, ranges=dict(t.ranges))


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _random_tiebreak(stype: type, n: int, bits: int = 40) -> Any:
    """n secret uniformly random integers in [0, 2^bits) (linear combination of random bits;
    one batch of random bits, no comparison)."""
    r = mpc.np_random_bits(stype.sectype, bits * n).reshape(n, bits)
    pow2 = np.array([1 << i for i in range(bits)], dtype=object)
    return mpc.np_sum(r * pow2, axis=1)


def _field_to_number(v: int, f: int) -> int | float:
    # Exact integers come back as Python ints (no float rounding beyond 2^53).
    if v % (1 << f) == 0:
        return v >> f
    return v / (1 << f)


async def reveal(
    t: SecTable, receivers: list[int], columns: list[str], ordered: bool,
    method: str | None = None,
) -> np.ndarray | None:
    """Open the valid rows of ``columns`` to the parties in ``receivers`` only.

    Procedure: (1) bring valid rows to the front obliviously (compaction): if ``ordered``,
    by one stable radix pass on the valid bit, so valid rows keep their order (skipped when
    the table comes straight from :func:`order_by`, which already put valid rows first);
    otherwise the rows are first shuffled with the resharing shuffle (``shuffle.py``) and
    then compacted the same way, so a row's output position is uniformly random,
    independent of which input row or party it came from. Cost: one 1-bit extraction, one
    multiplication, one or two shuffles and one opening of a random permutation -- linear
    in n. (``method="network"``: the former Batcher sorts on (valid, position) or (valid,
    a secret random 40-bit number).) (2) Multiply every column by valid, so invalid rows
    become all-zero.
    (3) Open the (len(columns)+1) x n matrix [columns; valid] to the receivers only
    (``mpc.output(..., receivers=...)``); the other parties send their shares and learn nothing.

    Reveals to the receivers: the valid rows (in a data-independent order when not ordered)
    and their number k (also evident from the zero padding) -- n is public anyway; to the
    other parties: nothing. Cost: one sort (skipped for order_by output) + one round.

    Returns, at a receiver, a k x len(columns) object matrix of Python numbers: int for every
    integral value (exact, reconstructed from the field element, never via float), float
    otherwise (suitable for ``encoding.decode_column``); None at every other party.
    """
    for c in columns:
        if c not in t.columns:
            raise KeyError(f"reveal: no column {c!r}")
    logical = list(columns)
    columns = with_companions(t, logical)
    receivers = [receivers] if isinstance(receivers, int) else list(receivers)
    stype = t.sectype
    n = t.n
    f = stype.frac_length
    if n == 0:
        return np.empty((0, len(logical)), dtype=object) if mpc.pid in receivers else None
    sub = SecTable({c: t.columns[c] for c in columns}, t.valid)
    method = method or SORT_METHOD
    if (ordered and t.valid_first) or n == 1:  # one row has no order to hide, none to compact
        cols, valid = sub.columns, sub.valid
    elif method == "radix":
        m = _stack([sub.columns[c] for c in columns] + [sub.valid], stype, n)
        out = radix.compact(m, len(columns), shuffle_first=not ordered)
        cols = {c: out[i] for i, c in enumerate(columns)}
        valid = out[len(columns)]
        valid.integral = True
    elif ordered:
        pos = const(stype.sectype, np.arange(n, dtype=object), integral=True)
        w = n.bit_length() + f + 2  # positions differ by < n
        cols, valid = _sort_table_network(sub, [("\0pos", False)], {"\0pos": pos},
                                          {"\0pos": w})
        cols.pop("\0pos")
    else:
        rnd = _random_tiebreak(stype, n, RANDOM_BITS)
        w = RANDOM_BITS + f + 2  # random numbers differ by < 2^RANDOM_BITS
        cols, valid = _sort_table_network(sub, [("\0rnd", False)], {"\0rnd": rnd},
                                          {"\0rnd": w})
        cols.pop("\0rnd")
    # Zero the invalid rows: the receivers then see nothing of filtered-out data.
    m = valid.reshape(1, n)
    if columns:
        m = mpc.np_concatenate([_stack([cols[c] for c in columns], stype, n) * valid, m], axis=0)
    opened = await mpc.output(m, receivers=receivers, raw=True)
    if mpc.pid not in receivers:
        return None
    ints = np.asarray(opened.signed_(), dtype=object).reshape(len(columns) + 1, n)
    vflags = [_field_to_number(int(v), f) for v in ints[-1]]
    k = int(sum(vflags))
    if vflags[:k] != [1] * k or any(vflags[k:]):
        raise RuntimeError("reveal: valid flags are not 0/1 with valid rows first")
    values = {c: [_field_to_number(int(ints[j, i]), f) for i in range(k)]
              for j, c in enumerate(columns)}
    out = np.empty((k, len(logical)), dtype=object)
    for j, c in enumerate(logical):
        ps = pieces(t, c)
        if len(ps) == 1:
            col = values[c]
        else:  # a long text: join its pieces, piece 0 most significant (see encoding.py)
            col = [0] * k
            for p in ps:
                col = [(x << encoding.PIECE_BITS) | int(y) for x, y in zip(col, values[p])]
        if c + NULL_FLAG in values:
            col = [None if flag else x for x, flag in zip(col, values[c + NULL_FLAG])]
        out[:, j] = col
    return out
from .semijoin import semi_join  # noqa: E402,F401  (IN / EXISTS: see semijoin.py)
from .mmjoin import JoinTooLarge, join_many  # noqa: E402,F401  (many-to-many: mmjoin.py)
