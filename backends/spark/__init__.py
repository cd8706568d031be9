"""sqlmpc.backends.spark: a party's local job as a readable PySpark program.

Spark is the engine of record for big data and clusters: local mode (`local[*]`), a
standalone cluster (`spark://HOST:PORT`) or a Spark Connect server (`sc://HOST:PORT`), set per
party in the catalog (`spark_master`). The rendered program is
`python local_job_X.py --out DIR [--master URL | --remote sc://...]`; its code is jobkit.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from ..base import RenderedProgram
from .codegen import program_name, render_local_job

if TYPE_CHECKING:
    from sqlmpc.compiler.ir.plan import LocalJob

MASTER_RE = re.compile(r"^(local(\[[0-9*]+\])?|spark://\S+|sc://\S+)$")
EXACT_PERCENTILE_RE = re.compile(r"\b(MEDIAN|PERCENTILE_CONT|PERCENTILE_DISC)\s*\(", re.IGNORECASE)


class SparkEngine:
    name = "spark"
    dialect = "spark"
    title = "Spark"
    jobkit = "sqlmpc.backends.spark.jobkit"
    option_keys: ClassVar[dict[str, str]] = {
        "spark_master": "local[N], spark://HOST:PORT or sc://HOST:PORT (Spark Connect); "
                        "default local[*]"}

    def check_option(self, key: str, value: object) -> str | None:
        if key == "spark_master" and not (isinstance(value, str) and MASTER_RE.match(value)):
            return (f"spark_master must be local[N], spark://HOST:PORT or sc://HOST:PORT, "
                    f"got {value!r}")
        return None

    def unsupported(self, job: LocalJob) -> str | None:
        # sqlglot writes PERCENTILE_CONT / _DISC for Spark as PERCENTILE_APPROX: refuse rather
        # than answer approximately
        if any(EXACT_PERCENTILE_RE.search(out.sql) for out in job.outputs):
            return ("MEDIAN / PERCENTILE_CONT / PERCENTILE_DISC (Spark's form of them is an "
                    "approximation; use a DuckDB party)")
        return None

    def render(self, job: LocalJob) -> RenderedProgram:
        return RenderedProgram(program_name(job), render_local_job(job))

    def describe(self, options: Mapping[str, object]) -> str:
        return f"Spark, {options.get('spark_master') or 'local[*]'}"


ENGINE = SparkEngine()

__all__ = ["ENGINE", "render_local_job"]
