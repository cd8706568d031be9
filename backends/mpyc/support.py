"""What a party's runtime uses around the secure program: encoding its own rows for input,
the file they travel in, and the times the program marks.

Everything here runs on the party's own plaintext, before the protocol starts; nothing opens
a secret. The secure program itself imports ``ops`` only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .lib import encoding
from .lib.encoding import NULL_FLAG, piece_name
from .lib.inputs_file import dump_inputs, jsonable, load_inputs
from .lib.phases import TIMES

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TIMES", "dump_inputs", "encode_frame", "load_inputs"]


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
            flags = [1 if encoding.is_null(v) else 0 for v in values]
            if any(flags):
                values = [_zero_of(sql_type) if f else v for v, f in zip(values, flags)]
        try:
            if encoding.base_type(sql_type)[0] == "text":
                first, *rest = encoding.encode_text(values)
            else:
                first, rest = encoding.encode_column(values, sql_type), []
            encoding.check_range(first, bits, frac)
        except encoding.EncodingError as e:
            raise encoding.EncodingError(f"column {_plain(name)}: {e}") from None
        cols.append(first)
        for i, piece in enumerate(rest, start=1):
            extra.append(piece_name(name, i))
            extra_cols.append(piece)
        if flags is not None:
            extra.append(name + NULL_FLAG)
            extra_cols.append(np.array(flags, dtype=object))
    rows = np.empty((len(df), len(columns) + len(extra)), dtype=object)
    for j, values in enumerate(cols + extra_cols):
        rows[:, j] = list(values)
    # Public columns travel in the clear: texts as strings, other types encoded, so clear and
    # secret copies of a key compare equal.
    pub = {c: [jsonable(v) for v in (df[c].tolist() if types[columns.index(c)] == "text"
                                     else cols[columns.index(c)])] for c in public}
    return {"rows": rows, "extra": extra, "public": pub}


def _zero_of(sql_type: str) -> object:
    kind = encoding.base_type(sql_type)[0]
    return {"text": "", "date": "1970-01-01", "bool": 0}.get(kind, 0)


def _plain(name: str) -> str:
    return name.split(".", 1)[1] if "." in name and not name.startswith("__") else name
