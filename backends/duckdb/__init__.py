"""sqlmpc.backends.duckdb: the embedded engine for a party's local job (small parties, fast tests)."""

from .runner import run_local_job

__all__ = ["run_local_job"]
