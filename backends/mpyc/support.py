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
from .secure_ops import SecTable, const

INTEGRAL_TYPES = ("int", "bool", "date", "text")
TIMES: dict[str, float] = {}  # phase -> time.perf_counter(), read by the party runtime


def mark(phase: str) -> None:
    """Note when a phase of the protocol was reached (for --stats; reveals nothing)."""
    TIMES[phase] = time.perf_counter()


# --- this party's inputs ----------------------------------------------------------------------
def encode_frame(df: pd.DataFrame, columns: list[str], types: list[str], public: list[str],
                 bits: int, frac: int) -> dict:
    """Encode a local job's output rows for input into MPC (raises EncodingError with the column)."""
    cols = []
    for name, sql_type in zip(columns, types):
        try:
            values = encoding.encode_column(df[name].tolist(), sql_type)
            encoding.check_range(values, bits, frac)
        except encoding.EncodingError as e:
            raise encoding.EncodingError(f"column {_plain(name)}: {e}") from None
        cols.append(values)
    rows = np.empty((len(df), len(columns)), dtype=object)
    for j, values in enumerate(cols):
        rows[:, j] = list(values)
    # public columns travel encoded too, so clear and secret copies of a key compare equal
    pub = {c: [_jsonable(v) for v in cols[columns.index(c)]] for c in public}
    return {"rows": rows, "public": pub}


def _plain(name: str) -> str:
    return name.split(".", 1)[1] if "." in name and not name.startswith("__") else name


def dump_inputs(inputs: dict[int, dict], path: Path) -> None:
    """Write encoded inputs as JSON (exact: Python ints stay ints, floats use repr)."""
    doc = {str(node): {"rows": [[_jsonable(v) for v in row] for row in d["rows"]],
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
        out[int(node)] = {"rows": rows, "public": d["public"]}
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
    """The same table with columns renamed (mapping: new name -> old name)."""
    ranges = {new: t.ranges[old] for new, old in mapping.items() if old in t.ranges}
    return SecTable({new: t.columns[old] for new, old in mapping.items()}, t.valid,
                    ranges=ranges)


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
            df[c] = df[c].astype(float)
        elif t == "int" and len(df):
            bad = next((v for v in df[c] if not -(1 << 63) <= int(v) < (1 << 63)), None)
            if bad is not None:
                from ...compiler.errors import DataError
                raise DataError(f"result column {_plain(c)}: value {int(bad)} is out of range "
                                f"for int (64-bit); the query's arithmetic overflowed")
            df[c] = df[c].astype("int64")
    return df
