"""Glue that generated MPyC programs use around `secure_ops`: inputs, public columns, decoding.

Everything here either runs on one party's own plaintext (encoding its rows, decoding the
result it received) or moves values that the plan declares public; nothing opens a secret.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mpyc.runtime import mpc
from mpyc.sectypes import SecureObject

from . import encoding
from . import secure_ops as ops
from .secure_ops import SecTable, const

TIMES: dict[str, float] = {}  # phase -> time.perf_counter(), read by the party runtime


def mark(phase: str) -> None:
    """Note when a phase of the protocol was reached (for --stats; reveals nothing)."""
    TIMES[phase] = time.perf_counter()


# --- this party's inputs ----------------------------------------------------------------------
def encode_frame(df: pd.DataFrame, columns: list[str], types: list[str], public: list[str],
                 bits: int, frac: int, nullable: list[str] | None = None) -> dict:
    """Encode a local job's output rows for input into MPC (raises EncodingError with the column).

    Returns {"rows": n x (columns + extra) matrix, "extra": companion names, "public": ...}:
    a text column longer than 7 bytes gets piece columns ``c~1``...; a column the compiler
    knows may be NULL (``nullable``) gets a 0/1 flag column ``c~null`` (its NULLs encoded as
    0); a NULL anywhere else is an error naming the column and row.
    """
    nullable = set(nullable or ())
    cols, extra_cols, extra = [], [], []
    for name, sql_type in zip(columns, types):
        values = df[name].tolist()
        flags = None
        if name in nullable:
            flags = [1 if encoding._is_null(v) else 0 for v in values]
            if any(flags):
                values = [_zero_of(sql_type) if f else v for v, f in zip(values, flags)]
        try:
            if encoding._base_type(sql_type)[0] == "text":
                first, *rest = encoding.encode_text(values)
            else:
                first, rest = encoding.encode_column(values, sql_type), []
            encoding.check_range(first, bits, frac)
        except encoding.EncodingError as e:
            raise encoding.EncodingError(f"column {_plain(name)}: {e}") from None
        cols.append(first)
        for i, piece in enumerate(rest, start=1):
            extra.append(f"{name}{ops.COMPANION}{i}")
            extra_cols.append(piece)
        if flags is not None:
            extra.append(name + ops.NULL_FLAG)
            extra_cols.append(np.array(flags, dtype=object))
    rows = np.empty((len(df), len(columns) + len(extra)), dtype=object)
    for j, values in enumerate(cols + extra_cols):
        rows[:, j] = list(values)
    # Public columns travel in the clear: texts as strings, other types encoded, so clear and
    # secret copies of a key compare equal.
    pub = {c: [_jsonable(v) for v in (df[c].tolist() if types[columns.index(c)] == "text"
                                      else cols[columns.index(c)])] for c in public}
    return {"rows": rows, "extra": extra, "public": pub}


def _zero_of(sql_type: str) -> object:
    kind = encoding._base_type(sql_type)[0]
    return {"text": "", "date": "1970-01-01", "bool": 0}.get(kind, 0)


def _plain(name: str) -> str:
    return name.split(".", 1)[1] if "." in name and not name.startswith("__") else name


def dump_inputs(inputs: dict[int, dict], path: Path) -> None:
    """Write encoded inputs as JSON (exact: Python ints stay ints, floats use repr)."""
    doc = {str(node): {"rows": [[_jsonable(v) for v in row] for row in d["rows"]],
                       "extra": list(d.get("extra", [])),
                       "public": {c: [_jsonable(v) for v in vals]
                                  for c, vals in d["public"].items()}}
           for node, d in inputs.items()}
    path.write_text(json.dumps(doc))


def load_inputs(path: str | Path) -> dict[int, dict]:
    doc = json.loads(Path(path).read_text())
    out = {}
    for node, d in doc.items():
        rows = np.empty((len(d["rows"]), len(d["rows"][0]) if d["rows"] else 0), dtype=object)
        for i, row in enumerate(d["rows"]):
            rows[i, :] = row
        out[int(node)] = {"rows": rows, "extra": d.get("extra", []), "public": d["public"]}
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if hasattr(v, "as_tuple"):  # decimal.Decimal
        return float(v)
    return v


# --- public columns -----------------------------------------------------------------------------
async def share_public(values: dict | None, columns: list[str], sender: int) -> dict:
    """Send the columns a plan declares public from `sender` to every compute party in the clear."""
    if not columns:
        return {}
    got = await mpc.transfer(values if mpc.pid == sender else None, senders=sender)
    return {c: np.asarray(got[c], dtype=object) for c in columns}


def concat_public(parts: list[dict]) -> dict:
    if not parts:
        return {}
    return {c: np.concatenate([np.asarray(p[c], dtype=object) for p in parts]) for c in parts[0]}


# --- secure-table plumbing -----------------------------------------------------------------------
def rename(t: SecTable, mapping: dict[str, str]) -> SecTable:
    """The same table with columns renamed (mapping: new name -> old name), companion columns
    (text pieces, NULL flags) renamed with their column; so are the owners' key bits."""
    full = {}
    for new, old in mapping.items():
        for c in ops.with_companions(t, [old]):
            full[new + c[len(old):]] = c
    ranges = {new: t.ranges[old] for new, old in full.items() if old in t.ranges}
    cols = {new: t.columns[old] for new, old in full.items()}
    return SecTable(cols, t.valid, ranges=ranges, bits=t.keep_bits(cols))


