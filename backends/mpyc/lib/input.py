"""Secret-sharing the owners' rows into MPC: :func:`share_input`.

Every party calls ``share_input`` with the same ``columns`` and ``senders``; a sender passes
its already encoded rows as a 2-D matrix (n_i x len(columns); ints may be Python ints in an
object array), every other party (e.g. a helper compute party) passes None.

Protocol: (1) each sender's row count n_i is sent *in the clear* to all parties
(``mpc.transfer``) -- this is the one size leak of the input: every party learns how many
rows each sender contributes; (2) each sender with n_i > 0 secret-shares its matrix with one
vectorised ``mpc.input`` (Shamir shares sent directly to each party, one round). Values are
scaled by 2^f exactly (``table.to_field_matrix``), never via float for ints.

The optional arguments, all public and the same at every party unless said otherwise:

``integral`` (public schema knowledge: True for int/bool/date/text columns) marks columns
whose values are integers, which makes later multiplications cheaper; it is never derived
from the data, since that would leak.

``types`` (the catalog's SQL types, one per column) and ``key_bits`` (column -> bit length L
(values in [0, 2^L)) or a (lo, hi) range) set the columns' key ranges for sorting (text 56
bits, date 20, bool 1, int 64; see ``keyspec.TYPE_RANGES``): a narrower key costs
proportionally less in every sort-based operator. Values outside a declared range give wrong
orders, never leaks.

``extra`` (a sender's own): names of companion columns (text pieces ``c~1``..., NULL flags
``c~null``; ``encoding.py``, "Companion columns") appended to its rows after ``columns``.
Their names travel in the clear with the row counts (so the number of pieces of a sender's
longest text in a column is visible to all parties; explain says so); a sender lacking a
companion another sender has sends zeros for it (zero pieces: shorter text; flag 0: not NULL).

``pad_to`` (compiler/analyses/padding.py) hides n_i: each sender appends all-zero dummy rows
up to a public bound (an int; more rows than that is a ValueError at the sender) or up to the
next power of two ("pow2"; 0 rows count as 1), and shares a 0/1 validity column with its rows;
the padded count is what is transferred, and ``valid`` is the shared column. Then it reveals
nothing beyond the bound, or only ceil(log2 n_i), instead of n_i.

``input_bits`` (the compiler picks them from the plan: compiler/analyses/owner_bits.py) names
integral columns that later operators sort on: each sender also computes the bits of
(x - lo) of its values x in the clear (``keyspec.clear_bits``, for the column's key range
[lo, hi] as above; text pieces and NULL flags of the column too) and Shamir-shares them in the
small field GF(2^31 - 1) (``smallfield.reshare_from``, one round per sender right after the
values), so the sorts skip extracting them (``radix.py``, "Key bits input by their owners").
A sender with a value outside the range gets a ValueError naming the column before anything
is sent; padding's dummy rows get the bits of (0 - lo) mod 2^L, which is what extraction
gives for their shared zero. Reveals nothing more: the bits are shared like the values, and
which columns are input as bits is public. Cost: one more round per sender and L small-field
elements per value.

Generated programs start every owner's input at once (:func:`started`, then :func:`taken`):
the owners' row counts travel in one round and their rows in the next, not two rounds per
owner one after the other.

Output: n = sum(n_i) rows in sender order, ``valid`` = 1 everywhere (padded: the shared
flags). Reveals: n_i (padded: see ``pad_to``) of every sender (to all parties), and the
companion column names. Cost: one round, O(n * k) field elements per party.
"""

from __future__ import annotations

from asyncio import Future
from collections.abc import Awaitable, Sequence
from typing import Any

import numpy as np
from mpyc import asyncoro
from mpyc.runtime import mpc

from . import smallfield as sf
from .encoding import NULL_FLAG, companion_bases
from .keyspec import TYPE_RANGES, KeySpec, clear_bits, spec_for
from .table import KeyBits, SecTable, ones, to_field_matrix, zeros

__all__ = ["PAD_VALID", "share_input", "started", "taken"]

