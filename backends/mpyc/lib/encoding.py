"""Plaintext <-> number encoding of SQL column types for input into MPyC.

Every secret value in a generated MPyC program is a ``secfxp = mpc.SecFxp(l, f)`` number
(default l=96, f=32). This module turns a column of SQL values into numbers that such a
type holds *exactly*, and turns revealed numbers back into SQL values.

=============  =====================================  ==========================================
SQL type       encoded number                         decoded as
=============  =====================================  ==========================================
int            the value (Python int)                 Python int (rounded to nearest)
decimal(p,s)   the value as decimal.Decimal (exact;   decimal.Decimal rounded to s decimals
               Python int when integral)              (exact: never through float64)
float          the value as float64                   float
bool           0 / 1 (Python int)                     bool
date           days since 1970-01-01 (Python int)     datetime.date
text           UTF-8 bytes, right-padded with zero    str (padding stripped)
               bytes to a multiple of 7, cut into
               7-byte pieces, each a big-endian
               Python int (< 2^56): the first piece
               is the column itself, piece i>0 the
               companion column ``name~i``
=============  =====================================  ==========================================

Texts of any length: :func:`encode_text` gives k = ceil(longest / 7) piece columns. A value
shorter than the longest is padded with zero pieces, so equal texts have equal pieces and the
pieces compared lexicographically (piece 0 first) order texts like SQL's binary collation. The
number of pieces of a shared column is visible to the compute parties (it is the shape of what
is shared); ``explain`` says so. A revealed text comes back as one Python int (the pieces
joined, piece 0 most significant) and :func:`decode_column` turns it back into the string.

Why text is packed big-endian and right-padded: integer order then equals lexicographic byte
order of the UTF-8 strings (which for UTF-8 equals code point order), so secure ``<`` and
``=`` on the packed numbers give SQL's (binary collation) comparisons, and equality is exact.

Exactness: float64 holds integers only up to 2^53, but a packed 7-byte text is up to 2^56
and an int column up to 2^63. Integer-like types are therefore kept as Python ints in numpy
*object* arrays. ``secfxp.array(obj_array_of_python_ints)`` is lossless: MPyC shifts each
Python int left by f bits and builds the field array from exact Python ints
(``SecureFixedPointArray.__init__``). Decimals, which may exceed 2^53 too (decimal(20,2)
holds up to 10^18), are ``decimal.Decimal`` objects: ``table.to_field_matrix`` scales them
by 2^f with exact rational arithmetic and rounds once (fractions kept to 2^-f). Only
``float`` columns are float64 arrays (scaled by 2^f and rounded). Revealed numbers come
back as Python ints or exact ``Fraction`` s (``reveal._field_to_number``), so a decimal
result is rounded to its scale exactly, never through float64.

Range: a secfxp(l, f) number must satisfy |x| < 2^(l-f-1) (2^63 by default); values that do
not fit raise :class:`EncodingError` from :func:`check_range` instead of wrapping around
silently. Note that secure comparisons compute the sign of a difference, so ``a < b`` is only
correct when |a - b| < 2^(l-f-1); with the defaults that holds for all |x| < 2^62, which covers
every text, date, bool, and every int of magnitude below 2^62.

NULL (None/NaN/NaT) is not representable and raises :class:`EncodingError`.
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

import numpy as np

MAX_TEXT_BYTES = 7
"""Bytes of text in one piece: one secfxp(96, 32) number holds 56 bits exactly."""
PIECE_BITS = 8 * MAX_TEXT_BYTES

_EPOCH = datetime.date(1970, 1, 1)
_DECIMAL_RE = re.compile(r"^\s*(?:decimal|numeric)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)\s*$",
                         re.IGNORECASE)

# Companion columns. A logical column ``c`` may travel as several secret columns:
#   ``c~1``, ``c~2``, ...  the further 7-byte pieces of a text longer than 7 bytes (``c``
#                          itself holds piece 0);
#   ``c~null``             a 0/1 flag, 1 where c is SQL NULL (c itself then holds 0).
# The owners name them when they encode their rows, the operators carry them along
# (``table.py``), the code generator names them in expressions, and ``reveal`` joins them
# back into one value.
COMPANION = "~"
NULL_FLAG = COMPANION + "null"


def piece_name(column: str, i: int) -> str:
    """The name of piece ``i`` of a text column (piece 0 is the column itself)."""
    return column if i == 0 else f"{column}{COMPANION}{i}"


def companion_bases(names: Iterable[str]) -> dict[str, str]:
    """companion name -> its column's name, for the companions among ``names``."""
    out = {}
    for c in names:
        base, sep, tail = c.rpartition(COMPANION)
        if sep and base and (tail == "null" or tail.isdigit()):
            out[c] = base
    return out


