"""The catalog's six column types: their spelling, and the types of literals, casts and
arithmetic over them (the front end's type checking builds on these)."""

from __future__ import annotations

import re
from typing import Any

from sqlglot import exp

# The SQL column types a catalog may declare; decimal carries (precision, scale).
BASE_TYPES = ("int", "float", "text", "date", "bool")
DECIMAL_RE = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
NUMERIC = ("int", "float")
INTEGRAL_TYPES = ("int", "bool", "date", "text")  # exact integers in MPC (texts packed)


def normalize_type(text: Any) -> str | None:
    """The canonical spelling of a column type, or None when it is not one of ours."""
    if not isinstance(text, str):
        return None
    t = text.strip().lower().replace(" ", "")
    if t in BASE_TYPES:
        return t
    if t in ("integer", "bigint", "long"):
        return "int"
    if t in ("double", "real"):
        return "float"
    if t in ("string", "varchar"):
        return "text"
    if t in ("boolean",):
        return "bool"
    m = DECIMAL_RE.match(t)
    if m:
        p, s = int(m.group(1)), int(m.group(2))
        if 1 <= p <= 38 and 0 <= s <= p:
            return f"decimal({p},{s})"
    return None


def is_numeric(t: str) -> bool:
    return t in NUMERIC or t.startswith("decimal")


def decimal_scale(t: str) -> int:
    return int(t[t.index(",") + 1:-1]) if t.startswith("decimal") else 0


def combine_numeric(a: str, b: str) -> str:
    """The type of a + b, a - b, a * b for numeric a and b."""
    if "float" in (a, b):
        return "float"
    if a.startswith("decimal") or b.startswith("decimal"):
        return f"decimal(38,{max(decimal_scale(a), decimal_scale(b))})"
    return "int"


def literal_type(lit: exp.Literal) -> str:
    if lit.is_string:
        return "text"
    text = lit.this
    if "e" in text.lower():
        return "float"
    if "." in text:
        return f"decimal(38,{len(text.split('.')[1])})"
    return "int"


def cast_type(dt: exp.DataType) -> str | None:
    """Our type for a CAST target, or None when it has no counterpart."""
    name = dt.this
    T = exp.DataType.Type
    if name in (T.INT, T.BIGINT, T.SMALLINT, T.TINYINT):
        return "int"
    if name in (T.DOUBLE, T.FLOAT):
        return "float"
    if name in (T.TEXT, T.VARCHAR, T.CHAR):
        return "text"
    if name == T.DATE:
        return "date"
    if name == T.BOOLEAN:
        return "bool"
    if name == T.DECIMAL:
        params = [p.this.this if isinstance(p.this, exp.Literal) else p.name
                  for p in dt.expressions]
        if len(params) == 2:
            return normalize_type(f"decimal({params[0]},{params[1]})")
        return "decimal(38,0)" if not params else normalize_type(f"decimal({params[0]},0)")
    return None
