"""The file a party's encoded rows travel in from its runtime to its secure program (JSON).

Exact: Python ints stay ints (texts are packed into ints beyond 2^53), floats use repr, and
the Decimals of decimal columns travel as their digits (``{"decimal": "12.34"}``), never as
float64, which is exact only up to 2^53. The file holds only this party's own rows, encoded
by ``support.encode_frame``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["dump_inputs", "jsonable", "load_inputs"]


def dump_inputs(inputs: dict[int, dict], path: Path) -> None:
    """Write encoded inputs ({share node: {"rows", "extra", "public"}}) as JSON."""
    doc = {str(node): {"rows": [[_exact(v) for v in row] for row in d["rows"]],
                       "extra": list(d.get("extra", [])),
                       "public": {c: [jsonable(v) for v in vals]
                                  for c, vals in d["public"].items()}}
           for node, d in inputs.items()}
    path.write_text(json.dumps(doc))


def load_inputs(path: str | Path) -> dict[int, dict]:
    """The encoded inputs written by :func:`dump_inputs`, rows as object matrices."""
    doc = json.loads(Path(path).read_text())
    out = {}
    for node, d in doc.items():
        rows = np.empty((len(d["rows"]), len(d["rows"][0]) if d["rows"] else 0), dtype=object)
        for i, row in enumerate(d["rows"]):
            rows[i, :] = [Decimal(v["decimal"]) if isinstance(v, dict) else v for v in row]
        out[int(node)] = {"rows": rows, "extra": d.get("extra", []), "public": d["public"]}
    return out


def _exact(v: Any) -> Any:
    """An encoded secret value as JSON, exactly (Decimals as their digits)."""
    if isinstance(v, Decimal):
        return {"decimal": str(v)}
    return jsonable(v)


def jsonable(v: Any) -> Any:
    """A numpy scalar, date or Decimal as the plain JSON value it stands for (a Decimal as a
    float: for values shown in the clear, e.g. public columns, not for secret inputs)."""
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
