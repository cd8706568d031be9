"""DuckDB, the embedded default engine: it runs in the party's process, through the generic
in-process session (session.InProcessSession drives backends/duckdb/jobkit.py), so this module
adds no runner of its own; it offers the one-call form tests and benchmarks use.

    frames = run_local_job(job)     # {output node: DataFrame}, columns as LocalOutput.columns
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from . import open_engine

if TYPE_CHECKING:
    import pandas as pd

    from ...compiler.ir.plan import LocalJob


def run_local_job(job: LocalJob, *, workdir: Path | None = None,
                  quiet: bool = True) -> dict[int, pd.DataFrame]:
    """Render `job` (to workdir/local_job_<party>.py, or a temporary folder) and run it."""
    from ...backends import local_engine

    rendered = local_engine("duckdb").render(job)
    with tempfile.TemporaryDirectory(prefix="sqlmpc-duckdb-") as scratch:
        folder = Path(workdir) if workdir is not None else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        program = folder / rendered.name
        program.write_text(rendered.text)
        session = open_engine("duckdb", job.party, {}, workdir=folder, quiet=quiet)
        try:
            return session.run(job, program, folder)
        finally:
            session.close()


__all__ = ["run_local_job"]
