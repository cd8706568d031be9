"""sqlmpc.backends.spark: a party's local job as a readable, standalone PySpark program."""

from .codegen import render_local_job
from .runner import run_local_job

__all__ = ["render_local_job", "run_local_job"]