PAD_VALID = "\0valid"  # share_input's shared validity column when padding


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

    ``my_rows``: this party's encoded rows if it is a sender, else None. The protocol, the
    optional arguments and what it reveals (each sender's row count, or only its padded
    bound): see the module docstring.
    """
    stype = secfxp.array
    k = len(columns)
    integral = [False] * k if integral is None else list(integral)
    if len(integral) != k:
        raise ValueError("integral must have one flag per column")
    senders = list(senders)
    mine, my_extra = _own_rows(my_rows, k, extra, senders)
    my_n = 0 if mine is None else int(mine.shape[0])
    f = secfxp.frac_length
    bit_cols = _bit_columns(columns, integral, input_bits)
    if mine is not None and bit_cols:  # the owner checks its values before anything is sent
        own = _input_ranges(columns, integral, my_extra, types, key_bits, f)
        for j, c in enumerate(list(columns) + my_extra):
            if c in bit_cols or companion_bases([c]).get(c) in bit_cols:
                _check_key_range(c, mine[:, j], own.get(c, spec_for(None, True, f)))
    sent_n = my_n if mine is None or pad_to is None else _padded_count(my_n, pad_to)
    sent = await mpc.transfer((sent_n, my_extra), senders=senders) if senders else []
    counts = [int(c) for c, _ in sent]
    companions = list(dict.fromkeys(e for _, es in sent for e in es))
    if mine is not None:
        mine = _aligned(mine, k, my_extra, companions, sent_n, pad_to)
    names = list(columns) + companions + ([PAD_VALID] if pad_to is not None else [])
    integral += [True] * (len(names) - k)
    parts = _share_values(secfxp, mine, senders, counts, len(names))
    ranges = _input_ranges(columns, integral[:k], companions, types, key_bits, f)
    bit_names = [c for b in bit_cols
                 for c in [b] + [x for x in companions if companion_bases([x]).get(x) == b]]
    bit_specs = [ranges.get(c, spec_for(None, True, f)) for c in bit_names]
    bit_parts = await _share_bits(mine, names, senders, counts, bit_names, bit_specs)
    cols = _columns(stype, parts, names, integral)
    bits = _key_bits(cols, bit_names, bit_specs, bit_parts)
    ranges = {c: r for c, r in ranges.items() if c in cols}
    valid = cols.pop(PAD_VALID) if pad_to is not None else ones(stype, sum(counts))
    return SecTable(cols, valid, ranges=ranges, bits=bits)


def _own_rows(my_rows: np.ndarray | None, k: int, extra: list[str] | None,
              senders: list[int]) -> tuple[np.ndarray | None, list[str]]:
    """This party's rows (None unless it is a sender) and its companion names, checked."""
    if mpc.pid not in senders:
        return None, []
    mine = np.zeros((0, k), dtype=object) if my_rows is None else np.asarray(my_rows)
    if mine.ndim == 1 and mine.size == 0:
        mine = mine.reshape(0, k + len(extra or []))
    my_extra = list(extra or [])
    if my_extra:
        if mine.shape[1] != k + len(my_extra):
            raise ValueError(f"party {mpc.pid} rows have {mine.shape[1]} columns, expected "
                             f"{k} + {len(my_extra)} companions")
    elif mine.ndim != 2 or mine.shape[1] != k:
        raise ValueError(f"party {mpc.pid} rows have shape {mine.shape}, expected (n, {k})")
    return mine, my_extra


def _bit_columns(columns: Sequence[str], integral: Sequence[bool],
                 input_bits: Sequence[str] | None) -> list[str]:
    """The columns whose key bits the owners input, checked against the columns."""
    bit_cols = list(dict.fromkeys(input_bits or []))
    for name in bit_cols:
        if name not in columns:
            raise ValueError(f"input_bits: {name!r} is not one of the columns")
        if not integral[list(columns).index(name)]:
            raise ValueError(f"input_bits: column {name!r} is not integral")
    return bit_cols


def _aligned(mine: np.ndarray, k: int, my_extra: list[str], companions: list[str],
             sent_n: int, pad_to: int | str | None) -> np.ndarray:
    """A sender's rows with every sender's companions in the agreed order (zeros for those it
    lacks) and, when padding, zero dummy rows up to ``sent_n`` and the validity column."""
    my_n = int(mine.shape[0])
    if companions != my_extra:
        wide = np.zeros((my_n, k + len(companions)), dtype=object)
        wide[:, :k] = mine[:, :k]
        for j, name in enumerate(my_extra):
            wide[:, k + companions.index(name)] = mine[:, k + j]
        mine = wide
    if pad_to is not None:
        padded = np.zeros((sent_n, mine.shape[1] + 1), dtype=object)
        padded[:my_n, :-1] = mine
        padded[:my_n, -1] = 1
        mine = padded
    return mine


def _share_values(secfxp: type, mine: np.ndarray | None, senders: list[int],
                  counts: list[int], k: int) -> list:
    """One vectorised ``mpc.input`` per sender with rows (its shares, still pending)."""
    stype = secfxp.array
    parts = []
    for sender, n_i in zip(senders, counts, strict=True):
        if n_i == 0:
            continue  # nothing to share; avoids zero-size protocol messages
        if sender == mpc.pid:
            x = stype(to_field_matrix(secfxp, mine), integral=False)
        else:
            x = stype(None, shape=(n_i, k), integral=False)
        parts.append(mpc.input(x, senders=sender))
    return parts


