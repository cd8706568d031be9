"""sqlmpc: compile SQL over several parties' tables into local Spark jobs and MPyC protocols.

    import sqlmpc
    df = sqlmpc.run_sql(open("query.sql").read(), "catalog.toml")
"""

__version__ = "0.1.0"

from .compiler.errors import SqlmpcError  # noqa: E402
from .runtime.api import compile_sql, explain_sql, run_sql  # noqa: E402

__all__ = ["SqlmpcError", "compile_sql", "explain_sql", "run_sql", "__version__"]
