"""Write a compiled plan to a folder: plan.json, explain.txt, each party's programs.

    out/plan.json              the physical plan (local jobs, secure job, data edges, DAG)
    out/explain.txt            the plain-language explanation
    out/<party>/local_job.py   that party's PySpark program (reads only its own parts)
    out/secure_job.py          the MPyC program every compute party runs
"""

from __future__ import annotations

from pathlib import Path

from ..backends.mpyc.codegen import render_secure_job
from ..backends.spark.codegen import render_local_job
from ..compiler.errors import SqlmpcError
from ..compiler.explain import explain_text
from ..compiler.ir.plan import Plan


def write_artifacts(plan: Plan, out: Path) -> list[Path]:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SqlmpcError(f"cannot create output folder {out}: {e.strerror}") from None
    files = [out / "plan.json", out / "explain.txt"]
    files[0].write_text(plan.to_json())
    files[1].write_text(explain_text(plan) + "\n")
    for party, job in plan.local_jobs.items():
        folder = out / party
        folder.mkdir(exist_ok=True)
        path = folder / "local_job.py"
        path.write_text(render_local_job(job))
        files.append(path)
    if plan.needs_mpc:
        path = out / "secure_job.py"
        path.write_text(render_secure_job(plan))
        files.append(path)
    return files
