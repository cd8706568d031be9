"""The result at its recipients: typed columns from the revealed numbers, and the plain steps
the recipients run on it after the reveal (see compiler/passes/push_up_reveal.py).

Everything here runs in the clear on what a recipient already received. pandas is imported
only where a result frame is built, so a compute party that receives nothing never loads it.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ....compiler.errors import DataError
from . import encoding

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["decode", "plain_coalesce", "plain_date", "plain_div", "plain_frame", "plain_isna",
           "plain_nullif"]


def decode(rows: np.ndarray | None, columns: list[str], types: list[str]) -> pd.DataFrame | None:
    """Decode revealed numbers into typed result columns (recipients only; None elsewhere)."""
    if rows is None:
        return None
    import pandas as pd

    data = {}
    for j, (c, t) in enumerate(zip(columns, types)):
        values = rows[:, j].tolist() if len(rows) else []
        data[c] = pd.Series(encoding.decode_column(values, t), dtype=object)
    df = pd.DataFrame(data, columns=columns)
    for c, t in zip(columns, types):
        if t == "float":
            df[c] = df[c].astype(float)  # NULL -> NaN
        elif t.startswith("decimal"):
            pass  # exact decimal.Decimal values (NULL: None); float64 loses digits above 2^53
        elif t == "int" and len(df) and df[c].isna().any():
            df[c] = df[c].astype("Int64")  # pandas' nullable integers keep NULLs
        elif t == "int" and len(df):
            if any(not -(1 << 63) <= int(v) < (1 << 63) for v in df[c]):
                # the message names the column, never the value
                raise DataError(f"result column {_plain(c)}: a value is out of range for int "
                                f"(64-bit); the query's arithmetic overflowed")
            df[c] = df[c].astype("int64")
    return df


def _plain(name: str) -> str:
    return name.split(".", 1)[1] if "." in name and not name.startswith("__") else name


def plain_frame(columns: dict[str, Any]) -> pd.DataFrame:
    """The recipients' result after a plain projection: {name: column or scalar}."""
    import pandas as pd

    return pd.DataFrame(columns)


def _floats(x: Any) -> Any:
    import pandas as pd

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
    import pandas as pd

    out = pd.Series(args[-1]) if np.ndim(args[-1]) else args[-1]
    for a in reversed(args[:-1]):
        if np.ndim(a):
            a = pd.Series(a)
            out = a.where(a.notna(), out)
    return out


def plain_isna(x: Any) -> Any:
    """IS NULL on a revealed or public column (or value)."""
    import pandas as pd

    return pd.isna(x)


def plain_date(text: str) -> datetime.date:
    """A date literal (as SQL writes it) for comparisons with a result's date column."""
    import pandas as pd

    return pd.Timestamp(text).date()