def is_piece(name: str) -> bool:
    """A further 7-byte piece of a text column (``c~1``, ``c~2``, ...)."""
    base, sep, tail = name.rpartition(COMPANION)
    return bool(sep and base and tail.isdigit())


class EncodingError(ValueError):
    """A value cannot be encoded exactly (too long, out of range, NULL, or unparsable)."""


def base_type(sqltype: str) -> tuple[str, int | None]:
    """(kind, scale) of a SQL type: kind in int/decimal/float/bool/date/text; scale for
    decimal. An unknown type is an EncodingError."""
    t = sqltype.strip().lower()
    m = _DECIMAL_RE.match(t)
    if m:
        return "decimal", int(m.group(2) or 0)
    if t in ("decimal", "numeric"):
        return "decimal", 0
    aliases = {
        "int": "int", "integer": "int", "bigint": "int", "smallint": "int",
        "float": "float", "double": "float", "real": "float",
        "bool": "bool", "boolean": "bool",
        "date": "date",
        "text": "text", "string": "text", "varchar": "text",
    }
    if t not in aliases:
        raise EncodingError(f"unknown SQL type {sqltype!r}")
    return aliases[t], None


def is_null(v: Any) -> bool:
    """True for SQL NULL as a data frame holds it: None, NaN, NaT, pandas NA."""
    if v is None:
        return True
    if isinstance(v, float | np.floating) and math.isnan(v):
        return True
    if isinstance(v, np.datetime64) and np.isnat(v):
        return True
    try:  # pandas NA / NaT without importing pandas
        return bool(v != v)  # noqa: PLR0124 - NaN-like values are unequal to themselves
    except (TypeError, ValueError):
        return False


def _as_list(values: Iterable[Any]) -> list[Any]:
    if hasattr(values, "tolist") and not isinstance(values, np.ndarray):
        values = values.tolist()  # pandas Series -> Python scalars (Timestamps stay objects)
    elif isinstance(values, np.ndarray) and values.dtype.kind == "M":
        return list(values)  # keep datetime64 (tolist() would give ints for ns precision)
    elif isinstance(values, np.ndarray):
        values = values.tolist()
    return list(values)


def _text_bytes(v: Any) -> bytes:
    if not isinstance(v, str):
        v = str(v)
    b = v.encode("utf-8")
    if b"\x00" in b:
        # NUL bytes would be indistinguishable from padding.
        raise EncodingError("a text value contains a NUL character")
    return b


def _encode_text(v: Any) -> int:
    b = _text_bytes(v)
    if len(b) > MAX_TEXT_BYTES:
        raise EncodingError(
            f"a text value is {len(b)} bytes in UTF-8, longer than one piece of "
            f"{MAX_TEXT_BYTES} bytes (use encode_text for texts of any length)"
        )
    return int.from_bytes(b.ljust(MAX_TEXT_BYTES, b"\x00"), "big")