async def _share_bits(mine: np.ndarray | None, names: list[str], senders: list[int],
                      counts: list[int], bit_names: list[str], bit_specs: list[KeySpec]
                      ) -> list[np.ndarray]:
    """Each sender's key bits of ``bit_names`` (computed in the clear from its own rows),
    Shamir-shared in the small field: one round per sender."""
    total = sum(sp.bits for sp in bit_specs)
    bit_parts = []
    for sender, n_i in zip(senders, counts, strict=True):
        if n_i == 0 or not bit_names:
            continue
        clear = None
        if sender == mpc.pid:  # the owner's own bits, in the clear, of the sent (padded) rows
            clear = np.concatenate([clear_bits(mine[:, names.index(c)], sp)
                                    for c, sp in zip(bit_names, bit_specs, strict=True)])
        bit_parts.append(await sf.reshare_from(clear, [sender], (total, n_i)))
    return bit_parts


def _columns(stype: type, parts: list, names: list[str], integral: list[bool]
             ) -> dict[str, Any]:
    """The senders' shared matrices, concatenated, as named columns."""
    if not parts:
        return {name: zeros(stype, 0, bool(integral[j])) for j, name in enumerate(names)}
    m = parts[0] if len(parts) == 1 else mpc.np_concatenate(parts, axis=0)
    cols = {}
    for j, name in enumerate(names):
        c = m[:, j]
        c.integral = bool(integral[j])
        cols[name] = c
    return cols


def _key_bits(cols: dict[str, Any], bit_names: list[str], bit_specs: list[KeySpec],
              bit_parts: list[np.ndarray]) -> dict[str, KeyBits]:
    """The shared key bits, split per column and tied to that column's array."""
    if not bit_names:
        return {}
    total = sum(sp.bits for sp in bit_specs)
    allbits = np.concatenate(bit_parts, axis=1) if bit_parts else \
        np.zeros((total, 0), dtype=np.int64)
    bits, row = {}, 0
    for c, sp in zip(bit_names, bit_specs, strict=True):
        bits[c] = KeyBits(cols[c], sp, allbits[row:row + sp.bits])
        row += sp.bits
    return bits


def _input_ranges(columns: Sequence[str], integral: Sequence[bool], companions: Sequence[str],
                  types: list[str] | None, key_bits: dict[str, Any] | None, f: int
                  ) -> dict[str, Any]:
    """Public key ranges of an input's columns (all public schema knowledge): the catalog
    types' (``keyspec.TYPE_RANGES``), text pieces like their column, NULL flags 0/1, then the
    ``key_bits`` hints (scaled for non-integral columns, see ``keyspec.spec_for``)."""
    kinds = dict(zip(columns, (bool(x) for x in integral), strict=True))
    ranges = {}
    if types is not None:
        for name, ty in zip(columns, types, strict=True):
            base = str(ty).lower().split("(")[0].strip()
            if base in TYPE_RANGES:
                ranges[name] = TYPE_RANGES[base]
    bases = companion_bases(companions)
    for name in companions:
        if name.endswith(NULL_FLAG):
            ranges[name] = TYPE_RANGES["bool"]
        elif bases[name] in ranges:
            ranges[name] = ranges[bases[name]]
    for name, b in (key_bits or {}).items():
        ranges[name] = spec_for(b, kinds.get(name, True), f)
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


def _padded_count(n: int, pad_to: int | str) -> int:
    """The row count a padding sender announces (see the module docstring, ``pad_to``)."""
    if pad_to == "pow2":
        return 1 << max(n - 1, 0).bit_length()
    if n > int(pad_to):
        raise ValueError(f"party {mpc.pid} has {n} rows, more than the padding bound {pad_to}")
    return int(pad_to)


@asyncoro.mpc_coro
async def _running(steps: tuple):
    """Run the awaitables ``steps`` one after the other as one MPyC coroutine: it has its own
    program counter, so several of them interleave at every party alike. An exception is
    returned, for :func:`taken` to raise where the program awaits the result."""
    await mpc.returnType(Future)
    results = []
    try:
        for step in steps:
            results.append(await step)
        return results, None
    except Exception as e:  # noqa: BLE001 -- raised again by taken()
        for step in steps[len(results) + 1:]:
            getattr(step, "close", lambda: None)()  # never started: no warning about it
        return None, e


def started(*steps: Awaitable) -> Future:
    """Start ``steps`` (e.g. one owner's ``share_input`` and ``share_public``) now, beside the
    other owners' inputs; await the results with :func:`taken`."""
    return _running(steps)


async def taken(future: Future) -> list:
    """The results of a :func:`started` input, or its exception raised here."""
    results, error = await future
    if error is not None:
        raise error
    return results
