"""sqlmpc: compile SQL over several parties' tables into local jobs and MPyC protocols.

    import sqlmpc
    df = sqlmpc.run_sql(open("query.sql").read(), "catalog.toml")

`import sqlmpc` loads nothing heavy: the names below are imported on first use (PEP 562).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> the module that defines it
_LAZY = {
    "compile_sql": "sqlmpc.runtime.api",
    "explain_sql": "sqlmpc.runtime.api",
    "run_sql": "sqlmpc.runtime.api",
    "SqlmpcError": "sqlmpc.compiler.errors",
}

__all__ = ["SqlmpcError", "compile_sql", "explain_sql", "run_sql", "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module 'sqlmpc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