def carry(t: SecTable, name: str, source: str) -> dict:
    """The companion columns of ``source`` (text pieces, NULL flag) renamed for output column
    ``name`` of a projection that copies ``source``."""
    return {name + c[len(source):]: t.columns[c] for c in ops.with_companions(t, [source])[1:]}


def parts(t: SecTable, name: str) -> list:
    """A text column as its list of piece arrays (see encoding.py)."""
    return [t.columns[c] for c in ops.pieces(t, name)]


def text_literal(value: str) -> list[int]:
    """A text constant as its pieces."""
    return encoding.text_pieces(value)


def text_columns(secfxp: type, name: str, pieces: list, n: int) -> dict:
    """Output columns {name: piece 0, name~1: piece 1, ...} of a text-valued expression."""
    return {(name if i == 0 else f"{name}{ops.COMPANION}{i}"): column(secfxp, p, n)
            for i, p in enumerate(pieces)}


def column(secfxp: type, x: Any, n: int) -> Any:
    """A secure array of length n from a secure array, a public array or a public scalar."""
    if isinstance(x, SecureObject):
        return x
    arr = np.asarray(x, dtype=object)
    if arr.ndim == 0:
        arr = np.full(n, arr.item(), dtype=object)
    arr = np.array([int(v) if isinstance(v, (bool, np.bool_)) else v for v in arr], dtype=object)
    return const(secfxp, arr)


def flags(secfxp: type, x: Any, n: int) -> Any:
    """Filter flags as a secure 0/1 array (a constant condition becomes a constant array)."""
    return column(secfxp, x, n)


def null_or(*flags: Any) -> Any:
    """OR of NULL flags (0/1, secure or public): an expression is NULL if an operand is."""
    out = flags[0]
    for f in flags[1:]:
        out = ops.or_(out, f)
    return out


def _floats(x: Any) -> Any:
    if isinstance(x, pd.Series):
        return x.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    return np.asarray(x, dtype=float)


def plain_div(a: Any, b: Any) -> Any:
    """a / b on revealed or public columns, NULL (NaN) where b is 0 or NULL, as in SQL."""
    a, b = _floats(a), _floats(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, np.nan, a / np.where(b == 0, 1, b))


def plain_nullif(a: Any, b: Any) -> Any:
    """NULLIF(a, b) on revealed or public columns: NaN where a equals b."""
    a = _floats(a)
    return np.where(a == _floats(b), np.nan, a)


def plain_coalesce(*args: Any) -> Any:
    """COALESCE on revealed or public columns."""
    out = pd.Series(args[-1]) if np.ndim(args[-1]) else args[-1]
    for a in reversed(args[:-1]):
        if np.ndim(a):
            a = pd.Series(a)
            out = a.where(a.notna(), out)
    return out


def power(x: Any, k: int) -> Any:
    """x ** k for a small whole k by repeated squaring (log2(k) secure multiplications)."""
    result, base = None, x
    while k:
        if k & 1:
            result = base if result is None else result * base
        k >>= 1
        if k:
            base = base * base
    return result


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


# --- the result -----------------------------------------------------------------------------------
def decode(rows: np.ndarray | None, columns: list[str], types: list[str]) -> pd.DataFrame | None:
    """Decode revealed numbers into typed result columns (recipients only)."""
    if rows is None:
        return None
    data = {}
    for j, (c, t) in enumerate(zip(columns, types)):
        values = rows[:, j].tolist() if len(rows) else []
        data[c] = pd.Series(encoding.decode_column(values, t), dtype=object)
    df = pd.DataFrame(data, columns=columns)
    for c, t in zip(columns, types):
        if t in ("float",) or t.startswith("decimal"):
            df[c] = df[c].astype(float)  # NULL -> NaN
        elif t == "int" and len(df) and df[c].isna().any():
            df[c] = df[c].astype("Int64")  # pandas' nullable integers keep NULLs
        elif t == "int" and len(df):
            bad = next((v for v in df[c] if not -(1 << 63) <= int(v) < (1 << 63)), None)
            if bad is not None:
                from ...compiler.errors import DataError
                raise DataError(f"result column {_plain(c)}: value {int(bad)} is out of range "
                                f"for int (64-bit); the query's arithmetic overflowed")
            df[c] = df[c].astype("int64")
    return df