def text_pieces(v: Any, k: int | None = None) -> list[int]:
    """The 7-byte pieces of one text (at least ``k`` of them, zero-padded), as Python ints."""
    b = _text_bytes(v)
    n = max(1, -(-len(b) // MAX_TEXT_BYTES), k or 1)
    b = b.ljust(n * MAX_TEXT_BYTES, b"\x00")
    return [int.from_bytes(b[i:i + MAX_TEXT_BYTES], "big")
            for i in range(0, len(b), MAX_TEXT_BYTES)]


def encode_text(values: Iterable[Any]) -> list[np.ndarray]:
    """Encode a text column as k piece columns (object arrays of Python ints < 2^56), k the
    piece count of its longest value (at least 1). NULLs raise :class:`EncodingError`."""
    vals = _as_list(values)
    pieces = []
    for i, v in enumerate(vals):
        if is_null(v):
            raise EncodingError(f"NULL value in row {i}: NULLs are not supported in secret columns")
        pieces.append(text_pieces(v))
    k = max((len(p) for p in pieces), default=1)
    out = []
    for j in range(k):
        arr = np.empty(len(pieces), dtype=object)
        arr[:] = [p[j] if j < len(p) else 0 for p in pieces]
        out.append(arr)
    return out


def _decode_text(x: Any) -> str:
    n = int(x) if isinstance(x, int | np.integer) else round(float(x))
    if n < 0:
        raise EncodingError("a revealed number is not an encoded text")
    size = max(1, -(-n.bit_length() // 8))
    return n.to_bytes(size, "big").rstrip(b"\x00").decode("utf-8", errors="replace")


def _encode_date(v: Any) -> int:
    if isinstance(v, np.datetime64):
        return int(v.astype("datetime64[D]").astype(np.int64))
    if isinstance(v, datetime.datetime):  # also pandas Timestamp
        v = v.date()
    if isinstance(v, datetime.date):
        return (v - _EPOCH).days
    if isinstance(v, str):
        try:
            return (datetime.date.fromisoformat(v.strip()[:10]) - _EPOCH).days
        except ValueError as e:
            raise EncodingError("cannot parse a date (expected YYYY-MM-DD)") from e
    raise EncodingError(f"cannot encode a {type(v).__name__} as a date")


def _encode_int(v: Any) -> int:
    if isinstance(v, bool | np.bool_):
        return int(v)
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        if not float(v).is_integer():
            raise EncodingError("a value is not an integer")
        return int(v)
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError as e:
            raise EncodingError("cannot parse an integer") from e
    raise EncodingError(f"cannot encode a {type(v).__name__} as an integer")


def _encode_bool(v: Any) -> int:
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("true", "t", "1", "yes"):
            return 1
        if s in ("false", "f", "0", "no"):
            return 0
        raise EncodingError("cannot parse a boolean")
    if v in (0, 1):  # True/False/0/1/np.bool_
        return int(v)
    raise EncodingError("cannot encode a value as a boolean")


def _encode_float(v: Any) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError) as e:
        raise EncodingError("cannot encode a value as a number") from e
    if math.isinf(x):
        raise EncodingError("a value is infinite")
    return x


def _encode_decimal(v: Any) -> int | decimal.Decimal:
    """A decimal value exactly: a Python int when integral, else a Decimal. A float (an
    engine that hands decimals over as doubles) becomes the shortest decimal that reads back
    as it (repr), i.e. the value it was written as."""
    if isinstance(v, bool | np.bool_):
        return int(v)
    if isinstance(v, int | np.integer):
        return int(v)
    try:
        if isinstance(v, float | np.floating):
            d = decimal.Decimal(repr(float(v)))
        elif isinstance(v, decimal.Decimal):
            d = v
        elif isinstance(v, Fraction):
            d = _fraction_decimal(v)
        else:
            d = decimal.Decimal(str(v).strip())
    except (decimal.InvalidOperation, ValueError) as e:
        raise EncodingError("cannot encode a value as a number") from e
    if not d.is_finite():
        raise EncodingError("a value is infinite")
    return int(d) if d == d.to_integral_value() else d


def _fraction_decimal(x: Fraction) -> decimal.Decimal:
    with decimal.localcontext() as ctx:
        ctx.prec = 80  # ample for a 96-bit fixed-point number's digits
        return decimal.Decimal(x.numerator) / decimal.Decimal(x.denominator)


def _decode_decimal(x: Any, scale: int) -> decimal.Decimal:
    """A revealed number (int, exact Fraction, float) as a Decimal rounded to ``scale``
    decimals (half to even), computed exactly."""
    if isinstance(x, int | np.integer):
        d = decimal.Decimal(int(x))
    elif isinstance(x, Fraction):
        d = _fraction_decimal(x)
    elif isinstance(x, decimal.Decimal):
        d = x
    else:
        d = decimal.Decimal(repr(float(x)))
    with decimal.localcontext() as ctx:
        ctx.prec = 80
        return d.quantize(decimal.Decimal(1).scaleb(-scale), rounding=decimal.ROUND_HALF_EVEN)


def encode_column(values: Iterable[Any], sqltype: str) -> np.ndarray:
    """Encode a column of SQL values as numbers for input into a secfxp array.

    Returns a float64 array for ``float`` columns and an object array for the others: Python
    ints for ``int``, ``bool``, ``date`` and ``text``, Python ints and ``decimal.Decimal`` s
    for ``decimal`` (all exact beyond 2^53).
    Raises :class:`EncodingError` for NULLs, too-long texts and unparsable values.
    Range against a particular secfxp type is checked separately by :func:`check_range`.
    """
    kind, _ = base_type(sqltype)
    vals = _as_list(values)
    enc = {"int": _encode_int, "bool": _encode_bool, "date": _encode_date,
           "text": _encode_text, "decimal": _encode_decimal, "float": _encode_float}[kind]
    out = []
    for i, v in enumerate(vals):
        if is_null(v):
            raise EncodingError(f"NULL value in row {i}: NULLs are not supported in secret columns")
        out.append(enc(v))
    if kind == "float":
        return np.array(out, dtype=np.float64)
    arr = np.empty(len(out), dtype=object)
    arr[:] = out
    return arr


def decode_column(numbers: Iterable[Any], sqltype: str) -> list[Any]:
    """Decode revealed numbers (Python int, Fraction, float, numpy scalars) into SQL values.

    int -> Python int (rounded to nearest; exact for int and Fraction input), decimal(p,s) ->
    decimal.Decimal rounded to s decimals (exact for int and Fraction input), float -> float,
    bool -> bool, date -> datetime.date, text -> str; None (SQL NULL) stays None.
    """
    kind, scale = base_type(sqltype)
    out: list[Any] = []
    for x in _as_list(numbers):
        if is_null(x):
            out.append(None)  # SQL NULL (a revealed ~null flag)
            continue
        if kind == "int":
            out.append(int(x) if isinstance(x, int | np.integer) else
                       round(x) if isinstance(x, Fraction | decimal.Decimal) else round(float(x)))
        elif kind == "decimal":
            out.append(_decode_decimal(x, scale or 0))
        elif kind == "float":
            out.append(float(x))
        elif kind == "bool":
            out.append(bool(round(float(x))))
        elif kind == "date":
            out.append(_EPOCH + datetime.timedelta(days=round(float(x))))
        else:
            out.append(_decode_text(x))
    return out


def check_range(values: Iterable[Any], l: int = 96, f: int = 32) -> None:
    """Check that every number fits a secfxp(l, f) value: |x| < 2^(l-f-1).

    Raises :class:`EncodingError` naming the first offending row, never its value (messages
    may reach other parties); NaN/None raise "NULL". Works on float arrays and on object
    arrays of Python ints and Decimals (compared exactly, without rounding through float).
    """
    bound = 1 << (l - f - 1)
    for i, v in enumerate(_as_list(values)):
        if is_null(v):
            raise EncodingError(f"NULL value in row {i}: NULLs are not supported in secret columns")
        if isinstance(v, float | np.floating):
            bad = math.isinf(v) or abs(float(v)) >= bound
        elif isinstance(v, decimal.Decimal | Fraction):
            bad = not abs(v) < bound  # exact comparison (also false for an infinite Decimal)
        else:
            bad = abs(int(v)) >= bound
        if bad:
            raise EncodingError(f"the value in row {i} is out of range for the secure type "
                                f"secfxp({l},{f}): |x| must be < 2^{l - f - 1}")
